//! sqlx's errors as the store's: an opaque [`DriverError`] (message,
//! SQLSTATE, whether trying again may help) with sqlx's error as its source,
//! and [`SqlxErrorExt`] to get that error back.

use crate::error::{DriverError, Error};

/// sqlx's view of an [`Error`]: the driver's error behind it.
///
/// ```
/// use dcbstore::sqlx::SqlxErrorExt;
///
/// fn unique_violation(e: &dcbstore::Error) -> bool {
///     e.as_sqlx_error()
///         .and_then(|e| e.as_database_error())
///         .is_some_and(|db| db.is_unique_violation())
/// }
/// # assert!(!unique_violation(&dcbstore::Error::invalid("x")));
/// ```
pub trait SqlxErrorExt {
    /// sqlx's error behind this one, if sqlx raised it.
    fn as_sqlx_error(&self) -> Option<&sqlx::Error>;
}

impl SqlxErrorExt for DriverError {
    fn as_sqlx_error(&self) -> Option<&sqlx::Error> {
        self.downcast_ref::<sqlx::Error>()
    }
}

impl SqlxErrorExt for Error {
    fn as_sqlx_error(&self) -> Option<&sqlx::Error> {
        self.driver_error()?.as_sqlx_error()
    }
}

/// sqlx's error as a [`DriverError`], read as [`pg_driver_error`](crate::pg_driver_error)
/// reads tokio-postgres's: the server's message and SQLSTATE when the server
/// raised it; transient when the connection was lost or could not be used,
/// or the server is starting, stopping or out of connections.
pub fn sqlx_driver_error(e: sqlx::Error) -> DriverError {
    let (message, code) = match e.as_database_error() {
        Some(db) => (db.message().to_string(), db.code().map(|c| c.into_owned())),
        None => (e.to_string(), None),
    };
    let transient = match &code {
        Some(c) => {
            c.starts_with("08") || ["57P01", "57P02", "57P03", "53300"].contains(&c.as_str())
        }
        None => matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed
        ),
    };
    DriverError::new(e, message, code, transient)
}

/// [`Error::Database`] for an error of sqlx, or [`Error::Pool`] for its
/// pool's (for code that runs its own statements beside dcbstore's).
pub fn sqlx_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolTimedOut => Error::Pool(DriverError::new(
            sqlx::Error::PoolTimedOut,
            "no free connection within the pool's acquire timeout: every pooled connection is busy (raise max_connections or shorten transactions)",
            None,
            true,
        )),
        sqlx::Error::PoolClosed => Error::Pool(DriverError::new(
            sqlx::Error::PoolClosed,
            "the sqlx pool was closed",
            None,
            false,
        )),
        e => Error::Database(sqlx_driver_error(e)),
    }
}
