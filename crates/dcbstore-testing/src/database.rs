//! [`TestDatabase`]: a fresh, empty database per test, dropped with it.

use dcbstore::PgResultExt;
use std::time::Duration;

use tokio_postgres::Config;

use crate::cluster::shared_cluster;
use crate::err;
use dcbstore::connection::{connect, parse_config, ConnectOptions};
use dcbstore::Result;

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
            .await
            .db()?;
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

    /// Creates the store schema in the database (runs [`dcbstore::migrate()`]).
    pub async fn migrate(&self) -> Result<()> {
        let mut client = connect(&self.options()?).await?;
        dcbstore::migrate(&mut client).await.map(|_| ())
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
