//! libpq's environment: the `PG*` variables and the password file, for what
//! a connection string leaves out (as `psql` reads them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

use crate::error::{Error, Result};

/// The libpq environment variables a connection string is completed from
/// ([`ConnectOptions::resolve`](crate::connection::ConnectOptions::resolve)),
/// besides `PGPASSFILE`.
pub const VARIABLES: [&str; 9] = [
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
];

/// A URL whose hosts name no port, with `PGPORT`'s written in: the
/// driver's URL parser gives such a host port 5432, which would hide the
/// variable. Anything else is returned as it is.
pub(super) fn with_url_port(url: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let Some(port) = var(env, "PGPORT") else {
        return url.to_string();
    };
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| url.strip_prefix(p).map(|_| p.len()))
    else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    if hosts.is_empty() {
        return url.to_string();
    }
    let has_port = |h: &str| {
        let after_ipv6 = h.rfind(']').map_or(h, |i| &h[i + 1..]);
        after_ipv6.contains(':')
    };
    let host_list: Vec<&str> = hosts.split(',').collect();
    if host_list.iter().any(|h| has_port(h)) {
        return url.to_string();
    }
    let ports: Vec<&str> = port.split(',').map(str::trim).collect();
    let with_ports: Vec<String> = host_list
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let p = ports.get(i).or(ports.first()).copied().unwrap_or("");
            if p.is_empty() {
                (*h).to_string()
            } else {
                format!("{h}:{p}")
            }
        })
        .collect();
    format!(
        "{}{userinfo}{}{}",
        &url[..scheme_end],
        with_ports.join(","),
        &rest[authority_end..]
    )
}

/// A variable's value; an empty one counts as unset, as in libpq.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// Fills what `config` (and the raw `sslmode`/`sslrootcert`) leave out
/// from the `PG*` variables, then libpq's defaults for the host (the local
/// socket directory when a server listens there, else `localhost`) and the
/// user (the operating system's).
pub(super) fn fill(
    config: &mut Config,
    mode: &mut Option<String>,
    root: &mut Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if config.get_ports().is_empty() {
        if let Some(ports) = var(env, "PGPORT") {
            for p in ports.split(',') {
                let port = p.trim().parse::<u16>().map_err(|_| {
                    Error::Config(format!("PGPORT={p:?} is not a port number (1 to 65535)"))
                })?;
                config.port(port);
            }
        }
    }
    if config.get_hosts().is_empty() {
        match var(env, "PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',') {
                    config.host(h.trim());
                }
            }
            None => default_host(config),
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = var(env, "PGUSER")
            .or_else(|| var(env, "USER"))
            .or_else(|| var(env, "LOGNAME"))
        {
            config.user(user);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = var(env, "PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = var(env, "PGDATABASE") {
            config.dbname(db);
        }
    }
    if config.get_application_name().is_none() {
        if let Some(name) = var(env, "PGAPPNAME") {
            config.application_name(name);
        }
    }
    if config.get_connect_timeout().is_none() {
        if let Some(t) = var(env, "PGCONNECT_TIMEOUT") {
            let secs = t.trim().parse::<i64>().map_err(|_| {
                Error::Config(format!(
                    "PGCONNECT_TIMEOUT={t:?} is not a number of seconds"
                ))
            })?;
            // As in libpq: zero or less waits without a limit (here: the
            // store's default), and less than 2 seconds means 2.
            if secs > 0 {
                config.connect_timeout(Duration::from_secs(secs.max(2).unsigned_abs()));
            }
        }
    }
    if mode.is_none() {
        *mode = var(env, "PGSSLMODE");
    }
    if root.is_none() {
        *root = var(env, "PGSSLROOTCERT");
    }
    Ok(())
}

/// libpq's default host: the socket directory when a server listens there
/// (on the configured port), else `localhost`.
fn default_host(config: &mut Config) {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    #[cfg(unix)]
    for dir in ["/var/run/postgresql", "/run/postgresql", "/tmp"] {
        if Path::new(dir).join(format!(".s.PGSQL.{port}")).exists() {
            config.host_path(dir);
            return;
        }
    }
    let _ = port;
    config.host("localhost");
}

/// The password file's password for `config`'s first host, port, database
/// and user: `PGPASSFILE`, else `~/.pgpass`. As in libpq, a file that does
/// not exist is no error, one that group or others may read is ignored (with
/// a warning), and a socket directory matches the host name `localhost`.
/// An unreadable or malformed file is ignored with a warning that never
/// shows its content.
pub(super) fn password_file(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let path = var(env, "PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| var(env, "HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let user = config.get_user()?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "password file has group or world access and is ignored; permissions should be u=rw (0600) or less"
            );
            return None;
        }
    }
    let file = match postgres_secrets::PgPass::open(&path) {
        Ok(f) => f,
        Err(_) => {
            tracing::warn!(
                path = %path.display(),
                "password file cannot be read as hostname:port:database:username:password lines and is ignored"
            );
            return None;
        }
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(_)) => "localhost".to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(user);
    let found = file
        .query()
        .hostname(&host)
        .and_then(|q| q.port(port))
        .and_then(|q| q.database(dbname))
        .and_then(|q| q.username(user))
        .ok()?
        .find()
        .ok()
        .flatten()?;
    Some(found.password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnectOptions;
    use std::collections::HashMap;

    fn resolve(url: &str, vars: &[(&str, &str)]) -> ConnectOptions {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        ConnectOptions::resolve_with(url, &|k| vars.get(k).cloned()).expect("resolve")
    }

    #[test]
    fn the_string_wins_over_the_environment_which_fills_the_rest() {
        let vars = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
        ];
        let o = resolve("", &vars);
        assert_eq!(o.config.get_hosts(), [Host::Tcp("envhost".into())]);
        assert_eq!(o.config.get_ports(), [6543]);
        assert_eq!(o.config.get_user(), Some("envuser"));
        assert_eq!(o.config.get_password(), Some(&b"envpw"[..]));
        assert_eq!(o.config.get_dbname(), Some("envdb"));
        assert_eq!(o.config.get_application_name(), Some("envapp"));
        assert_eq!(
            o.config.get_connect_timeout(),
            Some(&Duration::from_secs(7))
        );
        assert_eq!(o.tls.mode, crate::tls::SslMode::Require);
        assert_eq!(o.secrets(), ["envpw"]);

        let o = resolve(
            "postgres://u:pw@h:1234/d?sslmode=disable&application_name=a",
            &vars,
        );
        assert_eq!(o.config.get_hosts(), [Host::Tcp("h".into())]);
        assert_eq!(o.config.get_ports(), [1234]);
        assert_eq!(o.config.get_user(), Some("u"));
        assert_eq!(o.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(o.config.get_dbname(), Some("d"));
        assert_eq!(o.config.get_application_name(), Some("a"));
        assert_eq!(o.tls.mode, crate::tls::SslMode::Disable);
        // Only what the string leaves out.
        let o = resolve("postgres://u@h/d", &vars);
        assert_eq!(o.config.get_password(), Some(&b"envpw"[..]));
        assert_eq!(o.config.get_ports(), [6543]);
        let o = resolve("postgres://u:p@h1,[::1]/d", &vars);
        assert_eq!(o.config.get_ports(), [6543, 6543]);
        let o = resolve("postgres://h:7/d", &vars);
        assert_eq!(o.config.get_ports(), [7]);
        let o = resolve("postgres:///d", &vars);
        assert_eq!(o.config.get_hosts(), [Host::Tcp("envhost".into())]);
        assert_eq!(o.config.get_ports(), [6543]);
    }

    #[test]
    fn bad_variables_are_clear_errors() {
        let err = ConnectOptions::resolve_with("host=h", &|k| {
            (k == "PGPORT").then(|| "54x2".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("PGPORT"), "{err}");
        let err = ConnectOptions::resolve_with("host=h", &|k| {
            (k == "PGCONNECT_TIMEOUT").then(|| "soon".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("PGCONNECT_TIMEOUT"), "{err}");
        let err = ConnectOptions::resolve_with("host=h password=pw9", &|k| {
            (k == "PGSSLMODE").then(|| "bogus".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("bogus") && !err.contains("pw9"), "{err}");
    }

    #[test]
    fn the_password_file_gives_a_missing_password() {
        let dir = std::env::temp_dir().join(format!("dcbstore-pgpass-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:u:nope\nh:5433:d:u:from\\:file\n*:*:*:*:fallback\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let f = file.display().to_string();
        let o = resolve("host=h port=5433 user=u dbname=d", &[("PGPASSFILE", &f)]);
        assert_eq!(o.config.get_password(), Some(&b"from:file"[..]));
        let o = resolve("host=h2 user=u dbname=d", &[("PGPASSFILE", &f)]);
        assert_eq!(o.config.get_password(), Some(&b"fallback"[..]));
        // A password given otherwise wins.
        let o = resolve(
            "host=h port=5433 user=u dbname=d",
            &[("PGPASSFILE", &f), ("PGPASSWORD", "env")],
        );
        assert_eq!(o.config.get_password(), Some(&b"env"[..]));
        // ~/.pgpass without PGPASSFILE.
        std::fs::copy(&file, dir.join(".pgpass")).unwrap();
        let home = dir.display().to_string();
        let o = resolve("host=h port=5433 user=u dbname=d", &[("HOME", &home)]);
        assert_eq!(o.config.get_password(), Some(&b"from:file"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let o = resolve("host=h port=5433 user=u dbname=d", &[("PGPASSFILE", &f)]);
            assert_eq!(o.config.get_password(), None, "a readable file is ignored");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
