//! Level 3: [`DurableSubscriber`]s, delivered from the log (the outbox) with
//! their own checkpoint, at least once.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::config::DeliveryConfig;
use super::consumer::DeliveryRunner;
use super::dead_letters::{self, RetryReport, Selection};
use super::fence::Fence;
use super::sink::{Consumer, Sink};
use super::transport::{FailureKind, PublishError};
use crate::dispatch::Envelope;
use dcbstore::query::{Query, QueryItem};
use dcbstore::store::Store;
use dcbstore::{HandlerError, Result};

/// An in-app subscriber delivered from the log: each event named in
/// [`events`](Self::events), in position order, at least once (a crash
/// between handling and checkpointing hands the same envelope, with the same
/// `idempotency_key`, again).
///
/// A handler error is retried with backoff; after
/// [`max_attempts`](DeliveryConfig::max_attempts) the event is dead-lettered
/// or blocks, per [`on_failure`](DeliveryConfig::on_failure). An error
/// wrapped in [`Permanent`] skips the retries.
pub trait DurableSubscriber: Send + Sync + 'static {
    /// Unique among the store's projections, subscribers and relays: its
    /// checkpoint row and lease.
    fn name(&self) -> &str;

    /// The event names it receives.
    fn events(&self) -> Vec<String>;

    /// Handles one envelope.
    fn handle(&self, envelope: &Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A handler error that retrying cannot fix (a payload the subscriber
/// refuses): the failure policy applies at once.
#[derive(Debug)]
pub struct Permanent(pub HandlerError);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Permanent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

struct SubscriberSink<S>(S);

impl<S: DurableSubscriber> Sink for SubscriberSink<S> {
    fn kind(&self) -> &'static str {
        "subscriber"
    }

    fn deliver<'a>(
        &'a self,
        batch: &'a [Envelope],
        fence: &'a Fence<'a>,
    ) -> BoxFuture<'a, std::result::Result<(), PublishError>> {
        Box::pin(async move {
            // One round trip per batch; then, before each handler call, the
            // lease's connection must still be open (a round trip per event
            // would cost more than most handlers).
            if !fence.confirm().await {
                return Err(PublishError::lease_lost(0));
            }
            for (i, envelope) in batch.iter().enumerate() {
                if !fence.holds() {
                    return Err(PublishError::lease_lost(i));
                }
                if let Err(error) = self.0.handle(envelope).await {
                    let kind = if error.downcast_ref::<Permanent>().is_some() {
                        FailureKind::Permanent
                    } else {
                        FailureKind::Retryable
                    };
                    return Err(PublishError::new(i, kind, error));
                }
            }
            Ok(())
        })
    }
}

/// A [`DurableSubscriber`] with its delivery settings: start it, or retry
/// its dead letters.
#[derive(Clone)]
pub struct SubscriberConfig {
    consumer: Consumer,
}

impl std::fmt::Debug for SubscriberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberConfig")
            .field("name", &self.consumer.name)
            .finish_non_exhaustive()
    }
}

impl SubscriberConfig {
    /// `subscriber` with `config`.
    pub fn new<S: DurableSubscriber>(subscriber: S, config: DeliveryConfig) -> Self {
        let query = Query::item(QueryItem::types(subscriber.events()));
        SubscriberConfig {
            consumer: Consumer {
                name: subscriber.name().to_string(),
                query,
                sink: Arc::new(SubscriberSink(subscriber)),
                config,
            },
        }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.consumer.name
    }

    /// Starts delivering in the background: catch-up from its checkpoint,
    /// then live (woken by the store's listening connection), under a lease
    /// (one runner at a time, in any process).
    #[must_use = "keep the runner to stop it"]
    pub fn start(&self, store: &Store) -> DeliveryRunner {
        DeliveryRunner::start(store.clone(), self.consumer.clone())
    }

    /// Delivers its dead letters again (all, or one): a success removes it.
    pub async fn retry_dead_letters(&self, store: &Store, which: Selection) -> Result<RetryReport> {
        dead_letters::retry(store, &self.consumer, which).await
    }

    pub(crate) fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}
