//! Typed decisions: events as Rust types, typed state, decisions that turn
//! state into events or a domain error, upcasting of old versions, and
//! given / when / then tests in memory.
//!
//! - An event type implements [`EventDefinition`](crate::schema::EventDefinition)
//!   (`#[derive(Event)]` writes it: name, kind, level, version, tags from
//!   fields); [`to_event`] stores it, [`decode`] reads it back, upcasting
//!   older versions one step at a time.
//! - [`Events`]: a set of event types (one type, or an enum with
//!   `#[derive(Events)]`), decoded by name and version.
//! - [`StateQuery`]: typed state folded from the events of its types that
//!   carry its tags; its query is built from them. [`Model`]: a state query
//!   or a tuple of them (composed, each part seeing only its own events).
//! - [`Decision`] and [`decide`]: read, decide, append under the model's
//!   condition, retry on conflicts; domain errors, exhausted retries and
//!   undecodable events are distinct ([`CommandError`](crate::projection::CommandError)).
//! - [`given`]: `given(events).when(decision).then(events)` on a
//!   [`MemoryStore`](crate::memory::MemoryStore).

mod codec;
mod decide;
mod events;
mod given;
mod model;

pub use codec::{decode, to_event, upcast, version_of, ENVELOPE};
pub use decide::{decide, decide_with, Decide, Decision};
pub use events::{not_in_set, Events};
pub use given::{given, Given, When};
pub use model::{Model, StateQuery};
