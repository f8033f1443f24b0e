//! Level 2: [`Jobs`], a bounded pool of background tasks that runs an
//! event's subscribers after the emit returns, with retries.
//!
//! **Not durable.** Jobs live in the process's memory: a crash (or a
//! shutdown that runs out of time) loses the jobs still queued, and
//! [`Jobs::shutdown`] says how many. For work that must survive a crash,
//! emit the event at level 3 and use a
//! [`DurableSubscriber`](super::DurableSubscriber).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dispatch::{EmitContext, Envelope, Handler};
use dcbstore::schema::EventDefinition;
use dcbstore::HandlerError;

type BoxFut = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type JobFn = dyn Fn(Envelope) -> BoxFut + Send + Sync;
/// The labelled jobs of each event name.
type Routes = HashMap<String, Vec<(Arc<str>, Arc<JobFn>)>>;

/// The pool's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobConfig {
    /// Jobs run at once (default 4).
    pub workers: usize,
    /// Jobs waiting at most; an emit waits for room beyond it (default 1024).
    pub queue: usize,
    /// Attempts per job (default 3; at least 1).
    pub max_attempts: u32,
    /// First retry delay, doubling with jitter (default 100 ms).
    pub retry_min: Duration,
    /// Longest retry delay (default 5 s).
    pub retry_max: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            workers: 4,
            queue: 1024,
            max_attempts: 3,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs that succeeded (over the pool's life).
    pub completed: u64,
    /// Jobs that failed every attempt (over the pool's life).
    pub failed: u64,
    /// Jobs queued or running when the deadline passed: lost.
    pub dropped: u64,
}

struct Job {
    label: Arc<str>,
    envelope: Envelope,
    run: Arc<JobFn>,
}

struct Shared {
    config: JobConfig,
    closed: AtomicBool,
    /// Tells the workers to drain what is queued and stop.
    stopping: tokio::sync::watch::Sender<bool>,
    completed: AtomicU64,
    failed: AtomicU64,
    /// Queued or running.
    pending: AtomicU64,
}

/// The level-2 handler: register it on the
/// [`Dispatcher`](crate::dispatch::Dispatcher) for `Level::Job`. Cheap to
/// clone; clones share the pool.
///
/// ```no_run
/// use dcbstore_delivery::job::{JobConfig, Jobs};
/// # use dcbstore::schema::{EventDefinition, Level};
/// # #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// # struct UserRegistered { email: String }
/// # impl EventDefinition for UserRegistered { const NAME: &'static str = "user_registered"; const LEVEL: Level = Level::Job; }
///
/// # async fn f() {
/// let jobs = Jobs::builder(JobConfig::default())
///     .on::<UserRegistered, _, _>("welcome mail", |e, _envelope| async move {
///         println!("mailing {}", e.email);
///         Ok(())
///     })
///     .start();
/// // Dispatcher::new(schema).handler(Level::Job, "jobs", jobs.clone()) ...
/// let report = jobs.shutdown(std::time::Duration::from_secs(10)).await;
/// assert_eq!(report.dropped, 0);
/// # }
/// ```
#[derive(Clone)]
pub struct Jobs {
    tx: mpsc::Sender<Job>,
    routes: Arc<Routes>,
    shared: Arc<Shared>,
    workers: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("config", &self.shared.config)
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Registers the subscribers of a [`Jobs`] pool before it starts.
pub struct JobsBuilder {
    config: JobConfig,
    routes: Routes,
}

impl std::fmt::Debug for JobsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JobsBuilder {
    /// Runs `f` for each event named `E::NAME`, as a job labelled `label`.
    #[must_use]
    pub fn on<E, F, Fut>(mut self, label: &str, f: F) -> Self
    where
        E: EventDefinition,
        F: Fn(E, Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run: Arc<JobFn> = Arc::new(move |envelope: Envelope| {
            let f = f.clone();
            Box::pin(async move {
                let payload =
                    dcbstore::typed::upcast::<E>(envelope.version, envelope.payload.clone())?;
                let event: E = serde_json::from_value(payload)?;
                f(event, envelope).await
            })
        });
        self.routes
            .entry(E::NAME.to_string())
            .or_default()
            .push((Arc::from(label), run));
        self
    }

    /// Starts the workers on the current tokio runtime.
    #[must_use]
    pub fn start(self) -> Jobs {
        let config = JobConfig {
            workers: self.config.workers.max(1),
            queue: self.config.queue.max(1),
            max_attempts: self.config.max_attempts.max(1),
            ..self.config
        };
        let (tx, rx) = mpsc::channel(config.queue);
        let rx = Arc::new(Mutex::new(rx));
        let (stopping, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            closed: AtomicBool::new(false),
            stopping,
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        });
        let workers = (0..config.workers)
            .map(|_| {
                let stop = shared.stopping.subscribe();
                tokio::spawn(work(rx.clone(), shared.clone(), stop))
            })
            .collect();
        Jobs {
            tx,
            routes: Arc::new(self.routes),
            shared,
            workers: Arc::new(std::sync::Mutex::new(workers)),
        }
    }
}

impl Jobs {
    /// A pool with `config`; register subscribers, then start it.
    pub fn builder(config: JobConfig) -> JobsBuilder {
        JobsBuilder {
            config,
            routes: HashMap::new(),
        }
    }

    /// Jobs queued or running now.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::SeqCst)
    }

    /// Stops taking jobs, lets the workers drain the queue for up to
    /// `deadline`, then stops them: the report counts what was dropped.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Not by locking the receiver: an idle worker holds it while it
        // waits for a job.
        self.shared.stopping.send_replace(true);
        let workers: Vec<JoinHandle<()>> = self
            .workers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        let drained = tokio::time::timeout(deadline, async {
            for w in &workers {
                // A worker that panicked is gone; the others go on.
                while !w.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
        .await;
        if drained.is_err() {
            for w in &workers {
                w.abort();
            }
        }
        let dropped = self.shared.pending.load(Ordering::SeqCst);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "job pool shut down before its queue drained: jobs lost"
            );
            ::metrics::counter!(dcbstore::metrics::JOBS_DROPPED_TOTAL).increment(dropped);
        }
        ShutdownReport {
            completed: self.shared.completed.load(Ordering::SeqCst),
            failed: self.shared.failed.load(Ordering::SeqCst),
            dropped,
        }
    }
}

impl Handler for Jobs {
    async fn handle(
        &self,
        envelope: &Envelope,
        _context: &EmitContext,
    ) -> Result<(), HandlerError> {
        let Some(routes) = self.routes.get(&envelope.name) else {
            return Ok(());
        };
        for (label, run) in routes {
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err("the job pool is shut down: the job was not queued".into());
            }
            self.shared.pending.fetch_add(1, Ordering::SeqCst);
            let job = Job {
                label: label.clone(),
                envelope: envelope.clone(),
                run: run.clone(),
            };
            if self.tx.send(job).await.is_err() {
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
                return Err("the job pool is shut down: the job was not queued".into());
            }
            ::metrics::counter!(dcbstore::metrics::JOBS_QUEUED_TOTAL).increment(1);
        }
        Ok(())
    }
}

async fn work(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // Once told to stop, take what is still queued, then end.
        let job = {
            let mut rx = rx.lock().await;
            if *stop.borrow() {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    job = rx.recv() => job,
                    _ = stop.changed() => rx.try_recv().ok(),
                }
            }
        };
        let Some(job) = job else {
            return;
        };
        let span = tracing::info_span!("job", label = %job.label, name = %job.envelope.name, key = %job.envelope.idempotency_key);
        let ok = run_job(&job, &shared.config).instrument(span).await;
        if ok {
            shared.completed.fetch_add(1, Ordering::SeqCst);
            ::metrics::counter!(dcbstore::metrics::JOBS_COMPLETED_TOTAL).increment(1);
        } else {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            ::metrics::counter!(dcbstore::metrics::JOBS_FAILED_TOTAL).increment(1);
        }
        shared.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs a job with its retries; true when an attempt succeeded.
async fn run_job(job: &Job, config: &JobConfig) -> bool {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(config.retry_min)
        .with_max_delay(config.retry_max.max(config.retry_min))
        .with_jitter()
        .without_max_times()
        .build();
    for attempt in 1..=config.max_attempts {
        match (job.run)(job.envelope.clone()).await {
            Ok(()) => return true,
            Err(e) if attempt < config.max_attempts => {
                tracing::warn!(attempt, error = %e, "job failed; retrying");
                tokio::time::sleep(delays.next().unwrap_or(config.retry_max)).await;
            }
            Err(e) => {
                tracing::error!(attempts = attempt, error = %e, "job failed every attempt; given up (level 2 is not durable)");
            }
        }
    }
    false
}
