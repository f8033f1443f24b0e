//! # dcbstore
//!
//! An event store on PostgreSQL for **Dynamic Consistency Boundaries** (DCB,
//! see dcb.events): an append-only log of events with types, JSON data and
//! tags, read through query scopes, written with conditional appends that are
//! atomic against every concurrent writer.
//!
//! - [`Event`](struct@Event), [`SequencedEvent`], [`SequencePosition`]: what is stored.
//! - [`Query`], [`QueryItem`]: which events a read or a condition covers
//!   (items OR'd; within an item, types OR'd and tags AND'd).
//! - [`AppendCondition`]: `fail_if_events_match` + `after`, one or more guards.
//! - [`Store`] (behind the [`EventStore`] trait): append, read, head, and
//!   [`subscribe`](Store::subscribe) (catch-up then live, see [`subscribe`]).
//! - [`typed`]: events as Rust types (`#[derive(Event)]`, `#[derive(Events)]`),
//!   typed state ([`typed::StateQuery`]), decisions ([`typed::Decision`],
//!   [`typed::Decide`]), upcasting, and `given / when / then` tests on
//!   the in-memory store ([`memory::MemoryStore`]).
//! - [`projection`]: folds, decision models, the DCB command pattern, and
//!   [`durable`](projection::durable) read models in PostgreSQL tables.
//! - [`consumer`]: what follows the log durably under a lease (durable
//!   projections, delivery's subscribers and relays, or an application's own).
//! - [`schema`]: event definitions and the committed schema file.
//! - [`migrate()`] and [`status`]: the schema.
//! - [`transfer`]: export and import as JSON lines (backup, restore, migration).
//! - [`metrics`]: the metrics the crate emits through the
//!   `metrics` facade (recorded once the application installs a recorder).
//! - [`append::append_in`] and `dcbstore::sqlx` (feature `sqlx`): appends,
//!   boundaries, reads and typed decisions inside the application's own
//!   tokio-postgres or sqlx transaction, so that its rows and its events
//!   commit together (the guide's "Three ways to connect").
//!
//! One feature, `sqlx` (off by default), and no web server or CLI crate
//! among the dependencies. The
//! family's other crates build on this one: `dcbstore-delivery` (routing
//! emitted events by level, and delivering levels 2 to 4 from the log:
//! durable subscribers, relays to NATS or webhooks), `dcbstore-console` (the
//! operations console), `dcbstore-cli` (the `dcbstore` binary and the
//! application kits) and `dcbstore-testing` (throwaway PostgreSQL for tests).
//!
//! The rules are those of `docs/semantics.md`; the concurrency design is in
//! the [`append`] module.
#![warn(missing_docs)]

pub mod append;
pub mod connection;
pub mod consumer;
mod error;
pub mod limits;
mod listener;
pub mod locks;
pub mod metrics;
pub mod migrate;
mod pooled;
pub mod projection;
pub mod read;
pub mod replica;
pub mod roles;
#[cfg(feature = "sqlx")]
pub mod sqlx;
pub mod store;
pub mod subscribe;
pub mod tls;
pub mod transfer;

// The model without I/O (dcbstore-core): its modules and items, re-exported.
pub use dcbstore_core::{__private, event, memory, query, schema, typed};
// `#[derive(Event)]` (an `EventDefinition`) and `#[derive(Events)]` (a
// typed set of event types; the trait beside it, as serde does).
pub use dcbstore_core::typed::Events;
pub use dcbstore_derive::{Event, Events};

pub use dcbstore_core::{
    AppendCondition, AppendGuard, Appended, CommitToken, Conflict, Event, EventStore, Query,
    QueryItem, RawEvent, SequencePosition, SequencedEvent,
};
pub use error::{
    pg_driver_error, pg_error, pool_error, DriverError, Error, HandlerError, PgErrorExt,
    PgResultExt, Result, Source,
};
pub use migrate::{migrate, status, SchemaState, SchemaStatus};
pub use read::{Boundary, ReadOptions};
pub use replica::ReplicaOptions;
pub use store::{Store, StoreBuilder};
pub use subscribe::{SubscribeOptions, Subscription};

// The Rust code blocks of the README and of the guide (docs/guide) are
// compiled, and run unless marked no_run, as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../docs/guide/typed-decisions.md")]
    struct TypedDecisions;
    #[doc = include_str!("../docs/guide/connecting.md")]
    struct Connecting;
    #[doc = include_str!("../docs/guide/projections.md")]
    struct Projections;
    #[doc = include_str!("../docs/guide/subscriptions.md")]
    struct Subscriptions;
    #[doc = include_str!("../docs/guide/schema-and-dispatch.md")]
    struct SchemaAndDispatch;
    #[doc = include_str!("../docs/guide/delivery.md")]
    struct Delivery;
    #[doc = include_str!("../docs/guide/console.md")]
    struct Console;
    #[doc = include_str!("../docs/guide/replicas.md")]
    struct Replicas;
    #[doc = include_str!("../docs/guide/cli.md")]
    struct Cli;
    #[doc = include_str!("../docs/guide/operations.md")]
    struct Operations;
    #[doc = include_str!("../docs/guide/correctness.md")]
    struct Correctness;
    #[doc = include_str!("../docs/guide/layout.md")]
    struct Layout;
    #[doc = include_str!("../docs/guide/development.md")]
    struct Development;
}
