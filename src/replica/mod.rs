//! Reads on PostgreSQL streaming replicas (hot standbys).
//!
//! Writes, conditions and the decision model's read
//! ([`read_boundary`](crate::EventStore::read_boundary)) stay on the
//! primary: a condition is never evaluated against a replica. Reads
//! ([`Store::read`](crate::EventStore::read)), subscriptions, projection
//! catch-up and replay go to a healthy replica
//! ([`StoreBuilder::replica`](crate::StoreBuilder::replica)).
//!
//! Why a replica's read is a correct read: positions commit in order (the
//! append lock), and a physical replica replays commits in WAL order, so
//! what a replica holds is always a prefix of the log. A read is served by
//! a replica only when that prefix covers it:
//! - a window with an upper bound `to` only by a replica whose head is at
//!   or past `min(to, the primary's head)`, so that a reader that bounds its
//!   window by a head it read (a projection's catch-up, an export) gets
//!   every event of it;
//! - a read [`consistent_with`](crate::ReadOptions::consistent_with) a
//!   [`CommitToken`] only by a replica that replayed that WAL position
//!   (`pg_last_wal_replay_lsn()`); it waits for one up to
//!   [`ReplicaOptions::consistency_timeout`], then reads on the primary. It
//!   never returns a read older than the token.
//!
//! A replica that is down, is not in recovery (promoted), or lags more than
//! [`ReplicaOptions::max_lag_bytes`] or [`ReplicaOptions::max_lag`] is
//! skipped, and checked again later; routing decisions are logged
//! (`tracing`, target `dcbstore::replica`) and counted
//! (`dcbstore_replica_reads_total{server}`, `dcbstore_replica_lag_bytes`).

mod health;
mod read;
mod route;

use std::time::Duration;

pub use crate::CommitToken;

pub(crate) use read::routed_read;
pub(crate) use route::Replicas;

/// How a store uses its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaOptions {
    pub(crate) max_lag_bytes: Option<u64>,
    pub(crate) max_lag: Option<Duration>,
    pub(crate) consistency_timeout: Duration,
    pub(crate) recheck: Duration,
    pub(crate) read_your_writes: bool,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            max_lag_bytes: Some(16 * 1024 * 1024),
            max_lag: Some(Duration::from_secs(10)),
            consistency_timeout: Duration::from_secs(2),
            recheck: Duration::from_secs(1),
            read_your_writes: false,
        }
    }
}

impl ReplicaOptions {
    /// 16 MiB or 10 s of lag at most, a 2 s wait for consistency, checked
    /// every second, no read-your-writes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Skips a replica more than `bytes` of WAL behind the primary (`None`:
    /// no limit).
    #[must_use]
    pub fn max_lag_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_lag_bytes = bytes;
        self
    }

    /// Skips a replica whose last replayed commit is older than `lag` while
    /// it has WAL to replay (`None`: no limit). An idle primary makes no
    /// replica lag.
    #[must_use]
    pub fn max_lag(mut self, lag: Option<Duration>) -> Self {
        self.max_lag = lag;
        self
    }

    /// How long a read waits for a replica to replay what it must see
    /// before it reads on the primary instead (default 2 s).
    #[must_use]
    pub fn consistency_timeout(mut self, wait: Duration) -> Self {
        self.consistency_timeout = wait;
        self
    }

    /// How often a replica's health and lag are checked, and how soon one
    /// found down is tried again (default 1 s).
    #[must_use]
    pub fn recheck(mut self, every: Duration) -> Self {
        self.recheck = every.max(Duration::from_millis(10));
        self
    }

    /// Every read of the store is consistent with the store's own last
    /// append (its commit token), as if each read were given
    /// [`consistent_with`](crate::ReadOptions::consistent_with).
    #[must_use]
    pub fn read_your_writes(mut self, yes: bool) -> Self {
        self.read_your_writes = yes;
        self
    }
}
