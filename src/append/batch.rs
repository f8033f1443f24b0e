//! One batch's SQL call on tokio-postgres: `dcbstore.append_batch_typed`
//! with the batch's arguments (`args`), its answer decoded (`outcome`).

use std::sync::Arc;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::GenericClient;

use super::args::{BatchArgs, APPEND_BATCH_SQL};
use super::outcome::{append_error, outcomes};
use super::prepare::PreparedAppend;
use super::Appended;
use crate::error::{pg_driver_error, Error, PgResultExt, Result};
use crate::pooled::{Expired, Pooled};

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

/// Runs one request as a batch of one on the caller's connection, in one
/// round trip: the caller's client has no statement cache, so the
/// statement goes with its parameter types (an unnamed statement, parsed
/// with the call; the function's own plans are cached by the session).
pub(super) async fn execute_one<C: GenericClient + Sync>(
    client: &C,
    prepared: PreparedAppend,
) -> Result<Appended> {
    let appends = std::slice::from_ref(&prepared);
    let a = BatchArgs::of(appends)?;
    let params = params(&a);
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params.iter().copied().zip(PARAM_TYPES).collect();
    let rows = client
        .query_typed(APPEND_BATCH_SQL, &typed)
        .await
        .map_err(|e| append_error(pg_driver_error(e)))?;
    outcomes(1, rows.iter().map(Answer))
        .pop()
        .unwrap_or_else(|| Err(Error::decode("the database returned no outcome")))
}

async fn run_append_batch<C: GenericClient + Sync>(
    client: &C,
    stmt: &tokio_postgres::Statement,
    appends: &[PreparedAppend],
) -> Result<Vec<Result<Appended>>> {
    let a = BatchArgs::of(appends)?;
    let rows = client
        .query(stmt, &params(&a))
        .await
        .map_err(|e| append_error(pg_driver_error(e)))?;
    Ok(outcomes(appends.len(), rows.iter().map(Answer)))
}

/// The types of `dcbstore.append_batch_typed`'s parameters, in order.
const PARAM_TYPES: [Type; 14] = [
    Type::UUID_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
];

/// The batch's arguments as the statement's parameters, in order.
fn params<'a>(a: &'a BatchArgs<'_>) -> [&'a (dyn ToSql + Sync); 14] {
    let g = &a.guards;
    [
        &a.ids,
        &a.types,
        &a.data,
        &a.metadata,
        &a.tag_ends,
        &a.tags,
        &a.request_ends,
        &g.guard_ends,
        &g.guard_afters,
        &g.guard_item_ends,
        &g.item_type_ends,
        &g.item_types,
        &g.item_tag_ends,
        &g.item_tags,
    ]
}

crate::append::outcome_row!(Answer, tokio_postgres::Row);
