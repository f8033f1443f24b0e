//! Replays: folding a projection's events from the log, in pages.

use futures::TryStreamExt;

use super::Projection;
use crate::event::SequencePosition;
use crate::read::ReadOptions;
use crate::store::EventStore;

/// Progress of a [`replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events applied so far.
    pub applied: u64,
    /// Position of the last event applied.
    pub position: SequencePosition,
}

/// Folds `projection`'s events after `after` (all when `None`) into `state`,
/// streaming the log in pages (memory stays bounded whatever its size), as of
/// the moment the replay starts. Calls `progress` after each event; returns
/// the state and the position of the last event applied (or `after`).
///
/// Rebuilding from scratch is `replay(store, &p, p.initial(), None, ..)`;
/// resuming a snapshot taken at position `s` is `replay(store, &p, state, Some(s), ..)`.
pub async fn replay<St, P>(
    store: &St,
    projection: &P,
    state: P::State,
    after: Option<SequencePosition>,
    mut progress: impl FnMut(ReplayProgress),
) -> crate::error::Result<(P::State, Option<SequencePosition>)>
where
    St: EventStore,
    P: Projection,
{
    let mut events = store.read(&projection.query(), ReadOptions::new().after_opt(after));
    let mut state = state;
    let mut last = after;
    let mut applied = 0;
    while let Some(e) = events.try_next().await? {
        state = projection.apply(state, &e);
        applied += 1;
        last = Some(e.position);
        progress(ReplayProgress {
            applied,
            position: e.position,
        });
    }
    Ok((state, last))
}
