//! Reads of the in-memory log: the window, the direction and the limit, as
//! the PostgreSQL store reads them.

use crate::event::SequencedEvent;
use crate::query::Query;
use crate::read::ReadOptions;

/// The events of `log` matching `query` in `options`' window, in its
/// direction, at most its limit, none above `head` (the snapshot's).
pub(super) fn window(
    log: &[SequencedEvent],
    query: &Query,
    options: &ReadOptions,
    head: u64,
) -> Vec<SequencedEvent> {
    let top = options.upper().map_or(head, |to| to.min(head));
    let lower = options.lower();
    let limit = options.max_events().unwrap_or(u64::MAX);
    // Position n is at index n - 1: the window is a slice.
    let lo = usize::try_from(lower).unwrap_or(usize::MAX).min(log.len());
    let hi = usize::try_from(top)
        .unwrap_or(usize::MAX)
        .min(log.len())
        .max(lo);
    let slice = &log[lo..hi];
    let matching = |e: &&SequencedEvent| query.matches(&e.event);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    if options.is_backwards() {
        slice
            .iter()
            .rev()
            .filter(matching)
            .take(take)
            .cloned()
            .collect()
    } else {
        slice.iter().filter(matching).take(take).cloned().collect()
    }
}
