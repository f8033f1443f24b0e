//! Durable projections: read models in PostgreSQL tables, kept current from a
//! checkpoint stored beside them, without ever skipping or repeating an event.
//!
//! - The read-model writes of a batch and the new checkpoint commit in **one
//!   transaction**: after a crash at any point, no event is applied twice and
//!   none is skipped.
//! - That transaction first locks the projection's row in
//!   `dcbstore.projections` (`FOR UPDATE`) and reads the checkpoint under the
//!   lock, so even two runners that both believe they are active apply each
//!   event once: the second waits, then continues from the first's checkpoint.
//! - A [`Runner`] holds a lease (a session advisory lock on a dedicated
//!   connection) so that one process at a time runs a projection; when that
//!   process dies its connection closes and another runner takes over.
//! - Catch-up, then live: the runner reads from the checkpoint up to the head,
//!   then waits for a `NOTIFY` or a polling interval. Notifications only wake
//!   it up; the log is the only source of events, so a lost notification
//!   delays an event and never loses it. Positions commit in order (see
//!   [`append`](crate::append)), so a checkpoint at the head never passes an
//!   event that commits later.
//! - A handler error rolls its batch back, records the error and the event's
//!   position in `dcbstore.projections` (see [`status`]) and is retried with
//!   backoff; other projections keep running.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use crate::{Error, EventStore, Query, ReadOptions, SequencePosition, SequencedEvent, Store};

/// What a projection handler may fail with.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A projection whose state lives in PostgreSQL tables (a read model).
///
/// Implement it with `async fn`s; each method receives the transaction that
/// will also move the checkpoint, and must do all its writes through it.
///
/// ```no_run
/// use dcbstore::durable::{DurableProjection, HandlerError};
/// use dcbstore::{Query, QueryItem, SequencedEvent};
/// use deadpool_postgres::Transaction;
///
/// struct Subscriptions;
///
/// impl DurableProjection for Subscriptions {
///     fn name(&self) -> &str {
///         "subscriptions"
///     }
///     fn query(&self) -> Query {
///         Query::item(QueryItem::types(["StudentSubscribedToCourse"]))
///     }
///     async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
///         tx.batch_execute("CREATE TABLE IF NOT EXISTS subscriptions (course text, student text)").await?;
///         Ok(())
///     }
///     async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
///         tx.batch_execute("TRUNCATE subscriptions").await?;
///         Ok(())
///     }
///     async fn apply(&self, tx: &Transaction<'_>, e: &SequencedEvent) -> Result<(), HandlerError> {
///         let d = &e.event.data;
///         tx.execute(
///             "INSERT INTO subscriptions VALUES ($1, $2)",
///             &[&d["courseId"].as_str(), &d["studentId"].as_str()],
///         )
///         .await?;
///         Ok(())
///     }
/// }
/// ```
pub trait DurableProjection: Send + Sync + 'static {
    /// A unique, stable name: the key of the checkpoint.
    fn name(&self) -> &str;

    /// The events the projection needs.
    fn query(&self) -> Query;

    /// Creates the read model if it does not exist (runs before every start).
    fn setup(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Empties the read model (runs at the start of a rebuild).
    fn reset(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies one event, in position order.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &SequencedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies a batch of events (in position order) in one go; by default,
    /// [`apply`](DurableProjection::apply) for each. Override it to write a
    /// batch with one statement (a multi-row `INSERT ... SELECT unnest(...)`)
    /// when rebuild speed matters. When it fails, the batch is rolled back and
    /// replayed event by event with `apply` to find the failing position.
    fn apply_batch(
        &self,
        tx: &Transaction<'_>,
        events: &[SequencedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for e in events {
                self.apply(tx, e).await?;
            }
            Ok(())
        }
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`DurableProjection`], so runners and registries can
/// hold projections of different types.
trait Erased: Send + Sync {
    fn name(&self) -> &str;
    fn query(&self) -> Query;
    fn setup<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>>;
    fn reset<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>>;
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        e: &'a SequencedEvent,
    ) -> BoxFut<'a, Result<(), HandlerError>>;
    fn apply_batch<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [SequencedEvent],
    ) -> BoxFut<'a, Result<(), HandlerError>>;
}

impl<P: DurableProjection> Erased for P {
    fn name(&self) -> &str {
        DurableProjection::name(self)
    }
    fn query(&self) -> Query {
        DurableProjection::query(self)
    }
    fn setup<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::setup(self, tx))
    }
    fn reset<'a>(&'a self, tx: &'a Transaction<'a>) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::reset(self, tx))
    }
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        e: &'a SequencedEvent,
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::apply(self, tx, e))
    }
    fn apply_batch<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [SequencedEvent],
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(DurableProjection::apply_batch(self, tx, events))
    }
}

/// A set of durable projections, by name: what an application hands to the
/// [`cli`](crate::durable::cli) entry point or starts [`Runner`]s from.
#[derive(Clone, Default)]
pub struct Registry {
    projections: Vec<Arc<dyn Erased>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a projection.
    #[must_use]
    pub fn with(mut self, projection: impl DurableProjection) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// The names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.projections.iter().map(|p| p.name())
    }

    fn get(&self, name: &str) -> Option<Arc<dyn Erased>> {
        self.projections.iter().find(|p| p.name() == name).cloned()
    }
}

/// How a runner or a rebuild reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Checkpoint reached.
    pub checkpoint: u64,
    /// The head the run is catching up to.
    pub head: u64,
    /// Events applied so far by this run.
    pub applied: u64,
}

/// Settings of runners and rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Events applied per transaction (default 500).
    pub batch_size: u64,
    /// Polling interval when no notification arrives (default 1 s).
    pub poll_interval: Duration,
    /// First retry delay after a handler error; doubles per failure (default 100 ms).
    pub retry_base: Duration,
    /// Longest retry delay (default 30 s).
    pub retry_max: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// A projection's row of `dcbstore.projections`, with the log's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Last position applied (0: none).
    pub checkpoint: u64,
    /// The log's head.
    pub head: u64,
    /// `head - checkpoint`: an upper bound of the events still to apply.
    pub lag: u64,
    /// `idle`, `running`, `failed` or `rebuilding`.
    pub state: String,
    /// The last handler error, while it is not resolved.
    pub last_error: Option<String>,
    /// Position of the event whose handler failed.
    pub error_position: Option<u64>,
    /// Consecutive failures.
    pub failures: i32,
    /// The runner that last held the lease.
    pub owner: Option<String>,
}

/// Every projection known to the database, by name.
pub async fn status(store: &Store) -> crate::Result<Vec<ProjectionStatus>> {
    let client = store.pool().get().await?;
    let head = store.head().await?.map_or(0, SequencePosition::get);
    let rows = client
        .query(
            "SELECT name, checkpoint, state, last_error, error_position, failures, owner \
             FROM dcbstore.projections ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let checkpoint = u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0);
            Ok(ProjectionStatus {
                name: r.try_get(0)?,
                checkpoint,
                head,
                lag: head.saturating_sub(checkpoint),
                state: r.try_get(2)?,
                last_error: r.try_get(3)?,
                error_position: r
                    .try_get::<_, Option<i64>>(4)?
                    .and_then(|p| u64::try_from(p).ok()),
                failures: r.try_get(5)?,
                owner: r.try_get(6)?,
            })
        })
        .collect()
}

/// Why a catch-up stopped early.
enum Stop {
    Handler { position: u64, error: String },
    Store(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Store(e)
    }
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Self {
        Stop::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for Stop {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Stop::Store(e.into())
    }
}

async fn ensure_row(store: &Store, name: &str) -> crate::Result<()> {
    let client = store.pool().get().await?;
    client
        .execute(
            "INSERT INTO dcbstore.projections (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await?;
    Ok(())
}

async fn set_state(
    store: &Store,
    name: &str,
    state: &str,
    owner: Option<&str>,
) -> crate::Result<()> {
    let client = store.pool().get().await?;
    client
        .execute(
            "UPDATE dcbstore.projections SET state = $2, owner = coalesce($3, owner), updated_at = now() \
             WHERE name = $1",
            &[&name, &state, &owner],
        )
        .await?;
    Ok(())
}

async fn record_failure(
    store: &Store,
    name: &str,
    position: u64,
    error: &str,
) -> crate::Result<i32> {
    tracing::error!(
        projection = name,
        position,
        error,
        "projection handler failed; retrying with backoff"
    );
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            "UPDATE dcbstore.projections SET state = 'failed', last_error = $2, error_position = $3, \
             failures = failures + 1, updated_at = now() WHERE name = $1 RETURNING failures",
            &[&name, &error, &i64::try_from(position).unwrap_or(i64::MAX)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Records an error that is not a handler's (database unreachable, setup
/// failed): visible in status, state unchanged.
async fn record_error(store: &Store, name: &str, error: &str) -> crate::Result<()> {
    tracing::warn!(projection = name, error, "projection runner error");
    let client = store.pool().get().await?;
    client
        .execute(
            "UPDATE dcbstore.projections SET last_error = $2, updated_at = now() WHERE name = $1",
            &[&name, &error],
        )
        .await?;
    Ok(())
}

async fn setup(store: &Store, p: &dyn Erased) -> Result<(), Stop> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    p.setup(&tx).await.map_err(|e| Stop::Handler {
        position: 0,
        error: format!("setup failed: {e}"),
    })?;
    tx.commit().await?;
    Ok(())
}

/// Applies every event matching the projection's query up to the head as it
/// is now, in batches of one transaction each (read-model writes + checkpoint).
async fn catch_up(
    store: &Store,
    p: &dyn Erased,
    config: &RunnerConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<u64, Stop> {
    let name = p.name().to_string();
    let query = p.query();
    let head = store.head().await?.map_or(0, SequencePosition::get);
    let mut applied = 0u64;
    loop {
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "SELECT checkpoint FROM dcbstore.projections WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await?;
        let checkpoint = u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0);
        if checkpoint >= head {
            tx.commit().await?;
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
        let events: Vec<SequencedEvent> = store
            .read(
                &query,
                ReadOptions::new()
                    .after(SequencePosition::new(checkpoint))
                    .to(SequencePosition::new(head))
                    .limit(config.batch_size),
            )
            .try_collect()
            .await?;
        if let Err(err) = p.apply_batch(&tx, &events).await {
            // Roll the batch back, then find the failing event one by one.
            drop(tx);
            return Err(locate_failure(store, p, &events, err).await);
        }
        // A short page means everything up to the head is applied.
        let reached = match events.last() {
            Some(last) if events.len() as u64 == config.batch_size => last.position.get(),
            _ => head,
        };
        tx.execute(
            "UPDATE dcbstore.projections SET checkpoint = $2::bigint, \
             state = CASE WHEN state = 'rebuilding' AND $2::bigint < $3::bigint THEN state ELSE 'running' END, \
             last_error = NULL, error_position = NULL, failures = 0, updated_at = now() \
             WHERE name = $1",
            &[
                &name,
                &i64::try_from(reached).unwrap_or(i64::MAX),
                &i64::try_from(head).unwrap_or(i64::MAX),
            ],
        )
        .await?;
        tx.commit().await?;
        applied += events.len() as u64;
        progress(Progress {
            checkpoint: reached,
            head,
            applied,
        });
    }
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
                return Ok::<_, Stop>(Some((e.position.get(), err.to_string())));
            }
        }
        Ok(None)
    }
    .await;
    match found {
        Ok(Some((position, error))) => Stop::Handler { position, error },
        // The single-event path did not fail: blame the batch's first event.
        _ => Stop::Handler {
            position: first,
            error: batch_error.to_string(),
        },
    }
}

/// Empties the read model and the checkpoint in one transaction.
async fn reset(store: &Store, p: &dyn Erased) -> Result<(), Stop> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    tx.query_one(
        "SELECT checkpoint FROM dcbstore.projections WHERE name = $1 FOR UPDATE",
        &[&p.name()],
    )
    .await?;
    p.reset(&tx).await.map_err(|e| Stop::Handler {
        position: 0,
        error: format!("reset failed: {e}"),
    })?;
    tx.execute(
        "UPDATE dcbstore.projections SET checkpoint = 0, state = 'rebuilding', last_error = NULL, \
         error_position = NULL, failures = 0, updated_at = now() WHERE name = $1",
        &[&p.name()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn stop_error(name: &str, stop: Stop) -> Error {
    match stop {
        Stop::Store(e) => e,
        Stop::Handler { position, error } => Error::Projection {
            name: name.to_string(),
            position,
            message: error,
        },
    }
}

/// Folds a whole projection's events into its read model from scratch: resets
/// the tables and the checkpoint, then replays the log in batches, reporting
/// progress. Holds the projection's lease meanwhile, waiting up to `wait` for
/// it (a runner elsewhere must stop first; an in-process [`Runner`] can
/// [`rebuild`](Runner::rebuild) itself instead).
pub async fn rebuild<P: DurableProjection>(
    store: &Store,
    projection: &P,
    config: &RunnerConfig,
    wait: Duration,
    mut progress: impl FnMut(Progress) + Send,
) -> crate::Result<u64> {
    rebuild_erased(store, projection, config, wait, &mut progress).await
}

async fn rebuild_erased(
    store: &Store,
    p: &dyn Erased,
    config: &RunnerConfig,
    wait: Duration,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> crate::Result<u64> {
    let lease = Lease::acquire(store, p.name(), Some(wait)).await?;
    let Some(lease) = lease else {
        return Err(Error::Invalid(format!(
            "projection {} is being run by another process: stop its runner (or rebuild through it) and retry",
            p.name()
        )));
    };
    ensure_row(store, p.name()).await?;
    let result = async {
        setup(store, p).await?;
        reset(store, p).await?;
        let applied = catch_up(store, p, config, progress).await?;
        Ok::<u64, Stop>(applied)
    }
    .await;
    drop(lease);
    result.map_err(|s| stop_error(p.name(), s))
}

/// The lease of a projection: a session advisory lock held by a dedicated
/// connection, which also LISTENs for appends.
struct Lease {
    client: tokio_postgres::Client,
    wakeups: mpsc::UnboundedReceiver<()>,
}

impl Lease {
    /// Takes the lease; `None` when another session holds it (after waiting
    /// up to `wait`, or at once when `wait` is `None`).
    async fn acquire(
        store: &Store,
        name: &str,
        wait: Option<Duration>,
    ) -> crate::Result<Option<Lease>> {
        let (client, mut connection) = crate::connection::open(store.config(), store.tls()).await?;
        let (tx, wakeups) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let AsyncMessage::Notification(_) = m {
                    let _ = tx.send(());
                }
            }
            // Dropping `tx` tells the runner the lease is gone.
        });
        let key = format!("dcbstore.projection:{name}");
        let got: bool = match wait {
            None => client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&key],
                )
                .await?
                .try_get(0)?,
            Some(wait) => {
                let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX).max(1);
                client
                    .batch_execute(&format!("SET lock_timeout = {ms}"))
                    .await?;
                match client
                    .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
                    .await
                {
                    Ok(_) => true,
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
                    {
                        false
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !got {
            return Ok(None);
        }
        client.batch_execute("LISTEN dcbstore_events").await?;
        Ok(Some(Lease { client, wakeups }))
    }

    fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }
}

enum Command {
    Rebuild(tokio::sync::oneshot::Sender<crate::Result<u64>>),
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
    pub fn start_all(store: &Store, registry: &Registry, config: RunnerConfig) -> Vec<Runner> {
        registry
            .projections
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
    pub async fn rebuild(&self) -> crate::Result<u64> {
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
    let name = p.name().to_string();
    let mut failures: u32 = 0;
    'lease: while !*stopped.borrow() {
        let lease = match Lease::acquire(&store, &name, None).await {
            Ok(Some(lease)) => lease,
            Ok(None) | Err(_) => {
                // Someone else runs it (or the database is away): try later.
                if wait_or_stop(&mut stopped, config.poll_interval).await {
                    return;
                }
                continue 'lease;
            }
        };
        let mut lease = lease;
        tracing::info!(projection = %name, owner = %owner, "projection lease taken");
        let started = async {
            ensure_row(&store, &name).await?;
            set_state(&store, &name, "running", Some(&owner)).await?;
            Ok::<(), Error>(())
        }
        .await;
        let set = match started {
            Ok(()) => setup(&store, p.as_ref()).await,
            Err(e) => Err(Stop::Store(e)),
        };
        if let Err(stop) = set {
            let message = match stop {
                Stop::Handler { error, .. } => error,
                Stop::Store(e) => e.to_string(),
            };
            let _ = record_error(&store, &name, &message).await;
            drop(lease);
            if wait_or_stop(&mut stopped, config.poll_interval).await {
                return;
            }
            continue 'lease;
        }
        let mut pending: Option<Command> = None;
        loop {
            if *stopped.borrow() {
                let _ = set_state(&store, &name, "idle", None).await;
                return;
            }
            if let Some(Command::Rebuild(reply)) = pending.take().or_else(|| inbox.try_recv().ok())
            {
                let r = async {
                    reset(&store, p.as_ref()).await?;
                    catch_up(&store, p.as_ref(), &config, &mut |_| {}).await
                }
                .await
                .map_err(|s| stop_error(&name, s));
                let _ = reply.send(r);
            }
            match catch_up(&store, p.as_ref(), &config, &mut |_| {}).await {
                Ok(_) => failures = 0,
                Err(Stop::Handler { position, error }) => {
                    failures = failures.saturating_add(1);
                    let _ = record_failure(&store, &name, position, &error).await;
                    let delay = config
                        .retry_base
                        .saturating_mul(1 << failures.min(16))
                        .min(config.retry_max);
                    if wait_or_stop(&mut stopped, delay).await {
                        return;
                    }
                    continue;
                }
                Err(Stop::Store(e)) => {
                    // Visible in status; the position is unknown (not a handler error).
                    let _ = record_error(&store, &name, &e.to_string()).await;
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
                w = lease.wakeups.recv() => {
                    if w.is_none() {
                        continue 'lease;
                    }
                    while lease.wakeups.try_recv().is_ok() {}
                }
                c = inbox.recv() => pending = c,
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = stopped.changed() => {}
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

pub mod cli {
    //! The projection commands an application exposes through its own binary
    //! (projections are its code, so the `dcbstore` tool cannot load them):
    //!
    //! ```no_run
    //! # use dcbstore::durable::{cli, Registry};
    //! # async fn f(store: dcbstore::Store, registry: Registry) {
    //! // myapp projections status | rebuild <name> | run
    //! let code = cli::run(&store, &registry, std::env::args().skip(2)).await;
    //! std::process::exit(code);
    //! # }
    //! ```
    use super::*;

    /// Runs `status [--json]`, `rebuild NAME` (with a progress bar on stderr)
    /// or `run` (every registered projection live, until Ctrl-C). Returns the
    /// exit status: 0, 1 on error, 2 on usage.
    pub async fn run(
        store: &Store,
        registry: &Registry,
        args: impl IntoIterator<Item = String>,
    ) -> i32 {
        let args: Vec<String> = args.into_iter().collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = match args.as_slice() {
            ["status"] => print_status(store, false).await,
            ["status", "--json"] => print_status(store, true).await,
            ["rebuild", name] => rebuild_with_bar(store, registry, name).await,
            ["run"] => run_all(store, registry).await,
            _ => {
                eprintln!(
                    "usage: projections status [--json] | rebuild NAME | run\nregistered: {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                );
                return 2;
            }
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    }

    /// Prints [`status`] as a table or as JSON lines.
    pub async fn print_status(store: &Store, json: bool) -> crate::Result<()> {
        let rows = status(store).await?;
        if json {
            for r in &rows {
                println!(
                    "{}",
                    serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?
                );
            }
            return Ok(());
        }
        println!(
            "{:<24} {:>10} {:>10} {:>8} {:<10} last error",
            "name", "checkpoint", "head", "lag", "state"
        );
        for r in &rows {
            let error = match (&r.last_error, r.error_position) {
                (Some(e), Some(p)) => format!("at position {p}: {e}"),
                (Some(e), None) => e.clone(),
                _ => "-".into(),
            };
            println!(
                "{:<24} {:>10} {:>10} {:>8} {:<10} {}",
                r.name, r.checkpoint, r.head, r.lag, r.state, error
            );
        }
        Ok(())
    }

    async fn rebuild_with_bar(store: &Store, registry: &Registry, name: &str) -> crate::Result<()> {
        let p = registry.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "no projection named {name:?}; registered: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} positions, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("rebuilding {name}"));
        let mut report = |p: Progress| {
            bar.set_length(p.head);
            bar.set_position(p.checkpoint);
        };
        let applied = rebuild_erased(
            store,
            p.as_ref(),
            &RunnerConfig {
                batch_size: 5000,
                ..RunnerConfig::default()
            },
            Duration::from_secs(10),
            &mut report,
        )
        .await;
        bar.finish_and_clear();
        let applied = applied?;
        eprintln!("rebuilt {name}: {applied} events applied");
        Ok(())
    }

    async fn run_all(store: &Store, registry: &Registry) -> crate::Result<()> {
        let runners = Runner::start_all(store, registry, RunnerConfig::default());
        eprintln!("running {} projection(s); Ctrl-C stops", runners.len());
        let _ = tokio::signal::ctrl_c().await;
        for r in runners {
            r.stop().await;
        }
        Ok(())
    }
}
