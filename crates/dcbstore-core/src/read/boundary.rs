//! [`Boundary`]: a consistency boundary as one read saw it, with the
//! position a decision made from it appends after.

use super::ReadOptions;
use crate::event::{SequencePosition, SequencedEvent};

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
/// use dcbstore_core::{AppendCondition, Boundary, Query, QueryItem, SequencePosition};
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

/// [`Boundary::after`] for a read of `events` with `options` bounded by
/// `head` (for stores that read the head and the events separately, and
/// for a store's cursor once its read is done).
pub fn seen_through(
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
