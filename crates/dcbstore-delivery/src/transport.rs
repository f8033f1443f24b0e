//! [`Transport`]: how a relay publishes envelopes to a broker, and how a
//! publish fails ([`PublishError`]).

use std::future::Future;

use super::fence::Fence;
use crate::dispatch::Envelope;
use dcbstore::HandlerError;

/// A broker (level 4) that a [`Relay`](super::Relay) publishes to.
///
/// `publish` gets envelopes in position order and publishes them in that
/// order. It must pass each envelope's `idempotency_key` to the broker (a
/// message id, a header), so that consumers, or the broker itself, drop the
/// resends that at-least-once delivery makes.
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs, metrics and the relay's default name.
    fn name(&self) -> &str;

    /// Publishes `batch` in order; on failure, says how many of its first
    /// envelopes were published and why the next was not.
    fn publish(&self, batch: &[Envelope]) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Publishes `batch` in order for a relay's runner, stopping before the
    /// first send after `fence` says the runner lost its lease (the error
    /// is then [`PublishError::lease_lost`]); what the relay calls.
    ///
    /// The default confirms the lease once, then hands the whole batch to
    /// [`publish`](Self::publish): a transport that sends a batch as
    /// several messages should override it and ask the fence before each
    /// one, as the NATS and webhook transports do.
    fn publish_fenced(
        &self,
        batch: &[Envelope],
        fence: &Fence<'_>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        async move {
            if !fence.confirm().await {
                return Err(PublishError::lease_lost(0));
            }
            self.publish(batch).await
        }
    }
}

/// Why a delivery failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The destination is down or unreachable (connection refused, broker
    /// restarting): retried with backoff for as long as it lasts, without
    /// counting against the event's attempts.
    Unavailable,
    /// This event failed in a way that may pass (an HTTP 5xx, a timeout):
    /// retried up to the attempts, then the failure policy applies.
    Retryable,
    /// This event is refused for good (an HTTP 4xx): the failure policy
    /// applies at once.
    Permanent,
}

/// A failed publish or delivery: the first `delivered` envelopes of the
/// batch went through; the next one failed.
#[derive(Debug)]
pub struct PublishError {
    /// How many envelopes at the start of the batch were delivered.
    pub delivered: usize,
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// The cause.
    pub error: HandlerError,
}

impl PublishError {
    /// A failure of the envelope at index `delivered`.
    pub fn new(delivered: usize, kind: FailureKind, error: impl Into<HandlerError>) -> Self {
        PublishError {
            delivered,
            kind,
            error: error.into(),
        }
    }

    /// The runner lost its lease before sending the envelope at index
    /// `delivered` (see [`Fence`]): nothing from there was sent, and the
    /// runner stops; the lease's next holder sends it.
    #[must_use]
    pub fn lease_lost(delivered: usize) -> Self {
        PublishError::new(delivered, FailureKind::Unavailable, LeaseLost)
    }
}

/// Why a fenced send did not go.
#[derive(Debug, thiserror::Error)]
#[error("the runner lost its lease (its database connection closed): it stopped sending; the lease's next holder delivers from here")]
struct LeaseLost;

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} failure after {} delivered: {}",
            self.kind, self.delivered, self.error
        )
    }
}

impl std::error::Error for PublishError {}
