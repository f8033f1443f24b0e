//! Connection strings and single connections (for migrate/status and tools).

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::{Error, Result};

/// Parses a connection string (URL or key=value form).
pub fn parse_config(database_url: &str) -> Result<Config> {
    // The driver's parse errors never echo the string, so no password leaks.
    Config::from_str(database_url).map_err(|e| Error::Config(format!("invalid database URL: {e}")))
}

/// `user@host:port/dbname` for messages: never the password.
#[must_use]
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// Opens one connection, driving it on a background task.
pub async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Connect {
        target: describe(config),
        reason: connect_reason(&e),
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub(crate) fn connect_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                let m = inner.to_string();
                if !s.contains(&m) {
                    s = format!("{s}: {m}");
                }
                src = inner.source();
            }
            s
        }
    }
}
