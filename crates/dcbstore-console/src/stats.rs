//! The log's statistics without scanning it: `dcbstore.refresh_stats`
//! (sql/functions/stats.sql) folds new events into `dcbstore.stats_*` in
//! bounded batches, from a background task of the console; the overview
//! reads those small tables. The same task samples the gauges `/metrics`
//! shows (head, lags, dead letters) from the database, so they describe the
//! store, whichever process wrote it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use dcbstore::store::Store;
use dcbstore::{PgResultExt, Result};

/// Events folded per call: a call stays well under a second on a busy log,
/// and a long backlog (a console started on a 10,000,000-event log) is
/// caught up in a loop of such calls.
const BATCH: i64 = 200_000;

/// Folds every event up to the head into the statistics, a batch at a
/// time. Returns the statistics cursor.
pub async fn refresh(store: &Store) -> Result<u64> {
    let client = store.pool().get().await.db()?;
    let mut cursor = 0;
    loop {
        let next: i64 = client
            .query_one("SELECT dcbstore.refresh_stats($1)", &[&BATCH])
            .await
            .db()?
            .try_get(0)
            .db()?;
        let next = u64::try_from(next).unwrap_or(0);
        if next == cursor {
            return Ok(next);
        }
        cursor = next;
    }
}

/// A consumer's (projection's, subscriber's, relay's) distance from the head.
pub(crate) struct Lag {
    pub(crate) name: String,
    /// `projection`, `subscriber` or `relay`.
    pub(crate) kind: String,
    /// Events after its checkpoint.
    pub(crate) events: u64,
    /// Age of the oldest event it has not applied (0 when caught up).
    pub(crate) seconds: f64,
}

/// Every consumer's lag: one primary-key probe per consumer for the oldest
/// event it has not applied, and a count of its events bounded by the head.
pub(crate) async fn lags<C: tokio_postgres::GenericClient>(client: &C) -> Result<Vec<Lag>> {
    let rows = client
        .query(
            "SELECT p.name, p.kind, greatest(coalesce(dcbstore.head(), 0) - p.checkpoint, 0),
                    coalesce(extract(epoch FROM now() - n.recorded_at)::float8, 0)
               FROM dcbstore.projections p
               LEFT JOIN LATERAL (SELECT e.recorded_at FROM dcbstore.events e
                                   WHERE e.position > p.checkpoint ORDER BY e.position LIMIT 1) n ON true
              ORDER BY p.name",
            &[],
        )
        .await.db()?;
    rows.iter()
        .map(|r| {
            Ok(Lag {
                name: r.try_get(0).db()?,
                kind: r.try_get(1).db()?,
                events: u64::try_from(r.try_get::<_, i64>(2).db()?).unwrap_or(0),
                seconds: r.try_get::<_, f64>(3).db()?.max(0.0),
            })
        })
        .collect()
}

/// What the overview shows.
pub(crate) struct Overview {
    pub(crate) cursor: u64,
    pub(crate) refreshed_at: Option<DateTime<Utc>>,
    pub(crate) types: Vec<(String, u64)>,
    pub(crate) tags: Vec<(String, u64)>,
    /// The last 60 complete minutes and the current one, oldest first.
    pub(crate) minutes: Vec<(DateTime<Utc>, u64)>,
}

impl Overview {
    /// Events of the last complete minute.
    pub(crate) fn last_minute(&self) -> u64 {
        self.minutes.iter().rev().nth(1).map_or(0, |m| m.1)
    }

    /// Events of the 60 complete minutes before the current one.
    pub(crate) fn last_hour(&self) -> u64 {
        self.minutes.iter().rev().skip(1).map(|m| m.1).sum()
    }
}

/// Reads the statistics: the cursor, every type, the `top` most used tags,
/// and the per-minute counts of the last hour. Index scans of small tables.
pub(crate) async fn overview<C: tokio_postgres::GenericClient>(
    client: &C,
    top: i64,
) -> Result<Overview> {
    let cursor = client
        .query_one(
            "SELECT \"position\", refreshed_at FROM dcbstore.stats_cursor",
            &[],
        )
        .await
        .db()?;
    let types = client
        .query(
            "SELECT type, events FROM dcbstore.stats_types ORDER BY events DESC, type LIMIT 200",
            &[],
        )
        .await
        .db()?;
    let tags = client
        .query(
            "SELECT tag, events FROM dcbstore.stats_tags ORDER BY events DESC, tag LIMIT $1",
            &[&top],
        )
        .await
        .db()?;
    // 61 buckets ending with the current minute, zeros included.
    let minutes = client
        .query(
            "SELECT b.minute, coalesce(m.events, 0)
               FROM generate_series(
                      date_bin('1 minute', now(), timestamptz '2000-01-01 00:00:00+00') - interval '60 minutes',
                      date_bin('1 minute', now(), timestamptz '2000-01-01 00:00:00+00'),
                      interval '1 minute') AS b(minute)
               LEFT JOIN dcbstore.stats_minutes m ON m.minute = b.minute
              ORDER BY b.minute",
            &[],
        )
        .await.db()?;
    let pairs = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<(String, u64)>> {
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).db()?,
                    u64::try_from(r.try_get::<_, i64>(1).db()?).unwrap_or(0),
                ))
            })
            .collect()
    };
    Ok(Overview {
        cursor: u64::try_from(cursor.try_get::<_, i64>(0).db()?).unwrap_or(0),
        refreshed_at: cursor.try_get(1).db()?,
        types: pairs(types)?,
        tags: pairs(tags)?,
        minutes: minutes
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).db()?,
                    u64::try_from(r.try_get::<_, i64>(1).db()?).unwrap_or(0),
                ))
            })
            .collect::<Result<_>>()?,
    })
}

/// Waits between refreshes of a caller that wants the statistics current
/// (the tests and the bench): refreshes until the cursor reaches `head`.
pub async fn refresh_until(store: &Store, head: u64, timeout: Duration) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let cursor = refresh(store).await?;
        if cursor >= head || tokio::time::Instant::now() >= deadline {
            return Ok(cursor);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
