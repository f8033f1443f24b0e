//! [`TestCluster`]: a PostgreSQL cluster in a temporary directory (or a
//! container), and the process-wide [`shared_cluster`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::binaries::postgres_bindir;
#[cfg(feature = "testcontainers")]
use crate::container;
use crate::{err, free_port};
use dcbstore::Result;

/// A PostgreSQL cluster in a temporary directory, removed on drop (or, with
/// the `testcontainers` feature and no local binaries, a container).
pub struct TestCluster {
    pub(super) dir: PathBuf,
    pub(super) bindir: PathBuf,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) password: String,
    pub(super) as_postgres: bool,
    pub(super) keep: bool,
    #[cfg(feature = "testcontainers")]
    pub(super) container: Option<container::Running>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// What to do when no server is available.
const NO_SERVER_HINT: &str = "install PostgreSQL server binaries (Debian: apt-get install postgresql), set DATABASE_URL, or enable the testcontainers feature with Docker running";

/// A new directory name for a throwaway cluster.
pub(super) fn fresh_dir() -> PathBuf {
    let base = if is_root() {
        // As root, the `postgres` user must be able to reach the directory:
        // /tmp rather than a TMPDIR that may be private to root.
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "dcbstore-pg-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

pub(super) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestCluster {
    /// initdb + start. Takes a second or two.
    ///
    /// With the `testcontainers` feature and no local binaries
    /// ([`postgres_bindir`] finds none), starts a PostgreSQL 15 container
    /// instead (its [`bindir`](Self::bindir) is empty).
    pub fn start() -> Result<TestCluster> {
        #[cfg(feature = "testcontainers")]
        if postgres_bindir().is_none() {
            return TestCluster::start_container();
        }
        TestCluster::start_at(fresh_dir(), false)
    }

    /// A cluster kept in `dir` across runs (for large benchmark logs): created
    /// on first use, reused after, stopped (not removed) on drop.
    pub fn start_persistent(dir: impl Into<PathBuf>) -> Result<TestCluster> {
        TestCluster::start_at(dir.into(), true)
    }

    fn start_at(dir: PathBuf, keep: bool) -> Result<TestCluster> {
        let bindir = postgres_bindir().ok_or_else(|| {
            err(format!(
                "no PostgreSQL server binaries found (initdb, pg_ctl): {NO_SERVER_HINT}"
            ))
        })?;
        let as_postgres = is_root();
        let data = dir.join("data");
        let pwfile = dir.join("pwfile");
        let exists = data.join("PG_VERSION").is_file() && pwfile.is_file();
        if !exists {
            std::fs::create_dir_all(&dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            let password = uuid::Uuid::new_v4().simple().to_string();
            std::fs::write(&pwfile, &password).map_err(|e| err(e.to_string()))?;
        }
        let password = std::fs::read_to_string(&pwfile)
            .map_err(|e| err(format!("cannot read {}: {e}", pwfile.display())))?;
        let cluster = TestCluster {
            dir,
            bindir,
            host: "127.0.0.1".into(),
            port: 0,
            password,
            as_postgres,
            keep,
            #[cfg(feature = "testcontainers")]
            container: None,
        };
        if exists {
            return cluster.launch();
        }
        cluster.hand_over()?;
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        )?;
        cluster.launch()
    }

    /// A PostgreSQL 15 container, when Docker is usable.
    #[cfg(feature = "testcontainers")]
    fn start_container() -> Result<TestCluster> {
        let password = uuid::Uuid::new_v4().simple().to_string();
        let (running, host, port) = container::start(&password).map_err(|e| {
            err(format!(
                "no PostgreSQL server binaries found (initdb, pg_ctl), and no PostgreSQL container could be started (is Docker running?): {e}; {NO_SERVER_HINT}"
            ))
        })?;
        running.spawn_watchdog();
        Ok(TestCluster {
            dir: PathBuf::new(),
            bindir: PathBuf::new(),
            host,
            port,
            password,
            as_postgres: false,
            keep: true,
            container: Some(running),
        })
    }

    /// As root, gives the cluster's directory to the `postgres` user, who runs
    /// the server.
    pub(super) fn hand_over(&self) -> Result<()> {
        if !self.as_postgres {
            return Ok(());
        }
        let ok = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&self.dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(err("running as root, but cannot hand the cluster directory to the `postgres` user (does it exist?)"))
        }
    }

    /// Starts the server on a free port.
    pub(super) fn launch(mut self) -> Result<TestCluster> {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => {
                    self.spawn_watchdog();
                    return Ok(self);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(err(format!("PostgreSQL did not start: {last}")))
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub(super) fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("cannot run {tool}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )))
        }
    }

    /// Kills the server as a crash would (`pg_ctl stop -m immediate`: no
    /// checkpoint, recovery from the WAL at the next start). For fault tests.
    pub fn crash(&self) -> Result<()> {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Starts the server again after [`crash`](Self::crash), on the same port.
    pub fn restart(&self) -> Result<()> {
        self.pg_ctl_start()
    }

    /// `pg_ctl start` on this cluster's port.
    fn pg_ctl_start(&self) -> Result<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        // TCP only: no Unix socket, whose path length and quoting would
        // depend on the temporary directory.
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k '' -c max_connections=300 -c shared_buffers=128MB",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        )
    }

    /// Stops the server and removes the directory once this process is gone,
    /// even if it never runs destructors (statics, aborts).
    fn spawn_watchdog(&self) {
        let stop = format!(
            "{} '{}' -D '{}' -m immediate stop",
            if self.as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
            self.bindir.join("pg_ctl").display(),
            self.dir.join("data").display()
        );
        let remove = if self.keep {
            String::new()
        } else {
            format!("; rm -rf '{}'", self.dir.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1{remove}",
            pid = std::process::id(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// The directory holding the server binaries (empty for a container).
    #[must_use]
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (none exists for a container cluster).
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes `contents` to `name` in the data directory, owned by the
    /// server's user with mode 0600 (as PostgreSQL wants a private key):
    /// certificates, keys, `pg_hba.conf`. See [`configure`](Self::configure).
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<()> {
        let data = self.data_dir();
        if !data.is_dir() {
            return Err(err(
                "this cluster has no local data directory (a container?)",
            ));
        }
        let path = data.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("cannot chmod {}: {e}", path.display())))?;
        }
        if self.as_postgres {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&path)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(err(format!(
                    "cannot hand {} to the `postgres` user",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Appends `settings` (`name = value`) to `postgresql.conf` and reloads
    /// the configuration (with `pg_hba.conf`). Settings that need a restart
    /// are not applied; TLS ones (`ssl`, `ssl_cert_file`, `ssl_key_file`)
    /// are. The reload is asynchronous: new connections see it shortly after.
    pub fn configure(&self, settings: &[(&str, &str)]) -> Result<()> {
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|e| err(format!("cannot read {}: {e}", conf.display())))?;
        for (name, value) in settings {
            text.push_str(&format!("\n{name} = '{}'", value.replace('\'', "''")));
        }
        text.push('\n');
        std::fs::write(&conf, text)
            .map_err(|e| err(format!("cannot write {}: {e}", conf.display())))?;
        self.reload()
    }

    /// Makes the server reread its configuration files (`pg_ctl reload`).
    pub fn reload(&self) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D".as_ref(), data.as_os_str(), "reload".as_ref()],
        )
    }

    /// Connection string (key=value form) for `dbname` as the superuser.
    #[must_use]
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres password={} dbname={dbname}",
            self.host, self.port, self.password
        )
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        #[cfg(feature = "testcontainers")]
        if self.container.is_some() {
            // Dropping the field removes the container.
            return;
        }
        let data = self.dir.join("data");
        let _ = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "stop".as_ref(),
            ],
        );
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

static SHARED: OnceLock<std::result::Result<TestCluster, String>> = OnceLock::new();

/// The process-wide cluster, started on first use (see [`TestCluster::start`]
/// for the container fallback of the `testcontainers` feature).
pub fn shared_cluster() -> Result<&'static TestCluster> {
    SHARED
        .get_or_init(|| TestCluster::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| err(e.clone()))
}
