//! Applying a projection's events in batches, each batch one transaction
//! with its checkpoint; setup and reset; and why a catch-up stopped.

use std::sync::Arc;

use super::config::{Progress, RunnerConfig};
use super::definition::Erased;
use crate::consumer::checkpoint;
use crate::consumer::Lease;
use crate::error::{Error, HandlerError};
use crate::event::{SequencePosition, SequencedEvent};
use crate::metrics::{age_seconds, PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS};
use crate::read::{read_decodable_prefix, ReadOptions};
use crate::store::{EventStore, Store};

/// Why a catch-up stopped early.
pub(super) enum Stop {
    /// A handler failed at `position` (0: setup or reset).
    Handler {
        position: u64,
        /// What was being done ("setup failed: "), or empty for an event.
        context: &'static str,
        error: HandlerError,
    },
    /// The checkpoint is at a position the log does not hold (above the
    /// head, or handed out on a server history whose tail was lost): the read
    /// model has effects of events that are gone.
    Stale {
        checkpoint: u64,
        head: u64,
        name: String,
    },
    /// The store failed (the database, the pool).
    Store(Error),
    /// The lease is another runner's now (this one's connection closed and
    /// the other took it over): the batch in hand was rolled back.
    Lost { name: String },
}

impl Stop {
    fn handler(position: u64, context: &'static str, error: HandlerError) -> Stop {
        Stop::Handler {
            position,
            context,
            error,
        }
    }

    /// The failing event's position (0: setup, reset, or not a handler's).
    pub(super) fn position(&self) -> u64 {
        match self {
            Stop::Handler { position, .. } => *position,
            Stop::Stale { checkpoint, .. } => *checkpoint,
            Stop::Store(_) | Stop::Lost { .. } => 0,
        }
    }

    /// The error as recorded in `dcbstore.projections` and logged.
    pub(super) fn message(&self) -> String {
        match self {
            Stop::Handler { context, error, .. } => format!("{context}{error}"),
            Stop::Stale {
                checkpoint,
                head,
                name,
            } => format!(
                "the checkpoint is at position {checkpoint}, which the log does not hold (head {head}): the log lost events this read model applied (a failover to a standby that lagged, or a restore); rebuild the projection (`projections rebuild {name}`, or Runner::rebuild)"
            ),
            Stop::Store(e) => e.to_string(),
            Stop::Lost { name } => format!(
                "projection {name} lost its lease (its connection closed) and another runner took it over: this run stopped and committed nothing more; retry when that runner is done, or rebuild through it"
            ),
        }
    }

    /// The error a caller of `rebuild` gets.
    pub(super) fn into_error(self, name: &str) -> Error {
        let message = self.message();
        match self {
            Stop::Store(e) => e,
            Stop::Handler {
                position, error, ..
            } => Error::Projection {
                name: name.to_string(),
                position,
                message,
                source: Some(Arc::from(error)),
            },
            Stop::Stale { checkpoint, .. } => Error::Projection {
                name: name.to_string(),
                position: checkpoint,
                message,
                source: None,
            },
            Stop::Lost { .. } => Error::Invalid(message),
        }
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        match e.position() {
            // An event this reader cannot decode fails the projection at it,
            // as a handler error would (status shows which, and how to
            // redact it), instead of a store error retried without end.
            Some(position) => Stop::handler(position.get(), "", Box::new(e)),
            None => Stop::Store(e),
        }
    }
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Self {
        Stop::Store(crate::error::pg_error(e))
    }
}

impl From<deadpool_postgres::PoolError> for Stop {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Stop::Store(crate::error::pool_error(e))
    }
}

/// Creates the read model (the projection's `setup`), in its own transaction.
pub(super) async fn setup(store: &Store, p: &dyn Erased) -> Result<(), Stop> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    p.setup(&tx)
        .await
        .map_err(|e| Stop::handler(0, "setup failed: ", e))?;
    tx.commit().await?;
    Ok(())
}

/// Applies every event matching the projection's query up to the head as it
/// is now, in batches of one transaction each (read-model writes + checkpoint),
/// each fenced by `lease`: a batch commits only while the lease is still at
/// this runner's generation.
pub(super) async fn catch_up(
    store: &Store,
    p: &dyn Erased,
    config: &RunnerConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
    lease: &Lease,
) -> Result<u64, Stop> {
    let name = p.name().to_string();
    let query = p.query();
    let head = store.head().await?.map_or(0, SequencePosition::get);
    let mut applied = 0u64;
    loop {
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        let checkpoint = checkpoint::lock(&tx, &name).await?;
        if checkpoint > head || checkpoint::lost(&tx, checkpoint).await? {
            // Another runner may have moved on since this one read the head:
            // only a checkpoint the log does not hold now is stale.
            let now = checkpoint::head(&tx).await?;
            if checkpoint > now || checkpoint::lost(&tx, checkpoint).await? {
                return Err(Stop::Stale {
                    checkpoint,
                    head: now,
                    name,
                });
            }
        }
        if checkpoint >= head {
            tx.commit().await?;
            record_lag(&name, 0, None);
            if applied == 0 {
                // Nothing to do: still report where the projection stands.
                progress(Progress {
                    checkpoint,
                    head,
                    applied,
                });
            }
            return Ok(applied);
        }
        let (events, undecodable) = read_decodable_prefix(
            store,
            &query,
            ReadOptions::new()
                .after(SequencePosition::new(checkpoint))
                .to(SequencePosition::new(head))
                .limit(config.batch_size),
        )
        .await
        .map_err(Stop::Store)?;
        if events.is_empty() {
            if let Some(e) = undecodable {
                return Err(e.into());
            }
        }
        if let Err(err) = p.apply_batch(&tx, &events).await {
            // Roll the batch back, then find the failing event one by one.
            drop(tx);
            return Err(locate_failure(store, p, &events, err).await);
        }
        // A short page means everything up to the head is applied; a page
        // cut at an undecodable event, everything before it (the next batch
        // then starts at that event and fails there).
        let reached = match (&undecodable, events.last()) {
            (Some(e), _) => e.position().map_or(checkpoint, |p| p.get() - 1),
            (None, Some(last)) if events.len() as u64 == config.batch_size => last.position.get(),
            _ => head,
        };
        // Last, so that a takeover waits for this check's row lock only
        // until the commit, not for the whole batch.
        if !lease.fence(&tx).await? {
            return Err(Stop::Lost { name });
        }
        checkpoint::advance(&tx, &name, reached, head).await?;
        tx.commit().await?;
        // Before `progress`: whoever watches the run sees the gauges of the
        // batch it is told about.
        record_lag(
            &name,
            head.saturating_sub(reached),
            events.last().filter(|_| reached < head),
        );
        applied += events.len() as u64;
        progress(Progress {
            checkpoint: reached,
            head,
            applied,
        });
    }
}

/// Sets the projection's lag gauges after a batch: `behind` events to the
/// head the catch-up started from, and the age of `last`, the last event
/// applied (`None`: caught up, 0 seconds). The head is the one the catch-up
/// already read, so the gauges cost no query.
fn record_lag(name: &str, behind: u64, last: Option<&SequencedEvent>) {
    let seconds = last.map_or(0.0, |e| age_seconds(e.recorded_at));
    ::metrics::gauge!(PROJECTION_LAG_EVENTS, "projection" => name.to_string()).set(behind as f64);
    ::metrics::gauge!(PROJECTION_LAG_SECONDS, "projection" => name.to_string()).set(seconds);
}

/// After a batch failed: replays it event by event in a transaction that is
/// always rolled back, to report the first failing position.
async fn locate_failure(
    store: &Store,
    p: &dyn Erased,
    events: &[SequencedEvent],
    batch_error: HandlerError,
) -> Stop {
    let first = events.first().map_or(0, |e| e.position.get());
    let found = async {
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        for e in events {
            if let Err(err) = p.apply(&tx, e).await {
                return Ok::<_, Stop>(Some((e.position.get(), err)));
            }
        }
        Ok(None)
    }
    .await;
    match found {
        Ok(Some((position, error))) => Stop::handler(position, "", error),
        // The single-event path did not fail: blame the batch's first event.
        _ => Stop::handler(first, "", batch_error),
    }
}

/// Empties the read model and the checkpoint in one transaction, fenced by
/// `lease` like a batch.
pub(super) async fn reset(store: &Store, p: &dyn Erased, lease: &Lease) -> Result<(), Stop> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    checkpoint::lock(&tx, p.name()).await?;
    p.reset(&tx)
        .await
        .map_err(|e| Stop::handler(0, "reset failed: ", e))?;
    if !lease.fence(&tx).await? {
        return Err(Stop::Lost {
            name: p.name().to_string(),
        });
    }
    checkpoint::clear(&tx, p.name()).await?;
    tx.commit().await?;
    Ok(())
}
