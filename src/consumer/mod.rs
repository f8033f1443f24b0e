//! Durable consumers: what follows the log under a lease, from a checkpoint
//! kept in `dcbstore.projections`, catch-up then live. Durable projections
//! ([`projection::durable`](crate::projection::durable)) and delivery's
//! subscribers and relays ([`delivery`](crate::delivery)) are the three
//! kinds; each supplies one turn of work, and this module runs the rest:
//!
//! - [`lease`]: one runner per name at a time, in any process, ended by its
//!   connection; a generation that checkpoint moves compare;
//! - [`checkpoint`]: the consumer's row (checkpoint, state, last error);
//! - `follow`: the one loop: take the lease, start, take turns, back off
//!   after failures, wait for a wake-up (an append) or the poll interval,
//!   take the lease again when it is lost, stop when asked.

pub(crate) mod checkpoint;
mod follow;
pub(crate) mod lease;

pub(crate) use follow::{follow, wait_or_stop, Follower, Turn};
pub(crate) use lease::Lease;
