//! Reads on an sqlx connection: the statements of the store's reads
//! (`dcbstore.read_pages`, `dcbstore.read_page_tagged`), paged through the
//! same window, each event decoded on its own.

use std::collections::VecDeque;
use std::ops::DerefMut;

use chrono::{DateTime, Utc};
use futures::stream::{self, Stream};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row, ValueRef};

use super::error::sqlx_error;
use crate::error::Result;
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::query::Query;
use crate::read::{
    in_read_order, metadata_object, split_head, undecodable, Boundary, PageCall, ReadOptions,
    ReadSql, Window, READ_PAGES_SQL, READ_TAGGED_SQL,
};

/// Events a page holds, as the store reads them.
pub(crate) const PAGE_SIZE: u64 = 1000;

/// Reads the events matching `query` within `options` into memory, with the
/// position a decision made from them appends after: the store's
/// [`read_boundary`](crate::EventStore::read_boundary) on the caller's
/// sqlx connection or transaction. The first page and the head come from
/// one statement; further pages (rare) stay below that head, so the
/// boundary is exact as of that statement's snapshot.
///
/// An event that cannot be decoded fails the boundary
/// ([`Error::Undecodable`](crate::Error::Undecodable), naming its position): a decision needs all of
/// them.
pub async fn read_boundary_in(
    conn: &mut PgConnection,
    query: &Query,
    options: ReadOptions,
) -> Result<Boundary> {
    read_boundary_in_with(conn, query, options, &Limits::DEFAULT).await
}

/// [`read_boundary_in`] with the query checked against `limits`.
pub async fn read_boundary_in_with(
    conn: &mut PgConnection,
    query: &Query,
    options: ReadOptions,
    limits: &Limits,
) -> Result<Boundary> {
    let mut reader = Reader::start(conn, query, limits, options, PAGE_SIZE)?;
    let mut events = Vec::new();
    while let Some(e) = reader.next_event().await {
        events.push(e?);
    }
    let last = events.last().map(|e| e.position);
    Ok(Boundary {
        after: reader.window.seen_through(last),
        events,
    })
}

/// Streams the events matching `query` within `options` on the caller's
/// sqlx connection or transaction, a page at a time (memory bounded by one
/// page): the store's [`read`](crate::EventStore::read). The head is read
/// with the first page; later pages stay below it. An event that cannot be
/// decoded is an error item of its own ([`Error::Undecodable`](crate::Error::Undecodable)) and the
/// read goes on; a page that cannot be read ends it after its error.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use dcbstore::{Query, QueryItem, ReadOptions};
/// use futures::TryStreamExt;
///
/// let mut conn = pool.acquire().await?;
/// let query = Query::item(QueryItem::types(["CourseDefined"]));
/// let courses: Vec<_> = dcbstore::sqlx::read_in(&mut conn, &query, ReadOptions::default())
///     .try_collect()
///     .await?;
/// # Ok(()) }
/// ```
pub fn read_in<'c>(
    conn: &'c mut PgConnection,
    query: &Query,
    options: ReadOptions,
) -> impl Stream<Item = Result<SequencedEvent>> + Send + 'c {
    read_in_with(conn, query, options, &Limits::DEFAULT)
}

/// [`read_in`] with the query checked against `limits`.
pub fn read_in_with<'c>(
    conn: &'c mut PgConnection,
    query: &Query,
    options: ReadOptions,
    limits: &Limits,
) -> impl Stream<Item = Result<SequencedEvent>> + Send + 'c {
    read_stream(conn, query, limits, options, PAGE_SIZE)
}

/// The stream of a read on any holder of a connection (borrowed, or owned
/// from a pool).
pub(crate) fn read_stream<C>(
    conn: C,
    query: &Query,
    limits: &Limits,
    options: ReadOptions,
    page_size: u64,
) -> impl Stream<Item = Result<SequencedEvent>> + Send
where
    C: DerefMut<Target = PgConnection> + Send,
{
    let reader = Reader::start(conn, query, limits, options, page_size);
    stream::unfold(Some(reader), |state| async move {
        match state? {
            Err(e) => Some((Err(e), None)),
            Ok(mut r) => r.next_event().await.map(|e| (e, Some(Ok(r)))),
        }
    })
}

/// The highest committed position on the caller's connection, `None` for
/// an empty store: the store's [`head`](crate::EventStore::head).
pub async fn head_in(conn: &mut PgConnection) -> Result<Option<SequencePosition>> {
    let head: Option<i64> = sqlx::query_scalar("SELECT dcbstore.head()")
        .fetch_one(conn)
        .await
        .map_err(sqlx_error)?;
    Ok(head.map(SequencePosition::from_sql))
}

/// A read in progress on one connection: one page in memory, no prefetch
/// (the connection is the caller's, one statement at a time).
struct Reader<C> {
    conn: C,
    sql: ReadSql,
    window: Window,
    buffer: VecDeque<Result<SequencedEvent>>,
}

impl<C: DerefMut<Target = PgConnection> + Send> Reader<C> {
    fn start(
        conn: C,
        query: &Query,
        limits: &Limits,
        options: ReadOptions,
        page_size: u64,
    ) -> Result<Self> {
        query.validate_with(limits)?;
        Ok(Reader {
            conn,
            sql: ReadSql::new(query, options.is_backwards()),
            window: Window::new(&options, page_size),
            buffer: VecDeque::new(),
        })
    }

    async fn next_event(&mut self) -> Option<Result<SequencedEvent>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            if self.window.exhausted() {
                return None;
            }
            if let Err(e) = self.next_page().await {
                self.window.end();
                return Some(Err(e));
            }
        }
    }

    async fn next_page(&mut self) -> Result<()> {
        let (lo, hi, want) = self.window.request();
        let call = ReadSql::call(&[(&self.sql, [to_i64(lo), to_i64(hi), to_i64(want)])]);
        let rows = fetch(&mut self.conn, &call).await?;
        let (head, mut rows) = split_head(rows, |r| r.try_get(0).map_err(sqlx_error))?;
        in_read_order(&mut rows, self.window.backwards(), position)?;
        let last = rows.last().map(position).transpose()?;
        let last = last.map(|p| SequencePosition::from_sql(p).get());
        self.window.advance(head, want, rows.len() as u64, last);
        self.buffer.extend(rows.iter().map(decode));
        Ok(())
    }
}

/// One page call's rows: the head's row and the events'.
async fn fetch(conn: &mut PgConnection, call: &PageCall) -> Result<Vec<PgRow>> {
    let query = match call {
        PageCall::Tagged {
            window: [lo, hi, want],
            item,
            backwards,
        } => sqlx::query(READ_TAGGED_SQL)
            .bind(lo)
            .bind(hi)
            .bind(want)
            .bind(&item.first)
            .bind(&item.types)
            .bind(&item.others)
            .bind(backwards),
        PageCall::Pages(p) => sqlx::query(READ_PAGES_SQL)
            .bind(&p.after)
            .bind(&p.to)
            .bind(&p.limit)
            .bind(&p.all)
            .bind(&p.item_request)
            .bind(&p.item_first)
            .bind(&p.item_type_ends)
            .bind(&p.item_types)
            .bind(&p.item_tag_ends)
            .bind(&p.item_tags)
            .bind(&p.type_request)
            .bind(&p.types)
            .bind(p.backwards),
    };
    query.fetch_all(conn).await.map_err(sqlx_error)
}

fn position(row: &PgRow) -> Result<i64> {
    row.try_get(1).map_err(sqlx_error)
}

/// One event row, decoded on its own: what cannot be is an
/// [`Error::Undecodable`](crate::Error::Undecodable) naming its position.
fn decode(row: &PgRow) -> Result<SequencedEvent> {
    let position = SequencePosition::from_sql(position(row)?);
    let field = |what: &str, e: &dyn std::fmt::Display| undecodable(position, what, e);
    let metadata = metadata_object(
        position,
        row.try_get::<Value, _>(6)
            .map_err(|e| field("its metadata", &e))?,
    )?;
    Ok(SequencedEvent {
        position,
        event: Event {
            id: row.try_get(2).map_err(|e| field("its id", &e))?,
            event_type: row.try_get(3).map_err(|e| field("its type", &e))?,
            data: row.try_get(4).map_err(|e| field("its data", &e))?,
            tags: row.try_get(5).map_err(|e| field("its tags", &e))?,
            metadata,
        },
        recorded_at: recorded_at(row).map_err(|e| field("its recorded_at", &e))?,
    })
}

/// `recorded_at` from its binary form (microseconds since 2000-01-01 UTC),
/// checked: a time no `DateTime` holds (`infinity`) is an error of its
/// event, where adding it to the epoch would panic.
fn recorded_at(row: &PgRow) -> std::result::Result<DateTime<Utc>, String> {
    let raw = row.try_get_raw(7).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Err("NULL".into());
    }
    // Prepared statements (every statement here) answer in binary.
    let bytes =
        <[u8; 8]>::try_from(sqlx::postgres::PgValueRef::as_bytes(&raw).map_err(|e| e.to_string())?)
            .map_err(|_| "not an 8-byte timestamptz".to_string())?;
    let micros = i64::from_be_bytes(bytes);
    DateTime::<Utc>::from_timestamp(946_684_800, 0)
        .and_then(|epoch| epoch.checked_add_signed(chrono::TimeDelta::microseconds(micros)))
        .ok_or_else(|| "a time outside what a DateTime holds (infinity?)".to_string())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
