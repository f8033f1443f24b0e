//! Why a connection failed, when TLS is the cause: a sentence that says
//! what to change.

use rustls::CertificateError;

use super::{SslMode, TlsSettings};

impl TlsSettings {
    /// Why a connection failed, when it is because of TLS: an actionable
    /// sentence, or `None` when TLS is not the cause.
    pub(crate) fn explain(&self, host: &str, e: &tokio_postgres::Error) -> Option<String> {
        if let Some(db) = e.as_db_error() {
            // pg_hba.conf has only `hostssl` lines for this connection.
            let refused_plaintext = db.code()
                == &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && db.message().contains("no encryption");
            return (refused_plaintext && self.mode == SslMode::Disable).then(|| {
                format!(
                    "{}: the server accepts this connection only over TLS: use sslmode=verify-full (or require) instead of sslmode=disable",
                    db.message()
                )
            });
        }
        if e.to_string().contains("server does not support TLS")
            || chain(e).any(|m| m.to_string().contains("server does not support TLS"))
        {
            return Some(format!(
                "the server does not support TLS, and sslmode={} requires it: enable ssl on the server (ssl = on, ssl_cert_file, ssl_key_file); only sslmode=prefer or disable connect without TLS",
                self.mode
            ));
        }
        let rustls_error = chain(e).find_map(|s| {
            s.downcast_ref::<rustls::Error>().or_else(|| {
                s.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            })
        })?;
        let mode = self.mode;
        Some(match rustls_error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::NotValidForName => format!(
                    "the server's certificate is not valid for host {host} (sslmode={mode} checks that the certificate names the host): connect with a host name the certificate lists, or use sslmode=verify-ca to check only the chain"
                ),
                CertificateError::NotValidForNameContext { presented, .. } => format!(
                    "the server's certificate is not valid for host {host} (it names {}; sslmode={mode} checks that the certificate names the host): connect with a host name the certificate lists, or use sslmode=verify-ca to check only the chain",
                    presented_names(presented)
                ),
                CertificateError::UnknownIssuer => format!(
                    "the server's certificate is signed by an unknown authority (not one of {}): set sslrootcert=PATH to the PEM file of the CA that signed it",
                    self.roots_description()
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired: renew it on the server".into()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet: check the clocks of the server and this machine".into()
                }
                other => format!(
                    "the server's certificate was rejected ({}): {other:?}",
                    self.roots_description()
                ),
            },
            other => format!("TLS handshake failed (sslmode={mode}): {other}"),
        })
    }
}

/// The sources under `e`, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

/// `DnsName("localhost")` -> `localhost`, joined.
fn presented_names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no host name".into();
    }
    presented
        .iter()
        .map(|p| match (p.find('"'), p.rfind('"')) {
            (Some(a), Some(b)) if b > a => p[a + 1..b].to_string(),
            _ => p
                .split_once('(')
                .map_or(p.as_str(), |(_, r)| r.trim_end_matches(')'))
                .to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_plainly() {
        assert_eq!(
            presented_names(&[
                "DnsName(\"localhost\")".into(),
                "IpAddress(10.0.0.1)".into()
            ]),
            "localhost, 10.0.0.1"
        );
    }
}
