//! Appends on an sqlx connection: the batch statement of the store's writer
//! (`dcbstore.append_batch_typed`), with one request, bound by sqlx.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::error::{sqlx_driver_error, sqlx_error};
use crate::append::{AppendCondition, Appended};
use crate::append::{AppendMeter, BatchArgs, PreparedAppend, APPEND_BATCH_SQL, CHANNEL_SQL};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::Limits;

/// Appends within the caller's sqlx transaction (or on its connection):
/// [`append_in`](crate::append::append_in) for sqlx, with the same
/// semantics, limits, errors and conflict reporting.
///
/// The application's own writes in the same transaction commit with the
/// events, or neither does. A failed condition is
/// [`Error::Conflict`] and leaves the transaction usable: nothing of the
/// application's is rolled back unless it chooses to. Any other error of
/// the database aborts the transaction, as an error of the application's
/// own statements would.
///
/// The append lock is held until the transaction ends, so every other
/// appender waits for it: keep such transactions short. The transaction
/// must be READ COMMITTED (the default). The events are checked against the
/// default [`Limits`] ([`append_in_with`] for others). Followers see the
/// events at their next poll unless woken: call [`wake`] in the transaction
/// (sent at commit) or after it.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use dcbstore::{AppendCondition, Event, Query, QueryItem};
/// use serde_json::json;
///
/// let mut tx = pool.begin().await?;
/// let query = Query::item(QueryItem::tags(["course:c1"]));
/// let boundary = dcbstore::sqlx::read_boundary_in(&mut tx, &query, Default::default()).await?;
/// // ... decide from boundary.events ...
/// let condition = AppendCondition::new(query, boundary.after);
/// let event = Event::new("CourseDefined", json!({"capacity": 30})).with_tags(["course:c1"]);
/// dcbstore::sqlx::append_in(&mut tx, vec![event], Some(&condition)).await?;
/// sqlx::query("INSERT INTO courses (id, capacity) VALUES ('c1', 30)")
///     .execute(&mut *tx)
///     .await?;
/// dcbstore::sqlx::wake(&mut tx).await?; // followers are woken at COMMIT
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn append_in(
    conn: &mut PgConnection,
    events: Vec<Event>,
    condition: Option<&AppendCondition>,
) -> Result<Appended> {
    append_in_with(conn, events, condition, &Limits::DEFAULT).await
}

/// [`append_in`] with the events checked against `limits`.
pub async fn append_in_with(
    conn: &mut PgConnection,
    events: Vec<Event>,
    condition: Option<&AppendCondition>,
    limits: &Limits,
) -> Result<Appended> {
    let meter = AppendMeter::start(events.len());
    let result = match PreparedAppend::new(events, condition, limits) {
        Ok(prepared) => execute(conn, prepared).await,
        Err(e) => Err(e),
    };
    // No head gauge here: the caller's transaction has not committed yet.
    meter.finish(&result);
    result
}

async fn execute(conn: &mut PgConnection, prepared: PreparedAppend) -> Result<Appended> {
    let prepared = [prepared];
    let a = BatchArgs::of(&prepared)?;
    let g = &a.guards;
    let rows = sqlx::query(APPEND_BATCH_SQL)
        .bind(&a.ids)
        .bind(&a.types)
        .bind(&a.data)
        .bind(&a.metadata)
        .bind(&a.tag_ends)
        .bind(&a.tags)
        .bind(&a.request_ends)
        .bind(&g.guard_ends)
        .bind(&g.guard_afters)
        .bind(&g.guard_item_ends)
        .bind(&g.item_type_ends)
        .bind(&g.item_types)
        .bind(&g.item_tag_ends)
        .bind(&g.item_tags)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| crate::append::append_error(sqlx_driver_error(e)))?;
    crate::append::outcomes(1, rows.iter().map(Answer))
        .pop()
        .unwrap_or_else(|| Err(Error::decode("the database returned no outcome")))
}

/// Wakes the store's followers (subscriptions, durable projections,
/// delivery consumers) for events appended with [`append_in`]:
/// [`append::wake`](crate::append::wake) for sqlx. Inside the transaction,
/// the notification is sent when, and only if, it commits; after the
/// commit, on any connection, it is sent at once.
pub async fn wake(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(CHANNEL_SQL)
        .execute(conn)
        .await
        .map_err(sqlx_error)?;
    Ok(())
}

crate::append::outcome_row!(Answer, PgRow);
