//! Reading a [`Boundary`] from PostgreSQL.

use super::stream::Cursor;
use super::together::Readers;
use super::ReadOptions;
use crate::error::Result;
use crate::event::SequencedEvent;
use crate::limits::Limits;
use crate::pooled::Pooled;
use crate::query::Query;
use crate::read::Boundary;

/// Reads a boundary with one cursor: its first page and the head come from
/// one statement, so an ordinary decision model costs one round trip; a
/// forwards read's first page is read together with the other boundaries
/// waiting (`readers`), in one statement.
pub(crate) async fn read_boundary(
    pooled: Pooled,
    readers: &Readers,
    query: &Query,
    limits: &Limits,
    options: ReadOptions,
    page_size: u64,
) -> Result<Boundary> {
    let backwards = options.is_backwards();
    let mut cursor = Cursor::<SequencedEvent>::start(pooled, query, limits, options, page_size)?;
    if !backwards {
        let (lo, hi, want) = cursor.first_request();
        let page = readers
            .first_page(cursor.sql(), [to_i64(lo), to_i64(hi), to_i64(want)])
            .await?;
        cursor.take_page(page, want)?;
    }
    let mut events = Vec::new();
    // A decision cannot be made without every event of its boundary: an
    // event that cannot be decoded fails it (naming the event).
    while let Some(e) = cursor.next_event().await {
        events.push(e?);
    }
    let last = events.last().map(|e| e.position);
    Ok(Boundary {
        after: cursor.seen_through(last),
        events,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
