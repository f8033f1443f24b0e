//! One batch's SQL call: the arguments of `dcbstore.append_batch_typed`,
//! what its errors say about the outcome, and the decoding of its answer.

use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::guards::{to_i32, GuardArrays};
use super::prepare::PreparedAppend;
use super::{Appended, Conflict};
use crate::error::{Error, PgResultExt, Result};
use crate::event::SequencePosition;
use crate::pooled::{Expired, Pooled};

const APPEND_BATCH_SQL: &str = "SELECT request, outcome, position, conflict, error \
     FROM dcbstore.append_batch_typed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Wakes followers (`LISTEN dcbstore_events`). Sent right behind the batch,
/// in the same round trip but in a transaction of its own: it runs once the
/// batch has committed. A notifying transaction holds PostgreSQL's
/// cluster-wide notify lock through its commit; inside the batch's
/// transaction that would span the WAL flush and any wait for a synchronous
/// standby (one commit queue for every database of the cluster). This one
/// commits with `synchronous_commit = off`: nothing of it needs to survive a
/// crash, so it waits for no flush and no standby, and costs no fsync.
/// Running after the batch's commit, it also reads the WAL position, which
/// is then at or past the commit record: the appends' commit token, at no
/// extra round trip.
const WAKE_SQL: &str = "SELECT set_config('synchronous_commit', 'off', true), \
     pg_notify('dcbstore_events', ''), pg_current_wal_lsn()";

/// Runs one batch on a pooled connection (one round trip, one transaction),
/// then wakes followers.
pub(super) async fn execute_batch(
    pooled: &Pooled,
    appends: Arc<Vec<PreparedAppend>>,
) -> Result<Vec<Result<Appended>>> {
    pooled
        .call(move |c| {
            Box::pin(async move {
                let stmt = c.prepare_cached(APPEND_BATCH_SQL).await.db()?;
                let wake = c.prepare_cached(WAKE_SQL).await.db()?;
                // Polled in this order, the batch is sent first: pipelined,
                // the wake-up runs after the batch's commit.
                let (results, woken) = futures::join!(
                    run_append_batch(&**c, &stmt, &appends),
                    c.query_one(&wake, &[])
                );
                let token = match woken {
                    Ok(row) => row
                        .try_get::<_, postgres_types::PgLsn>(2)
                        .ok()
                        .map(|lsn| crate::CommitToken::from_lsn(u64::from(lsn))),
                    Err(e) => {
                        // Followers poll as well: a lost wake-up delays them,
                        // never loses an event. Without a token, a read that
                        // asks for consistency with it goes to the primary.
                        tracing::debug!(error = %e, "waking followers failed");
                        None
                    }
                };
                results.map(|rs| {
                    rs.into_iter()
                        .map(|r| {
                            r.map(|mut a| {
                                a.commit_token = token;
                                a
                            })
                        })
                        .collect()
                })
            })
        })
        .await?
        .unwrap_or_else(|Expired(t)| {
            Err(Error::OutcomeUnknown {
                reason: format!(
                    "no answer from the server within {t:?}; the statement was cancelled, but it may have committed first"
                ),
                source: None,
            })
        })
}

/// Runs one request as a batch of one on the caller's connection.
pub(super) async fn execute_one<C: GenericClient + Sync>(
    client: &C,
    prepared: PreparedAppend,
) -> Result<Appended> {
    let stmt = client.prepare(APPEND_BATCH_SQL).await.db()?;
    let mut results = run_append_batch(client, &stmt, std::slice::from_ref(&prepared)).await?;
    results
        .pop()
        .unwrap_or_else(|| Err(Error::decode("the database returned no outcome")))
}

async fn run_append_batch<C: GenericClient + Sync>(
    client: &C,
    stmt: &tokio_postgres::Statement,
    appends: &[PreparedAppend],
) -> Result<Vec<Result<Appended>>> {
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    let mut ids = Vec::with_capacity(total);
    let mut types = Vec::with_capacity(total);
    let mut data = Vec::with_capacity(total);
    let mut metadata = Vec::with_capacity(total);
    let mut tag_ends = Vec::with_capacity(total);
    let mut tags: Vec<&str> = Vec::new();
    let mut request_ends = Vec::with_capacity(appends.len());
    let mut guards = GuardArrays::default();
    for a in appends {
        for e in &a.events {
            ids.push(e.id);
            types.push(e.event_type.as_str());
            // As text: the database measures the sizes the client measured
            // (compact JSON) and checks them against its own limits.
            data.push(json_text(&e.data)?);
            metadata.push(json_text(&e.metadata)?);
            tags.extend(e.tags.iter().map(String::as_str));
            tag_ends.push(to_i32(tags.len())?);
        }
        request_ends.push(to_i32(ids.len())?);
        guards.push(a.condition.as_ref())?;
    }
    let rows = client
        .query(
            stmt,
            &[
                &ids,
                &types,
                &data,
                &metadata,
                &tag_ends,
                &tags,
                &request_ends,
                &guards.guard_ends,
                &guards.guard_afters,
                &guards.guard_item_ends,
                &guards.item_type_ends,
                &guards.item_types,
                &guards.item_tag_ends,
                &guards.item_tags,
            ],
        )
        .await
        .map_err(append_error)?;
    // The batch has committed: from here on, a row that cannot be read is
    // that request's problem only, never the others'.
    let mut results: Vec<Option<Result<Appended>>> = (0..appends.len()).map(|_| None).collect();
    for row in rows {
        let Ok(request) = row.try_get::<_, i32>(0) else {
            continue;
        };
        if let Some(slot) = usize::try_from(request - 1)
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Some(decode_outcome(&row));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(Error::decode(
                "the database returned no outcome for an append; its result is unknown: resend the same events (same ids) to find out",
            )))
        })
        .collect())
}

/// SQLSTATEs that mean the connection, or the server, went away: an append
/// in flight may have committed.
const CONNECTION_LOST: &[SqlState] = &[
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
];

/// An error of the append call, by what it says about the append's outcome.
fn append_error(e: tokio_postgres::Error) -> Error {
    let Some(code) = e.code().cloned() else {
        // No answer from the server at all: the commit may have happened.
        return Error::OutcomeUnknown {
            reason: format!("connection lost: {e}"),
            source: Some(crate::error::pg_driver_error(e)),
        };
    };
    if CONNECTION_LOST.contains(&code) {
        return Error::OutcomeUnknown {
            reason: format!("connection lost: {}", display_db_message(&e)),
            source: Some(crate::error::pg_driver_error(e)),
        };
    }
    if code == SqlState::LOCK_NOT_AVAILABLE {
        return Error::Timeout {
            operation: "waiting for the append lock".into(),
            after: None,
            hint: "lock_timeout was reached while another transaction held the append lock (a long transaction that called dcbstore.append?); nothing was written, retry".into(),
            source: Some(crate::error::pg_driver_error(e)),
        };
    }
    if code == SqlState::QUERY_CANCELED {
        return Error::Timeout {
            operation: "the append".into(),
            after: None,
            hint: "statement_timeout was reached (waiting for the append lock, or a very large append); nothing was written, retry".into(),
            source: Some(crate::error::pg_driver_error(e)),
        };
    }
    crate::error::pg_error(e)
}

fn display_db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string())
}

fn decode_outcome(row: &tokio_postgres::Row) -> Result<Appended> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::decode(format!(
            "unreadable append outcome ({e}); resend the same events (same ids) to learn it"
        ))
    };
    let outcome: &str = row.try_get(1).map_err(|e| unreadable(&e))?;
    match outcome {
        "appended" | "duplicate" => {
            let position: Option<i64> = row.try_get(2).map_err(|e| unreadable(&e))?;
            let position = position
                .filter(|p| *p > 0)
                .ok_or_else(|| unreadable(&"no position"))?;
            Ok(Appended {
                position: SequencePosition::from_sql(position),
                already_stored: outcome == "duplicate",
                commit_token: None,
            })
        }
        "conflict" => {
            let conflict: Value = row.try_get(3).map_err(|e| unreadable(&e))?;
            let conflict: Conflict =
                serde_json::from_value(conflict).map_err(|e| unreadable(&e))?;
            Err(Error::Conflict(Box::new(conflict)))
        }
        _ => {
            let message: String = row
                .try_get::<_, Option<String>>(4)
                .map_err(|e| unreadable(&e))?
                .unwrap_or_default();
            let id = message
                .split_whitespace()
                .find_map(|w| Uuid::parse_str(w).ok())
                .unwrap_or_default();
            Err(Error::IdConflict { id, message })
        }
    }
}

/// The compact JSON text of a value, as the limits measure it.
fn json_text(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))
}
