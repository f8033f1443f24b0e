//! [`DispatchError`]: why an emit failed.

use dcbstore::schema::SchemaError;
use dcbstore::HandlerError;

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The event is not in the schema file.
    #[error("event {name} is not in the schema file: add its definition to the registry, run `schema dump` and commit the file")]
    UnknownEvent {
        /// The event's name.
        name: String,
    },
    /// The event's compiled contract matches no version in the schema file.
    #[error("event {name} does not match any version in the schema file (fingerprint {fingerprint}): run `schema dump` and commit the file")]
    UnknownVersion {
        /// The event's name.
        name: String,
        /// Fingerprint of the compiled contract.
        fingerprint: String,
    },
    /// The payload does not satisfy its schema version.
    #[error("payload of {name} v{version} does not match its schema: {reason}")]
    InvalidPayload {
        /// The event's name.
        name: String,
        /// The version checked.
        version: u32,
        /// What is wrong.
        reason: String,
    },
    /// The definition itself is invalid (name, reserved fields).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A level-3 or level-4 event would not be recorded in the log, where
    /// its delivery reads it: no handler that records (the level-5
    /// [`SourcedHandler`](super::SourcedHandler)) is registered for its level.
    #[error("{names} {verb} at level {level} ({what}), but no handler records that level in the log, where it is delivered from: register the store's SourcedHandler for it (`.handler(Level::Outbox..=Level::Sourced, \"store\", SourcedHandler::new(store))`)", verb = if names.contains(", ") { "are" } else { "is" }, what = if *level == 3 { "outbox" } else { "broker" })]
    NotRecorded {
        /// The level (3 or 4).
        level: u8,
        /// The events at it, comma-separated.
        names: String,
    },
    /// A level-4 event was emitted, but no relay was declared to publish it.
    #[error("{name} is a level-4 (broker) event, but no relay publishes it: start a dcbstore_delivery::Relay with a transport and declare it with Dispatcher::relayed_by, or move the event to another level")]
    NoTransport {
        /// The event's name.
        name: String,
    },
    /// A handler failed; later handlers did not run.
    #[error("handler {handler:?} failed for {name}: {source}")]
    Handler {
        /// The handler's label.
        handler: String,
        /// The event's name.
        name: String,
        /// The handler's error.
        source: HandlerError,
    },
}

impl DispatchError {
    /// The store error behind a failed level-5 handler (a
    /// [`Conflict`](dcbstore::Error::Conflict), say), if that is what failed.
    #[must_use]
    pub fn store_error(&self) -> Option<&dcbstore::Error> {
        match self {
            DispatchError::Handler { source, .. } => source.downcast_ref::<dcbstore::Error>(),
            _ => None,
        }
    }
}
