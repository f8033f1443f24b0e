//! The one loop of every durable consumer: under its lease, take turns of
//! work (a projection's catch-up, a delivery batch), and between them wait
//! for an append, the poll interval, a command or the order to stop.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{checkpoint, Lease};
use crate::store::Store;

/// What a turn of work did, and so what the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Caught up: wait for an append (or the poll interval).
    Idle,
    /// More to do: take another turn at once.
    Again,
    /// A failure: wait this long (unless told to stop), then take a turn.
    Backoff(Duration),
    /// Another runner holds the consumer now: take the lease again (or wait
    /// for it) before anything else.
    LeaseLost,
    /// Nothing can be done until a command comes (a projection whose read
    /// model holds events the log lost): wait for one, or the stop.
    Park,
}

/// A consumer the loop runs: its name (its lease and its checkpoint row),
/// its kind, and one turn of work.
pub trait Follower: Send + 'static {
    /// What a caller may ask of the running consumer (a projection's rebuild).
    type Command: Send + 'static;

    /// Its lease's and checkpoint row's name.
    fn name(&self) -> &str;

    /// `projection`, `subscriber` or `relay` (its row's kind).
    fn kind(&self) -> &'static str;

    /// How long to wait without a wake-up, and after the database failed.
    fn poll_interval(&self) -> Duration;

    /// After the lease is taken and the row marked running: set up (a
    /// projection's read model). A refusal is recorded; the lease is let go
    /// and taken again after the poll interval.
    fn start(
        &mut self,
        store: &Store,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// One turn of work. `stopped` is for its own waits (a backoff between
    /// deliveries): it ends them when the consumer is told to stop.
    fn turn(
        &mut self,
        store: &Store,
        lease: &Lease,
        stopped: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Turn> + Send;

    /// Carries out a command, between turns.
    fn command(
        &mut self,
        command: Self::Command,
        store: &Store,
        lease: &Lease,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs `consumer` until `stopped` turns true (or its sender is dropped, or
/// the sender of `commands` is), taking commands from `commands` between
/// turns: spawn it, and keep both senders.
///
/// ```no_run
/// use dcbstore::consumer::{follow, Follower, Lease, Turn};
/// use dcbstore::Store;
/// use std::time::Duration;
/// use tokio::sync::{mpsc, watch};
///
/// /// Counts its turns (a real one reads after its checkpoint and moves it).
/// struct Counter(u64);
///
/// impl Follower for Counter {
///     type Command = ();
///     fn name(&self) -> &str { "counter" }
///     fn kind(&self) -> &'static str { "subscriber" }
///     fn poll_interval(&self) -> Duration { Duration::from_secs(1) }
///     async fn start(&mut self, _: &Store, _: &Lease) -> Result<(), String> { Ok(()) }
///     async fn turn(&mut self, _: &Store, _: &Lease, _: &mut watch::Receiver<bool>) -> Turn {
///         self.0 += 1;
///         Turn::Idle
///     }
///     async fn command(&mut self, _: (), _: &Store, _: &Lease) {}
/// }
///
/// # async fn f(store: Store) {
/// let (stop, stopped) = watch::channel(false);
/// let (commands, inbox) = mpsc::channel(1);
/// let running = tokio::spawn(follow(store, Counter(0), stopped, inbox));
/// // ...
/// let _ = stop.send(true);
/// let _ = running.await;
/// drop(commands);
/// # }
/// ```
pub async fn follow<F: Follower>(
    store: Store,
    mut consumer: F,
    mut stopped: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<F::Command>,
) {
    let owner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
    // The store's one listening connection, shared with its subscriptions.
    let mut wakeups = store.wakeups();
    let name = consumer.name().to_string();
    let kind = consumer.kind();
    let poll = consumer.poll_interval();
    'lease: while !*stopped.borrow() {
        let taken = Lease::acquire(&store, &name, &owner, None).await;
        if let Err(e) = &taken {
            tracing::warn!(consumer = %name, kind, error = %e, "cannot take the lease; retrying");
        }
        // Another runner has it, or the database is away (or refuses the
        // lease functions: run `dcbstore grant`): try later.
        let Ok(Some(mut lease)) = taken else {
            if wait_or_stop(&mut stopped, poll).await {
                return;
            }
            continue 'lease;
        };
        tracing::info!(consumer = %name, kind, owner = %owner, "lease taken");
        let marked = async {
            checkpoint::ensure_row_of_kind(&store, &name, kind).await?;
            checkpoint::set_state(&store, &name, "running", Some(&owner)).await
        }
        .await
        .map_err(|e| e.to_string());
        let started = match marked {
            Ok(()) => consumer.start(&store, &lease).await,
            Err(e) => Err(e),
        };
        if let Err(message) = started {
            tracing::warn!(consumer = %name, kind, error = %message, "cannot start");
            let _ = checkpoint::record_error(&store, &name, &message).await;
            drop(lease);
            if wait_or_stop(&mut stopped, poll).await {
                return;
            }
            continue 'lease;
        }
        let mut pending: Option<F::Command> = None;
        loop {
            if *stopped.borrow() {
                let _ = checkpoint::set_state(&store, &name, "idle", None).await;
                return;
            }
            if let Some(c) = pending.take().or_else(|| commands.try_recv().ok()) {
                consumer.command(c, &store, &lease).await;
            }
            if !lease.is_alive() {
                continue 'lease;
            }
            // Before the turn: an append during it ends the wait below at once.
            wakeups.mark();
            match consumer.turn(&store, &lease, &mut stopped).await {
                Turn::Idle => {}
                Turn::Again => continue,
                Turn::LeaseLost => continue 'lease,
                Turn::Backoff(d) => {
                    if wait_or_stop(&mut stopped, d).await {
                        return;
                    }
                    continue;
                }
                Turn::Park => {
                    tokio::select! {
                        c = commands.recv() => match c {
                            Some(c) => pending = Some(c),
                            // Nobody can command or stop this task any more.
                            None => return,
                        },
                        changed = stopped.changed() => if changed.is_err() {
                            return;
                        },
                    }
                    continue;
                }
            }
            if !lease.is_alive() {
                continue 'lease;
            }
            // Live: sleep until an append is notified, a command arrives, the
            // poll interval passes, or we are told to stop.
            tokio::select! {
                () = wakeups.wait(poll) => {}
                () = lease.lost() => continue 'lease,
                c = commands.recv() => match c {
                    Some(c) => pending = Some(c),
                    None => return,
                },
                changed = stopped.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }
}

/// Sleeps for `d` unless told to stop first (`stopped` turns true, or its
/// sender is gone); true when told to stop. A consumer's backoff between
/// attempts waits with it, so that stopping never waits a backoff out.
pub async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}
