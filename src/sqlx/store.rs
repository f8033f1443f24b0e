//! [`SqlxStore`]: the [`EventStore`] API on an application's sqlx pool.

use std::time::Instant;

use futures::stream::{BoxStream, StreamExt};
use sqlx::{Connection, PgPool};

use super::error::{sqlx_driver_error, sqlx_error};
use crate::append::{append_error, AFTER_COMMIT_SQL};
use crate::error::{Error, Result};
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::query::Query;
use crate::read::{Boundary, ReadOptions};
use crate::{AppendCondition, Appended, EventStore};

/// The store API ([`EventStore`]: appends under conditions, reads,
/// boundaries, and so `decide`, `projection::execute` and the typed
/// decisions) on an sqlx pool the application already has: no second pool.
///
/// Each append is a transaction of its own on a pooled connection
/// ([`append_in`](super::append_in), then `COMMIT`, then a wake-up for the
/// store's followers); there is no batching writer, so under many
/// concurrent appenders [`Store`](crate::Store) commits more per second
/// (one fsync per batch instead of one per append). Subscriptions, durable
/// projections and delivery run on a [`Store`](crate::Store), which may
/// follow the same database.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use dcbstore::{Event, EventStore};
/// use serde_json::json;
///
/// let pool = sqlx::PgPool::connect("postgres://app@localhost/app").await?;
/// let store = dcbstore::sqlx::SqlxStore::new(pool);
/// store.append(vec![Event::new("Opened", json!({}))], None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlxStore {
    pool: PgPool,
    limits: Limits,
    page_size: u64,
}

impl SqlxStore {
    /// The store on `pool`, with the default [`Limits`] (a database's own:
    /// [`Limits::DEFAULT`] unless `dcbstore.limits` was changed; pass those
    /// with [`with_limits`](Self::with_limits)).
    pub fn new(pool: PgPool) -> Self {
        SqlxStore {
            pool,
            limits: Limits::DEFAULT,
            page_size: super::read::PAGE_SIZE,
        }
    }

    /// The limits appends and queries are checked against, before anything
    /// is sent (the database checks its own as well).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How many events a read page holds (default 1000).
    #[must_use]
    pub fn page_size(mut self, n: u64) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The application's pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn append_now(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended> {
        // Nothing was sent yet: whatever fails here wrote nothing.
        let mut conn = self.pool.acquire().await.map_err(sqlx_error)?;
        let mut tx = conn.begin().await.map_err(sqlx_error)?;
        let appended =
            super::append_in_with(&mut tx, events, condition.as_ref(), &self.limits).await;
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                // A conflict or a refusal: nothing to keep. A failed
                // rollback closes the connection, which rolls back as well.
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        // A commit that gets no answer may have happened.
        tx.commit()
            .await
            .map_err(|e| append_error(sqlx_driver_error(e)))?;
        // Followers poll as well: a lost wake-up delays them, never loses an
        // event.
        if let Err(e) = sqlx::query(AFTER_COMMIT_SQL).execute(&mut *conn).await {
            tracing::debug!(error = %e, "waking followers failed");
        }
        Ok(appended)
    }
}

impl EventStore for SqlxStore {
    async fn append(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended> {
        // As the store reports it: a refusal by the database is NotWritten.
        self.append_now(events, condition)
            .await
            .map_err(Error::for_append)
    }

    async fn append_since(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
        _since: Instant,
    ) -> Result<Appended> {
        // One append per transaction: there is no batch to order.
        self.append(events, condition).await
    }

    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<SequencedEvent>> {
        let (pool, query, limits, page_size) = (
            self.pool.clone(),
            query.clone(),
            self.limits,
            self.page_size,
        );
        // The connection is taken when the stream is first polled: its
        // snapshot is that of its first page.
        futures::stream::once(async move { pool.acquire().await.map_err(sqlx_error) })
            .flat_map(move |conn| match conn {
                Ok(conn) => {
                    super::read::read_stream(conn, &query, &limits, options, page_size).boxed()
                }
                Err(e) => {
                    futures::stream::once(async move { Err::<SequencedEvent, Error>(e) }).boxed()
                }
            })
            .boxed()
    }

    async fn head(&self) -> Result<Option<SequencePosition>> {
        let mut conn = self.pool.acquire().await.map_err(sqlx_error)?;
        super::head_in(&mut conn).await
    }

    async fn read_boundary(&self, query: &Query, options: ReadOptions) -> Result<Boundary> {
        let mut conn = self.pool.acquire().await.map_err(sqlx_error)?;
        super::read_boundary_in_with(&mut conn, query, options, &self.limits).await
    }
}
