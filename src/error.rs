//! The error type of every dcbstore operation ([`Error`], from
//! `dcbstore-core`), and tokio-postgres's view of it ([`PgErrorExt`]).
//!
//! `dcbstore-core` knows no driver: an error that tokio-postgres or the
//! connection pool reported is kept there as an opaque [`DriverError`] (its
//! message, its SQLSTATE, whether trying again may help, and the driver's
//! error as its source). [`PgErrorExt`] gives the driver's error back:
//!
//! ```no_run
//! use dcbstore::{Error, PgErrorExt};
//! use tokio_postgres::error::SqlState;
//!
//! fn refused_for_privileges(e: &Error) -> bool {
//!     e.sql_state() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
//! }
//! ```

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::{DbError, SqlState};

pub use dcbstore_core::error::{DriverError, Error, HandlerError, Result, Source};

/// tokio-postgres's view of an [`Error`]: the driver's error behind it,
/// PostgreSQL's report and its SQLSTATE.
pub trait PgErrorExt {
    /// The driver's error behind this one, if any.
    fn as_driver_error(&self) -> Option<&tokio_postgres::Error>;

    /// PostgreSQL's report, when the server raised this error.
    fn as_db_error(&self) -> Option<&DbError> {
        self.as_driver_error()?.as_db_error()
    }

    /// The SQLSTATE of the server's report, if the server raised this error
    /// (as a constant to compare with `SqlState::...`).
    fn sql_state(&self) -> Option<&SqlState> {
        self.as_driver_error()?.code()
    }
}

impl PgErrorExt for DriverError {
    fn as_driver_error(&self) -> Option<&tokio_postgres::Error> {
        self.downcast_ref::<tokio_postgres::Error>()
    }
}

impl PgErrorExt for Error {
    fn as_driver_error(&self) -> Option<&tokio_postgres::Error> {
        self.driver_error()?.as_driver_error()
    }
}

/// tokio-postgres's error as a [`DriverError`]: opaque, with what callers
/// read from it (the server's message, the SQLSTATE, whether trying again
/// may help).
pub fn pg_driver_error(e: tokio_postgres::Error) -> DriverError {
    let message = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    // The connection was lost or could not be used (no report from the
    // server), or the server is starting, stopping or out of connections.
    let transient = match e.code() {
        None => e.as_db_error().is_none(),
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    };
    let code = e.code().map(|c| c.code().to_string());
    DriverError::new(e, message, code, transient)
}

/// [`Error::Database`] for an error of tokio-postgres (for code that runs
/// its own statements beside dcbstore's, as `append_in`'s callers do).
pub fn pg_error(e: tokio_postgres::Error) -> Error {
    Error::Database(pg_driver_error(e))
}

/// The error of the pool: the driver's when it has one, else
/// [`Error::Pool`] (transient when it was a timeout).
pub fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => pg_error(e),
        other => {
            let message = match &other {
                PoolError::Timeout(TimeoutType::Wait) => "no free connection within the pool's wait timeout: every pooled connection is busy (raise the pool size or shorten transactions)".to_string(),
                PoolError::Timeout(_) => "opening or checking a connection timed out (connect_timeout): the server does not answer; check that it is up and reachable".to_string(),
                other => other.to_string(),
            };
            let transient = matches!(other, PoolError::Timeout(_));
            Error::Pool(DriverError::new(other, message, None, transient))
        }
    }
}

/// `?` for tokio-postgres's and the pool's results: `.db()?` makes their
/// errors [`Error`]s (`dcbstore-core`'s type knows no driver, so it cannot
/// convert one by itself).
///
/// ```no_run
/// use dcbstore::PgResultExt;
///
/// async fn count(client: &tokio_postgres::Client) -> dcbstore::Result<i64> {
///     let row = client.query_one("SELECT count(*) FROM orders", &[]).await.db()?;
///     row.try_get(0).db()
/// }
/// ```
pub trait PgResultExt<T> {
    /// The result, its error made an [`Error`].
    fn db(self) -> Result<T>;
}

impl<T> PgResultExt<T> for std::result::Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T> {
        self.map_err(pg_error)
    }
}

impl<T> PgResultExt<T> for std::result::Result<T, PoolError> {
    fn db(self) -> Result<T> {
        self.map_err(pool_error)
    }
}
