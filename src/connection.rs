//! Connection strings and single connections (for migrate/status and tools).

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::{Error, Result};

/// Parses a connection string (URL or key=value form).
///
/// Rejects strings where an empty parameter swallowed the next one
/// (`host= password=x` makes `password=x` the host): such a value would end
/// up in messages, and it is never what the user meant.
pub fn parse_config(database_url: &str) -> Result<Config> {
    // The driver's parse errors never echo the string, so no password leaks.
    let config = Config::from_str(database_url)
        .map_err(|e| Error::Config(format!("invalid database URL: {e}")))?;
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
        return Err(Error::Config(
            "invalid connection string: a parameter has an empty value and swallowed the next one (write empty values as '')".into(),
        ));
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

/// The password-like parts of a raw connection string (`password=...`
/// values and a URL's `user:password@`), to scrub from any text shown.
#[must_use]
pub fn secrets(database_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = database_url;
    while let Some(i) = rest.find("password") {
        rest = &rest[i + "password".len()..];
        let value = rest.trim_start().strip_prefix('=').map(str::trim_start);
        if let Some(v) = value {
            let v = match v.strip_prefix('\'') {
                Some(q) => q.split('\'').next().unwrap_or(q),
                None => v
                    .split(|c: char| c.is_whitespace() || c == '&')
                    .next()
                    .unwrap_or(v),
            };
            out.push(v.to_string());
        }
    }
    if let Some((_, after_scheme)) = database_url.split_once("://") {
        let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                out.push(pw.to_string());
            }
        }
    }
    let decoded: Vec<String> = out.iter().filter_map(|s| percent_decode(s)).collect();
    out.extend(decoded);
    out.retain(|s| !s.is_empty());
    out
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().filter(|d| d != s)
}

/// Replaces every occurrence of each secret in `text` with `***`.
#[must_use]
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
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
        reason: connect_reason(config, &e),
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Why a connection failed, with the configured password scrubbed.
pub(crate) fn connect_reason(config: &Config, e: &tokio_postgres::Error) -> String {
    let password: Vec<String> = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .into_iter()
        .collect();
    redact(&driver_reason(e), &password)
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

    #[test]
    fn secrets_are_found_in_every_form() {
        assert_eq!(secrets("host=h password=s3cr3t user=u"), ["s3cr3t"]);
        assert_eq!(secrets("host=h password = 'a b c' user=u"), ["a b c"]);
        assert_eq!(secrets("postgres://u:p%40ss@h:5432/db"), ["p%40ss", "p@ss"]);
        assert_eq!(secrets("postgres://h/db?password=x1&user=u"), ["x1"]);
        assert!(secrets("postgres://u@h/db").is_empty());
        assert_eq!(
            secrets("postgres://u:p%B\u{fc}@h/db"),
            ["p%B\u{fc}"],
            "no panic on non-ASCII"
        );
        let s = secrets("host= password=topsecret");
        assert_eq!(
            redact("at (u)@password=topsecret:5432", &s),
            "at (u)@password=***:5432"
        );
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
