//! What a consumer is: its name, the events it takes, and the [`Sink`] they
//! go to (below both the consumer loop and the dead-letter tools).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::config::DeliveryConfig;
use super::fence::Fence;
use super::transport::PublishError;
use crate::dispatch::Envelope;
use dcbstore::query::Query;

/// Where a consumer delivers: a subscriber's handler, a relay's transport.
pub(crate) trait Sink: Send + Sync + 'static {
    /// What it is, for spans and metrics ("subscriber", "relay").
    fn kind(&self) -> &'static str;

    /// Delivers `batch` in order, stopping before the first delivery after
    /// `fence` says the lease is lost ([`PublishError::lease_lost`]).
    fn deliver<'a>(
        &'a self,
        batch: &'a [Envelope],
        fence: &'a Fence<'a>,
    ) -> BoxFuture<'a, std::result::Result<(), PublishError>>;
}

/// A consumer: its name (its checkpoint row and lease), the events it
/// takes, where they go, and how.
#[derive(Clone)]
pub(crate) struct Consumer {
    pub(crate) name: String,
    pub(crate) query: Query,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) config: DeliveryConfig,
}
