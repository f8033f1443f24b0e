//! Choosing the server of a read: a healthy replica that holds what the
//! read must see, round robin, else the primary.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::health::{self, Health, State};
use super::{CommitToken, ReplicaOptions};
use crate::pooled::Pooled;

/// How long a consistency wait first sleeps between looks at the replicas
/// (a replica replays a commit within a millisecond or so of the primary's
/// acknowledgement), doubling up to [`WAIT_MAX`].
const WAIT_FIRST: Duration = Duration::from_micros(200);
const WAIT_MAX: Duration = Duration::from_millis(5);

/// A replica: its name for logs (host, port, database; never a secret),
/// its pool and its health.
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) pooled: Pooled,
    health: Mutex<Health>,
}

/// Where a read runs.
pub(crate) enum Route {
    /// On this replica.
    Replica(Pooled),
    /// On the primary.
    Primary,
}

/// The store's replicas.
pub(crate) struct Replicas {
    servers: Vec<Server>,
    pub(crate) options: ReplicaOptions,
    next: AtomicUsize,
    /// The highest commit token of this store's appends (read-your-writes).
    last_commit: AtomicU64,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish()
    }
}

impl Replicas {
    pub(crate) fn new(servers: Vec<(String, Pooled)>, options: ReplicaOptions) -> Replicas {
        Replicas {
            servers: servers
                .into_iter()
                .map(|(name, pooled)| Server {
                    name,
                    pooled,
                    health: Mutex::new(Health::new()),
                })
                .collect(),
            options,
            next: AtomicUsize::new(0),
            last_commit: AtomicU64::new(0),
        }
    }

    /// Records an append's commit, for read-your-writes.
    pub(crate) fn committed(&self, token: CommitToken) {
        self.last_commit.fetch_max(token.lsn(), Ordering::Relaxed);
    }

    /// The server for a read that must see `token` (or, with
    /// read-your-writes, this store's last commit) and every position up
    /// to `to`.
    pub(crate) async fn route(
        &self,
        primary: &Pooled,
        token: Option<CommitToken>,
        to: Option<u64>,
    ) -> Route {
        let token = token.map(CommitToken::lsn).or_else(|| {
            let last = self.last_commit.load(Ordering::Relaxed);
            (self.options.read_your_writes && last > 0).then_some(last)
        });
        let deadline = Instant::now() + self.options.consistency_timeout;
        let mut primary_head: Option<u64> = None;
        let mut wait = WAIT_FIRST;
        loop {
            let mut any_up = false;
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for i in 0..self.servers.len() {
                let server = &self.servers[(start + i) % self.servers.len()];
                let Some(replay) = self.healthy(server, primary).await else {
                    continue;
                };
                any_up = true;
                if let Some(t) = token {
                    // Health checks are a second apart: look again now.
                    let now = if replay >= t {
                        replay
                    } else {
                        health::replayed(&server.pooled).await.unwrap_or(0)
                    };
                    if now < t {
                        continue;
                    }
                }
                if let Some(to) = to {
                    match health::head(&server.pooled).await {
                        Ok(h) if h >= to => {}
                        Ok(h) => {
                            if primary_head.is_none() {
                                primary_head =
                                    primary.head().await.ok().map(|p| p.map_or(0, |p| p.get()));
                            }
                            // A window past the head needs the head only.
                            match primary_head {
                                Some(p) if h >= to.min(p) => {}
                                _ => continue,
                            }
                        }
                        Err(_) => continue,
                    }
                }
                ::metrics::counter!(crate::metrics::REPLICA_READS_TOTAL, "server" => server.name.clone())
                    .increment(1);
                return Route::Replica(server.pooled.clone());
            }
            if !any_up || Instant::now() >= deadline {
                tracing::debug!(
                    target: "dcbstore::replica",
                    any_up,
                    token = token.map(|t| CommitToken::from_lsn(t).to_string()),
                    to,
                    "read on the primary: no replica holds what it must see"
                );
                ::metrics::counter!(crate::metrics::REPLICA_READS_TOTAL, "server" => "primary")
                    .increment(1);
                return Route::Primary;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(WAIT_MAX);
        }
    }

    /// The replica's replayed position when it may serve reads (checked
    /// again when the last check is older than `recheck`).
    async fn healthy(&self, server: &Server, primary: &Pooled) -> Option<u64> {
        {
            // The lock is not held across the probe below.
            let h = server
                .health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !h.due(self.options.recheck) {
                return match h.state {
                    State::Up { replay } => Some(replay),
                    _ => None,
                };
            }
        }
        let found = health::check(&server.pooled, primary, &self.options).await;
        let mut h = server
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_up = matches!(h.state, State::Up { .. } | State::Unknown);
        h.checked = Some(Instant::now());
        match found {
            Ok(replay) => {
                if !matches!(h.state, State::Up { .. }) {
                    tracing::info!(target: "dcbstore::replica", server = %server.name, "replica serving reads");
                }
                h.state = State::Up { replay };
                Some(replay)
            }
            Err(reason) => {
                let changed = !matches!(&h.state, State::Down(old) if *old == reason);
                if was_up {
                    tracing::warn!(target: "dcbstore::replica", server = %server.name, %reason, "replica skipped; reads go to another server");
                } else if changed {
                    tracing::info!(target: "dcbstore::replica", server = %server.name, %reason, "replica still skipped");
                }
                h.state = State::Down(reason);
                None
            }
        }
    }
}
