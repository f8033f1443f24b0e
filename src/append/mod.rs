//! Conditional appends: [`AppendCondition`], their outcome, and the batching
//! writer that turns concurrent appends of one process into one transaction.
//!
//! # Why positions are safe to follow
//!
//! Every append runs `dcbstore.append_batch` (see `sql/functions/append.sql`),
//! which takes one transaction-scoped lock, the append lock (an `EXCLUSIVE`
//! lock on [`APPEND_LOCK_RELATION`](crate::locks::APPEND_LOCK_RELATION), which
//! no other role may take), *before* it assigns positions and holds it until
//! commit. PostgreSQL makes a commit visible before it
//! releases the transaction's locks, so:
//!
//! 1. appends commit one at a time, in position order: there is never an
//!    uncommitted position below a committed one, every snapshot sees a prefix
//!    of the log, and `read(after: p)` in a loop or `head()` never skips an
//!    event that commits later;
//! 2. the condition is checked by statements that start after the lock is
//!    granted (READ COMMITTED takes a fresh snapshot per statement), so they see
//!    every append that committed before, and none can commit in between: the
//!    check and the write are atomic against every appender, in any process;
//! 3. whether an append conflicts depends only on the events its guards match,
//!    so appends whose queries cannot match each other's events never fail
//!    because of each other (they only queue for the lock).
//!
//! The lock serializes commits, so one fsync per append would cap throughput.
//! Within one process the [`Store`](crate::Store) therefore queues appends;
//! a writer task takes everything waiting and sends it as one
//! `append_batch_typed` call (the input is validated here, at the edge, and
//! again by the database against `dcbstore.limits`, as for every entry point;
//! the conditions go as typed arrays, which the database checks by their
//! cardinalities):
//! one transaction, one fsync. Requests are checked in order against the log
//! plus the earlier requests of the batch, and one request's conflict does not
//! fail the others. The log up to the head seen on arrival is checked before
//! the lock; under it, only what was committed meanwhile.
//!
//! The parts: [`condition`](AppendCondition) types, the input checks
//! (`prepare`), the writer's request and loop (`request`, `writer`), the
//! conditions' typed form (`guards`), and the batch's SQL call and decoding
//! (`batch`).

mod args;
mod batch;
mod guards;
mod metered;
mod outcome;
mod prepare;
mod request;
mod wake;
mod writer;

pub use dcbstore_core::limits::{check, check_with};
pub use dcbstore_core::{AppendCondition, AppendGuard, Appended, Conflict, CONFLICT_EVENTS_CAP};
pub(crate) use metered::{AppendMeter, HeadGauge};
pub(crate) use outcome::{outcome_row, OutcomeRow};
pub(crate) use prepare::PreparedAppend;
pub use wake::wake;
pub(crate) use wake::AFTER_COMMIT_SQL;
pub(crate) use writer::{BatchLimits, Writer};
#[cfg(feature = "sqlx")]
pub(crate) use {
    args::{BatchArgs, APPEND_BATCH_SQL},
    outcome::{append_error, outcomes},
    wake::CHANNEL_SQL,
};

use crate::error::Result;
use crate::event::Event;
use crate::limits::Limits;

/// Appends within the caller's transaction (or on the caller's connection),
/// bypassing the batching writer: for code that must write the events and
/// its own rows atomically.
///
/// The append lock is held until the caller's transaction ends, so every
/// other appender waits for it: keep such transactions short. The
/// transaction must be READ COMMITTED (the default).
///
/// The events are checked against the default [`Limits`]; use
/// [`append_in_with`] for others. Followers are not woken by this append
/// (the store's writer wakes them after its own commits): call [`wake`] in
/// the transaction (sent at commit) or after it, or they see it at their
/// next poll.
pub async fn append_in<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    events: Vec<Event>,
    condition: Option<&AppendCondition>,
) -> Result<Appended> {
    append_in_with(client, events, condition, &Limits::DEFAULT).await
}

/// [`append_in`] with the events checked against `limits` (a store's:
/// [`Store::limits`](crate::Store::limits)).
pub async fn append_in_with<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    events: Vec<Event>,
    condition: Option<&AppendCondition>,
    limits: &Limits,
) -> Result<Appended> {
    let meter = AppendMeter::start(events.len());
    let result = match PreparedAppend::new(events, condition, limits) {
        Ok(prepared) => batch::execute_one(client, prepared).await,
        Err(e) => Err(e),
    };
    // No head gauge here: the caller's transaction has not committed yet.
    meter.finish(&result);
    result
}
