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

use std::convert::Infallible;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{mpsc, watch};
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
use dcbstore::consumer::{checkpoint, follow, wait_or_stop, Follower, Lease, Turn};
use dcbstore::event::{SequencePosition, SequencedEvent};
use dcbstore::read::{read_decodable_prefix, ReadOptions};
use dcbstore::store::Store;
use dcbstore::{PgResultExt, Result};

/// A durable subscriber or relay running in the background. Stopped with
/// [`stop`](Self::stop) (the batch in hand finishes) or
/// [`abort`](Self::abort) (as a crash would).
#[derive(Debug)]
pub struct DeliveryRunner {
    name: String,
    stop: watch::Sender<bool>,
    // Delivery takes no commands; the channel stays open while the runner
    // is kept (the loop ends when its commands' sender is dropped).
    _commands: mpsc::Sender<Infallible>,
    task: JoinHandle<()>,
}

impl DeliveryRunner {
    pub(crate) fn start(store: Store, consumer: Consumer) -> DeliveryRunner {
        let (stop, stopped) = watch::channel(false);
        let (commands, inbox) = mpsc::channel(1);
        let name = consumer.name.clone();
        let task = tokio::spawn(follow(store, Follow(consumer), stopped, inbox));
        DeliveryRunner {
            name,
            stop,
            _commands: commands,
            task,
        }
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

/// A subscriber or relay as a durable consumer: its turn is a batch.
struct Follow(Consumer);

impl Follower for Follow {
    type Command = Infallible;

    fn name(&self) -> &str {
        &self.0.name
    }

    fn kind(&self) -> &'static str {
        self.0.sink.kind()
    }

    fn poll_interval(&self) -> Duration {
        self.0.config.poll_interval
    }

    async fn start(&mut self, _store: &Store, _lease: &Lease) -> std::result::Result<(), String> {
        Ok(())
    }

    async fn turn(
        &mut self,
        store: &Store,
        lease: &Lease,
        stopped: &mut watch::Receiver<bool>,
    ) -> Turn {
        let c = &self.0;
        match next_batch(store, c).await {
            Ok((at, events)) if !events.is_empty() => {
                match deliver(store, c, at, &events, stopped, lease).await {
                    Ok(()) => {
                        meter::after_batch(store, c, &events).await;
                        Turn::Again
                    }
                    // Told to stop, or the lease is gone: the loop sees which.
                    Err(Halt::Stopped) => Turn::Again,
                    Err(Halt::Store(e)) => {
                        let _ = checkpoint::record_error(store, &c.name, &e.to_string()).await;
                        Turn::Backoff(c.config.poll_interval)
                    }
                }
            }
            // Nothing after the checkpoint that this consumer takes.
            Ok(_) => {
                meter::lag(c, 0, None);
                Turn::Idle
            }
            Err(e) => {
                let _ = checkpoint::record_error(store, &c.name, &e.to_string()).await;
                Turn::Idle
            }
        }
    }

    async fn command(&mut self, command: Infallible, _store: &Store, _lease: &Lease) {
        match command {}
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
            ::metrics::counter!(dcbstore::metrics::DELIVERY_UNAVAILABLE_TOTAL, "consumer" => c.name.clone())
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
        ::metrics::counter!(dcbstore::metrics::DELIVERY_FAILURES_TOTAL, "consumer" => c.name.clone())
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
                ::metrics::counter!(dcbstore::metrics::DEAD_LETTERS_TOTAL, "consumer" => c.name.clone())
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
