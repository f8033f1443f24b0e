//! Whether a replica may serve reads: up, in recovery (still a standby),
//! and within the lag limits. Checked at most once per
//! [`ReplicaOptions::recheck`](super::ReplicaOptions::recheck).

use std::time::{Duration, Instant};

use postgres_types::PgLsn;

use super::ReplicaOptions;
use crate::error::{Error, PgResultExt, Result};
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
async fn probe(
    pooled: &Pooled,
    sql: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<tokio_postgres::Row> {
    let run = async {
        let client = pooled.pool.get().await.db()?;
        client.query_one(sql, params).await.db()
    };
    tokio::time::timeout(PROBE_TIMEOUT, run)
        .await
        .map_err(|_| Error::invalid(format!("no answer within {PROBE_TIMEOUT:?}")))?
}

/// What a server says of itself: its cluster, its store, how far its log
/// goes and on which history, and its WAL position (replayed on a replica,
/// written on the primary).
struct Identity {
    system_identifier: i64,
    store_id: uuid::Uuid,
    head: i64,
    /// The latest epoch of its log: (epoch, timeline, system identifier, base).
    epoch: Option<(i32, i32, i64, i64)>,
    wal: u64,
}

/// The replica's identity and state (in recovery, the age of its last
/// replayed commit), in one statement.
const REPLICA_SQL: &str = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(),
        coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0),
        (pg_control_system()).system_identifier, (SELECT s.store_id FROM dcbstore.store s LIMIT 1),
        coalesce(dcbstore.head(), 0),
        l.epoch, l.timeline, l.system_identifier, l.base
   FROM (SELECT 1) AS one
   LEFT JOIN LATERAL (SELECT * FROM dcbstore.epochs ORDER BY epoch DESC LIMIT 1) AS l ON true";

/// The primary's identity, and the epoch of its log that follows the
/// replica's latest ($1): where the replica's history and the primary's
/// part, if they do.
const PRIMARY_SQL: &str = "SELECT pg_current_wal_lsn(), (pg_control_system()).system_identifier,
        (SELECT s.store_id FROM dcbstore.store s LIMIT 1),
        coalesce(dcbstore.head(), 0),
        mine.timeline, mine.system_identifier, mine.base, next.resumed_after
   FROM (SELECT 1) AS one
   LEFT JOIN dcbstore.epochs mine ON mine.epoch = $1
   LEFT JOIN dcbstore.epochs next ON next.epoch = $1 + 1";

/// The replica's replayed WAL position, or why it must be skipped.
///
/// A replica is read only when it holds a prefix of the primary's log: the
/// same cluster (system identifier) and store (store id), a latest epoch
/// that is the primary's, with no position above where the primary's next
/// epoch resumed (a tail the primary lost after a failover), a head not
/// above the primary's, and a replayed WAL position not above the primary's
/// (a standby that still holds a lost tail, or one of another cluster, is
/// ahead of it).
pub(super) async fn check(
    replica: &Pooled,
    primary: &Pooled,
    options: &ReplicaOptions,
) -> std::result::Result<u64, String> {
    let probed = async {
        let row = probe(replica, REPLICA_SQL, &[]).await?;
        let in_recovery: bool = row.try_get(0).db()?;
        let replay: Option<PgLsn> = row.try_get(1).db()?;
        let age: f64 = row.try_get(2).db()?;
        let epoch: Option<i32> = row.try_get(6).db()?;
        let identity = Identity {
            system_identifier: row.try_get(3).db()?,
            store_id: row.try_get(4).db()?,
            head: row.try_get(5).db()?,
            epoch: match epoch {
                Some(e) => Some((
                    e,
                    row.try_get(7).db()?,
                    row.try_get(8).db()?,
                    row.try_get(9).db()?,
                )),
                None => None,
            },
            wal: replay.map_or(0, u64::from),
        };
        Ok::<_, Error>((in_recovery, replay.is_some(), age, identity))
    };
    let (in_recovery, replaying, age, replica_id) =
        probed.await.map_err(|e| format!("unreachable: {e}"))?;
    if !in_recovery {
        return Err("not in recovery: it was promoted, or it is not a standby".into());
    }
    if !replaying {
        return Err("in recovery but replaying nothing yet".into());
    }
    let epoch = replica_id.epoch.map_or(0, |(e, ..)| e);
    let primary_id = async {
        let row = probe(primary, PRIMARY_SQL, &[&epoch]).await?;
        let current: PgLsn = row.try_get(0).db()?;
        let mine: Option<i32> = row.try_get(4).db()?;
        let epoch_row = match mine {
            Some(timeline) => Some((epoch, timeline, row.try_get(5).db()?, row.try_get(6).db()?)),
            None => None,
        };
        let resumed: Option<i64> = row.try_get(7).db()?;
        Ok::<_, Error>((
            Identity {
                system_identifier: row.try_get(1).db()?,
                store_id: row.try_get(2).db()?,
                head: row.try_get(3).db()?,
                epoch: epoch_row,
                wal: u64::from(current),
            },
            resumed,
        ))
    };
    let (primary_id, resumed) = primary_id
        .await
        .map_err(|e| format!("the primary's identity is unknown: {e}"))?;
    same_history(&replica_id, &primary_id, resumed)?;
    let lag = primary_id.wal - replica_id.wal;
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
    Ok(replica_id.wal)
}

/// Why the replica's log is not a prefix of the primary's, if it is not.
fn same_history(
    replica: &Identity,
    primary: &Identity,
    resumed: Option<i64>,
) -> std::result::Result<(), String> {
    if replica.system_identifier != primary.system_identifier {
        return Err(format!(
            "a replica of another cluster (system identifier {}, the primary's is {})",
            replica.system_identifier, primary.system_identifier
        ));
    }
    if replica.store_id != primary.store_id {
        return Err(format!(
            "a replica of another store (store id {}, the primary's is {})",
            replica.store_id, primary.store_id
        ));
    }
    if replica.epoch.is_some() && replica.epoch != primary.epoch {
        return Err(format!(
            "its log is on another history (epoch {:?}, the primary's {:?})",
            replica.epoch, primary.epoch
        ));
    }
    if let Some(resumed) = resumed {
        if replica.head > resumed {
            return Err(format!(
                "it holds positions up to {} of a history the primary left at {resumed} (a tail lost in a failover)",
                replica.head
            ));
        }
    }
    if replica.head > primary.head {
        return Err(format!(
            "its head ({}) is above the primary's ({}): it holds events the log does not",
            replica.head, primary.head
        ));
    }
    if replica.wal > primary.wal {
        return Err(format!(
            "it replayed WAL beyond the primary's position ({:X} > {:X}): it is on another history",
            replica.wal, primary.wal
        ));
    }
    Ok(())
}

/// The replica's replayed WAL position now (for a consistency wait).
pub(super) async fn replayed(replica: &Pooled) -> Result<u64> {
    let row = probe(replica, "SELECT pg_last_wal_replay_lsn()", &[]).await?;
    Ok(row
        .try_get::<_, Option<PgLsn>>(0)
        .db()?
        .map_or(0, u64::from))
}

/// The replica's head: every position up to it is on the replica.
pub(super) async fn head(replica: &Pooled) -> Result<u64> {
    let row = probe(replica, "SELECT coalesce(dcbstore.head(), 0)", &[]).await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0).db()?).unwrap_or(0))
}
