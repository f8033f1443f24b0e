//! Connection strings and single connections (for migrate/status and tools).
//!
//! Every connection dcbstore opens (the [`Store`](crate::Store)'s pool,
//! projection leases, the CLI, [`connect`]) uses TLS as the connection
//! string's `sslmode` and `sslrootcert` say: see [`crate::tls`].

use std::path::PathBuf;
use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

mod env;
mod params;
mod secrets;

pub use env::VARIABLES as LIBPQ_VARIABLES;
pub use secrets::{redact, secrets};

use params::{take_tls_params, TlsParam};

use crate::error::{Error, Result};
use crate::tls::{RootCerts, SslMode, TlsSettings};

/// A parsed connection string: the driver's settings and the TLS settings,
/// which the driver's own parser cannot hold (it knows only `disable`,
/// `prefer` and `require`, and no `sslrootcert`).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host, port, user, password, database and the other driver settings.
    pub config: Config,
    /// `sslmode` and `sslrootcert`.
    pub tls: TlsSettings,
}

impl ConnectOptions {
    /// Parses a connection string (URL or key=value form), taking out
    /// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`; default `prefer`) and `sslrootcert` (a PEM file, or
    /// `system` for the platform's roots, which implies `verify-full`).
    ///
    /// Rejects strings where an empty parameter swallowed the next one
    /// (`host= password=x` makes `password=x` the host): such a value would
    /// end up in messages, and it is never what the user meant.
    pub fn parse(database_url: &str) -> Result<ConnectOptions> {
        let (config, mode, root) = parse_parts(database_url)?;
        finish(config, mode, root)
    }

    /// [`parse`](Self::parse), then what the string leaves out from
    /// libpq's environment, as `psql` does: `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
    /// `PGAPPNAME`, `PGCONNECT_TIMEOUT`, then the password file
    /// (`PGPASSFILE`, else `~/.pgpass`) when there is still no password.
    /// A parameter of the string always wins over the environment. An empty
    /// string is the environment alone. [`Store::connect`](crate::Store::connect)
    /// and [`Store::builder`](crate::Store::builder) connect this way.
    pub fn resolve(database_url: &str) -> Result<ConnectOptions> {
        ConnectOptions::resolve_with(database_url, &|name| std::env::var(name).ok())
    }

    /// [`resolve`](Self::resolve) with the environment variables `env`
    /// gives (for tests, or a program that keeps its settings elsewhere).
    pub fn resolve_with(
        database_url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnectOptions> {
        let database_url = env::with_url_port(database_url, env);
        let (mut config, mut mode, mut root) = parse_parts(&database_url)?;
        env::fill(&mut config, &mut mode, &mut root, env)?;
        let mut options = finish(config, mode, root)?;
        if options.config.get_password().is_none() {
            if let Some(password) = env::password_file(&options.config, env) {
                options.config.password(password);
            }
        }
        Ok(options)
    }

    /// The password these options connect with (from the string, the
    /// environment or the password file), to keep out of every text shown.
    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        password_of(&self.config)
    }
}

/// The driver's settings and the raw `sslmode` and `sslrootcert` of a
/// connection string.
type Parts = (Config, Option<String>, Option<String>);

fn parse_parts(database_url: &str) -> Result<Parts> {
    let (rest, taken) = take_tls_params(database_url);
    let config = parse_driver_config(&rest, database_url)?;
    let (mut mode, mut root) = (None, None);
    for (key, value) in taken {
        match key {
            TlsParam::Mode => mode = Some(value),
            TlsParam::RootCert => root = Some(value),
        }
    }
    if root.iter().chain(&mode).any(|v| v.contains('=')) {
        return Err(swallowed());
    }
    Ok((config, mode, root))
}

/// The options of parsed parts: the TLS settings checked and set.
fn finish(
    mut config: Config,
    mode: Option<String>,
    root: Option<String>,
) -> Result<ConnectOptions> {
    let mode = mode.map(|m| m.parse::<SslMode>()).transpose()?;
    let (mode, root_cert) = match root.as_deref() {
            None | Some("") => (mode.unwrap_or_default(), RootCerts::Platform),
            Some("system") => match mode {
                None | Some(SslMode::VerifyFull) => (SslMode::VerifyFull, RootCerts::Platform),
                Some(weak) => {
                    return Err(Error::Config(format!(
                        "sslrootcert=system needs sslmode=verify-full (sslmode={weak} would not check the certificate against the system's roots): set sslmode=verify-full or remove sslmode"
                    )))
                }
            },
            Some(path) => (mode.unwrap_or_default(), RootCerts::File(PathBuf::from(path))),
        };
    config.ssl_mode(mode.driver_mode());
    Ok(ConnectOptions {
        config,
        tls: TlsSettings { mode, root_cert },
    })
}

impl ConnectOptions {
    /// `user@host:port/dbname` for messages: never the password.
    #[must_use]
    pub fn describe(&self) -> String {
        describe(&self.config)
    }
}

impl From<&Config> for ConnectOptions {
    /// The driver's `sslmode` (disable, prefer or require), no `sslrootcert`.
    fn from(config: &Config) -> ConnectOptions {
        use tokio_postgres::config::SslMode as Driver;
        let mode = match config.get_ssl_mode() {
            Driver::Disable => SslMode::Disable,
            Driver::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        };
        ConnectOptions {
            config: config.clone(),
            tls: TlsSettings::new(mode),
        }
    }
}

impl From<Config> for ConnectOptions {
    fn from(config: Config) -> ConnectOptions {
        ConnectOptions::from(&config)
    }
}

impl From<&ConnectOptions> for ConnectOptions {
    fn from(options: &ConnectOptions) -> ConnectOptions {
        options.clone()
    }
}

fn swallowed() -> Error {
    Error::Config(
        "invalid connection string: a parameter has an empty value and swallowed the next one (write empty values as '')".into(),
    )
}

/// Parses a connection string into the driver's settings.
///
/// `sslmode=verify-ca`/`verify-full` (and `sslrootcert`, with `require`)
/// are refused: a bare [`Config`] cannot carry certificate verification, and
/// connecting with it would silently not verify. Use [`ConnectOptions::parse`]
/// for those (everything in dcbstore does). Otherwise as
/// [`ConnectOptions::parse`].
pub fn parse_config(database_url: &str) -> Result<Config> {
    let options = ConnectOptions::parse(database_url)?;
    if options.tls.verifies_certificate() {
        let with_file = if options.tls.mode == SslMode::Require {
            " with an sslrootcert file"
        } else {
            ""
        };
        return Err(Error::Config(format!(
            "sslmode={}{with_file} verifies the server's certificate, which a bare tokio_postgres::Config cannot carry: use dcbstore::connection::ConnectOptions::parse",
            options.tls.mode
        )));
    }
    Ok(options.config)
}

/// The driver's parse of `database_url` with the TLS parameters taken out
/// (`rest`); the checks look at the original.
fn parse_driver_config(rest: &str, database_url: &str) -> Result<Config> {
    // The driver's parse errors never echo the string, so no password leaks.
    let config =
        Config::from_str(rest).map_err(|e| Error::Config(format!("invalid database URL: {e}")))?;
    let hosts = config.get_hosts().iter().filter_map(|h| match h {
        Host::Tcp(h) => Some(h.as_str()),
        Host::Unix(_) => None,
    });
    let mut values = hosts
        .chain(config.get_user())
        .chain(config.get_dbname())
        .chain(config.get_options())
        .chain(config.get_application_name());
    if values.any(|v| v.contains('=')) {
        return Err(swallowed());
    }
    if let Some((_, rest)) = database_url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.matches('@').count() > 1 {
            return Err(Error::Config(
                "invalid database URL: more than one '@' before the host (write '@' in a user name or password as %40)".into(),
            ));
        }
    }
    Ok(config)
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

/// Opens one connection, driving it on a background task, with TLS as
/// `target` says: a [`ConnectOptions`] (from [`ConnectOptions::parse`]), or
/// a [`Config`] (whose `sslmode` can only be disable, prefer or require).
pub async fn connect(target: impl Into<ConnectOptions>) -> Result<Client> {
    let options = target.into();
    let (client, connection) = open(&options.config, &options.tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The stream type of every dcbstore connection (TLS or not).
pub(crate) type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// Opens one connection and returns it undriven (for LISTEN).
pub(crate) async fn open(
    config: &Config,
    tls: &TlsSettings,
) -> Result<(Client, Connection<Socket, TlsStream>)> {
    let connector = tls_connector(config, tls)?;
    let mut config = config.clone();
    config.ssl_mode(tls.mode.driver_mode());
    config.connect(connector).await.map_err(|e| Error::Connect {
        target: describe(&config),
        reason: connect_reason(&config, tls, &e),
        source: crate::error::pg_driver_error(e),
    })
}

/// The TLS connector for `tls`; its errors (an unreadable `sslrootcert`,
/// say) never show `config`'s password.
pub(crate) fn tls_connector(config: &Config, tls: &TlsSettings) -> Result<MakeRustlsConnect> {
    tls.connector().map_err(|e| match e {
        Error::Config(m) => Error::Config(redact(&m, &password_of(config))),
        other => other,
    })
}

fn password_of(config: &Config) -> Vec<String> {
    config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .into_iter()
        .collect()
}

/// Why a connection failed (naming the TLS cause, if TLS is one), with the
/// configured password scrubbed.
pub(crate) fn connect_reason(
    config: &Config,
    tls: &TlsSettings,
    e: &tokio_postgres::Error,
) -> String {
    let password = password_of(config);
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let reason = tls.explain(&host, e).unwrap_or_else(|| driver_reason(e));
    redact(&reason, &password)
}

fn driver_reason(e: &tokio_postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> (TlsSettings, Config) {
        let o = ConnectOptions::parse(url).unwrap();
        (o.tls, o.config)
    }

    #[test]
    fn tls_parameters_are_taken_from_both_forms() {
        use tokio_postgres::config::SslMode as Driver;
        let (tls, config) =
            tls_of("host=db user=u sslmode=verify-full sslrootcert='/etc/my ca.pem' dbname=d");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, RootCerts::File("/etc/my ca.pem".into()));
        assert_eq!(config.get_ssl_mode(), Driver::Require);
        assert_eq!(config.get_dbname(), Some("d"));
        assert_eq!(config.get_user(), Some("u"));

        let (tls, config) = tls_of(
            "postgres://u:p%3Fw@db:5433/d?application_name=a&sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert, RootCerts::File("/tmp/ca.pem".into()));
        assert_eq!(config.get_ssl_mode(), Driver::Require);
        assert_eq!(config.get_application_name(), Some("a"));
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(config.get_password(), Some(&b"p?w"[..]));

        let (tls, config) = tls_of("postgresql://db/d?sslmode=disable");
        assert_eq!(tls, TlsSettings::new(SslMode::Disable));
        assert_eq!(config.get_ssl_mode(), Driver::Disable);
        let (tls, config) = tls_of("host=db");
        assert_eq!(tls, TlsSettings::default());
        assert_eq!(config.get_ssl_mode(), Driver::Prefer);
        // The last value wins, as in libpq.
        assert_eq!(
            tls_of("host=db sslmode=require sslmode=verify-full").0.mode,
            SslMode::VerifyFull
        );
        // system: the platform's roots, verify-full by default; weaker modes refused.
        assert_eq!(
            tls_of("host=db sslrootcert=system").0,
            TlsSettings::new(SslMode::VerifyFull)
        );
        let err = ConnectOptions::parse("host=db sslrootcert=system sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs sslmode=verify-full"), "{err}");
    }

    #[test]
    fn tls_parameter_errors_are_clear_and_never_echo_passwords() {
        let err = ConnectOptions::parse("host=db sslmode=verify_full password=pw1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid sslmode 'verify_full'") && err.contains("verify-full"),
            "{err}"
        );
        assert!(!err.contains("pw1"));
        let err = ConnectOptions::parse("postgres://u:pw2@db/d?sslmode=bogus")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid sslmode 'bogus'") && !err.contains("pw2"),
            "{err}"
        );
        for bad in [
            "host=db sslmode= password=pw3",
            "host=db sslrootcert= password=pw3",
        ] {
            let err = ConnectOptions::parse(bad).unwrap_err().to_string();
            assert!(err.contains("empty value") && !err.contains("pw3"), "{err}");
        }
        // Swallowed by an empty host: the driver's reading, so refused.
        let err = ConnectOptions::parse("host= sslmode=disable")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty value"), "{err}");
        // Unterminated quotes are left to the driver's error.
        assert!(ConnectOptions::parse("host=db sslmode='require").is_err());
    }

    #[test]
    fn parse_config_refuses_what_a_config_cannot_carry() {
        for url in [
            "host=db sslmode=verify-full",
            "host=db sslmode=verify-ca sslrootcert=/ca.pem",
            "host=db sslmode=require sslrootcert=/ca.pem",
            "host=db sslrootcert=system",
        ] {
            let err = parse_config(url).unwrap_err().to_string();
            assert!(err.contains("ConnectOptions::parse"), "{url}: {err}");
        }
        use tokio_postgres::config::SslMode as Driver;
        assert_eq!(
            parse_config("host=db sslmode=require")
                .unwrap()
                .get_ssl_mode(),
            Driver::Require
        );
        let options = ConnectOptions::from(parse_config("host=db sslmode=disable").unwrap());
        assert_eq!(options.tls.mode, SslMode::Disable);
    }

    #[test]
    fn swallowed_parameters_are_rejected() {
        for bad in [
            "host= password=x",
            "user= password=x",
            "dbname= password=x",
            "host=h options= password=x",
            "host=h application_name= password=x",
        ] {
            let err = parse_config(bad).unwrap_err().to_string();
            assert!(err.contains("empty value"), "{err}");
            assert!(!err.contains("password=x"), "{err}");
        }
        assert!(parse_config("host=localhost user=u dbname=d password=''").is_ok());
        let err = parse_config("postgres://app:p@ss@db/app")
            .unwrap_err()
            .to_string();
        assert!(err.contains("%40") && !err.contains("p@ss"), "{err}");
        assert!(parse_config("postgres://app:p%40ss@db/app").is_ok());
    }
}
