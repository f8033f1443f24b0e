//! Level 4: a [`Relay`] publishes level-4 events from the log to a
//! [`Transport`], in position order, with its own checkpoint and lease.

use std::sync::Arc;

use futures::future::BoxFuture;
use tracing::Instrument;

use super::config::DeliveryConfig;
use super::consumer::DeliveryRunner;
use super::dead_letters::{self, RetryReport, Selection};
use super::fence::Fence;
use super::sink::{Consumer, Sink};
use super::transport::{PublishError, Transport};
use crate::dispatch::Envelope;
use dcbstore::query::{Query, QueryItem};
use dcbstore::schema::{Level, SchemaFile};
use dcbstore::store::Store;
use dcbstore::Result;

struct TransportSink<T>(T);

impl<T: Transport> Sink for TransportSink<T> {
    fn kind(&self) -> &'static str {
        "relay"
    }

    fn deliver<'a>(
        &'a self,
        batch: &'a [Envelope],
        fence: &'a Fence<'a>,
    ) -> BoxFuture<'a, std::result::Result<(), PublishError>> {
        let span = tracing::info_span!(
            "publish_batch",
            transport = self.0.name(),
            events = batch.len()
        );
        Box::pin(
            async move {
                let r = self.0.publish_fenced(batch, fence).await;
                let published = match &r {
                    Ok(()) => batch.len(),
                    Err(e) => e.delivered,
                };
                ::metrics::counter!(dcbstore::metrics::PUBLISHED_TOTAL, "transport" => self.0.name().to_string())
                    .increment(published as u64);
                ::metrics::histogram!(dcbstore::metrics::PUBLISH_BATCH_SIZE, "transport" => self.0.name().to_string())
                    .record(batch.len() as f64);
                r
            }
            .instrument(span),
        )
    }
}

/// A relay: the log's level-4 events, published through a transport.
#[derive(Clone)]
pub struct Relay {
    consumer: Consumer,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("name", &self.consumer.name)
            .finish_non_exhaustive()
    }
}

/// The names of the events some version of which is at level 4 in `schema`.
#[must_use]
pub fn broker_events(schema: &SchemaFile) -> Vec<String> {
    let mut names: Vec<String> = schema
        .events
        .iter()
        .filter(|v| v.level == Level::Broker)
        .map(|v| v.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Relay {
    /// Publishes `schema`'s level-4 events through `transport`; named
    /// `relay:<transport name>`.
    pub fn new<T: Transport>(transport: T, schema: &SchemaFile, config: DeliveryConfig) -> Self {
        Relay::for_events(transport, broker_events(schema), config)
    }

    /// Publishes the events named `events` through `transport`.
    pub fn for_events<T: Transport>(
        transport: T,
        events: Vec<String>,
        config: DeliveryConfig,
    ) -> Self {
        let name = format!("relay:{}", transport.name());
        Relay {
            consumer: Consumer {
                name,
                query: Query::item(QueryItem::types(events)),
                sink: Arc::new(TransportSink(transport)),
                config,
            },
        }
    }

    /// Another name (two relays of one transport kind to different brokers).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.consumer.name = name.into();
        self
    }

    /// Its name: its checkpoint row and lease.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.consumer.name
    }

    /// Starts publishing in the background, under the relay's lease: of two
    /// relays of one name, in any processes, one publishes.
    #[must_use = "keep the runner to stop it"]
    pub fn start(&self, store: &Store) -> DeliveryRunner {
        DeliveryRunner::start(store.clone(), self.consumer.clone())
    }

    /// Publishes its dead letters again (all, or one): a success removes it.
    pub async fn retry_dead_letters(&self, store: &Store, which: Selection) -> Result<RetryReport> {
        dead_letters::retry(store, &self.consumer, which).await
    }

    pub(crate) fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}
