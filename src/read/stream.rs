//! The paging cursor behind [`EventStore::read`](crate::EventStore::read)
//! and [`read_boundary`](crate::EventStore::read_boundary).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio_postgres::Row;

use super::decode::Decode;
use super::sql::ReadSql;
use super::window::{self, in_read_order, Window};
use super::ReadOptions;
use crate::error::{Error, PgResultExt, Result};
use crate::event::SequencePosition;
use crate::limits::Limits;
use crate::pooled::Pooled;
use crate::query::Query;

/// A read in progress: the window still to read, (lo, hi], paged with one
/// bounded statement per page, the next page fetched while the current one is
/// consumed (at most two pages in memory). Each event is decoded on its own:
/// one that cannot be is an error of its own
/// ([`Error::Undecodable`], naming its position), and the read goes on.
pub(super) struct Cursor<T> {
    pooled: Pooled,
    sql: Arc<ReadSql>,
    window: Window,
    buffer: VecDeque<Result<T>>,
    /// The next page, already being fetched while this one is consumed.
    next: Option<Prefetch>,
}

/// A page as the server sent it: the head it was read at, and the rows of
/// its events, not yet decoded.
pub(super) struct Page {
    pub(super) head: u64,
    pub(super) rows: Vec<Row>,
}

/// A page fetch running in the background; aborted if the read is dropped.
struct Prefetch {
    task: JoinHandle<Result<Page>>,
    want: u64,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Decode> Cursor<T> {
    /// Validates the query and plans the read; nothing is sent yet.
    pub(super) fn start(
        pooled: Pooled,
        query: &Query,
        limits: &Limits,
        options: ReadOptions,
        page_size: u64,
    ) -> Result<Cursor<T>> {
        query.validate_with(limits)?;
        Ok(Cursor {
            pooled,
            sql: Arc::new(ReadSql::new(query, options.is_backwards())),
            window: Window::new(&options, page_size),
            buffer: VecDeque::new(),
            next: None,
        })
    }

    /// The next event (or the error of the one event that could not be
    /// decoded), `None` at the end of the read. A page that cannot be read
    /// is an error that ends the read.
    pub(super) async fn next_event(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            if self.window.exhausted() {
                return None;
            }
            if let Err(e) = self.next_page().await {
                self.window.end();
                self.next = None;
                return Some(Err(e));
            }
        }
    }

    /// Once the read has ended, the position through which it saw every
    /// matching event (see [`Window::seen_through`]).
    pub(super) fn seen_through(&self, last: Option<SequencePosition>) -> Option<SequencePosition> {
        self.window.seen_through(last)
    }

    /// The fetch of the next page of the window, and how many events it asks
    /// for.
    fn next_fetch(
        &self,
    ) -> (
        impl std::future::Future<Output = Result<Page>> + Send + 'static,
        u64,
    ) {
        let (lo, hi, want) = self.window.request();
        let page = fetch(self.pooled.clone(), self.sql.clone(), lo, hi, want);
        (page, want)
    }

    async fn next_page(&mut self) -> Result<()> {
        let (page, want) = match self.next.take() {
            Some(mut prefetch) => {
                let want = prefetch.want;
                let page = (&mut prefetch.task).await.map_err(|e| {
                    Error::decode_from(format!("a read page task failed: {e}"), e)
                })??;
                (page, want)
            }
            None => {
                let (page, want) = self.next_fetch();
                (page.await?, want)
            }
        };
        self.take_page(page, want)
    }

    /// The read's query, as the statement takes it.
    pub(super) fn sql(&self) -> Arc<ReadSql> {
        self.sql.clone()
    }

    /// How many events the first page asks for, and the window it reads:
    /// (exclusive lower bound, inclusive upper bound).
    pub(super) fn first_request(&self) -> (u64, u64, u64) {
        self.window.request()
    }

    /// A page the server sent for `want` events: its events into the buffer,
    /// the window moved past them, and the next page fetched meanwhile when
    /// there may be more.
    pub(super) fn take_page(&mut self, page: Page, want: u64) -> Result<()> {
        let Page { head, mut rows } = page;
        in_read_order(&mut rows, self.window.backwards(), |r| {
            r.try_get::<_, i64>(1).db()
        })?;
        let last = rows.last().map(position_of).transpose()?;
        if self.window.advance(head, want, rows.len() as u64, last) {
            let (page, want) = self.next_fetch();
            self.next = Some(Prefetch {
                task: tokio::spawn(page),
                want,
            });
        }
        // Decoded while the server already produces the next page.
        for row in &rows {
            self.buffer.push_back(T::decode(row));
        }
        Ok(())
    }
}

/// The stream of a read: validates, then pages through the window as it is
/// consumed. Its snapshot is the head the first page was read at. An event
/// that cannot be decoded is an error item of its own and the stream goes
/// on; a page that cannot be read ends it after its error.
pub(crate) fn read_stream<T: Decode>(
    pooled: Pooled,
    query: &Query,
    limits: &Limits,
    options: ReadOptions,
    page_size: u64,
) -> impl Stream<Item = Result<T>> + Send + 'static {
    match Cursor::<T>::start(pooled, query, limits, options, page_size) {
        Err(e) => stream::once(async move { Err(e) }).boxed(),
        Ok(cursor) => stream::unfold(cursor, |mut c| async move {
            c.next_event().await.map(|e| (e, c))
        })
        .boxed(),
    }
}

/// One page, not yet decoded: at most `want` events of the query in
/// (lo, min(hi, head)], and the head.
async fn fetch(pooled: Pooled, sql: Arc<ReadSql>, lo: u64, hi: u64, want: u64) -> Result<Page> {
    pooled
        .read("reading a page of events", |c| {
            let sql = sql.clone();
            Box::pin(async move {
                let call = ReadSql::call(&[(&sql, [to_i64(lo), to_i64(hi), to_i64(want)])]);
                let rows = call.query(c).await?;
                split_head(rows)
            })
        })
        .await
}

/// The head row (the one with a head, first as sent) and the event rows.
pub(super) fn split_head(rows: Vec<Row>) -> Result<Page> {
    let (head, rows) = window::split_head(rows, |r| r.try_get(0).db())?;
    Ok(Page { head, rows })
}

fn position_of(row: &Row) -> Result<u64> {
    Ok(SequencePosition::from_sql(row.try_get(1).db()?).get())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
