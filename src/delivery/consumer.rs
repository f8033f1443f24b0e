//! The loop behind durable subscribers and relays: under a lease, read the
//! events after the checkpoint, hand them to the sink, move the checkpoint;
//! retry with backoff; dead-letter or block what keeps failing.
//!
//! Delivery is at least once: the checkpoint moves after the sink returned,
//! so a crash in between delivers those events again (with the same
//! idempotency key). The checkpoint row is locked and compared before it
//! moves, and the lease's generation with it, so a consumer that lost its
//! lease never moves another's checkpoint; and the sink asks the lease
//! ([`Fence`]) before each send, so such a consumer stops at its next send.

use crate::error::PgResultExt;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::advance::{move_checkpoint, Halt};
use super::config::{DeliveryConfig, OnFailure};
use super::dead_letters;
use super::fence::Fence;
use super::meter;
use super::sink::Consumer;
use super::transport::FailureKind;
use crate::dispatch::{from_store_event, Envelope};
use crate::error::Result;
use crate::event::{SequencePosition, SequencedEvent};
use crate::projection::durable::checkpoint;
use crate::projection::durable::lease::Lease;
use crate::read::{read_decodable_prefix, ReadOptions};
use crate::store::Store;

/// A durable subscriber or relay running in the background. Stopped with
/// [`stop`](Self::stop) (the batch in hand finishes) or
/// [`abort`](Self::abort) (as a crash would).
#[derive(Debug)]
pub struct DeliveryRunner {
    name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DeliveryRunner {
    pub(crate) fn start(store: Store, consumer: Consumer) -> DeliveryRunner {
        let (stop, stopped) = watch::channel(false);
        let name = consumer.name.clone();
        let task = tokio::spawn(run(store, consumer, stopped));
        DeliveryRunner { name, stop, task }
    }

    /// The consumer's name (its checkpoint in `dcbstore.projections`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops after the batch in hand and waits; the lease is released.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops at once, as a crash would: what was delivered but not
    /// checkpointed is delivered again by the next runner.
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn run(store: Store, c: Consumer, mut stopped: watch::Receiver<bool>) {
    let mut wakeups = store.wakeups();
    let owner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
    'lease: while !*stopped.borrow() {
        let taken = Lease::acquire(&store, &c.name, &owner, None).await;
        if let Err(e) = &taken {
            tracing::warn!(consumer = %c.name, error = %e, "cannot take the lease; retrying");
        }
        // Someone else delivers, or the database is away (or refuses the
        // lease functions: run `dcbstore grant`): try later.
        let Ok(Some(mut lease)) = taken else {
            if wait_or_stop(&mut stopped, c.config.poll_interval).await {
                return;
            }
            continue 'lease;
        };
        tracing::info!(consumer = %c.name, kind = c.sink.kind(), owner = %owner, "delivery lease taken");
        let started = async {
            checkpoint::ensure_row_of_kind(&store, &c.name, c.sink.kind()).await?;
            checkpoint::set_state(&store, &c.name, "running", Some(&owner)).await
        }
        .await;
        if let Err(e) = started {
            tracing::warn!(consumer = %c.name, error = %e, "cannot start delivering");
            drop(lease);
            if wait_or_stop(&mut stopped, c.config.poll_interval).await {
                return;
            }
            continue 'lease;
        }
        loop {
            if *stopped.borrow() {
                let _ = checkpoint::set_state(&store, &c.name, "idle", None).await;
                return;
            }
            if !lease.is_alive() {
                continue 'lease;
            }
            // Before the read: an append during it ends the wait below at once.
            wakeups.mark();
            match next_batch(&store, &c).await {
                Ok((at, events)) if !events.is_empty() => {
                    match deliver(&store, &c, at, &events, &mut stopped, &lease).await {
                        Ok(()) => {
                            meter::after_batch(&store, &c, &events).await;
                            continue;
                        }
                        Err(Halt::Stopped) => continue,
                        Err(Halt::Store(e)) => {
                            let _ = checkpoint::record_error(&store, &c.name, &e.to_string()).await;
                            if wait_or_stop(&mut stopped, c.config.poll_interval).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
                // Nothing after the checkpoint that this consumer takes.
                Ok(_) => meter::lag(&c, 0, None),
                Err(e) => {
                    let _ = checkpoint::record_error(&store, &c.name, &e.to_string()).await;
                }
            }
            tokio::select! {
                () = wakeups.wait(c.config.poll_interval) => {}
                () = lease.lost() => continue 'lease,
                changed = stopped.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }
}

/// The checkpoint, and the events after it (at most a batch), up to the
/// first one this reader cannot decode: the events before it are delivered
/// first; then that event is the error (it names the event and how to
/// redact it), until it is redacted.
async fn next_batch(store: &Store, c: &Consumer) -> Result<(u64, Vec<SequencedEvent>)> {
    let at = current(store, &c.name).await?;
    let (events, undecodable) = read_decodable_prefix(
        store,
        &c.query,
        ReadOptions::new()
            .after(SequencePosition::new(at))
            .limit(c.config.batch_size),
    )
    .await?;
    match undecodable {
        Some(e) if events.is_empty() => Err(e),
        _ => Ok((at, events)),
    }
}

async fn current(store: &Store, name: &str) -> Result<u64> {
    let client = store.pool().get().await.db()?;
    let row = client
        .query_one(
            "SELECT checkpoint FROM dcbstore.projections WHERE name = $1",
            &[&name],
        )
        .await
        .db()?;
    Ok(u64::try_from(row.try_get::<_, i64>(0).db()?).unwrap_or(0))
}

/// Delivers `events` (read after checkpoint `at`), moving the checkpoint as
/// they go through and dead-lettering or blocking on those that keep failing.
async fn deliver(
    store: &Store,
    c: &Consumer,
    mut at: u64,
    events: &[SequencedEvent],
    stopped: &mut watch::Receiver<bool>,
    lease: &Lease,
) -> std::result::Result<(), Halt> {
    let envelopes: Vec<Envelope> = events.iter().map(from_store_event).collect();
    let mut start = 0usize;
    // Attempts of the event at `start`, and when it first failed.
    let mut attempts = 0u32;
    let mut first_failure: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut unavailable = backoff(&c.config);
    let mut retries = backoff(&c.config);
    while start < envelopes.len() {
        if *stopped.borrow() || !lease.is_alive() {
            return Err(Halt::Stopped);
        }
        let batch = &envelopes[start..];
        let span = tracing::info_span!(
            "deliver",
            consumer = %c.name,
            kind = c.sink.kind(),
            events = batch.len(),
            first = events[start].position.get()
        );
        let began = Instant::now();
        let fence = Fence::of(lease);
        let outcome = c.sink.deliver(batch, &fence).instrument(span).await;
        let delivered = match &outcome {
            Ok(()) => batch.len(),
            Err(f) => f.delivered.min(batch.len()),
        };
        if delivered > 0 {
            let reached = events[start + delivered - 1].position.get();
            move_checkpoint(store, &c.name, lease, at, reached, None).await?;
            at = reached;
            meter::delivered(c, &events[start..start + delivered], began);
            start += delivered;
            attempts = 0;
            first_failure = None;
            retries = backoff(&c.config);
        }
        let Err(failure) = outcome else {
            continue;
        };
        if !lease.is_alive() {
            // The sink stopped at the lease's loss: the next holder goes on.
            return Err(Halt::Stopped);
        }
        if start >= envelopes.len() {
            break;
        }
        let position = events[start].position.get();
        let message = failure.error.to_string();
        if failure.kind == FailureKind::Unavailable {
            ::metrics::counter!(crate::metrics::DELIVERY_UNAVAILABLE_TOTAL, "consumer" => c.name.clone())
                .increment(1);
            tracing::warn!(consumer = %c.name, position, error = %message, "destination unavailable; backing off");
            let _ = checkpoint::record_error(store, &c.name, &message).await;
            let delay = unavailable.next().unwrap_or(c.config.retry_max);
            if wait_or_stop(stopped, delay).await {
                return Err(Halt::Stopped);
            }
            continue;
        }
        unavailable = backoff(&c.config);
        attempts += 1;
        let now = chrono::Utc::now();
        let first = *first_failure.get_or_insert(now);
        ::metrics::counter!(crate::metrics::DELIVERY_FAILURES_TOTAL, "consumer" => c.name.clone())
            .increment(1);
        let exhausted =
            failure.kind == FailureKind::Permanent || attempts >= c.config.max_attempts.max(1);
        if !exhausted {
            tracing::warn!(consumer = %c.name, position, attempt = attempts, error = %message, "delivery failed; retrying");
            let delay = retries.next().unwrap_or(c.config.retry_max);
            if wait_or_stop(stopped, delay).await {
                return Err(Halt::Stopped);
            }
            continue;
        }
        match c.config.on_failure {
            OnFailure::DeadLetter => {
                let span =
                    tracing::warn_span!("dead_letter", consumer = %c.name, position, attempts);
                let _enter = span.enter();
                tracing::warn!(error = %message, "delivery gave up; dead-lettered, moving on");
                let letter = dead_letters::Letter {
                    subscriber: &c.name,
                    position,
                    attempts,
                    error: &message,
                    first_failed_at: first,
                    last_failed_at: now,
                };
                move_checkpoint(store, &c.name, lease, at, position, Some(letter)).await?;
                ::metrics::counter!(crate::metrics::DEAD_LETTERS_TOTAL, "consumer" => c.name.clone())
                    .increment(1);
                at = position;
                start += 1;
                attempts = 0;
                first_failure = None;
                retries = backoff(&c.config);
            }
            OnFailure::Block => {
                tracing::error!(consumer = %c.name, position, attempts, error = %message, "delivery failed; blocked on this event until it succeeds");
                let _ = checkpoint::record_failure(store, &c.name, position, &message).await;
                let delay = retries.next().unwrap_or(c.config.retry_max);
                if wait_or_stop(stopped, delay).await {
                    return Err(Halt::Stopped);
                }
            }
        }
    }
    Ok(())
}

fn backoff(config: &DeliveryConfig) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(config.retry_min)
        .with_max_delay(config.retry_max.max(config.retry_min))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sleeps for `d` unless told to stop first; true when told to stop.
async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}
