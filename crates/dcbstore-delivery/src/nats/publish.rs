//! Publishing a batch to JetStream: one message per envelope, pipelined,
//! each chained on the one before it (`Nats-Expected-Last-Msg-Id`), the
//! lease asked before each send, and how a publish fails.

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;

use super::{valid_token, NatsTransport};
use crate::dispatch::Envelope;
use crate::fence::Fence;
use crate::transport::{FailureKind, PublishError, Transport};

impl NatsTransport {
    /// Sends one message, which the stream stores only right after
    /// `after` when given (the previous envelope's key); the returned future
    /// waits for its ack.
    async fn send(
        &self,
        envelope: &Envelope,
        after: Option<&str>,
    ) -> std::result::Result<PublishAckFuture, (FailureKind, String)> {
        if !valid_token(&envelope.name) {
            return Err((
                FailureKind::Permanent,
                format!(
                    "event name {:?} is not a NATS subject token (no spaces, '.', '*' or '>')",
                    envelope.name
                ),
            ));
        }
        let body = serde_json::to_vec(envelope).map_err(|e| {
            (
                FailureKind::Permanent,
                format!("cannot encode the envelope: {e}"),
            )
        })?;
        if self.client.connection_state() != State::Connected {
            return Err((
                FailureKind::Unavailable,
                "not connected to the NATS server".into(),
            ));
        }
        let max = self.client.server_info().max_payload;
        if max > 0 && body.len() > max {
            return Err((
                FailureKind::Permanent,
                format!(
                    "the envelope is {} bytes, over the server's max_payload ({max})",
                    body.len()
                ),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.idempotency_key.as_str());
        if let Some(after) = after {
            headers.insert(async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID, after);
        }
        headers.insert("Content-Type", "application/json");
        self.jetstream
            .send_publish(
                self.subject(&envelope.name),
                PublishMessage::build()
                    .payload(body.into())
                    .headers(headers),
            )
            .await
            .map_err(|e| (FailureKind::Unavailable, format!("cannot send: {e}")))
    }
}

fn classify(e: &async_nats::jetstream::context::PublishError) -> FailureKind {
    match e.kind() {
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => FailureKind::Unavailable,
        PublishErrorKind::MaxAckPending => FailureKind::Unavailable,
        PublishErrorKind::StreamNotFound | PublishErrorKind::Other => FailureKind::Retryable,
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            FailureKind::Permanent
        }
    }
}

/// A publish error's message.
#[derive(Debug, thiserror::Error)]
#[error("NATS JetStream publish of {subject}: {message}")]
struct NatsPublishError {
    subject: String,
    message: String,
}

impl Transport for NatsTransport {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, batch: &[Envelope]) -> std::result::Result<(), PublishError> {
        self.publish_fenced(batch, &Fence::unfenced()).await
    }

    async fn publish_fenced(
        &self,
        batch: &[Envelope],
        fence: &Fence<'_>,
    ) -> std::result::Result<(), PublishError> {
        let fail = |i: usize, kind: FailureKind, message: String| {
            let subject = batch
                .get(i)
                .map(|e| self.subject(&e.name))
                .unwrap_or_default();
            PublishError::new(i, kind, NatsPublishError { subject, message })
        };
        // A round sends from `start` to the end; another starts only where a
        // message was refused because another publisher wrote between.
        let mut start = 0;
        'round: while start < batch.len() {
            if !fence.confirm().await {
                return Err(PublishError::lease_lost(start));
            }
            // Send them all, then take the acks in order.
            let mut acks = Vec::with_capacity(batch.len() - start);
            let mut unsent = None;
            for (i, envelope) in batch.iter().enumerate().skip(start) {
                if !fence.holds() {
                    unsent = Some(Unsent::LeaseLost(i));
                    break;
                }
                // The round's first is stored wherever the stream is; each
                // later one only right after the one before it.
                let after = (i > start).then(|| batch[i - 1].idempotency_key.as_str());
                match self.send(envelope, after).await {
                    Ok(ack) => acks.push(ack),
                    Err((kind, message)) => {
                        unsent = Some(Unsent::Failed(i, kind, message));
                        break;
                    }
                }
            }
            for (i, ack) in (start..).zip(acks) {
                match ack.await {
                    Ok(_) => {}
                    // Everything before `i` is in the stream, but its last
                    // message is not `i - 1`'s: another publisher wrote
                    // between. Nothing from `i` on was stored (each expects
                    // the one before it): send again from `i`.
                    Err(e) if i > start && e.kind() == PublishErrorKind::WrongLastMessageId => {
                        start = i;
                        continue 'round;
                    }
                    Err(e) => return Err(fail(i, classify(&e), e.to_string())),
                }
            }
            return match unsent {
                Some(Unsent::Failed(i, kind, message)) => Err(fail(i, kind, message)),
                Some(Unsent::LeaseLost(i)) => Err(PublishError::lease_lost(i)),
                None => Ok(()),
            };
        }
        Ok(())
    }
}

/// Why a round stopped sending before the end of the batch.
enum Unsent {
    /// The envelope at this index could not be sent.
    Failed(usize, FailureKind, String),
    /// The lease was lost before the envelope at this index.
    LeaseLost(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds() {
        use async_nats::jetstream::context::PublishError as E;
        assert_eq!(
            classify(&E::new(PublishErrorKind::TimedOut)),
            FailureKind::Unavailable
        );
        assert_eq!(
            classify(&E::new(PublishErrorKind::StreamNotFound)),
            FailureKind::Retryable
        );
        assert_eq!(
            classify(&E::new(PublishErrorKind::WrongLastSequence)),
            FailureKind::Permanent
        );
    }
}
