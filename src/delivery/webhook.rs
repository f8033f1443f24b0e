//! [`WebhookTransport`] (feature `webhook`): a relay POSTs each envelope to
//! an HTTP endpoint.
//!
//! One request per envelope, in position order, signed as [Standard
//! Webhooks] describes:
//!
//! - `POST <url>` with the [`Envelope`] as JSON (its `serde` form) and
//!   `Content-Type: application/json`;
//! - **`webhook-id`** ([`ID_HEADER`]): the envelope's `idempotency_key`, the
//!   same on every resend (the receiver drops ids it has seen);
//! - **`webhook-timestamp`** ([`TIMESTAMP_HEADER`]): when this attempt was
//!   signed, in seconds since the Unix epoch;
//! - **`webhook-signature`** ([`STANDARD_SIGNATURE_HEADER`]): `v1,` and the
//!   base64 HMAC-SHA256 of `"<id>.<timestamp>.<body>"` with the shared
//!   secret. A secret of the form `whsec_<base64>` is that base64's bytes;
//!   any other secret is used as it is. The receiver checks it over the raw
//!   body it read, before parsing it, and refuses timestamps more than five
//!   minutes away: [`verify`] does both;
//! - **`Idempotency-Key`** ([`IDEMPOTENCY_HEADER`]): the `idempotency_key`
//!   again, as earlier versions sent it;
//! - **`X-Dcbstore-Signature: sha256=<hex>`** (deprecated, still sent in this
//!   release): the HMAC-SHA256 of the body alone. It signs no id and no
//!   time, so a captured request verifies for ever: move receivers to
//!   [`verify`].
//!
//! A relay's runner asks its lease before each request ([`Fence`]): a
//! runner that lost its lease sends nothing more. Redirects are not
//! followed (a 3xx is refused like a 4xx).
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
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

mod signing;

use std::sync::Arc;
use std::time::Duration;

use standardwebhooks::Webhook;

use super::fence::Fence;
use super::transport::{FailureKind, PublishError, Transport};
use crate::dispatch::Envelope;
use crate::error::{Error, Result};

pub use signing::{
    sign, verify, SignatureError, SignatureErrorKind, ID_HEADER, STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER, TIMESTAMP_TOLERANCE,
};
#[allow(deprecated)]
pub use signing::{signature, SIGNATURE_HEADER};

/// The idempotency header: the envelope's `idempotency_key` (also in
/// [`ID_HEADER`]).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A [`Transport`] that POSTs signed envelopes to a URL (see the
/// [module](self) for the headers and the failure kinds).
#[derive(Clone)]
pub struct WebhookTransport {
    name: String,
    url: reqwest::Url,
    /// The secret as given: the key of the deprecated body-only signature.
    secret: Vec<u8>,
    /// The Standard Webhooks signer (the `whsec_` secret decoded).
    signer: Arc<Webhook>,
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

    /// POSTs one envelope, signed now.
    async fn post(&self, envelope: &Envelope) -> std::result::Result<(), (FailureKind, String)> {
        let body = serde_json::to_vec(envelope).map_err(|e| {
            (
                FailureKind::Permanent,
                format!("cannot encode the envelope: {e}"),
            )
        })?;
        let id = envelope.idempotency_key.as_str();
        let timestamp = chrono::Utc::now().timestamp();
        let standard = self
            .signer
            .sign(id, timestamp, &body)
            .map_err(|e| (FailureKind::Permanent, SignatureError::from(e).to_string()))?;
        let legacy = signing::legacy_signature(&self.secret, &body);
        #[allow(deprecated)]
        let legacy_header = SIGNATURE_HEADER;
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(STANDARD_SIGNATURE_HEADER, standard)
            .header(IDEMPOTENCY_HEADER, id)
            .header(legacy_header, legacy)
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
    /// an empty secret, and a `whsec_` secret whose rest is not base64.
    pub fn build(self) -> Result<WebhookTransport> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("webhook URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "webhook URL {}: the scheme must be http or https",
                redacted(&url)
            )));
        }
        if self.secret.is_empty() || self.secret.as_slice() == b"whsec_" {
            return Err(Error::Config(
                "the webhook's signing secret is empty: give the secret the receiver checks with"
                    .into(),
            ));
        }
        let signer = signing::key(&self.secret)
            .map_err(|e| Error::Config(format!("the webhook's signing secret: {e}")))?;
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
            signer: Arc::new(signer),
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
        self.publish_fenced(batch, &Fence::unfenced()).await
    }

    /// One request at a time, each after a round trip that confirms the
    /// lease (cheap beside an HTTP request): a runner that lost its lease
    /// sends nothing more.
    async fn publish_fenced(
        &self,
        batch: &[Envelope],
        fence: &Fence<'_>,
    ) -> std::result::Result<(), PublishError> {
        for (i, envelope) in batch.iter().enumerate() {
            if !fence.confirm().await {
                return Err(PublishError::lease_lost(i));
            }
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
    #[allow(deprecated)]
    fn the_deprecated_signature_is_hmac_sha256_hex_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_standard_signature_matches_the_specs_example() {
        // The example of the Standard Webhooks reference libraries.
        assert_eq!(
            sign(
                b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            )
            .unwrap(),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
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
        assert!(WebhookTransport::new("http://example.test/", "whsec_").is_err());
        let e = WebhookTransport::new("http://example.test/", "whsec_not*base64!").unwrap_err();
        assert!(!e.to_string().contains("not*base64"), "{e}");
    }
}
