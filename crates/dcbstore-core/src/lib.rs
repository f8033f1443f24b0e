//! # dcbstore-core
//!
//! The model of dcbstore, an event store for **Dynamic Consistency
//! Boundaries** (DCB, see dcb.events), without I/O: what a store holds and
//! how decisions are made on it, free of any database driver.
//!
//! - [`Event`], [`SequencedEvent`], [`SequencePosition`]: what is stored.
//! - [`Query`], [`QueryItem`]: which events a read or a condition covers
//!   (items OR'd; within an item, types OR'd and tags AND'd).
//! - [`AppendCondition`]: `fail_if_events_match` + `after`, one or more
//!   guards; [`Conflict`]: what a failed one reports.
//! - [`EventStore`]: the store API ([`ReadOptions`], [`Boundary`]), which
//!   the `dcbstore` crate implements on PostgreSQL, and [`memory`]'s
//!   [`MemoryStore`](memory::MemoryStore) in memory, with the same
//!   semantics, for unit tests.
//! - [`projection`]: folds, decision models and the DCB command pattern.
//! - [`schema`]: event definitions and the committed schema file.
//! - [`limits`]: what a store accepts; [`Error`]: what can go wrong, with
//!   the causes of a store's driver kept as opaque sources.
//!
//! Applications use these through `dcbstore`, which re-exports them.
#![warn(missing_docs)]

mod commit;
mod condition;
mod conflict;
pub mod error;
pub mod event;
mod limit;
pub mod limits;
pub mod memory;
pub mod projection;
pub mod query;
pub mod read;
pub mod schema;
mod store;
#[cfg(any(test, feature = "proptest"))]
pub mod strategies;
pub mod typed;

pub use commit::CommitToken;
pub use condition::{AppendCondition, AppendGuard, Appended};
pub use conflict::{Conflict, CONFLICT_EVENTS_CAP};
pub use error::{Error, HandlerError, Result, Source};
pub use event::{Event, RawEvent, SequencePosition, SequencedEvent};
pub use query::{Query, QueryItem};
pub use read::{Boundary, ReadOptions};
pub use store::EventStore;

/// What the code of `#[derive(Event)]` names; not an API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
