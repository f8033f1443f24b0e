//! [`MemoryStore`]: the [`EventStore`] in memory, with the PostgreSQL
//! store's semantics, for unit tests of decisions and projections.
//!
//! The same rules hold as in `docs/semantics.md`, and one shared suite runs
//! against every store (the `dcbstore` crate's `tests/it/semantics.rs` and
//! its neighbours: PostgreSQL through the store, through sqlx, and this), so
//! none can drift: positions from 1 with no gaps, tags a sorted set,
//! every input check and limit of [`limits::check_with`], idempotent
//! retries by id (the same content: `already_stored`; other content, or
//! only some ids stored: [`Error::IdConflict`](crate::Error::IdConflict)) checked before the
//! condition, conditions of one or more guards, conflicts with their
//! earliest 100 events, the latest one's position and the head, windows,
//! directions and limits, reads as snapshots, `read_boundary`'s `after`,
//! and [`subscribe`](MemoryStore::subscribe) (catch-up, then live).
//!
//! What it does not model: durability, other processes, replicas, commit
//! tokens (an append's is `None`), and the batching of concurrent appends
//! (each append is decided alone, under one lock).
//!
//! ```
//! use dcbstore_core::memory::MemoryStore;
//! use dcbstore_core::{AppendCondition, Event, EventStore, Query, QueryItem, ReadOptions};
//! use serde_json::json;
//!
//! # tokio_test_block_on(async {
//! let store = MemoryStore::new();
//! let course = Query::item(QueryItem::types(["CourseDefined"]).and_tags(["course:c1"]));
//! let boundary = store.read_boundary(&course, ReadOptions::new()).await?;
//! let defined = Event::new("CourseDefined", json!({"capacity": 10})).with_tag("course:c1");
//! let condition = AppendCondition::new(course.clone(), boundary.after);
//! store.append(vec![defined.clone()], Some(condition.clone())).await?;
//! // The same decision again conflicts: the course now exists.
//! let again = Event::new("CourseDefined", json!({"capacity": 20})).with_tag("course:c1");
//! assert!(store.append(vec![again], Some(condition)).await.unwrap_err().conflict().is_some());
//! # Ok::<(), dcbstore_core::Error>(()) });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod log;
mod read;
mod subscribe;

use std::future::Future;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::watch;

use crate::condition::{AppendCondition, Appended};
use crate::error::Result;
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::limits::{self, Limits};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::store::EventStore;
use log::Log;

/// A read fetches this many events at a time from the log, as the
/// PostgreSQL store reads pages: a long read holds the lock briefly.
const PAGE: u64 = 1000;

/// An event store in memory with the semantics of dcbstore's PostgreSQL
/// store. Clones share one log.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: RwLock<Log>,
    limits: Limits,
    /// The head after each append, for subscriptions.
    head: watch::Sender<u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("head", &*self.inner.head.borrow())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        MemoryStore::with_limits(Limits::DEFAULT)
    }

    /// An empty store that checks appends and reads against `limits`.
    #[must_use]
    pub fn with_limits(limits: Limits) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                log: RwLock::new(Log::default()),
                limits,
                head: watch::Sender::new(0),
            }),
        }
    }

    /// The limits this store checks appends and reads against.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The events matching `query` in `window` (forwards), then every
    /// matching event appended later, as it is appended: the stream ends at
    /// the window's `to` or `limit`, or when dropped. A backwards window is
    /// [`Error::Invalid`](crate::Error::Invalid).
    pub fn subscribe(
        &self,
        query: &Query,
        window: ReadOptions,
    ) -> BoxStream<'static, Result<SequencedEvent>> {
        subscribe::subscribe(self.clone(), query.clone(), window)
    }

    fn read_log(&self) -> RwLockReadGuard<'_, Log> {
        // A panic while the lock was held cannot leave the log half
        // written: each append checks everything before it writes.
        self.inner.log.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_log(&self) -> RwLockWriteGuard<'_, Log> {
        self.inner.log.write().unwrap_or_else(|e| e.into_inner())
    }

    fn append_now(
        &self,
        mut events: Vec<Event>,
        condition: Option<&AppendCondition>,
    ) -> Result<Appended> {
        limits::check_with(&self.inner.limits, &events, condition)?;
        for e in &mut events {
            e.tags.sort_unstable();
            e.tags.dedup();
        }
        let appended = self.write_log().append(events, condition)?;
        if !appended.already_stored {
            self.inner.head.send_replace(appended.position.get());
        }
        Ok(appended)
    }

    /// The head, as subscriptions wait for it.
    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// One page of a read: the matches of `query` in `options` up to `head`.
    fn page(&self, query: &Query, options: &ReadOptions, head: u64) -> Vec<SequencedEvent> {
        read::window(&self.read_log().events, query, options, head)
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended>> + Send {
        let store = self.clone();
        async move { store.append_now(events, condition.as_ref()) }
    }

    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<SequencedEvent>> {
        if let Err(e) = query.validate_with(&self.inner.limits) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let store = self.clone();
        let query = query.clone();
        // The snapshot's head is taken when the stream is first polled.
        futures::stream::once(async move {
            let head = store.read_log().head().map_or(0, SequencePosition::get);
            pages(store, query, options, head)
        })
        .flatten()
        .boxed()
    }

    fn head(&self) -> impl Future<Output = Result<Option<SequencePosition>>> + Send {
        let store = self.clone();
        async move { Ok(store.read_log().head()) }
    }
}

/// The read of `query` in `options` as of `head`, a page at a time.
fn pages(
    store: MemoryStore,
    query: Query,
    options: ReadOptions,
    head: u64,
) -> BoxStream<'static, Result<SequencedEvent>> {
    let state = (options, options.max_events(), false);
    futures::stream::unfold(state, move |(options, remaining, done)| {
        let store = store.clone();
        let query = query.clone();
        async move {
            if done || remaining == Some(0) {
                return None;
            }
            let n = remaining.map_or(PAGE, |r| r.min(PAGE));
            let page = store.page(&query, &options.limit(n), head);
            let full = page.len() as u64 == n;
            let next = match page.last() {
                Some(last) if options.is_backwards() => {
                    options.at_most(SequencePosition::new(last.position.get().saturating_sub(1)))
                }
                Some(last) => options.after(last.position),
                None => options,
            };
            let remaining = remaining.map(|r| r - page.len() as u64);
            // A backwards read that reached position 1 is done too.
            let bottom = options.is_backwards()
                && page
                    .last()
                    .is_some_and(|e| e.position.get() <= 1 + options.lower());
            Some((page, (next, remaining, !full || bottom)))
        }
    })
    .flat_map(|page| futures::stream::iter(page.into_iter().map(Ok)))
    .boxed()
}
