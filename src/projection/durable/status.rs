//! Where each projection stands: its row of `dcbstore.projections` and the
//! log's head.

use serde::Serialize;

use crate::error::PgResultExt;
use crate::event::SequencePosition;
use crate::store::{EventStore, Store};

/// A projection's row of `dcbstore.projections`, with the log's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Last position applied (0: none).
    pub checkpoint: u64,
    /// The log's head.
    pub head: u64,
    /// `head - checkpoint`: an upper bound of the events still to apply.
    pub lag: u64,
    /// `idle`, `running`, `failed` or `rebuilding`.
    pub state: String,
    /// The last handler error, while it is not resolved.
    pub last_error: Option<String>,
    /// Position of the event whose handler failed.
    pub error_position: Option<u64>,
    /// Consecutive failures.
    pub failures: i32,
    /// The runner that last held the lease.
    pub owner: Option<String>,
    /// When the row last changed (a checkpoint, a state, an error).
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Every projection known to the database, by name.
pub async fn status(store: &Store) -> crate::error::Result<Vec<ProjectionStatus>> {
    let head = store.head().await?.map_or(0, SequencePosition::get);
    // Through the store's reads: its timeout, and another connection when a
    // pooled one turns out gone.
    let rows = store
        .pooled()
        .read("reading the projections' status", |c| {
            Box::pin(async move {
                c.query(
                    "SELECT name, checkpoint, state, last_error, error_position, failures, owner, updated_at \
                     FROM dcbstore.projections ORDER BY name",
                    &[],
                )
                .await
                .db()
            })
        })
        .await?;
    rows.iter()
        .map(|r| {
            let checkpoint = u64::try_from(r.try_get::<_, i64>(1).db()?).unwrap_or(0);
            Ok(ProjectionStatus {
                name: r.try_get(0).db()?,
                checkpoint,
                head,
                lag: head.saturating_sub(checkpoint),
                state: r.try_get(2).db()?,
                last_error: r.try_get(3).db()?,
                error_position: r
                    .try_get::<_, Option<i64>>(4)
                    .db()?
                    .and_then(|p| u64::try_from(p).ok()),
                failures: r.try_get(5).db()?,
                owner: r.try_get(6).db()?,
                updated_at: r.try_get(7).db()?,
            })
        })
        .collect()
}
