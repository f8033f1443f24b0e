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
}
