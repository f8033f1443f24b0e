//! What a failed append condition answers: the conflicting events. Below
//! [`Error`](crate::Error), which carries it.

use serde::{Deserialize, Serialize};

use crate::event::{SequencePosition, SequencedEvent};

/// At most this many conflicting events are returned with a [`Conflict`].
pub const CONFLICT_EVENTS_CAP: usize = 100;

/// Why a conditional append failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Position of the latest conflicting event.
    pub position: SequencePosition,
    /// The conflicting events in position order, at most
    /// [`CONFLICT_EVENTS_CAP`] of them (the earliest).
    pub events: Vec<SequencedEvent>,
    /// The head the condition was checked against: [`events`](Self::events)
    /// are the matches up to it. When they are complete
    /// ([`is_complete`](Self::is_complete)), a decision model can fold them
    /// and retry with `after` = this head, without reading again.
    pub head: SequencePosition,
}

impl Conflict {
    /// Whether [`events`](Self::events) holds every conflicting event (fewer
    /// than [`CONFLICT_EVENTS_CAP`]): then they are all the events matching
    /// the condition's guards in their windows up to [`head`](Self::head).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.events.len() < CONFLICT_EVENTS_CAP
    }
}
