//! # dcbstore
//!
//! An event store on PostgreSQL for **Dynamic Consistency Boundaries** (DCB,
//! see dcb.events): an append-only log of events with types, JSON data and
//! tags, read through query scopes, written with conditional appends that are
//! atomic against every concurrent writer.
//!
//! - [`Event`], [`SequencedEvent`], [`SequencePosition`]: what is stored.
//! - [`Query`], [`QueryItem`]: which events a read or a condition covers
//!   (items OR'd; within an item, types OR'd and tags AND'd).
//! - [`AppendCondition`]: `fail_if_events_match` + `after`, one or more guards.
//! - [`Store`] (behind the [`EventStore`] trait): append, read, head, and
//!   [`subscribe`](Store::subscribe) (catch-up then live, see [`subscribe`]).
//! - [`projection`]: folds, decision models, the DCB command pattern, and
//!   [`durable`](projection::durable) read models in PostgreSQL tables.
//! - [`schema`] and [`dispatch`]: event definitions, the committed schema
//!   file, and routing emitted events by level (the store is level 5).
//! - [`migrate()`] and [`status`]: the schema.
//! - [`transfer`]: export and import as JSON lines (backup, restore, migration).
//! - [`metrics`]: the metrics the crate emits through the
//!   `metrics` facade (recorded once the application installs a recorder).
//!
//! Features: `cli` (default) builds the `dcbstore` binary and the
//! application kits in `kit`; `testing` gives `testing`, throwaway
//! PostgreSQL for tests; `testcontainers` lets `testing` fall back to a
//! Docker container.
//!
//! The rules are those of `docs/semantics.md`; the concurrency design is in
//! the [`append`] module.
#![warn(missing_docs)]

pub mod append;
mod commit;
mod conflict;
pub mod connection;
#[cfg(feature = "console")]
pub mod console;
pub mod delivery;
pub mod dispatch;
mod error;
pub mod event;
#[cfg(feature = "cli")]
pub mod kit;
mod limit;
pub mod limits;
mod listener;
pub mod locks;
pub mod metrics;
pub mod migrate;
mod pooled;
pub mod projection;
pub mod query;
pub mod read;
pub mod replica;
pub mod roles;
pub mod schema;
pub mod store;
pub mod subscribe;
#[cfg(test)]
mod test_strategies;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod transfer;

pub use append::{AppendCondition, AppendGuard, Appended};
pub use commit::CommitToken;
pub use conflict::Conflict;
pub use error::{Error, HandlerError, Result, Source};
pub use event::{Event, RawEvent, SequencePosition, SequencedEvent};
pub use migrate::{migrate, status, SchemaState, SchemaStatus};
pub use query::{Query, QueryItem};
pub use read::{Boundary, ReadOptions};
pub use replica::ReplicaOptions;
pub use store::{EventStore, Store, StoreBuilder};
pub use subscribe::{SubscribeOptions, Subscription};

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
