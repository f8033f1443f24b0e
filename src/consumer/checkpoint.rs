//! A consumer's row in `dcbstore.projections`: its checkpoint, state and
//! last error. A turn that does work moves the checkpoint in the
//! transaction of that work: [`lock`] the row (a second runner waits, then
//! sees the first's checkpoint), check the [`Lease::fence`](super::Lease::fence),
//! do the work, [`advance`], commit.

use deadpool_postgres::Transaction;

use crate::error::PgResultExt;
use crate::store::Store;

/// Creates the projection's row (checkpoint 0) if it has none.
pub(crate) async fn ensure_row(store: &Store, name: &str) -> crate::error::Result<()> {
    let client = store.pool().get().await.db()?;
    client
        .execute(
            "INSERT INTO dcbstore.projections (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await
        .db()?;
    Ok(())
}

/// Creates a delivery consumer's row, or marks an existing one with its
/// `kind` (`subscriber` or `relay`), so the console and its gauges tell it
/// from a projection.
pub(crate) async fn ensure_row_of_kind(
    store: &Store,
    name: &str,
    kind: &str,
) -> crate::error::Result<()> {
    let client = store.pool().get().await.db()?;
    client
        .execute(
            "INSERT INTO dcbstore.projections (name, kind) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind \
             WHERE dcbstore.projections.kind IS DISTINCT FROM EXCLUDED.kind",
            &[&name, &kind],
        )
        .await
        .db()?;
    Ok(())
}

pub(crate) async fn set_state(
    store: &Store,
    name: &str,
    state: &str,
    owner: Option<&str>,
) -> crate::error::Result<()> {
    let client = store.pool().get().await.db()?;
    client
        .execute(
            "UPDATE dcbstore.projections SET state = $2, owner = coalesce($3, owner), updated_at = now() \
             WHERE name = $1",
            &[&name, &state, &owner],
        )
        .await.db()?;
    Ok(())
}

/// Records a handler failure at `position` (state `failed`, visible in the
/// status and the console); returns the consecutive failures.
pub async fn record_failure(
    store: &Store,
    name: &str,
    position: u64,
    error: &str,
) -> crate::error::Result<i32> {
    tracing::error!(
        consumer = name,
        position,
        error,
        "handler failed; retrying with backoff"
    );
    let client = store.pool().get().await.db()?;
    let row = client
        .query_one(
            "UPDATE dcbstore.projections SET state = 'failed', last_error = $2, error_position = $3, \
             failures = failures + 1, updated_at = now() WHERE name = $1 RETURNING failures",
            &[&name, &error, &to_i64(position)],
        )
        .await.db()?;
    row.try_get(0).db()
}

/// Records an error that is not a handler's (database unreachable, setup
/// failed): visible in status, state unchanged.
pub async fn record_error(store: &Store, name: &str, error: &str) -> crate::error::Result<()> {
    tracing::warn!(consumer = name, error, "consumer error");
    let client = store.pool().get().await.db()?;
    client
        .execute(
            "UPDATE dcbstore.projections SET last_error = $2, updated_at = now() WHERE name = $1",
            &[&name, &error],
        )
        .await
        .db()?;
    Ok(())
}

/// Locks the projection's row for the rest of `tx` and returns its
/// checkpoint: a second runner waits here, then sees the first's checkpoint.
pub async fn lock(tx: &Transaction<'_>, name: &str) -> crate::error::Result<u64> {
    let row = tx
        .query_one(
            "SELECT checkpoint FROM dcbstore.projections WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .db()?;
    Ok(u64::try_from(row.try_get::<_, i64>(0).db()?).unwrap_or(0))
}

/// Whether `checkpoint` is a position of a server history whose tail the log
/// lost: above where an epoch resumed, and not above its base (see
/// `sql/functions/epochs.sql`).
pub(crate) async fn lost(tx: &Transaction<'_>, checkpoint: u64) -> crate::error::Result<bool> {
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM dcbstore.epochs e WHERE e.resumed_after < $1 AND $1 <= e.base)",
            &[&to_i64(checkpoint)],
        )
        .await.db()?;
    row.try_get(0).db()
}

/// The head, as `tx` sees it now.
pub async fn head(tx: &Transaction<'_>) -> crate::error::Result<u64> {
    let row = tx
        .query_one("SELECT coalesce(dcbstore.head(), 0)", &[])
        .await
        .db()?;
    Ok(u64::try_from(row.try_get::<_, i64>(0).db()?).unwrap_or(0))
}

/// Moves the checkpoint to `reached` in `tx` (with the batch's read-model
/// writes) and clears the last error; a rebuild stays `rebuilding` until it
/// reaches `head`.
pub async fn advance(
    tx: &Transaction<'_>,
    name: &str,
    reached: u64,
    head: u64,
) -> crate::error::Result<()> {
    tx.execute(
        "UPDATE dcbstore.projections SET checkpoint = $2::bigint, \
         state = CASE WHEN state = 'rebuilding' AND $2::bigint < $3::bigint THEN state ELSE 'running' END, \
         last_error = NULL, error_position = NULL, failures = 0, updated_at = now() \
         WHERE name = $1",
        &[&name, &to_i64(reached), &to_i64(head)],
    )
    .await.db()?;
    Ok(())
}

/// Sets the checkpoint back to 0 in `tx` (with the read model's reset), state
/// `rebuilding`.
pub(crate) async fn clear(tx: &Transaction<'_>, name: &str) -> crate::error::Result<()> {
    tx.execute(
        "UPDATE dcbstore.projections SET checkpoint = 0, state = 'rebuilding', last_error = NULL, \
         error_position = NULL, failures = 0, updated_at = now() WHERE name = $1",
        &[&name],
    )
    .await
    .db()?;
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
