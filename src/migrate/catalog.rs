//! What the database's catalog says, for the runner and the status.

use tokio_postgres::GenericClient;

use crate::error::{PgResultExt, Result};

/// Whether the table `relation` (`schema.name`) exists.
pub(super) async fn exists<C: GenericClient>(client: &C, relation: &str) -> Result<bool> {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await
        .db()?
        .try_get(0)
        .db()
}
