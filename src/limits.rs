//! [`Limits`] (re-exported from `dcbstore-core`) and the limits the
//! database enforces.

pub use dcbstore_core::limits::*;

use crate::error::{Error, PgResultExt, Result};

/// The limits the database enforces at every entry point
/// (`dcbstore.limits`, which the schema's owner may change with
/// `UPDATE dcbstore.limits SET ...`).
pub async fn of_database<C: tokio_postgres::GenericClient>(client: &C) -> Result<Limits> {
    let row = client
        .query_opt(
            "SELECT max_events_per_append, max_event_bytes, max_append_bytes, max_tags_per_event,
                    max_name_bytes, max_json_depth, max_query_items, max_item_terms, max_guards
               FROM dcbstore.limits",
            &[],
        )
        .await
        .db()?
        .ok_or_else(|| {
            Error::Config("dcbstore.limits has no row: restore the defaults as the schema's owner with INSERT INTO dcbstore.limits DEFAULT VALUES".into())
        })?;
    let mut limits = Limits::DEFAULT;
    for (i, limit) in Limit::ALL.into_iter().enumerate() {
        let v: i32 = row.try_get(i).db()?;
        limits.set(limit, usize::try_from(v).unwrap_or(0));
    }
    Ok(limits)
}
