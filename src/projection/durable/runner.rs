//! The [`Runner`]: a projection kept current in the background, catch-up
//! then live, under its lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::catch_up::{catch_up, reset, setup, Stop};
use super::config::RunnerConfig;
use super::definition::{DurableProjection, Erased, ProjectionRegistry};
use crate::consumer::{checkpoint, follow, Follower, Lease, Turn};
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
        let follower = Follow {
            projection: p,
            config,
            failures: 0,
        };
        let task = tokio::spawn(follow(store, follower, stopped, inbox));
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

/// A projection as a durable consumer: its turn is a catch-up.
struct Follow {
    projection: Arc<dyn Erased>,
    config: RunnerConfig,
    /// Consecutive handler failures: the backoff's exponent.
    failures: u32,
}

impl Follower for Follow {
    type Command = Command;

    fn name(&self) -> &str {
        self.projection.name()
    }

    fn kind(&self) -> &'static str {
        "projection"
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    async fn start(&mut self, store: &Store, _lease: &Lease) -> Result<(), String> {
        setup(store, self.projection.as_ref())
            .await
            .map_err(|stop| stop.message())
    }

    async fn turn(
        &mut self,
        store: &Store,
        lease: &Lease,
        _stopped: &mut watch::Receiver<bool>,
    ) -> Turn {
        let name = self.projection.name();
        match catch_up(
            store,
            self.projection.as_ref(),
            &self.config,
            &mut |_| {},
            lease,
        )
        .await
        {
            Ok(_) => {
                self.failures = 0;
                Turn::Idle
            }
            Err(Stop::Lost { .. }) => Turn::LeaseLost,
            Err(stop @ Stop::Handler { .. }) => {
                self.failures = self.failures.saturating_add(1);
                let (position, message) = (stop.position(), stop.message());
                let _ = checkpoint::record_failure(store, name, position, &message).await;
                Turn::Backoff(
                    self.config
                        .retry_base
                        .saturating_mul(1 << self.failures.min(16))
                        .min(self.config.retry_max),
                )
            }
            // Nothing to retry: the read model holds effects of events the
            // log lost. Failed until it is rebuilt (or stopped).
            Err(stale @ Stop::Stale { .. }) => {
                let (position, message) = (stale.position(), stale.message());
                let _ = checkpoint::record_failure(store, name, position, &message).await;
                Turn::Park
            }
            // Visible in status; the position is unknown (not a handler error).
            Err(Stop::Store(e)) => {
                let _ = checkpoint::record_error(store, name, &e.to_string()).await;
                Turn::Backoff(self.config.poll_interval)
            }
        }
    }

    async fn command(&mut self, command: Command, store: &Store, lease: &Lease) {
        match command {
            Command::Rebuild(reply) => {
                let p = self.projection.as_ref();
                let r = async {
                    reset(store, p, lease).await?;
                    catch_up(store, p, &self.config, &mut |_| {}, lease).await
                }
                .await
                .map_err(|s| s.into_error(p.name()));
                let _ = reply.send(r);
            }
        }
    }
}
