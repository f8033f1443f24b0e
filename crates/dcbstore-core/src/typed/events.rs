//! [`Events`]: a set of event types, decoded by name and version, encoded
//! back to stored events.

use crate::error::{Error, Result};
use crate::event::{Event, SequencedEvent};
use crate::schema::EventDefinition;

use super::codec;

/// A set of event types that a state query reads or a decision emits: one
/// [`EventDefinition`] (every one is a set of one), or an enum of them
/// (`#[derive(Events)]`, one variant per type).
///
/// ```
/// use dcbstore_core::schema::{EventDefinition, Level};
/// use dcbstore_core::typed::Events;
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, JsonSchema)] struct CourseDefined { capacity: u32 }
/// # impl EventDefinition for CourseDefined { const NAME: &'static str = "course_defined"; const LEVEL: Level = Level::Sourced; }
/// assert_eq!(CourseDefined::types(), ["course_defined"]);
/// ```
pub trait Events: Sized + Send {
    /// The event types of the set (their stored `type`s).
    fn types() -> Vec<&'static str>;

    /// The typed event of a stored one whose type is in the set (upcast
    /// to the type's current version); [`Error::Undecodable`] naming its
    /// position when it cannot be.
    fn decode(event: &SequencedEvent) -> Result<Self>;

    /// The stored form of this event ([`codec::to_event`]).
    fn to_event(&self) -> Result<Event>;
}

impl<E: EventDefinition> Events for E {
    fn types() -> Vec<&'static str> {
        vec![E::NAME]
    }

    fn decode(event: &SequencedEvent) -> Result<Self> {
        codec::decode(event)
    }

    fn to_event(&self) -> Result<Event> {
        codec::to_event(self)
    }
}

/// The error of a stored event whose type is in none of a set's variants
/// (for `#[derive(Events)]`).
#[doc(hidden)]
pub fn not_in_set(event: &SequencedEvent, set: &str, types: &[&str]) -> Error {
    Error::Undecodable {
        position: event.position,
        message: format!(
            "{} (id {}) is not one of {set}'s types {types:?}",
            event.event.event_type, event.event.id
        ),
    }
}
