//! Throwaway PostgreSQL for tests and examples.
//!
//! [`TestDatabase::create`] gives a fresh, empty database: in the server named
//! by `DATABASE_URL` when set, else in a [`TestCluster`] started once per
//! process from the local PostgreSQL binaries (found on `PATH`, through
//! `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`). The cluster
//! listens on 127.0.0.1 on a free port, lives in a temporary directory, runs
//! as the `postgres` user when the process is root (initdb refuses root), and
//! is stopped and removed when dropped, or by a watchdog when the process exits.
//!
//! With the `testcontainers` feature (needs Rust 1.88), when no local binaries
//! are found, [`TestCluster::start`] (and so [`shared_cluster`],
//! [`TestDatabase::create`] and [`Scratch`]) runs PostgreSQL 15 in a Docker
//! container instead, removed on drop or, for the shared one, by a watchdog
//! (`docker rm -f`) when the process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::Config;

use crate::connection::{connect, parse_config, ConnectOptions};
use crate::{Error, Result};

/// A PostgreSQL cluster in a temporary directory, removed on drop (or, with
/// the `testcontainers` feature and no local binaries, a container).
pub struct TestCluster {
    dir: PathBuf,
    bindir: PathBuf,
    host: String,
    port: u16,
    password: String,
    as_postgres: bool,
    keep: bool,
    #[cfg(feature = "testcontainers")]
    container: Option<container::Running>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// What to do when no server is available.
const NO_SERVER_HINT: &str = "install PostgreSQL server binaries (Debian: apt-get install postgresql), set DATABASE_URL, or enable the testcontainers feature with Docker running";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory of the local PostgreSQL binaries: the first of `PATH`,
/// `pg_config --bindir` and the newest `/usr/lib/postgresql/*/bin` that has
/// `initdb` and `pg_ctl`.
#[must_use]
pub fn postgres_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(out) = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versioned.sort();
    candidates.extend(versioned.into_iter().rev().map(|(_, p)| p));
    candidates.into_iter().find_map(|dir| {
        // Follow a symlinked pg_ctl to the real bin directory, which also
        // holds psql and sits beside pg_regress.
        let real = std::fs::canonicalize(dir.join("pg_ctl")).ok()?;
        let real_dir = real.parent()?.to_path_buf();
        [real_dir, dir]
            .into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    })
}

/// The `pg_regress` program that goes with the binaries in `bindir`, if
/// installed: `$PG_REGRESS` when set, else beside `bindir`, else in the PGXS
/// directory of `pg_config --pgxs` (where Nix's split packages keep it).
#[must_use]
pub fn find_pg_regress(bindir: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PG_REGRESS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(bindir.join("../lib/pgxs/src/test/regress/pg_regress"));
    candidates.push(bindir.join("pg_regress"));
    let pg_config = [bindir.join("pg_config"), PathBuf::from("pg_config")];
    candidates.extend(pg_config.iter().filter_map(|exe| {
        let out = Command::new(exe).arg("--pgxs").output().ok()?;
        // <pkglibdir>/pgxs/src/makefiles/pgxs.mk
        let pgxs = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let src = pgxs.parent()?.parent()?;
        out.status
            .success()
            .then(|| src.join("test/regress/pg_regress"))
    }));
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| err(e.to_string()))?.port())
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
        let base = if is_root() {
            // As root, the `postgres` user must be able to reach the directory:
            // /tmp rather than a TMPDIR that may be private to root.
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "dcbstore-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        TestCluster::start_at(dir, false)
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
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&cluster.dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(err("running as root, but cannot hand the cluster directory to the `postgres` user (does it exist?)"));
            }
        }
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

    /// Starts the server on a free port.
    fn launch(mut self) -> Result<TestCluster> {
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

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
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

/// A fresh empty database, dropped (best effort) when this value is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
    admin: ConnectOptions,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// Creates a database named `dcbstore_test_<random>` in the server of
    /// `DATABASE_URL` when set, else in the [`shared_cluster`].
    pub async fn create() -> Result<TestDatabase> {
        let name = format!("dcbstore_test_{}", uuid::Uuid::new_v4().simple());
        let admin = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => ConnectOptions::parse(&url)?,
            _ => {
                let cluster = tokio::task::spawn_blocking(shared_cluster)
                    .await
                    .map_err(|e| err(e.to_string()))??;
                ConnectOptions::parse(&cluster.url("postgres"))?
            }
        };
        let client = connect(&admin).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let mut config = admin.config.clone();
        config.dbname(&name);
        let url = [to_key_value(&config), admin.tls.to_key_value()].join(" ");
        Ok(TestDatabase {
            url: url.trim_end().to_string(),
            name,
            admin,
        })
    }

    /// Connection string of the database (key=value form, includes the password).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parsed configuration of the database (fails when `DATABASE_URL`
    /// verifies certificates: see [`parse_config`]; use
    /// [`options`](Self::options) then).
    pub fn config(&self) -> Result<Config> {
        parse_config(&self.url)
    }

    /// Parsed connection settings of the database, TLS included.
    pub fn options(&self) -> Result<ConnectOptions> {
        ConnectOptions::parse(&self.url)
    }

    /// Creates the store schema in the database (runs [`crate::migrate()`]).
    pub async fn migrate(&self) -> Result<()> {
        let mut client = connect(&self.options()?).await?;
        crate::migrate::migrate(&mut client).await.map(|_| ())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside async context: a short-lived thread and runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(Ok(client)) =
                        tokio::time::timeout(Duration::from_secs(10), connect(&admin)).await
                    {
                        let _ = client.batch_execute(&sql).await;
                    }
                });
            }
        })
        .join();
    }
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Renders a configuration back to a key=value connection string.
#[must_use]
pub fn to_key_value(config: &Config) -> String {
    let mut parts = Vec::new();
    if let Some(tokio_postgres::config::Host::Tcp(h)) = config.get_hosts().first() {
        parts.push(format!("host={}", quote(h)));
    } else if let Some(tokio_postgres::config::Host::Unix(p)) = config.get_hosts().first() {
        parts.push(format!("host={}", quote(&p.display().to_string())));
    }
    if let Some(p) = config.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = config.get_user() {
        parts.push(format!("user={}", quote(u)));
    }
    if let Some(pw) = config.get_password() {
        parts.push(format!("password={}", quote(&String::from_utf8_lossy(pw))));
    }
    if let Some(d) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(d)));
    }
    parts.join(" ")
}

/// A migrated database for examples and benchmarks, and what keeps it alive.
pub struct Scratch {
    _cluster: Option<TestCluster>,
    _db: Option<TestDatabase>,
    url: String,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl Scratch {
    /// The database of `DATABASE_URL` when set (or, with `fresh`, a new
    /// database in that server), else a throwaway cluster that is removed
    /// when this value is dropped. Runs [`crate::migrate()`] on it.
    pub async fn start(fresh: bool) -> Result<Scratch> {
        let scratch = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() && fresh => {
                let db = TestDatabase::create().await?;
                Scratch {
                    url: db.url().to_string(),
                    _cluster: None,
                    _db: Some(db),
                }
            }
            Ok(url) if !url.is_empty() => Scratch {
                url,
                _cluster: None,
                _db: None,
            },
            _ => {
                let cluster = tokio::task::spawn_blocking(TestCluster::start)
                    .await
                    .map_err(|e| err(e.to_string()))??;
                Scratch {
                    url: cluster.url("postgres"),
                    _cluster: Some(cluster),
                    _db: None,
                }
            }
        };
        let mut client = connect(&ConnectOptions::parse(&scratch.url)?).await?;
        let _ = crate::migrate::migrate(&mut client).await?;
        Ok(scratch)
    }

    /// The connection string.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The server settings that decide benchmark figures (version, fsync,
/// synchronous_commit, wal_sync_method, shared_buffers), as `name=value, ...`.
pub async fn server_settings(client: &tokio_postgres::Client) -> Result<String> {
    let rows = client
        .query(
            "SELECT name || '=' || setting FROM pg_settings \
             WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'server_version') \
             ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .join(", "))
}

/// The PostgreSQL 15 container of the `testcontainers` feature.
#[cfg(feature = "testcontainers")]
mod container {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, ImageExt};
    use testcontainers_modules::postgres::Postgres;

    /// A running container and the runtime that drives its Docker client.
    pub(super) struct Running {
        rt: Option<tokio::runtime::Runtime>,
        container: Option<ContainerAsync<Postgres>>,
    }

    /// Starts `postgres:15-alpine` with superuser `postgres`/`password` and
    /// the cluster's settings; returns it with the host and port to reach it.
    /// Runs on a thread of its own, so it may be called from anywhere
    /// (including from inside a Tokio runtime).
    pub(super) fn start(password: &str) -> Result<(Running, String, u16), String> {
        let password = password.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let (container, host, port) = rt.block_on(async {
                let container = Postgres::default()
                    .with_password(&password)
                    .with_tag("15-alpine")
                    .with_env_var("POSTGRES_INITDB_ARGS", "--encoding=UTF8 --locale=C")
                    .with_cmd([
                        "-c",
                        "fsync=off",
                        "-c",
                        "max_connections=300",
                        "-c",
                        "shared_buffers=128MB",
                    ])
                    .with_startup_timeout(Duration::from_secs(120))
                    .start()
                    .await
                    .map_err(|e| e.to_string())?;
                let host = container.get_host().await.map_err(|e| e.to_string())?;
                let port = container
                    .get_host_port_ipv4(5432)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((container, host.to_string(), port))
            })?;
            // The port is mapped on IPv4; `localhost` may resolve to ::1 first.
            let host = match host.as_str() {
                "localhost" => "127.0.0.1".to_string(),
                h => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            };
            Ok((
                Running {
                    rt: Some(rt),
                    container: Some(container),
                },
                host,
                port,
            ))
        })
        .join()
        .map_err(|_| "starting the container panicked".to_string())?
    }

    impl Running {
        /// Removes the container once this process is gone, even if it never
        /// runs destructors (the shared cluster is a static). Needs the
        /// `docker` command; best effort.
        pub(super) fn spawn_watchdog(&self) {
            let Some(id) = self.container.as_ref().map(|c| c.id().to_string()) else {
                return;
            };
            let script = format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 1; done; docker rm -f -v '{id}' >/dev/null 2>&1",
                pid = std::process::id(),
            );
            let _ = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let (Some(rt), Some(container)) = (self.rt.take(), self.container.take()) {
                // On a thread of its own: the drop may happen inside a runtime,
                // where neither block_on nor dropping a runtime is allowed.
                let _ = std::thread::spawn(move || {
                    let _ = rt.block_on(container.rm());
                    drop(rt);
                })
                .join();
            }
        }
    }
}
