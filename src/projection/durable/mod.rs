//! Durable projections: read models in PostgreSQL tables, kept current from a
//! checkpoint stored beside them, without ever skipping or repeating an event.
//!
//! - The read-model writes of a batch and the new checkpoint commit in **one
//!   transaction**: after a crash at any point, no event is applied twice and
//!   none is skipped.
//! - That transaction first locks the projection's row in
//!   `dcbstore.projections` (`FOR UPDATE`) and reads the checkpoint under the
//!   lock, so even two runners that both believe they are active apply each
//!   event once: the second waits, then continues from the first's checkpoint.
//! - A [`Runner`] holds a lease (a row of `dcbstore.leases` that only the
//!   dcbstore functions write, held through a dedicated connection) so that
//!   one process at a time runs a projection; when that process dies its
//!   connection closes and another runner takes over. No other role can take
//!   a lease first or hold it back. Each batch commits only while the lease
//!   is still at the runner's generation: a runner that lost its lease
//!   commits nothing more.
//! - Catch-up, then live: the runner reads from the checkpoint up to the head,
//!   then waits for a `NOTIFY` or a polling interval. Notifications only wake
//!   it up; the log is the only source of events, so a lost notification
//!   delays an event and never loses it. Positions commit in order (see
//!   [`append`](crate::append)), so a checkpoint at the head never passes an
//!   event that commits later.
//! - A handler error rolls its batch back, records the error and the event's
//!   position in `dcbstore.projections` (see [`status`]) and is retried with
//!   backoff; other projections keep running.
//!
//! The parts: the trait and the [`ProjectionRegistry`] (`definition`), the
//! settings (`config`), the catch-up that applies batches (`catch_up`), the
//! [`Runner`] (a [`consumer`](crate::consumer), as delivery's subscribers and
//! relays are: lease, checkpoint row, the one follow loop), [`status`] and
//! [`rebuild`].

mod catch_up;
mod config;
mod definition;
mod rebuild;
mod runner;
mod status;

pub use config::{Progress, RunnerConfig};
pub use definition::{DurableProjection, ProjectionRegistry};
pub use rebuild::rebuild;
pub use runner::Runner;
pub use status::{status, ProjectionStatus};
