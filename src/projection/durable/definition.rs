//! What a durable projection is ([`DurableProjection`]), its object-safe
//! form, and the [`ProjectionRegistry`] that holds several by name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Transaction;

use crate::error::HandlerError;
use crate::event::SequencedEvent;
use crate::query::Query;

/// A projection whose state lives in PostgreSQL tables (a read model).
///
/// Implement it with `async fn`s; each method receives the transaction that
/// will also move the checkpoint, and must do all its writes through it.
///
/// ```no_run
/// use dcbstore::projection::durable::DurableProjection;
/// use dcbstore::HandlerError;
/// use dcbstore::{Query, QueryItem, SequencedEvent};
/// use deadpool_postgres::Transaction;
///
/// struct Subscriptions;
///
/// impl DurableProjection for Subscriptions {
///     fn name(&self) -> &str {
///         "subscriptions"
///     }
///     fn query(&self) -> Query {
///         Query::item(QueryItem::types(["StudentSubscribedToCourse"]))
///     }
///     async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
///         tx.batch_execute("CREATE TABLE IF NOT EXISTS subscriptions (course text, student text)").await?;
///         Ok(())
///     }
///     async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
///         tx.batch_execute("TRUNCATE subscriptions").await?;
///         Ok(())
///     }
///     async fn apply(&self, tx: &Transaction<'_>, e: &SequencedEvent) -> Result<(), HandlerError> {
///         let d = &e.event.data;
///         tx.execute(
///             "INSERT INTO subscriptions VALUES ($1, $2)",
///             &[&d["courseId"].as_str(), &d["studentId"].as_str()],
///         )
///         .await?;
///         Ok(())
///     }
/// }
/// ```
pub trait DurableProjection: Send + Sync + 'static {
    /// A unique, stable name: the key of the checkpoint.
    fn name(&self) -> &str;

    /// The events the projection needs.
    fn query(&self) -> Query;

    /// Creates the read model if it does not exist (runs before every start).
    fn setup(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Empties the read model (runs at the start of a rebuild).
    fn reset(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies one event, in position order.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &SequencedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies a batch of events (in position order) in one go; by default,
    /// [`apply`](DurableProjection::apply) for each. Override it to write a
    /// batch with one statement (a multi-row `INSERT ... SELECT unnest(...)`)
    /// when rebuild speed matters. When it fails, the batch is rolled back and
    /// replayed event by event with `apply` to find the failing position.
    fn apply_batch(
        &self,
        tx: &Transaction<'_>,
        events: &[SequencedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for e in events {
                self.apply(tx, e).await?;
            }
            Ok(())
        }
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`DurableProjection`], so runners and registries can
/// hold projections of different types.
pub(crate) trait Erased: Send + Sync {
    fn name(&self) -> &str;
    fn query(&self) -> Query;
    fn setup<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>>;
    fn reset<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>>;
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        e: &'a SequencedEvent,
    ) -> BoxFut<'a, Result<(), HandlerError>>;
    fn apply_batch<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [SequencedEvent],
    ) -> BoxFut<'a, Result<(), HandlerError>>;
}

impl<P: DurableProjection> Erased for P {
    fn name(&self) -> &str {
        DurableProjection::name(self)
    }
    fn query(&self) -> Query {
        DurableProjection::query(self)
    }
    fn setup<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::setup(self, tx))
    }
    fn reset<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::reset(self, tx))
    }
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        e: &'a SequencedEvent,
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::apply(self, tx, e))
    }
    fn apply_batch<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [SequencedEvent],
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::apply_batch(self, tx, events))
    }
}

/// A set of durable projections, by name: what an application hands to its
/// projection commands (`dcbstore_cli::kit::projections`) or
/// starts [`Runner`](super::Runner)s from. (Event definitions have their own
/// registry: [`SchemaRegistry`](crate::schema::SchemaRegistry).)
#[derive(Clone, Default)]
pub struct ProjectionRegistry {
    projections: Vec<Arc<dyn Erased>>,
}

impl std::fmt::Debug for ProjectionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl ProjectionRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        ProjectionRegistry::default()
    }

    /// Adds a projection.
    #[must_use]
    pub fn with(mut self, projection: impl DurableProjection) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// The names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.projections.iter().map(|p| p.name())
    }

    pub(super) fn get(&self, name: &str) -> Option<Arc<dyn Erased>> {
        self.projections.iter().find(|p| p.name() == name).cloned()
    }

    pub(super) fn all(&self) -> &[Arc<dyn Erased>] {
        &self.projections
    }
}
