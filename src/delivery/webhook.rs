//! [`WebhookTransport`] (feature `webhook`): a relay POSTs each envelope to
//! an HTTP endpoint.
//!
//! One request per envelope, in position order:
//!
//! - `POST <url>` with the [`Envelope`] as JSON (its `serde` form) and
//!   `Content-Type: application/json`;
//! - **`Idempotency-Key`**: the envelope's `idempotency_key` (the receiver
//!   drops resends with a key it has seen);
//! - **`X-Dcbstore-Signature: sha256=<hex>`** ([`SIGNATURE_HEADER`]): the
//!   HMAC-SHA256 of the exact body bytes with the shared secret, in lower-case
//!   hex. The receiver computes the same over the raw body it read (before
//!   parsing it) and compares in constant time; [`signature`] is that
//!   computation.
//!
//! Redirects are not followed (a 3xx is refused like a 4xx).
//!
//! How a request fails ([`FailureKind`]):
//!
//! | answer | kind |
//! | --- | --- |
//! | 2xx | delivered |
//! | connection refused, DNS failure, no route, [connect timeout](WebhookTransportBuilder::connect_timeout) (no request reached a server) | `Unavailable` (waited out) |
//! | 5xx, 408, 429, a [timeout](WebhookTransportBuilder::timeout) once connected, a connection that broke mid-request | `Retryable` |
//! | any other status (4xx, 3xx) | `Permanent` (dead letter at once, or block) |
//!
//! The secret never appears in logs, errors or `Debug` output.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::transport::{FailureKind, PublishError, Transport};
use crate::dispatch::Envelope;
use crate::error::{Error, Result};

/// The signature header: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Dcbstore-Signature";

/// The idempotency header: the envelope's `idempotency_key`.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The value of [`SIGNATURE_HEADER`] for `body` signed with `secret`:
/// `sha256=` followed by the lower-case hex HMAC-SHA256.
#[must_use]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// True when `header` (a [`SIGNATURE_HEADER`] value) is the signature of
/// `body` with `secret`; compares in constant time.
#[must_use]
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mac) = hex::decode(hex_mac) else {
        return false;
    };
    let Ok(mut expected) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    expected.update(body);
    expected.verify_slice(&mac).is_ok()
}

/// A [`Transport`] that POSTs signed envelopes to a URL (see the
/// [module](self) for the headers and the failure kinds).
#[derive(Clone)]
pub struct WebhookTransport {
    name: String,
    url: reqwest::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTransport")
            .field("name", &self.name)
            .field("url", &redacted(&self.url))
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Settings of a [`WebhookTransport`], from [`WebhookTransport::builder`].
#[derive(Clone)]
pub struct WebhookTransportBuilder {
    url: String,
    secret: Vec<u8>,
    name: String,
    timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for WebhookTransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTransportBuilder")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl WebhookTransport {
    /// Settings for a webhook to `url`, signed with `secret`.
    #[must_use]
    pub fn builder(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> WebhookTransportBuilder {
        WebhookTransportBuilder {
            url: url.into(),
            secret: secret.into(),
            name: "webhook".into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// A webhook to `url` signed with `secret`, with the default settings
    /// (name `webhook`, timeout 10 s).
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<WebhookTransport> {
        WebhookTransport::builder(url, secret).build()
    }

    /// POSTs one envelope.
    async fn post(&self, envelope: &Envelope) -> std::result::Result<(), (FailureKind, String)> {
        let body = serde_json::to_vec(envelope).map_err(|e| {
            (
                FailureKind::Permanent,
                format!("cannot encode the envelope: {e}"),
            )
        })?;
        let signed = signature(&self.secret, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, envelope.idempotency_key.as_str())
            .header(SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                // A connection that could not be made (refused, no route,
                // timed out) is the endpoint being down; a request that
                // timed out once connected is this event's failure.
                let kind = if e.is_connect() {
                    FailureKind::Unavailable
                } else if e.is_timeout() {
                    FailureKind::Retryable
                } else if e.is_builder() {
                    FailureKind::Permanent
                } else {
                    FailureKind::Retryable
                };
                return Err((kind, error_chain(&e.without_url())));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let kind = if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            FailureKind::Retryable
        } else {
            FailureKind::Permanent
        };
        let mut response = response;
        // The start of the answer's body, for the error (bounded).
        let snippet = match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let end = chunk.len().min(200);
                String::from_utf8_lossy(&chunk[..end]).trim().to_string()
            }
            _ => String::new(),
        };
        Err((
            kind,
            if snippet.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {snippet}")
            },
        ))
    }
}

impl WebhookTransportBuilder {
    /// The transport's name (default `webhook`): its relay is
    /// `relay:<name>`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The longest a request may take, connection included (default 10 s):
    /// past it the event is retried ([`FailureKind::Retryable`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest the connection may take (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Builds the transport: refuses a URL that is not `http` or `https`,
    /// and an empty secret.
    pub fn build(self) -> Result<WebhookTransport> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("webhook URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "webhook URL {}: the scheme must be http or https",
                redacted(&url)
            )));
        }
        if self.secret.is_empty() {
            return Err(Error::Config(
                "the webhook's signing secret is empty".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dcbstore/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("webhook HTTP client: {e}")))?;
        Ok(WebhookTransport {
            name: self.name,
            url,
            secret: self.secret,
            client,
        })
    }
}

/// The URL without its password and query (which may hold credentials).
fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        u.set_query(Some("***"));
    }
    u.to_string()
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// A failed request's message.
#[derive(Debug, thiserror::Error)]
#[error("webhook POST to {url}: {message}")]
struct WebhookError {
    url: String,
    message: String,
}

impl Transport for WebhookTransport {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, batch: &[Envelope]) -> std::result::Result<(), PublishError> {
        for (i, envelope) in batch.iter().enumerate() {
            if let Err((kind, message)) = self.post(envelope).await {
                return Err(PublishError::new(
                    i,
                    kind,
                    WebhookError {
                        url: redacted(&self.url),
                        message,
                    },
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = signature(b"k", b"body");
        assert!(verify(b"k", b"body", &s));
        assert!(!verify(b"k", b"body!", &s));
        assert!(!verify(b"other", b"body", &s));
        assert!(!verify(b"k", b"body", s.trim_start_matches("sha256=")));
    }

    #[test]
    fn debug_hides_the_secret() {
        let t =
            WebhookTransport::builder("https://u:pw@example.test/hook?token=t0k", "s3cr3t-value")
                .build()
                .unwrap();
        let shown = format!("{t:?} {:?}", WebhookTransport::builder("x", "s3cr3t-value"));
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(!shown.contains("t0k"), "{shown}");
        assert!(shown.contains("example.test"), "{shown}");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(WebhookTransport::new("ftp://example.test/", "s").is_err());
        assert!(WebhookTransport::new("not a url", "s").is_err());
        assert!(WebhookTransport::new("http://example.test/", "").is_err());
    }
}
