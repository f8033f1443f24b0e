//! The store: the [`EventStore`] API and [`Store`], its PostgreSQL
//! implementation (a connection pool and the batching writer), configured
//! by a [`StoreBuilder`].

mod builder;

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use futures::stream::BoxStream;
use tokio_postgres::Config;
use uuid::Uuid;

pub use builder::StoreBuilder;
pub use dcbstore_core::EventStore;

use crate::append::{AppendCondition, AppendMeter, Appended, HeadGauge, PreparedAppend, Writer};
use crate::connection::ConnectOptions;
use crate::error::{Error, PgResultExt, Result};
use crate::event::{Event, RawEvent, SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::listener::{Listener, Wakeups};
use crate::pooled::Pooled;
use crate::query::Query;
use crate::read::{read_boundary, Boundary, ReadOptions, Readers};
use crate::replica::{routed_read, Replicas};
use crate::subscribe::{Source, SubscribeOptions, Subscription};
use crate::tls::TlsSettings;

/// A dcbstore event log in PostgreSQL. Cheap to clone; clones share the pool
/// and the writer.
///
/// ```no_run
/// use dcbstore::{AppendCondition, Event, EventStore, Query, QueryItem, ReadOptions, Store};
/// use futures::TryStreamExt;
/// use serde_json::json;
///
/// # async fn f() -> dcbstore::Result<()> {
/// let store = Store::connect("postgres://app@localhost/app").await?;
/// let course = Query::item(QueryItem::tags(["course:c1"]));
/// let seen: Vec<_> = store.read(&course, ReadOptions::new()).try_collect().await?;
/// let after = seen.last().map(|e| e.position);
/// store
///     .append(
///         vec![Event::new("CourseDefined", json!({"courseId": "c1"})).with_tag("course:c1")],
///         Some(AppendCondition::new(course, after)),
///     )
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    tls: TlsSettings,
    pooled: Pooled,
    writer: Writer,
    /// Reads the first pages of concurrent boundaries together.
    readers: Readers,
    page_size: u64,
    store_id: Uuid,
    limits: Limits,
    listener: Arc<Listener>,
    /// The highest position this store's appends returned (a gauge).
    head_gauge: HeadGauge,
    /// Where reads may go besides the primary.
    replicas: Option<Arc<Replicas>>,
}

impl Store {
    /// Connects with default settings. See [`Store::builder`].
    pub async fn connect(database_url: &str) -> Result<Store> {
        Store::builder(database_url)?.build().await
    }

    /// A builder for a connection string (URL or key=value form), completed
    /// as libpq does from the `PG*` environment variables and the password
    /// file for what it leaves out ([`ConnectOptions::resolve`]; an empty
    /// string is the environment alone). [`StoreBuilder::new`] takes a
    /// driver `Config` as it is.
    pub fn builder(database_url: &str) -> Result<StoreBuilder> {
        let options = ConnectOptions::resolve(database_url)?;
        Ok(StoreBuilder::new(options.config).tls(options.tls))
    }

    /// The store's persistent identity (created by the first migration).
    #[must_use]
    pub fn store_id(&self) -> Uuid {
        self.inner.store_id
    }

    /// The connection settings (for dedicated connections, such as a
    /// projection's lease). Connect with them together with [`Store::tls`]
    /// (see [`Store::connect_options`]): alone, their `sslmode` cannot say
    /// `verify-ca`/`verify-full`.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The TLS settings of the store's connections.
    #[must_use]
    pub fn tls(&self) -> &TlsSettings {
        &self.inner.tls
    }

    /// The connection settings and TLS settings together, for
    /// [`connect`](crate::connection::connect).
    #[must_use]
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            config: self.inner.config.clone(),
            tls: self.inner.tls.clone(),
        }
    }

    /// Wakes this store's followers, and every other process's, after an
    /// application's own transaction appended with
    /// [`append_in`](crate::append::append_in) and committed: see
    /// [`append::wake`](crate::append::wake), which does the same inside the
    /// transaction. Its own short transaction commits without waiting for a
    /// flush (nothing of it needs to survive a crash).
    pub async fn wake(&self) -> Result<()> {
        self.inner
            .pooled
            .read("waking followers", |c| {
                Box::pin(async move { c.batch_execute(crate::append::AFTER_COMMIT_SQL).await.db() })
            })
            .await
    }

    /// The connection pool, for applications that run their own SQL beside
    /// the store (read models, for example).
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pooled.pool
    }

    /// Gives up a connection of [`pool`](Self::pool) whose statement may
    /// still run (its caller's deadline passed, or its future was dropped):
    /// cancels the statement (a cancel request through the store's TLS
    /// settings, sent in the background) and closes the connection instead
    /// of returning it to the pool, where the next caller would read the
    /// abandoned statement's answer or wait behind it.
    pub fn abandon(&self, client: deadpool_postgres::Object) {
        crate::pooled::abandon(&self.inner.pooled.tls, client);
    }

    /// The pool with the store's timeout, for the crate's own reads.
    pub(crate) fn pooled(&self) -> &Pooled {
        &self.inner.pooled
    }

    /// The limits this store checks appends and reads against.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The events matching `query` from `options`' start on: every one
    /// already in the log (catch-up, in pages), then each new one as it
    /// commits (live), in position order, none skipped, none repeated.
    ///
    /// Caught up, it wakes when the store's writer (in any process) notifies
    /// an append, or after the poll interval. Memory stays bounded however
    /// slowly the stream is consumed. A lost connection is ridden out with
    /// backoff, resuming after the last delivered event. All subscriptions
    /// and runners of this `Store` (and its clones) share one listening
    /// connection; dropping the stream releases what it holds. See
    /// [`subscribe`](crate::subscribe).
    ///
    /// ```no_run
    /// use dcbstore::{Query, QueryItem, Store, SubscribeOptions};
    /// use futures::TryStreamExt;
    ///
    /// # async fn f(store: Store) -> dcbstore::Result<()> {
    /// let orders = Query::item(QueryItem::types(["OrderPlaced"]));
    /// let mut live = store.subscribe(&orders, SubscribeOptions::new());
    /// while let Some(e) = live.try_next().await? {
    ///     println!("{} {}", e.position, e.event.event_type);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, query: &Query, options: SubscribeOptions) -> Subscription {
        crate::subscribe::subscribe(self.source(), query, options)
    }

    /// [`subscribe`](Self::subscribe) with each event's data and metadata
    /// as the JSON text the database holds ([`RawEvent`], as
    /// [`read_raw`](EventStore::read_raw)): what `dcbstore read --follow` prints.
    pub fn subscribe_raw(
        &self,
        query: &Query,
        options: SubscribeOptions,
    ) -> Subscription<RawEvent> {
        crate::subscribe::subscribe(self.source(), query, options)
    }

    fn source(&self) -> Source {
        Source {
            pooled: self.inner.pooled.clone(),
            replicas: self.inner.replicas.clone(),
            limits: self.inner.limits,
            page_size: self.inner.page_size,
            listener: self.inner.listener.clone(),
        }
    }

    /// Wake-ups on appends, from the store's one listening connection (for
    /// the projection runners).
    pub(crate) fn wakeups(&self) -> Wakeups {
        self.inner.listener.wakeups()
    }

    /// Whether the store's listening connection is open (some subscription
    /// or runner is following). For tests.
    #[doc(hidden)]
    #[must_use]
    pub fn is_listening(&self) -> bool {
        self.inner.listener.is_open()
    }

    /// Collects a read into memory. For a decision, prefer
    /// [`read_boundary`](EventStore::read_boundary), which also answers the
    /// position to append after.
    pub async fn read_all(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> Result<Vec<SequencedEvent>> {
        futures::TryStreamExt::try_collect(self.read(query, options)).await
    }
}

impl EventStore for Store {
    async fn append(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended> {
        self.append_since(events, condition, Instant::now()).await
    }

    async fn append_since(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
        since: Instant,
    ) -> Result<Appended> {
        let meter = AppendMeter::start(events.len());
        let result = match PreparedAppend::new(events, condition.as_ref(), &self.inner.limits) {
            Ok(prepared) => self
                .inner
                .writer
                .append(prepared, since)
                .await
                .map_err(Error::for_append),
            Err(e) => Err(e),
        };
        meter.finish(&result);
        if let Ok(appended) = &result {
            self.inner.head_gauge.record(appended);
            if let (Some(r), Some(t)) = (&self.inner.replicas, appended.commit_token) {
                r.committed(t);
            }
        }
        result
    }

    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<SequencedEvent>> {
        routed_read(
            self.inner.pooled.clone(),
            self.inner.replicas.clone(),
            query,
            &self.inner.limits,
            options,
            self.inner.page_size,
        )
    }

    fn read_raw(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<RawEvent>> {
        routed_read(
            self.inner.pooled.clone(),
            self.inner.replicas.clone(),
            query,
            &self.inner.limits,
            options,
            self.inner.page_size,
        )
    }

    async fn head(&self) -> Result<Option<SequencePosition>> {
        self.inner.pooled.head().await
    }

    async fn read_boundary(&self, query: &Query, options: ReadOptions) -> Result<Boundary> {
        read_boundary(
            self.inner.pooled.clone(),
            &self.inner.readers,
            query,
            &self.inner.limits,
            options,
            self.inner.page_size,
        )
        .await
    }
}
