//! The error type of every dcbstore operation.
//!
//! Errors keep what caused them: [`std::error::Error::source`] returns the
//! driver's, the pool's or the I/O error underneath. A store's driver errors
//! are kept opaque ([`DriverError`]): this crate knows no driver, so it keeps
//! what every caller needs (the message, the SQLSTATE, whether trying again
//! may help) and the driver's own error as the source; the `dcbstore` crate's
//! `PgErrorExt` reaches tokio-postgres's report (`as_db_error`). The `Display`
//! of each variant is one sentence that says what to do next (the CLI prints
//! it).

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::conflict::Conflict;

/// What a handler (a durable projection's, a dispatcher's) may fail with.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A cause kept by an [`Error`]; shared, so that errors stay `Clone` (a batch
/// failure is reported to every request of the batch).
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in dcbstore.
///
/// A failed [`AppendCondition`](crate::AppendCondition) is not an I/O failure
/// but an answer: it comes back as [`Error::Conflict`] with the conflicting
/// events, so a caller can rebuild its decision and retry.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input was rejected before anything reached the database.
    #[error("{0}")]
    Invalid(String),

    /// Input was over one of the store's [`Limits`](crate::limits::Limits);
    /// nothing reached the database.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit.
        limit: crate::limit::Limit,
        /// Its maximum.
        max: usize,
        /// The value found (for nesting: the level reached).
        actual: usize,
        /// What was over it, where, and what to do.
        message: String,
    },

    /// The append condition failed: events matching a guard's query exist
    /// after its position. Nothing was written.
    #[error("append condition failed: {} conflicting event(s), the latest at position {}; read them, decide again and retry", .0.events.len(), .0.position)]
    Conflict(Box<Conflict>),

    /// An event id is already stored with different content (or by another
    /// append). Nothing was written.
    #[error("{message}")]
    IdConflict {
        /// The offending id.
        id: Uuid,
        /// What the database said about it.
        message: String,
    },

    /// The database has no dcbstore schema, or an older one.
    #[error("the database schema is {detail}: run `dcbstore migrate` first")]
    NotMigrated {
        /// Which state the schema is in.
        detail: String,
    },

    /// The database was migrated by a newer dcbstore than this build.
    #[error("the database schema is at version {installed}, newer than this build of dcbstore (version {expected}): upgrade dcbstore before using this database")]
    DatabaseAhead {
        /// Version installed in the database.
        installed: i32,
        /// Latest version this build knows.
        expected: i32,
    },

    /// The database's functions were applied by a newer dcbstore release.
    #[error("the database's functions were applied by dcbstore {applied_by}, newer than this build ({build}): upgrade dcbstore before using this database")]
    FunctionsAhead {
        /// The release that applied them.
        applied_by: String,
        /// This build's version.
        build: String,
    },

    /// An applied migration differs from the one this build carries.
    #[error("migration {version} ({name}) applied to the database has checksum {applied}, but this build's copy has {expected}: the schema was changed by hand or by a different build")]
    ChecksumMismatch {
        /// Migration version.
        version: i32,
        /// Migration name.
        name: String,
        /// Checksum recorded in the database.
        applied: String,
        /// Checksum of this build's copy.
        expected: String,
    },

    /// The server's PostgreSQL is older than dcbstore supports
    /// (`dcbstore::migrate::MIN_SERVER_VERSION`).
    #[error("the server runs PostgreSQL {version}, older than dcbstore supports (PostgreSQL {minimum} or newer): upgrade the server")]
    UnsupportedServer {
        /// The server's `server_version`.
        version: String,
        /// The oldest major version supported.
        minimum: u32,
    },

    /// Connecting to PostgreSQL failed. `target` never contains a password.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// host:port/dbname as user (no password).
        target: String,
        /// Why, as reported by the driver (and by TLS), password removed.
        reason: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },

    /// The connection string or configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A database error during an operation.
    #[error("database error: {0}")]
    Database(#[source] DriverError),

    /// The connection was lost while an append was in flight (server crash,
    /// terminated backend, network failure, no answer in time): it may or may
    /// not have been committed. Resending the same events (same ids) is safe:
    /// it appends them if they were lost, or reports their original positions
    /// ([`Appended::already_stored`](crate::Appended::already_stored)).
    #[error("the append's outcome is unknown ({reason}): resend the same events with the same ids; the retry appends them if they were lost or reports their original positions if they were stored")]
    OutcomeUnknown {
        /// What happened to the connection.
        reason: String,
        /// The driver's error, when the connection failed (none when the
        /// client-side timeout expired).
        #[source]
        source: Option<DriverError>,
    },
    /// An append was not written: the database refused it, or it could not
    /// be sent (no connection). Nothing of it is stored: it can be sent again
    /// as it is, or changed. [`code`](Error::code),
    /// `as_db_error` (`dcbstore::PgErrorExt`) and
    /// [`is_transient`](Error::is_transient) answer for the error behind it.
    #[error("the append was not written ({0}); nothing of it is stored: fix the cause and send it again")]
    NotWritten(Box<Error>),

    /// An operation did not finish in time; nothing was written by it (for an
    /// append whose answer was lost, see [`Error::OutcomeUnknown`]).
    #[error("{operation} timed out{}: {hint}", after.map(|d| format!(" after {d:?}")).unwrap_or_default())]
    Timeout {
        /// What timed out.
        operation: String,
        /// The client-side limit that was reached (None: a server-side one).
        after: Option<std::time::Duration>,
        /// What to check or do next.
        hint: String,
        /// The server's error, for a server-side limit (`statement_timeout`,
        /// `lock_timeout`).
        #[source]
        source: Option<DriverError>,
    },
    /// No connection could be had from the pool (timeout or closed pool).
    #[error("connection pool: {0}")]
    Pool(#[source] DriverError),

    /// A durable projection's handler failed; its batch was rolled back.
    #[error("projection {name} failed at position {position}: {message}")]
    Projection {
        /// The projection.
        name: String,
        /// The event whose handler failed (0: setup or reset).
        position: u64,
        /// The handler's error, as text.
        message: String,
        /// The handler's error.
        #[source]
        source: Option<Source>,
    },

    /// A stored event could not be decoded by this reader (a value it cannot
    /// represent, written before the database refused such values, or by
    /// hand). Only that event is affected: a read yields this error in its
    /// place and goes on. Not transient: reading it again fails the same way.
    #[error("the event at position {position} cannot be decoded ({message}): read it as stored with `dcbstore read --from {position} --limit 1`, then erase or replace it with `dcbstore redact {position} --data JSON --reason TEXT`")]
    Undecodable {
        /// The event's position.
        position: crate::event::SequencePosition,
        /// Which field, and why.
        message: String,
    },

    /// A value from the database could not be decoded.
    #[error("{message}")]
    Decode {
        /// What could not be read, and what to do about it.
        message: String,
        /// The decoder's error.
        #[source]
        source: Option<Source>,
    },

    /// Reading input or writing output failed.
    #[error("i/o error: {message}")]
    Io {
        /// What failed, with the cause.
        message: String,
        /// The I/O error.
        #[source]
        source: Option<Arc<std::io::Error>>,
    },

    /// The store's background writer has stopped (its runtime shut down).
    #[error("the store is closed: its background writer is no longer running")]
    Closed,
}

impl Error {
    /// The position of the event this error is about, when it is about one
    /// stored event ([`Error::Undecodable`]).
    #[must_use]
    pub fn position(&self) -> Option<crate::event::SequencePosition> {
        match self {
            Error::Undecodable { position, .. } => Some(*position),
            _ => None,
        }
    }

    /// The conflict, when this error is a failed append condition.
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Error::Conflict(c) => Some(c),
            _ => None,
        }
    }

    /// True when an append's outcome is unknown and resending the same
    /// events (same ids) is the way to learn it.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// True when the same call may succeed if tried again later: the
    /// connection was lost or could not be opened, the server is starting,
    /// shutting down or out of connections, or a timeout expired. Not for a
    /// missing privilege, invalid input, a conflict or an unknown append
    /// outcome (see [`is_outcome_unknown`](Self::is_outcome_unknown)).
    /// Subscriptions retry these.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Error::NotWritten(e) => e.is_transient(),
            Error::Connect { .. } | Error::Timeout { .. } => true,
            Error::Pool(e) | Error::Database(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The driver's error behind this one, if any.
    #[must_use]
    pub fn driver_error(&self) -> Option<&DriverError> {
        match self {
            Error::NotWritten(e) => e.driver_error(),
            Error::Database(e) | Error::Pool(e) | Error::Connect { source: e, .. } => Some(e),
            Error::OutcomeUnknown { source, .. } | Error::Timeout { source, .. } => source.as_ref(),
            _ => None,
        }
    }

    /// The SQLSTATE of the server's report (five characters, such as
    /// `"42501"`), if the server raised this error.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.driver_error()?.code()
    }

    /// An error of an append as its caller must read it: one that says the
    /// append was not written when it was not (the database refused it, or
    /// there was no connection to send it on); the others already say what
    /// happened (a conflict, invalid input, a timeout, an unknown outcome).
    #[doc(hidden)]
    pub fn for_append(self) -> Self {
        match self {
            e @ (Error::Database(_) | Error::Pool(_) | Error::Connect { .. }) => {
                Error::NotWritten(Box::new(e))
            }
            other => other,
        }
    }

    /// Input rejected before it reached a store ([`Error::Invalid`]).
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// A value that could not be decoded ([`Error::Decode`]).
    pub fn decode(message: impl Into<String>) -> Self {
        Error::Decode {
            message: message.into(),
            source: None,
        }
    }

    /// A value that could not be decoded, with the decoder's error.
    pub fn decode_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Decode {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// An I/O failure: `what` failed because of `e` (the message says both).
    pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> Self {
        Error::Io {
            message: format!("{what}: {e}"),
            source: Some(Arc::new(e)),
        }
    }

    /// An output that could not be produced, without an I/O error behind it
    /// (a value that cannot be serialized).
    pub fn output(what: impl std::fmt::Display) -> Self {
        Error::Io {
            message: what.to_string(),
            source: None,
        }
    }
}

/// An error reported by a store's database driver or its connection pool,
/// kept opaque: its message, its SQLSTATE when the server raised it, whether
/// the same call may succeed later, and the driver's own error as its
/// [`source`](std::error::Error::source) (reach it with
/// [`downcast_ref`](Self::downcast_ref), or `dcbstore::PgErrorExt`). Made by
/// the store that met it, which knows its driver.
#[derive(Clone)]
pub struct DriverError(Arc<DriverErrorInner>);

// Behind one pointer: an `Error` stays small (it is the error of every
// result of the crate).
struct DriverErrorInner {
    message: String,
    code: Option<String>,
    transient: bool,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl DriverError {
    /// Keeps `source` with what the store read from it: `message` (the
    /// server's report, or the driver's text), the SQLSTATE `code` when the
    /// server raised it, and whether trying again may help.
    pub fn new(
        source: impl std::error::Error + Send + Sync + 'static,
        message: impl Into<String>,
        code: Option<String>,
        transient: bool,
    ) -> Self {
        DriverError(Arc::new(DriverErrorInner {
            message: message.into(),
            code,
            transient,
            source: Box::new(source),
        }))
    }

    /// The server's report, or the driver's description.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The SQLSTATE, when the server raised the error.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// Whether the same call may succeed if tried again later.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.0.transient
    }

    /// The driver's error, if it is a `T`.
    #[must_use]
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.source.downcast_ref::<T>()
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The driver's Debug: what a log of the error showed before.
        fmt::Debug::fmt(&self.0.source, f)
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0.source)
    }
}

/// Shorthand for `Result<T, dcbstore_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
