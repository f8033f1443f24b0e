//! What an append call's answer says, for any driver: each request's row
//! (`request, outcome, position, conflict, error`) decoded into its result,
//! and the call's error classified by what it says about the outcome.

use serde_json::Value;
use uuid::Uuid;

use super::{Appended, Conflict};
use crate::error::{DriverError, Error, Result};
use crate::event::SequencePosition;

/// One row of `dcbstore.append_batch_typed`'s answer, as a driver reads it;
/// a column that cannot be read is the driver's message.
pub(crate) trait OutcomeRow {
    /// The request's number, from one.
    fn request(&self) -> Option<i32>;
    /// `appended`, `duplicate`, `conflict` or `id_conflict`.
    fn outcome(&self) -> std::result::Result<&str, String>;
    /// The position of an appended (or already stored) request's last event.
    fn position(&self) -> std::result::Result<Option<i64>, String>;
    /// The conflict's report, as JSON.
    fn conflict(&self) -> std::result::Result<Value, String>;
    /// The message of an id conflict.
    fn error(&self) -> std::result::Result<Option<String>, String>;
}

/// `struct $answer<'r>(&'r $row)`, a row of the answer as a driver reads
/// it, and its [`OutcomeRow`], for a driver whose rows read a column with
/// `try_get(index)` (tokio-postgres's and sqlx's do).
macro_rules! outcome_row {
    ($answer:ident, $row:ty) => {
        /// A row of the answer, as the driver reads it.
        struct $answer<'r>(&'r $row);

        impl $crate::append::OutcomeRow for $answer<'_> {
            fn request(&self) -> Option<i32> {
                self.0.try_get(0).ok()
            }
            fn outcome(&self) -> std::result::Result<&str, String> {
                self.0.try_get(1).map_err(|e| e.to_string())
            }
            fn position(&self) -> std::result::Result<Option<i64>, String> {
                self.0.try_get(2).map_err(|e| e.to_string())
            }
            fn conflict(&self) -> std::result::Result<serde_json::Value, String> {
                self.0.try_get(3).map_err(|e| e.to_string())
            }
            fn error(&self) -> std::result::Result<Option<String>, String> {
                self.0.try_get(4).map_err(|e| e.to_string())
            }
        }
    };
}
pub(crate) use outcome_row;

/// The results of `requests` requests from the rows the database answered.
/// The batch has committed: a row that cannot be read is that request's
/// problem only, never the others'.
pub(crate) fn outcomes<R: OutcomeRow>(
    requests: usize,
    rows: impl IntoIterator<Item = R>,
) -> Vec<Result<Appended>> {
    let mut results: Vec<Option<Result<Appended>>> = (0..requests).map(|_| None).collect();
    for row in rows {
        let Some(request) = row.request() else {
            continue;
        };
        if let Some(slot) = usize::try_from(request - 1)
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Some(decode(&row));
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(Error::decode(
                "the database returned no outcome for an append; its result is unknown: resend the same events (same ids) to find out",
            )))
        })
        .collect()
}

fn decode(row: &impl OutcomeRow) -> Result<Appended> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::decode(format!(
            "unreadable append outcome ({e}); resend the same events (same ids) to learn it"
        ))
    };
    match row.outcome().map_err(|e| unreadable(&e))? {
        outcome @ ("appended" | "duplicate") => {
            let position = row
                .position()
                .map_err(|e| unreadable(&e))?
                .filter(|p| *p > 0)
                .ok_or_else(|| unreadable(&"no position"))?;
            Ok(Appended {
                position: SequencePosition::from_sql(position),
                already_stored: outcome == "duplicate",
                commit_token: None,
            })
        }
        "conflict" => {
            let conflict = row.conflict().map_err(|e| unreadable(&e))?;
            let conflict: Conflict =
                serde_json::from_value(conflict).map_err(|e| unreadable(&e))?;
            Err(Error::Conflict(Box::new(conflict)))
        }
        _ => {
            let message = row.error().map_err(|e| unreadable(&e))?.unwrap_or_default();
            let id = message
                .split_whitespace()
                .find_map(|w| Uuid::parse_str(w).ok())
                .unwrap_or_default();
            Err(Error::IdConflict { id, message })
        }
    }
}

/// SQLSTATEs that mean the connection, or the server, went away: an append
/// in flight may have committed. (Connection exceptions are class 08.)
const CONNECTION_LOST: &[&str] = &[
    "08000", // connection_exception
    "08001", // sqlclient_unable_to_establish_sqlconnection
    "08003", // connection_does_not_exist
    "08004", // sqlserver_rejected_establishment_of_sqlconnection
    "08006", // connection_failure
    "08007", // transaction_resolution_unknown
    "08P01", // protocol_violation
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now
];

/// SQLSTATE lock_not_available: `lock_timeout` was reached.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// SQLSTATE query_canceled: `statement_timeout` was reached, or a cancel.
const QUERY_CANCELED: &str = "57014";

/// An error of an append call (or of the commit of the transaction it ran
/// in), by what it says about the append's outcome. Without a report from
/// the server (no SQLSTATE), the commit may have happened.
pub(crate) fn append_error(e: DriverError) -> Error {
    let code = e.code().map(str::to_owned);
    match code.as_deref() {
        c if c.is_none_or(|c| CONNECTION_LOST.contains(&c)) => Error::OutcomeUnknown {
            reason: format!("connection lost: {}", e.message()),
            source: Some(e),
        },
        Some(LOCK_NOT_AVAILABLE) => Error::Timeout {
            operation: "waiting for the append lock".into(),
            after: None,
            hint: "lock_timeout was reached while another transaction held the append lock (a long transaction that called dcbstore.append?); nothing was written, retry".into(),
            source: Some(e),
        },
        Some(QUERY_CANCELED) => Error::Timeout {
            operation: "the append".into(),
            after: None,
            hint: "statement_timeout was reached (waiting for the append lock, or a very large append); nothing was written, retry".into(),
            source: Some(e),
        },
        _ => Error::Database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::error::SqlState;

    #[test]
    fn the_connection_lost_codes_are_postgres_own() {
        let ours: Vec<&str> = [
            SqlState::CONNECTION_EXCEPTION,
            SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            SqlState::CONNECTION_DOES_NOT_EXIST,
            SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::TRANSACTION_RESOLUTION_UNKNOWN,
            SqlState::PROTOCOL_VIOLATION,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .iter()
        .map(SqlState::code)
        .collect();
        assert_eq!(ours, CONNECTION_LOST);
        assert_eq!(SqlState::LOCK_NOT_AVAILABLE.code(), LOCK_NOT_AVAILABLE);
        assert_eq!(SqlState::QUERY_CANCELED.code(), QUERY_CANCELED);
    }
}
