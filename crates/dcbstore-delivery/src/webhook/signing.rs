//! How webhook requests are signed, following [Standard Webhooks]
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), through the
//! `standardwebhooks` crate; the receiver's check ([`verify`]); and the
//! deprecated body-only signature of earlier versions.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;
use standardwebhooks::{Webhook, WebhookError};

/// The message id header: the envelope's `idempotency_key`, the same on
/// every resend of the event.
pub const ID_HEADER: &str = standardwebhooks::HEADER_WEBHOOK_ID;

/// The timestamp header: when the request was signed, in seconds since the
/// Unix epoch (each attempt is signed anew).
pub const TIMESTAMP_HEADER: &str = standardwebhooks::HEADER_WEBHOOK_TIMESTAMP;

/// The signature header: `v1,` and the base64 HMAC-SHA256 of
/// `"<webhook-id>.<webhook-timestamp>.<body>"`.
pub const STANDARD_SIGNATURE_HEADER: &str = standardwebhooks::HEADER_WEBHOOK_SIGNATURE;

/// How far from the receiver's clock [`verify`] accepts a timestamp, either
/// way (five minutes, as Standard Webhooks recommends): a captured request
/// replayed later is refused.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The deprecated signature header: `sha256=` and the hex HMAC-SHA256 of
/// the body alone, with the secret's bytes as given. It signs neither the
/// message id nor a time, so a captured request can be replayed for ever:
/// check [`STANDARD_SIGNATURE_HEADER`] with [`verify`] instead. Still sent
/// in this release, for receivers that have not moved yet.
#[deprecated(
    note = "signs the body only (replayable for ever): check the Standard Webhooks headers with `webhook::verify`"
)]
pub const SIGNATURE_HEADER: &str = "X-Dcbstore-Signature";

/// Why [`sign`] or [`verify`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureErrorKind {
    /// A `whsec_` secret whose rest is not base64, or an empty key.
    Secret,
    /// A header is missing or not text.
    Header,
    /// The timestamp is not a number.
    Timestamp,
    /// The timestamp is older than [`TIMESTAMP_TOLERANCE`]: a replay, or a
    /// request held back too long.
    TooOld,
    /// The timestamp is further ahead than [`TIMESTAMP_TOLERANCE`].
    InFuture,
    /// No `v1` signature in the header matches the message.
    Mismatch,
    /// The body is not UTF-8 (Standard Webhooks signs text).
    Body,
}

/// A failed [`sign`] or [`verify`]; the secret never appears in it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SignatureError {
    kind: SignatureErrorKind,
    message: String,
    #[source]
    source: WebhookError,
}

impl SignatureError {
    /// What failed.
    #[must_use]
    pub fn kind(&self) -> SignatureErrorKind {
        self.kind
    }
}

impl From<WebhookError> for SignatureError {
    fn from(e: WebhookError) -> Self {
        let (kind, what) = match &e {
            WebhookError::InvalidSecret(_) => (
                SignatureErrorKind::Secret,
                "the secret starts with whsec_ but the rest is not base64: copy the whole secret the webhook's settings show",
            ),
            WebhookError::MissingHeader(_) | WebhookError::InvalidHeader(_) => (
                SignatureErrorKind::Header,
                "the request lacks a readable webhook-id, webhook-timestamp or webhook-signature header: refuse it",
            ),
            WebhookError::InvalidTimestamp => (
                SignatureErrorKind::Timestamp,
                "webhook-timestamp is not a number of seconds: refuse the request",
            ),
            WebhookError::TimestampTooOldError => (
                SignatureErrorKind::TooOld,
                "webhook-timestamp is more than 5 minutes old: a replayed or long-delayed request; refuse it (the sender signs each retry anew)",
            ),
            WebhookError::FutureTimestampError => (
                SignatureErrorKind::InFuture,
                "webhook-timestamp is more than 5 minutes ahead: refuse the request and check both clocks",
            ),
            WebhookError::InvalidPayload => (
                SignatureErrorKind::Body,
                "the body is not UTF-8 text: refuse the request",
            ),
            // InvalidSignature, and whatever the crate adds later.
            _ => (
                SignatureErrorKind::Mismatch,
                "no v1 signature in webhook-signature matches the id, timestamp and body: refuse the request (or check that both sides use the same secret)",
            ),
        };
        SignatureError {
            kind,
            message: format!("webhook signature: {what}"),
            source: e,
        }
    }
}

/// The signing key of `secret`: a secret of the form `whsec_<base64>` (as
/// Standard Webhooks tools make them) is that base64's bytes; any other
/// secret is its own bytes.
pub(super) fn key(secret: &[u8]) -> Result<Webhook, SignatureError> {
    let webhook = match secret.strip_prefix(b"whsec_") {
        // Bytes that are not UTF-8 are not base64 either: the decoder
        // refuses the replacement characters.
        Some(_) => Webhook::new(&String::from_utf8_lossy(secret))?,
        None => Webhook::from_bytes(secret.to_vec())?,
    };
    Ok(webhook)
}

/// The value of [`STANDARD_SIGNATURE_HEADER`] for a request with this id,
/// timestamp (seconds since the Unix epoch) and body, signed with `secret`
/// (`whsec_<base64>` or raw bytes): `v1,<base64 HMAC-SHA256 of
/// "id.timestamp.body">`.
pub fn sign(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    Ok(key(secret)?.sign(id, timestamp, body)?)
}

/// The receiver's check of a webhook request: `headers` must carry a
/// `webhook-id`, a `webhook-timestamp` within [`TIMESTAMP_TOLERANCE`] of
/// now, and a `webhook-signature` with a `v1` signature of
/// `"id.timestamp.body"` under `secret` (compared in constant time). Check
/// the raw body as read, before parsing it; and to refuse replays within
/// the tolerance too, keep the `webhook-id`s seen in the last
/// [`TIMESTAMP_TOLERANCE`].
pub fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    Ok(key(secret)?.verify(body, headers)?)
}

/// The value of the deprecated [`SIGNATURE_HEADER`] for `body` signed with
/// `secret`: `sha256=` followed by the lower-case hex HMAC-SHA256 of the
/// body alone.
#[deprecated(
    note = "signs the body only (replayable for ever): use `webhook::sign` and check with `webhook::verify`"
)]
#[must_use]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    legacy_signature(secret, body)
}

/// What [`signature`] computes, for the transport's deprecated header.
pub(super) fn legacy_signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
