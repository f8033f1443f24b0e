//! Logs of the tool: stderr only, levels from `DCBSTORE_LOG`, text or JSON,
//! secrets masked.

use std::io::Write;

use crate::args::LogFormat;

/// The secrets to mask, shared with the log writer: more are added once the
/// connection is resolved (a password from the password file).
pub(crate) type Secrets = std::sync::Arc<std::sync::RwLock<Vec<String>>>;

/// Structured logs on stderr only (stdout carries command results), with
/// every secret of the connection masked in each record.
pub(crate) fn init_logging(format: LogFormat, secrets: Secrets) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DCBSTORE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let writer = move || Redacting {
        secrets: secrets.clone(),
        inner: std::io::stderr(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Masks secrets in each formatted record (the formatter writes a record
/// in one call).
struct Redacting {
    secrets: Secrets,
    inner: std::io::Stderr,
}

impl Write for Redacting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = match self.secrets.read() {
            Ok(secrets) => dcbstore::connection::redact(&text, &secrets),
            // A writer panicked while adding secrets: print nothing rather
            // than risk one.
            Err(_) => return Ok(buf.len()),
        };
        self.inner.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
