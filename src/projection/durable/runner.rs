//! The [`Runner`]: a projection kept current in the background, catch-up
//! then live, under its lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::catch_up::{catch_up, reset, setup, Stop};
use super::checkpoint;
use super::config::RunnerConfig;
use super::definition::{DurableProjection, Erased, ProjectionRegistry};
use super::lease::Lease;
use crate::error::Error;
use crate::store::Store;

enum Command {
    Rebuild(tokio::sync::oneshot::Sender<crate::error::Result<u64>>),
}

/// A projection kept current in the background: catch-up, then live.
///
/// Started with [`Runner::start`]; stopped with [`Runner::stop`] (or when
/// dropped, at its next wake-up).
#[derive(Debug)]
pub struct Runner {
    stop: watch::Sender<bool>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    name: String,
}

impl Runner {
    /// Starts a runner for `projection` on the current tokio runtime.
    pub fn start<P: DurableProjection>(
        store: Store,
        projection: P,
        config: RunnerConfig,
    ) -> Runner {
        Runner::start_erased(store, Arc::new(projection), config)
    }

    /// Starts one runner per projection of `registry`.
    pub fn start_all(
        store: &Store,
        registry: &ProjectionRegistry,
        config: RunnerConfig,
    ) -> Vec<Runner> {
        registry
            .all()
            .iter()
            .map(|p| Runner::start_erased(store.clone(), p.clone(), config))
            .collect()
    }

    fn start_erased(store: Store, p: Arc<dyn Erased>, config: RunnerConfig) -> Runner {
        let (stop, stopped) = watch::channel(false);
        let (commands, inbox) = mpsc::channel(4);
        let name = p.name().to_string();
        let task = tokio::spawn(run(store, p, config, stopped, inbox));
        Runner {
            stop,
            commands,
            task,
            name,
        }
    }

    /// The projection's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the runner to rebuild its projection (reset, replay) and waits
    /// for the result. The live loop pauses meanwhile and resumes after.
    pub async fn rebuild(&self) -> crate::error::Result<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Rebuild(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops the runner and waits for it: the current batch finishes or rolls
    /// back, the lease is released.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Aborts the runner at once, as a crash would (the batch in flight rolls
    /// back when its connection is dropped).
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn run(
    store: Store,
    p: Arc<dyn Erased>,
    config: RunnerConfig,
    mut stopped: watch::Receiver<bool>,
    mut inbox: mpsc::Receiver<Command>,
) {
    let owner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
    // The store's one listening connection, shared with its subscriptions.
    let mut wakeups = store.wakeups();
    let name = p.name().to_string();
    let mut failures: u32 = 0;
    'lease: while !*stopped.borrow() {
        let taken = Lease::acquire(&store, &name, &owner, None).await;
        if let Err(e) = &taken {
            tracing::warn!(projection = %name, error = %e, "cannot take the lease; retrying");
        }
        // Someone else runs it, or the database is away (or refuses the
        // lease functions: run `dcbstore grant`): try later.
        let Ok(Some(mut lease)) = taken else {
            if wait_or_stop(&mut stopped, config.poll_interval).await {
                return;
            }
            continue 'lease;
        };
        tracing::info!(projection = %name, owner = %owner, "projection lease taken");
        let started = async {
            checkpoint::ensure_row(&store, &name).await?;
            checkpoint::set_state(&store, &name, "running", Some(&owner)).await?;
            Ok::<(), Error>(())
        }
        .await;
        let set = match started {
            Ok(()) => setup(&store, p.as_ref()).await,
            Err(e) => Err(Stop::Store(e)),
        };
        if let Err(stop) = set {
            let _ = checkpoint::record_error(&store, &name, &stop.message()).await;
            drop(lease);
            if wait_or_stop(&mut stopped, config.poll_interval).await {
                return;
            }
            continue 'lease;
        }
        let mut pending: Option<Command> = None;
        loop {
            if *stopped.borrow() {
                let _ = checkpoint::set_state(&store, &name, "idle", None).await;
                return;
            }
            if let Some(Command::Rebuild(reply)) = pending.take().or_else(|| inbox.try_recv().ok())
            {
                let r = async {
                    reset(&store, p.as_ref(), &lease).await?;
                    catch_up(&store, p.as_ref(), &config, &mut |_| {}, &lease).await
                }
                .await
                .map_err(|s| s.into_error(&name));
                let _ = reply.send(r);
            }
            // Before the catch-up: an append during it ends the wait below at once.
            wakeups.mark();
            match catch_up(&store, p.as_ref(), &config, &mut |_| {}, &lease).await {
                Ok(_) => failures = 0,
                // Another runner has the projection now: take the lease
                // again (or wait for it) before anything else.
                Err(Stop::Lost { .. }) => continue 'lease,
                Err(stop @ Stop::Handler { .. }) => {
                    failures = failures.saturating_add(1);
                    let (position, message) = (stop.position(), stop.message());
                    let _ = checkpoint::record_failure(&store, &name, position, &message).await;
                    let delay = config
                        .retry_base
                        .saturating_mul(1 << failures.min(16))
                        .min(config.retry_max);
                    if wait_or_stop(&mut stopped, delay).await {
                        return;
                    }
                    continue;
                }
                Err(stale @ Stop::Stale { .. }) => {
                    // Nothing to retry: the read model holds effects of events
                    // the log lost. Failed until it is rebuilt (or stopped).
                    let (position, message) = (stale.position(), stale.message());
                    let _ = checkpoint::record_failure(&store, &name, position, &message).await;
                    tokio::select! {
                        c = inbox.recv() => match c {
                            Some(c) => pending = Some(c),
                            None => return,
                        },
                        changed = stopped.changed() => if changed.is_err() {
                            return;
                        },
                    }
                    if !lease.is_alive() {
                        continue 'lease;
                    }
                    continue;
                }
                Err(Stop::Store(e)) => {
                    // Visible in status; the position is unknown (not a handler error).
                    let _ = checkpoint::record_error(&store, &name, &e.to_string()).await;
                    if wait_or_stop(&mut stopped, config.poll_interval).await {
                        return;
                    }
                }
            }
            if !lease.is_alive() {
                continue 'lease;
            }
            // Live: sleep until an append is notified, a command arrives, the
            // poll interval passes, or we are told to stop.
            tokio::select! {
                () = wakeups.wait(config.poll_interval) => {}
                () = lease.lost() => continue 'lease,
                c = inbox.recv() => match c {
                    Some(c) => pending = Some(c),
                    // The Runner is gone: nobody can stop or command this task.
                    None => return,
                },
                changed = stopped.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }
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
