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

mod send;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use standardwebhooks::Webhook;

#[cfg(doc)]
use super::fence::Fence;
#[cfg(doc)]
use super::transport::{FailureKind, Transport};
#[cfg(doc)]
use crate::dispatch::Envelope;
use dcbstore::{Error, Result};

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
