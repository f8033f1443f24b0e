//! [`Boundary`]: a consistency boundary as one read saw it, with the
//! position a decision made from it appends after.

use super::stream::Cursor;
use super::together::Readers;
use super::ReadOptions;
use crate::error::Result;
use crate::event::{SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::pooled::Pooled;
use crate::query::Query;

/// The events of a query as one read returned them, and the position to
/// use as the `after` of the append condition of a decision made from them
/// ([`EventStore::read_boundary`](crate::EventStore::read_boundary)).
///
/// `after` is the position through which the read saw every matching
/// event: the head it read at (or the read's upper bound, when lower), or,
/// for a forwards read cut short by its limit, the last event returned. An
/// append guarded by the query after it fails exactly when a matching event
/// the read did not see has been appended since.
///
/// ```
/// use dcbstore::{AppendCondition, Boundary, Query, QueryItem, SequencePosition};
///
/// let course = Query::item(QueryItem::tags(["course:c1"]));
/// let seen = Boundary { events: vec![], after: Some(SequencePosition::new(41)) };
/// let condition = AppendCondition::new(course, seen.after);
/// assert_eq!(condition.guards[0].after, Some(SequencePosition::new(41)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    /// The events, in the read's order.
    pub events: Vec<SequencedEvent>,
    /// The position to append after (`None`: the log was empty).
    pub after: Option<SequencePosition>,
}

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
    let backwards = options.backwards;
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

/// [`Boundary::after`] for a read of `events` with `options` bounded by
/// `head` (for stores that read the head and the events separately).
pub(crate) fn seen_through(
    events: &[SequencedEvent],
    options: &ReadOptions,
    head: Option<SequencePosition>,
) -> Option<SequencePosition> {
    let head = head.map_or(0, SequencePosition::get);
    let top = options.to.map_or(head, |to| to.min(head));
    let cut_short = !options.backwards && options.limit == Some(events.len() as u64);
    let p = if cut_short {
        events
            .last()
            .map_or(options.after, |e| e.position.get())
            .min(top)
    } else {
        top
    };
    (p > 0).then_some(SequencePosition::new(p))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
