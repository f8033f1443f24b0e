//! TLS for every connection: libpq's `sslmode` and `sslrootcert`, on rustls
//! (with the `ring` crypto provider).
//!
//! | `sslmode`     | TLS                     | certificate chain | host name |
//! |---------------|-------------------------|-------------------|-----------|
//! | `disable`     | never                   | -                 | -         |
//! | `prefer`      | if the server offers it | not checked       | not checked |
//! | `require`     | mandatory               | not checked*      | not checked |
//! | `verify-ca`   | mandatory               | checked           | not checked |
//! | `verify-full` | mandatory               | checked           | checked   |
//!
//! \* As in libpq, `require` with an `sslrootcert` file checks the chain
//! (like `verify-ca`).
//!
//! The roots come from `sslrootcert=PATH` (a PEM file, one or more
//! certificates), or from the platform's trust store when it is absent or
//! `system`. A self-signed server certificate is not in the platform store,
//! so `verify-ca`/`verify-full` without `sslrootcert` fail closed against it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

mod explain;
mod lenient;

use lenient::Lenient;

use crate::error::{Error, Result};

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, plaintext otherwise; the certificate is
    /// not verified (the default, as in libpq).
    #[default]
    Prefer,
    /// TLS is mandatory; the certificate is not verified, unless
    /// `sslrootcert` names a file (then the chain is, as with
    /// [`SslMode::VerifyCa`], like libpq).
    Require,
    /// TLS is mandatory and the certificate must chain to a trusted root; the
    /// host name is not checked.
    VerifyCa,
    /// TLS is mandatory, the certificate must chain to a trusted root and
    /// name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The `sslmode` spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The driver's mode: tokio-postgres knows only disable/prefer/require,
    /// verification is done by our rustls configuration.
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::Config(
                    "sslmode=allow is not supported: use sslmode=prefer (TLS when the server offers it) or disable".into(),
                ))
            }
            other => {
                // Echo the value only when it cannot be a swallowed
                // `password=...` or other secret-bearing text.
                let shown = if !other.is_empty()
                    && other.len() <= 32
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    format!(" '{other}'")
                } else {
                    String::new()
                };
                return Err(Error::Config(format!(
                    "invalid sslmode{shown}: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }
}

/// Where `verify-ca`/`verify-full` take the trusted root certificates from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootCerts {
    /// The platform's trust store (through rustls-native-certs): when
    /// `sslrootcert` is absent or `system`.
    #[default]
    Platform,
    /// A PEM file holding one or more CA certificates (`sslrootcert=PATH`).
    File(PathBuf),
}

/// The TLS settings of a connection: `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// When TLS is used and what is verified.
    pub mode: SslMode,
    /// The trusted roots.
    pub root_cert: RootCerts,
}

/// What the certificate verifier checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing about the certificate (handshake signatures still are).
    Nothing,
    /// The chain up to a trusted root.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

impl TlsSettings {
    /// Settings for `mode` with the platform's roots.
    #[must_use]
    pub fn new(mode: SslMode) -> TlsSettings {
        TlsSettings {
            mode,
            root_cert: RootCerts::Platform,
        }
    }

    /// The same settings with `sslrootcert=path`.
    #[must_use]
    pub fn with_root_cert(mut self, path: impl Into<PathBuf>) -> TlsSettings {
        self.root_cert = RootCerts::File(path.into());
        self
    }

    /// Whether the server's certificate is checked (chain, and host name
    /// for `verify-full`): `verify-ca`, `verify-full`, and `require` with an
    /// `sslrootcert` file.
    #[must_use]
    pub fn verifies_certificate(&self) -> bool {
        self.check() != Check::Nothing
    }

    fn check(&self) -> Check {
        match (self.mode, &self.root_cert) {
            (SslMode::Disable | SslMode::Prefer, _) => Check::Nothing,
            (SslMode::Require, RootCerts::Platform) => Check::Nothing,
            (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain,
            (SslMode::VerifyFull, _) => Check::ChainAndName,
        }
    }

    /// `sslmode=... sslrootcert=...` as key=value parameters (empty for the
    /// default), to append to a key=value connection string.
    #[must_use]
    pub fn to_key_value(&self) -> String {
        let mut parts = Vec::new();
        if self.mode != SslMode::Prefer {
            parts.push(format!("sslmode={}", self.mode));
        }
        if let RootCerts::File(p) = &self.root_cert {
            let p = p.display().to_string();
            parts.push(format!(
                "sslrootcert='{}'",
                p.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        parts.join(" ")
    }

    fn roots_description(&self) -> String {
        match &self.root_cert {
            RootCerts::Platform => "the platform's trusted root certificates".into(),
            RootCerts::File(p) => format!("sslrootcert {}", p.display()),
        }
    }

    fn load_roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            RootCerts::File(path) => {
                let shown = path.display();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| {
                        Error::Config(format!(
                            "cannot read sslrootcert {shown}: {}: check the path (a PEM file of CA certificates)",
                            pem_error(&e)
                        ))
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Config(format!(
                            "sslrootcert {shown} is not a valid PEM file: {}",
                            pem_error(&e)
                        ))
                    })?;
                if certs.is_empty() {
                    return Err(Error::Config(format!(
                        "sslrootcert {shown} holds no certificate: it must be a PEM file with one or more CA certificates (-----BEGIN CERTIFICATE-----)"
                    )));
                }
                for (i, cert) in certs.into_iter().enumerate() {
                    roots.add(cert).map_err(|e| {
                        Error::Config(format!(
                            "sslrootcert {shown}: certificate {} cannot be used as a root: {e}",
                            i + 1
                        ))
                    })?;
                }
            }
            RootCerts::Platform => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(Error::Config(format!(
                        "sslmode={} found no trusted root certificates on this system: set sslrootcert=PATH to the PEM file of the CA that signed the server's certificate",
                        self.mode
                    )));
                }
            }
        }
        Ok(roots)
    }

    /// The rustls client configuration for these settings. Reads the root
    /// certificates (file or platform store) when they are needed.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            Check::Nothing => Arc::new(Lenient {
                roots: None,
                algorithms,
            }),
            Check::Chain => Arc::new(Lenient {
                roots: Some(self.load_roots()?),
                algorithms,
            }),
            Check::ChainAndName => WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.load_roots()?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::Config(format!("cannot set up certificate verification: {e}")))?,
        };
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// The TLS connector for tokio-postgres (also for `Disable`, where the
    /// driver never uses it).
    pub fn connector(&self) -> Result<MakeRustlsConnect> {
        Ok(MakeRustlsConnect::new(self.client_config()?))
    }
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_map_to_the_driver() {
        use tokio_postgres::config::SslMode as Driver;
        for (s, driver) in [
            ("disable", Driver::Disable),
            ("prefer", Driver::Prefer),
            ("require", Driver::Require),
            ("verify-ca", Driver::Require),
            ("verify-full", Driver::Require),
        ] {
            let mode: SslMode = s.parse().unwrap();
            assert_eq!(mode.as_str(), s);
            assert_eq!(mode.driver_mode(), driver);
        }
        let err = "verify_full".parse::<SslMode>().unwrap_err().to_string();
        assert!(
            err.contains("'verify_full'") && err.contains("verify-full"),
            "{err}"
        );
        let err = "password=hunter2"
            .parse::<SslMode>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!("allow".parse::<SslMode>().is_err());
    }

    #[test]
    fn what_is_checked() {
        assert_eq!(TlsSettings::new(SslMode::Require).check(), Check::Nothing);
        assert_eq!(
            TlsSettings::new(SslMode::Require)
                .with_root_cert("/ca.pem")
                .check(),
            Check::Chain
        );
        assert_eq!(TlsSettings::new(SslMode::VerifyCa).check(), Check::Chain);
        assert_eq!(
            TlsSettings::new(SslMode::VerifyFull).check(),
            Check::ChainAndName
        );
        assert_eq!(
            TlsSettings::new(SslMode::Prefer)
                .with_root_cert("/ca.pem")
                .check(),
            Check::Nothing
        );
    }

    #[test]
    fn root_file_errors_are_clear() {
        let err = TlsSettings::new(SslMode::VerifyFull)
            .with_root_cert("/nonexistent/ca.pem")
            .client_config()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("dcbstore-tls-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let err = TlsSettings::new(SslMode::VerifyCa)
            .with_root_cert(&dir)
            .client_config()
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_file(&dir);
        assert!(err.contains("holds no certificate"), "{err}");
    }

    #[test]
    fn key_value_rendering() {
        assert_eq!(TlsSettings::default().to_key_value(), "");
        assert_eq!(
            TlsSettings::new(SslMode::VerifyFull)
                .with_root_cert("/a b/it's.pem")
                .to_key_value(),
            "sslmode=verify-full sslrootcert='/a b/it\\'s.pem'"
        );
    }
}
