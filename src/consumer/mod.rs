//! Durable consumers: what follows the log under a lease, from a checkpoint
//! kept in `dcbstore.projections`, catch-up then live. Durable projections
//! ([`projection::durable`](crate::projection::durable)) and delivery's
//! subscribers and relays (the `dcbstore-delivery` crate) are consumers; an
//! application can write its own ([`Follower`]): each supplies one turn of
//! work, and [`follow`] runs the rest.
//!
//! - [`Lease`]: one runner per name at a time, in any process, ended by its
//!   connection; a generation that checkpoint moves compare
//!   ([`Lease::fence`]) and senders confirm ([`Lease::confirm`]);
//! - [`checkpoint`]: the consumer's row (checkpoint, state, last error), moved
//!   in the transaction of the work it records;
//! - [`follow`]: the one loop: take the lease, start, take turns, back off
//!   after failures, wait for a wake-up (an append) or the poll interval,
//!   take the lease again when it is lost, stop when asked.

pub mod checkpoint;
mod follow;
mod lease;

pub use follow::wait_or_stop;
pub use follow::{follow, Follower, Turn};
pub use lease::Lease;
