//! Whether a replica may serve reads: up, in recovery (still a standby),
//! and within the lag limits. Checked at most once per
//! [`ReplicaOptions::recheck`](super::ReplicaOptions::recheck).

use std::time::{Duration, Instant};

use postgres_types::PgLsn;

use super::ReplicaOptions;
use crate::error::{Error, Result};
use crate::pooled::Pooled;

/// What the last check found.
#[derive(Debug, Clone)]
pub(super) enum State {
    /// Not checked yet.
    Unknown,
    /// Serving: the WAL position it had replayed.
    Up { replay: u64 },
    /// Skipped, and why (logged once per change).
    Down(String),
}

/// A replica's health, with when it was checked.
#[derive(Debug)]
pub(super) struct Health {
    pub(super) state: State,
    pub(super) checked: Option<Instant>,
}

impl Health {
    pub(super) fn new() -> Self {
        Health {
            state: State::Unknown,
            checked: None,
        }
    }

    /// Whether the last check is older than `every`.
    pub(super) fn due(&self, every: Duration) -> bool {
        self.checked.is_none_or(|at| at.elapsed() >= every)
    }
}

/// How long a probe may take: a server that does not answer is down for
/// routing, whatever its connect timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One statement on one pooled connection, within [`PROBE_TIMEOUT`]: a
/// probe is not retried (the next check is).
async fn probe(pooled: &Pooled, sql: &'static str) -> Result<tokio_postgres::Row> {
    let run = async {
        let client = pooled.pool.get().await?;
        Ok::<_, Error>(client.query_one(sql, &[]).await?)
    };
    tokio::time::timeout(PROBE_TIMEOUT, run)
        .await
        .map_err(|_| Error::invalid(format!("no answer within {PROBE_TIMEOUT:?}")))?
}

/// The replica's replayed WAL position, or why it must be skipped.
pub(super) async fn check(
    replica: &Pooled,
    primary: &Pooled,
    options: &ReplicaOptions,
) -> std::result::Result<u64, String> {
    let probed = async {
        let row = probe(
            replica,
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(),
                    coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0)",
        )
        .await?;
        let in_recovery: bool = row.try_get(0)?;
        let replay: Option<PgLsn> = row.try_get(1)?;
        let age: f64 = row.try_get(2)?;
        Ok::<_, Error>((in_recovery, replay.map(u64::from), age))
    };
    let (in_recovery, replay, age) = probed.await.map_err(|e| format!("unreachable: {e}"))?;
    if !in_recovery {
        return Err("not in recovery: it was promoted, or it is not a standby".into());
    }
    let replay = replay.ok_or("in recovery but replaying nothing yet")?;
    let lag = match options.max_lag_bytes.is_some() || options.max_lag.is_some() {
        false => 0,
        true => {
            let current: PgLsn = probe(primary, "SELECT pg_current_wal_lsn()")
                .await
                .and_then(|row| Ok(row.try_get(0)?))
                .map_err(|e| format!("the primary's WAL position is unknown: {e}"))?;
            u64::from(current).saturating_sub(replay)
        }
    };
    ::metrics::gauge!(crate::metrics::REPLICA_LAG_BYTES).set(lag as f64);
    if let Some(max) = options.max_lag_bytes {
        if lag > max {
            return Err(format!(
                "{lag} bytes of WAL behind the primary (max_lag_bytes {max})"
            ));
        }
    }
    // The age of the last replayed commit is lag only while there is WAL to
    // replay: an idle primary commits nothing for the replica to catch up.
    if let Some(max) = options.max_lag {
        if lag > 0 && age > max.as_secs_f64() {
            return Err(format!(
                "its last replayed commit is {age:.1} s old with WAL still to replay (max_lag {max:?})"
            ));
        }
    }
    Ok(replay)
}

/// The replica's replayed WAL position now (for a consistency wait).
pub(super) async fn replayed(replica: &Pooled) -> Result<u64> {
    let row = probe(replica, "SELECT pg_last_wal_replay_lsn()").await?;
    Ok(row.try_get::<_, Option<PgLsn>>(0)?.map_or(0, u64::from))
}

/// The replica's head: every position up to it is on the replica.
pub(super) async fn head(replica: &Pooled) -> Result<u64> {
    let row = probe(replica, "SELECT coalesce(dcbstore.head(), 0)").await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}
