//! Throwaway PostgreSQL for tests and examples.
//!
//! [`TestDatabase::create`] gives a fresh, empty database: in the server named
//! by `DATABASE_URL` when set, else in a [`TestCluster`] started once per
//! process from the local PostgreSQL binaries (found on `PATH`, through
//! `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`). The cluster
//! listens on 127.0.0.1 on a free port, lives in a temporary directory, runs
//! as the `postgres` user when the process is root (initdb refuses root), and
//! is stopped and removed when dropped, or by a watchdog when the process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::Config;

use crate::connection::{connect, parse_config};
use crate::{Error, Result};

/// A PostgreSQL cluster in a temporary directory, removed on drop.
pub struct TestCluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
    keep: bool,
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
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
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

/// The `pg_regress` program that goes with the binaries in `bindir`, if installed.
#[must_use]
pub fn find_pg_regress(bindir: &Path) -> Option<PathBuf> {
    let candidates = [
        bindir.join("../lib/pgxs/src/test/regress/pg_regress"),
        bindir.join("pg_regress"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| err(e.to_string()))?.port())
}

impl TestCluster {
    /// initdb + start. Takes a second or two.
    pub fn start() -> Result<TestCluster> {
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
            err("no PostgreSQL server binaries found (initdb, pg_ctl): install them (Debian: apt-get install postgresql) or set DATABASE_URL")
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
            port: 0,
            password,
            as_postgres,
            keep,
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

    /// Starts the server on a free port.
    fn launch(mut self) -> Result<TestCluster> {
        let data = self.dir.join("data");
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            // TCP only: no Unix socket, whose path length and quoting would
            // depend on the temporary directory.
            let opts = format!(
                "-p {} -c listen_addresses=127.0.0.1 -k '' -c max_connections=300 -c shared_buffers=128MB",
                self.port
            );
            let log = self.dir.join("log");
            match self.run(
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
            ) {
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

    /// The directory holding the server binaries.
    #[must_use]
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection string (key=value form) for `dbname` as the superuser.
    #[must_use]
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={} dbname={dbname}",
            self.port, self.password
        )
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
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

/// The process-wide cluster, started on first use.
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
    admin: Config,
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
            Ok(url) if !url.is_empty() => parse_config(&url)?,
            _ => {
                let cluster = tokio::task::spawn_blocking(shared_cluster)
                    .await
                    .map_err(|e| err(e.to_string()))??;
                parse_config(&cluster.url("postgres"))?
            }
        };
        let client = connect(&admin).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let mut config = admin.clone();
        config.dbname(&name);
        Ok(TestDatabase {
            url: to_key_value(&config),
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

    /// Parsed configuration of the database.
    pub fn config(&self) -> Result<Config> {
        parse_config(&self.url)
    }

    /// Creates the store schema in the database (runs [`crate::migrate()`]).
    pub async fn migrate(&self) -> Result<()> {
        let mut client = connect(&self.config()?).await?;
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
        let mut client = connect(&parse_config(&scratch.url)?).await?;
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
