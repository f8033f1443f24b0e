//! Emitting events: validate against the committed schema, build an
//! [`Envelope`], and dispatch it to the handlers registered for its [`Level`](dcbstore::schema::Level),
//! in registration order, stopping at the first error.
//!
//! The store is the level-5 handler ([`SourcedHandler`]): it appends sourced
//! events to the dcbstore log with their tags, the envelope in the metadata
//! and the envelope id as the event id, so re-dispatching an envelope is
//! idempotent, and it can carry an append condition from a decision model.
//!
//! The parts: the [`Envelope`] and what a handler is given (`envelope`), the
//! [`Handler`] trait and typed subscribers (`handler`), [`EmitOptions`], the
//! [`Dispatcher`], the store as the level-5 handler (`sourced`), and
//! [`DispatchError`].

mod dispatcher;
mod envelope;
mod error;
mod handler;
mod options;
mod sourced;

pub use dispatcher::Dispatcher;
pub use envelope::{EmitContext, Envelope, Levels};
pub use error::DispatchError;
pub use handler::Handler;
pub use options::EmitOptions;
pub use sourced::{append_envelopes_in, from_store_event, to_store_event, SourcedHandler};
