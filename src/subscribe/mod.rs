//! Subscriptions: the events matching a query, from a position on, catch-up
//! then live ([`Store::subscribe`](crate::Store::subscribe)).
//!
//! # Why nothing is skipped or repeated
//!
//! A subscription delivers only what a read returns, and each read asks for
//! the positions after the last one it delivered. Positions commit in order
//! (one append lock, held until commit, see [`append`](crate::append)):
//! every snapshot holds a prefix of the log, so when a read has seen
//! position P, no event below P can commit later. Delivered positions
//! therefore strictly increase, and every committed matching event is
//! delivered, whatever writers race, however long one holds its
//! transaction open.
//!
//! # When it reads
//!
//! Caught up, it waits for a wake-up from the store's one listening
//! connection (`LISTEN dcbstore_events`, notified by the store's writer
//! after each batch commits; shared by every subscription and projection
//! runner of the [`Store`](crate::Store)), or for the poll interval to pass.
//! Wake-ups carry nothing but "read again", so a lost one only delays.
//!
//! # Memory
//!
//! The stream reads only as fast as it is consumed: at most two pages of a
//! read are in memory (the one being consumed and the next), and wake-ups
//! coalesce into a counter. A consumer that stalls while millions of events
//! are appended holds the same memory as one that keeps up, and then
//! catches up page by page.
//!
//! # Lost connections
//!
//! A read that fails for a reason that may pass (the connection lost, the
//! server restarting, a timeout: [`Error::is_transient`](crate::Error::is_transient))
//! is tried again after a backoff with jitter, after the last delivered
//! position; after [`reconnect_attempts`](SubscribeOptions::reconnect_attempts)
//! failures in a row the stream yields the error and ends. Other errors (a
//! missing privilege, an invalid query) are yielded at once.

mod options;
mod stream;

pub use options::SubscribeOptions;
pub use stream::Subscription;

pub(crate) use stream::{subscribe, Source};
