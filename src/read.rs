//! Reads: [`ReadOptions`] and the paging stream behind [`Store::read`](crate::EventStore::read).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::pooled::Pooled;
use crate::query::Query;

/// The window and order of a read.
///
/// The lower bound is [`after`](Self::after) (exclusive) or
/// [`from`](Self::from) (inclusive); the upper bound [`to`](Self::to) is
/// inclusive. The window bounds positions the same way in both directions;
/// [`limit`](Self::limit) counts returned events.
///
/// ```
/// use dcbstore::{ReadOptions, SequencePosition};
///
/// let last_ten_before_100 = ReadOptions::new()
///     .to(SequencePosition::new(99))
///     .backwards()
///     .limit(10);
/// # let _ = last_ten_before_100;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    after: u64,
    to: Option<u64>,
    backwards: bool,
    limit: Option<u64>,
}

impl ReadOptions {
    /// All events, forwards, no limit.
    #[must_use]
    pub fn new() -> Self {
        ReadOptions::default()
    }

    /// Only events with a position greater than `position`.
    #[must_use]
    pub fn after(mut self, position: SequencePosition) -> Self {
        self.after = position.get();
        self
    }

    /// Only events with a position greater than `position`, when there is one
    /// (the form a decision model's "last position read" takes).
    #[must_use]
    pub fn after_opt(self, position: Option<SequencePosition>) -> Self {
        match position {
            Some(p) => self.after(p),
            None => self,
        }
    }

    /// Only events with a position of at least `position`.
    #[must_use]
    pub fn from(mut self, position: SequencePosition) -> Self {
        self.after = position.get().saturating_sub(1);
        self
    }

    /// Only events with a position of at most `position`.
    #[must_use]
    pub fn to(mut self, position: SequencePosition) -> Self {
        self.to = Some(position.get());
        self
    }

    /// Highest positions first.
    #[must_use]
    pub fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// At most `n` events (0 returns nothing).
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether the read goes from the highest position down.
    #[must_use]
    pub fn is_backwards(&self) -> bool {
        self.backwards
    }
}

struct Cursor {
    pooled: Pooled,
    query: Arc<Value>,
    page_size: u64,
    /// Window still to read: (lo, hi]. `hi` is None until the head is captured.
    lo: u64,
    hi: Option<u64>,
    to: Option<u64>,
    backwards: bool,
    remaining: Option<u64>,
    buffer: VecDeque<SequencedEvent>,
    exhausted: bool,
    /// The next page, already being fetched while this one is consumed.
    next: Option<Prefetch>,
}

impl Cursor {
    /// The fetch of the next page of (lo, hi], and how many events it asks for.
    fn next_fetch(
        &self,
        hi: u64,
    ) -> (
        impl std::future::Future<Output = Result<Vec<Row>>> + Send + 'static,
        u64,
    ) {
        let want = self
            .remaining
            .map_or(self.page_size, |r| r.min(self.page_size));
        let page = fetch(
            self.pooled.clone(),
            self.query.clone(),
            self.lo,
            hi,
            self.backwards,
            want,
        );
        (page, want)
    }
}

/// A page fetch running in the background; aborted if the read is dropped.
struct Prefetch {
    task: JoinHandle<Result<Vec<Row>>>,
    want: u64,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stream of a read: validates, captures the head (the snapshot), then
/// pages through (lo, hi] with one bounded query per page, fetching the next
/// page while the current one is consumed (at most two pages in memory).
pub(crate) fn read_stream(
    pooled: Pooled,
    query: &Query,
    limits: &Limits,
    options: ReadOptions,
    page_size: u64,
) -> impl Stream<Item = Result<SequencedEvent>> + Send + 'static {
    let start = query.validate_with(limits).map(|()| Cursor {
        pooled,
        query: Arc::new(query.to_json()),
        page_size: page_size.max(1),
        lo: options.after,
        hi: None,
        to: options.to,
        backwards: options.backwards,
        remaining: options.limit,
        buffer: VecDeque::new(),
        exhausted: options.limit == Some(0),
        next: None,
    });
    match start {
        Err(e) => stream::once(async move { Err(e) }).boxed(),
        Ok(cursor) => stream::try_unfold(cursor, next_event).boxed(),
    }
}

async fn next_event(mut c: Cursor) -> Result<Option<(SequencedEvent, Cursor)>> {
    loop {
        if let Some(e) = c.buffer.pop_front() {
            return Ok(Some((e, c)));
        }
        if c.exhausted {
            return Ok(None);
        }
        next_page(&mut c).await?;
    }
}

async fn next_page(c: &mut Cursor) -> Result<()> {
    let hi = match c.hi {
        Some(hi) => hi,
        None => {
            let head = c.pooled.head().await?;
            let head = head.map_or(0, SequencePosition::get);
            let hi = c.to.map_or(head, |to| to.min(head));
            c.hi = Some(hi);
            hi
        }
    };
    if c.lo >= hi {
        c.exhausted = true;
        return Ok(());
    }
    let (page, want) = match c.next.take() {
        Some(mut prefetch) => {
            let want = prefetch.want;
            let page = (&mut prefetch.task)
                .await
                .map_err(|e| Error::decode_from(format!("a read page task failed: {e}"), e))??;
            (page, want)
        }
        None => {
            let (page, want) = c.next_fetch(hi);
            (page.await?, want)
        }
    };
    let got = page.len() as u64;
    if let Some(r) = c.remaining.as_mut() {
        *r -= got.min(*r);
    }
    match page.last() {
        Some(last) if got == want && c.remaining != Some(0) => {
            let p = SequencePosition::from_sql(last.try_get(0)?).get();
            if c.backwards {
                c.hi = Some(p - 1);
            } else {
                c.lo = p;
            }
        }
        _ => c.exhausted = true,
    }
    let hi = c.hi.unwrap_or(0);
    if !c.exhausted && c.lo < hi {
        let (page, want) = c.next_fetch(hi);
        c.next = Some(Prefetch {
            task: tokio::spawn(page),
            want,
        });
    }
    // Decoded while the server already produces the next page.
    for row in &page {
        c.buffer.push_back(row_to_event(row)?);
    }
    Ok(())
}

/// One page, not yet decoded: at most `want` events of `query` in (lo, hi].
async fn fetch(
    pooled: Pooled,
    query: Arc<Value>,
    lo: u64,
    hi: u64,
    backwards: bool,
    want: u64,
) -> Result<Vec<Row>> {
    pooled
        .read("reading a page of events", |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT position, id, type, data, tags, metadata, recorded_at \
                     FROM dcbstore.read($1, $2, $3, $4, $5)",
                    )
                    .await?;
                Ok(c.query(
                    &stmt,
                    &[&*query, &to_i64(lo), &to_i64(hi), &backwards, &to_i64(want)],
                )
                .await?)
            })
        })
        .await
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn row_to_event(row: &tokio_postgres::Row) -> Result<SequencedEvent> {
    let metadata: Value = row.try_get(5)?;
    let metadata = match metadata {
        Value::Object(m) => m,
        _ => return Err(Error::invalid("stored metadata is not a JSON object")),
    };
    Ok(SequencedEvent {
        position: SequencePosition::from_sql(row.try_get(0)?),
        event: Event {
            id: row.try_get(1)?,
            event_type: row.try_get(2)?,
            data: row.try_get(3)?,
            tags: row.try_get(4)?,
            metadata,
        },
        recorded_at: row.try_get(6)?,
    })
}
