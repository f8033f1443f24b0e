//! Sending: one signed POST per envelope, the lease asked before each, and
//! how a request fails.

use std::time::Duration;

use super::signing::{self, SignatureError};
use super::{
    redacted, WebhookTransport, IDEMPOTENCY_HEADER, ID_HEADER, STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use crate::dispatch::Envelope;
use crate::fence::Fence;
use crate::transport::{FailureKind, PublishError, Transport};

impl WebhookTransport {
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
        let legacy_header = signing::SIGNATURE_HEADER;
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
