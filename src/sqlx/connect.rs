//! One connection string for the store and for sqlx: the application's pool
//! from the string (or environment) a [`Store`](crate::Store) connects with.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio_postgres::config::Host;

use crate::connection::ConnectOptions;
use crate::error::{Error, Result};
use crate::tls::{RootCerts, SslMode};

/// sqlx's options for `database_url`, resolved as
/// [`Store::connect`](crate::Store::connect) resolves it: a URL or
/// key=value string, then libpq's environment (`PGHOST`, `PGUSER`,
/// `PGPASSWORD`, ...) and the password file for what it leaves out,
/// `sslmode` and `sslrootcert` included (TLS itself is sqlx's: enable one of
/// its `tls-*` features for `require` and above).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let url = std::env::var("DATABASE_URL")?;
/// let pool = sqlx::postgres::PgPoolOptions::new()
///     .max_connections(16)
///     .connect_with(dcbstore::sqlx::connect_options(&url)?)
///     .await?;
/// let store = dcbstore::Store::builder(&url)?.build().await?; // the same database
/// # Ok(()) }
/// ```
pub fn connect_options(database_url: &str) -> Result<PgConnectOptions> {
    let resolved = ConnectOptions::resolve(database_url)?;
    let config = &resolved.config;
    let mut options = PgConnectOptions::new_without_pgpass();
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => options = options.host(host),
        Some(Host::Unix(dir)) => options = options.socket(dir),
        None => {}
    }
    if let Some(port) = config.get_ports().first() {
        options = options.port(*port);
    }
    if let Some(user) = config.get_user() {
        options = options.username(user);
    }
    if let Some(password) = config.get_password() {
        let password = std::str::from_utf8(password)
            .map_err(|_| Error::Config("the password is not UTF-8, which sqlx requires".into()))?;
        options = options.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        options = options.database(dbname);
    }
    if let Some(name) = config.get_application_name() {
        options = options.application_name(name);
    }
    options = options.ssl_mode(match resolved.tls.mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    });
    if let RootCerts::File(path) = &resolved.tls.root_cert {
        options = options.ssl_root_cert(path);
    }
    Ok(options)
}
