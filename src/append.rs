//! Conditional appends: [`AppendCondition`], their outcome, and the batching
//! writer that turns concurrent appends of one process into one transaction.
//!
//! # Why positions are safe to follow
//!
//! Every append runs `dcbstore.append_batch` (see `sql/0001_init.sql`), which
//! takes one transaction-scoped advisory lock *before* it assigns positions
//! and holds it until commit. PostgreSQL makes a commit visible before it
//! releases the transaction's locks, so:
//!
//! 1. appends commit one at a time, in position order: there is never an
//!    uncommitted position below a committed one, every snapshot sees a prefix
//!    of the log, and `read(after: p)` in a loop or `head()` never skips an
//!    event that commits later;
//! 2. the condition is checked by statements that start after the lock is
//!    granted (READ COMMITTED takes a fresh snapshot per statement), so they see
//!    every append that committed before, and none can commit in between: the
//!    check and the write are atomic against every appender, in any process;
//! 3. whether an append conflicts depends only on the events its guards match,
//!    so appends whose queries cannot match each other's events never fail
//!    because of each other (they only queue for the lock).
//!
//! The lock serializes commits, so one fsync per append would cap throughput.
//! Within one process the [`Store`](crate::Store) therefore queues appends;
//! a writer task takes everything waiting and sends it as one
//! `append_batch_unchecked` call (the input is validated here, at the edge):
//! one transaction, one fsync. Requests are checked in order against the log
//! plus the earlier requests of the batch, and one request's conflict does not
//! fail the others. The log up to the head seen on arrival is checked before
//! the lock; under it, only what was committed meanwhile.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use postgres_types::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::query::Query;
use crate::{Error, Result};

/// At most this many conflicting events are returned with a [`Conflict`].
pub const CONFLICT_EVENTS_CAP: usize = 100;

/// One guard of an [`AppendCondition`]: fail if an event matching
/// `fail_if_events_match` exists after `after` (anywhere when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendGuard {
    /// The query whose matches make the append fail.
    #[serde(rename = "query")]
    pub fail_if_events_match: Query,
    /// Only events after this position count.
    #[serde(default)]
    pub after: Option<SequencePosition>,
}

/// The DCB append condition: one or more guards, any of which failing makes
/// the append write nothing and return [`Error::Conflict`].
///
/// ```
/// use dcbstore::{AppendCondition, Query, QueryItem, SequencePosition};
///
/// // The DCB specification's single condition:
/// let c = AppendCondition::new(Query::item(QueryItem::tags(["course:c1"])), Some(SequencePosition::new(42)));
/// // A decision that read two boundaries at different positions:
/// let c = c.and(Query::item(QueryItem::tags(["student:s1"])), None);
/// assert_eq!(c.guards.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppendCondition {
    /// The guards; the append fails when any of them matches.
    pub guards: Vec<AppendGuard>,
}

impl AppendCondition {
    /// A condition with one guard (the DCB specification's condition).
    #[must_use]
    pub fn new(fail_if_events_match: Query, after: Option<SequencePosition>) -> Self {
        AppendCondition {
            guards: vec![AppendGuard {
                fail_if_events_match,
                after,
            }],
        }
    }

    /// Adds a guard.
    #[must_use]
    pub fn and(mut self, fail_if_events_match: Query, after: Option<SequencePosition>) -> Self {
        self.guards.push(AppendGuard {
            fail_if_events_match,
            after,
        });
        self
    }

    /// Checks the guards: at least one, at most [`MAX_GUARDS`](crate::limits::MAX_GUARDS),
    /// each query valid, each position one the database can hold.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.guards.is_empty() {
            return Err(Error::invalid(
                "append condition has no guards: pass no condition for an unconditional append",
            ));
        }
        if self.guards.len() > crate::limits::MAX_GUARDS {
            return Err(Error::invalid(format!(
                "append condition has {} guards; the limit is {}",
                self.guards.len(),
                crate::limits::MAX_GUARDS
            )));
        }
        for g in &self.guards {
            g.fail_if_events_match.validate()?;
            if g.after.is_some_and(|p| i64::try_from(p.get()).is_err()) {
                return Err(Error::invalid(format!(
                    "a guard's after position must be at most {}",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        Value::Array(
            self.guards
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "query": g.fail_if_events_match.to_json(),
                        "after": g.after.map(SequencePosition::get),
                    })
                })
                .collect(),
        )
    }
}

/// A successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Appended {
    /// Position of the last event of the append.
    pub position: SequencePosition,
    /// True when every event was already stored with the same content (an
    /// idempotent retry): nothing new was written.
    pub already_stored: bool,
}

/// Why a conditional append failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Position of the latest conflicting event.
    pub position: SequencePosition,
    /// The conflicting events in position order, at most
    /// [`CONFLICT_EVENTS_CAP`] of them (the earliest).
    pub events: Vec<SequencedEvent>,
}

/// Rejects empty strings, NUL bytes (PostgreSQL text cannot hold NUL) and
/// names longer than [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
pub(crate) fn check_text(what: &str, s: &str) -> Result<()> {
    use crate::limits::MAX_NAME_BYTES;
    if s.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if s.len() > MAX_NAME_BYTES {
        let head: String = s.chars().take(40).collect();
        return Err(Error::invalid(format!(
            "{what} \"{head}...\" is {} bytes long; the limit is {MAX_NAME_BYTES} bytes",
            s.len()
        )));
    }
    if s.contains('\0') {
        return Err(Error::invalid(format!(
            "{what} {s:?} contains a NUL byte, which PostgreSQL cannot store"
        )));
    }
    Ok(())
}

/// Deepest JSON nesting accepted: deeper values could be stored but not
/// read back (JSON decoders stop at 128 levels).
pub const MAX_JSON_DEPTH: usize = 100;

/// Checks `v`, which has `depth` arrays or objects around it: at most
/// [`MAX_JSON_DEPTH`] of them nest, whatever the innermost holds (an empty
/// one counts too), and no string or key holds a NUL.
pub(crate) fn check_json(what: &str, v: &Value, depth: usize) -> Result<()> {
    match v {
        Value::String(s) if s.contains('\0') => Err(Error::invalid(format!(
            "{what} contains a string with a NUL byte (\\u0000), which PostgreSQL cannot store"
        ))),
        Value::Array(_) | Value::Object(_) if depth >= MAX_JSON_DEPTH => Err(Error::invalid(
            format!("{what} is nested deeper than {MAX_JSON_DEPTH} levels"),
        )),
        Value::Array(a) => a.iter().try_for_each(|x| check_json(what, x, depth + 1)),
        Value::Object(m) => check_object(what, m, depth + 1),
        _ => Ok(()),
    }
}

pub(crate) fn check_object(
    what: &str,
    m: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<()> {
    for (k, x) in m {
        if k.contains('\0') {
            return Err(Error::invalid(format!(
                "{what} has a key with a NUL byte (\\u0000), which PostgreSQL cannot store"
            )));
        }
        check_json(what, x, depth)?;
    }
    Ok(())
}

/// A validated append, ready to join a batch.
#[derive(Debug)]
pub(crate) struct PreparedAppend {
    events: Vec<Event>,
    condition: Option<Value>,
}

impl PreparedAppend {
    pub(crate) fn new(events: Vec<Event>, condition: Option<&AppendCondition>) -> Result<Self> {
        use crate::limits::{
            json_bytes, MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND, MAX_EVENT_BYTES,
            MAX_TAGS_PER_EVENT,
        };
        if events.is_empty() {
            return Err(Error::invalid("an append needs at least one event"));
        }
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(Error::invalid(format!(
                "an append of {} events is over the limit of {MAX_EVENTS_PER_APPEND}: split it into several appends (each is atomic on its own)",
                events.len()
            )));
        }
        let mut seen = HashSet::with_capacity(events.len());
        let mut events = events;
        let mut total = 0usize;
        for (i, e) in events.iter_mut().enumerate() {
            check_text(&format!("event {} type", i + 1), &e.event_type)?;
            if e.tags.len() > MAX_TAGS_PER_EVENT {
                return Err(Error::invalid(format!(
                    "event {} has {} tags; the limit is {MAX_TAGS_PER_EVENT}",
                    i + 1,
                    e.tags.len()
                )));
            }
            let bytes = json_bytes(&e.data) + json_bytes(&e.metadata);
            if bytes > MAX_EVENT_BYTES {
                return Err(Error::invalid(format!(
                    "event {} is {bytes} bytes of JSON (data and metadata); the limit is {MAX_EVENT_BYTES}: keep large payloads elsewhere and store a reference",
                    i + 1
                )));
            }
            total += bytes;
            if total > MAX_APPEND_BYTES {
                return Err(Error::invalid(format!(
                    "the append is over {MAX_APPEND_BYTES} bytes of JSON by event {}: split it into several appends",
                    i + 1
                )));
            }
            for t in &e.tags {
                check_text(&format!("event {} tag", i + 1), t)?;
            }
            check_json(&format!("event {} data", i + 1), &e.data, 0)?;
            check_object(&format!("event {} metadata", i + 1), &e.metadata, 1)?;
            if !seen.insert(e.id) {
                return Err(Error::invalid(format!(
                    "event id {} appears twice in one append",
                    e.id
                )));
            }
            e.tags.sort_unstable();
            e.tags.dedup();
        }
        if let Some(c) = condition {
            c.validate()?;
        }
        Ok(PreparedAppend {
            events,
            condition: condition.map(AppendCondition::to_json),
        })
    }
}

struct Request {
    append: PreparedAppend,
    reply: oneshot::Sender<Result<Appended>>,
}

/// Handle to the writer task; cloning shares the task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(
        pool: Pool,
        max_batch_events: usize,
        writers: usize,
        timeout: Option<Duration>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(run_writer(
                pool.clone(),
                rx.clone(),
                max_batch_events,
                timeout,
            ));
        }
        Writer { tx }
    }

    pub(crate) async fn append(&self, append: PreparedAppend) -> Result<Appended> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { append, reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// At most this many requests share one transaction: it bounds the work done
/// under the append lock when many requests guard one hot boundary.
const MAX_BATCH_REQUESTS: usize = 256;

async fn run_writer(
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<Request>>>,
    max_batch_events: usize,
    timeout: Option<Duration>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut events = first.append.events.len();
            let mut batch = vec![first];
            // Take whatever else is already waiting: these share one commit.
            while events < max_batch_events && batch.len() < MAX_BATCH_REQUESTS {
                match rx.try_recv() {
                    Ok(r) => {
                        events += r.append.events.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            // A caller that gave up before its append was sent: do not send it.
            batch.retain(|r| !r.reply.is_closed());
            batch
        };
        if batch.is_empty() {
            continue;
        }
        let (appends, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.append, r.reply)).unzip();
        let started = std::time::Instant::now();
        let result = execute_batch(&pool, &appends, timeout).await;
        let events: usize = appends.iter().map(|a| a.events.len()).sum();
        match &result {
            Ok(results) => tracing::debug!(
                requests = appends.len(),
                events,
                conflicts = results
                    .iter()
                    .filter(|r| matches!(r, Err(Error::Conflict(_))))
                    .count(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "append batch"
            ),
            Err(e) => tracing::warn!(
                requests = appends.len(),
                events,
                error = %e,
                "append batch failed"
            ),
        }
        match result {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

const APPEND_BATCH_SQL: &str = "SELECT request, outcome, position, conflict, error \
     FROM dcbstore.append_batch_unchecked($1, $2, $3, $4, $5, $6, $7, $8)";

/// Runs one `append_batch` call (one round trip, one transaction).
async fn execute_batch(
    pool: &Pool,
    appends: &[PreparedAppend],
    timeout: Option<Duration>,
) -> Result<Vec<Result<Appended>>> {
    let client = pool.get().await?;
    let call = async {
        let stmt = client.prepare_cached(APPEND_BATCH_SQL).await?;
        run_append_batch(&**client, &stmt, appends).await
    };
    match timeout {
        None => call.await,
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may still be busy with the call: close it
                // rather than hand it to the next caller.
                drop(deadpool_postgres::Object::take(client));
                Err(Error::OutcomeUnknown {
                    reason: format!("no answer from the server within {t:?}"),
                })
            }
        },
    }
}

/// An error of the append call, by what it says about the append's outcome.
fn append_error(e: tokio_postgres::Error) -> Error {
    let code = e.as_db_error().map(|db| db.code().code().to_string());
    match code.as_deref() {
        // Lost connection or the server going away: the commit may have happened.
        None => Error::OutcomeUnknown {
            reason: format!("connection lost: {e}"),
        },
        Some(c) if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03") => {
            Error::OutcomeUnknown {
                reason: format!("connection lost: {}", display_db_message(&e)),
            }
        }
        Some("55P03") => Error::Timeout {
            operation: "waiting for the append lock".into(),
            after: None,
            hint: "lock_timeout was reached while another transaction held the append lock (a long transaction that called dcbstore.append?); nothing was written, retry".into(),
        },
        Some("57014") => Error::Timeout {
            operation: "the append".into(),
            after: None,
            hint: "statement_timeout was reached (waiting for the append lock, or a very large append); nothing was written, retry".into(),
        },
        _ => e.into(),
    }
}

fn display_db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string())
}

/// Appends within the caller's transaction (or on the caller's connection),
/// bypassing the batching writer: for code that must write the events and
/// its own rows atomically.
///
/// The append lock is held until the caller's transaction ends, so every
/// other appender waits for it: keep such transactions short. The
/// transaction must be READ COMMITTED (the default).
pub async fn append_in<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    events: Vec<Event>,
    condition: Option<&AppendCondition>,
) -> Result<Appended> {
    let prepared = PreparedAppend::new(events, condition)?;
    let stmt = client.prepare(APPEND_BATCH_SQL).await?;
    let mut results = run_append_batch(client, &stmt, std::slice::from_ref(&prepared)).await?;
    results
        .pop()
        .unwrap_or_else(|| Err(Error::Decode("the database returned no outcome".into())))
}

async fn run_append_batch<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    stmt: &tokio_postgres::Statement,
    appends: &[PreparedAppend],
) -> Result<Vec<Result<Appended>>> {
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    let mut ids = Vec::with_capacity(total);
    let mut types = Vec::with_capacity(total);
    let mut data = Vec::with_capacity(total);
    let mut metadata = Vec::with_capacity(total);
    let mut tag_ends = Vec::with_capacity(total);
    let mut tags: Vec<&str> = Vec::new();
    let mut request_ends = Vec::with_capacity(appends.len());
    let mut conditions = Vec::with_capacity(appends.len());
    for a in appends {
        for e in &a.events {
            ids.push(e.id);
            types.push(e.event_type.as_str());
            data.push(&e.data);
            metadata.push(Json(&e.metadata));
            tags.extend(e.tags.iter().map(String::as_str));
            tag_ends.push(to_i32(tags.len())?);
        }
        request_ends.push(to_i32(ids.len())?);
        conditions.push(a.condition.as_ref());
    }
    let rows = client
        .query(
            stmt,
            &[
                &ids,
                &types,
                &data,
                &metadata,
                &tag_ends,
                &tags,
                &request_ends,
                &conditions,
            ],
        )
        .await
        .map_err(append_error)?;
    // The batch has committed: from here on, a row that cannot be read is
    // that request's problem only, never the others'.
    let mut results: Vec<Option<Result<Appended>>> = (0..appends.len()).map(|_| None).collect();
    for row in rows {
        let Ok(request) = row.try_get::<_, i32>(0) else {
            continue;
        };
        if let Some(slot) = usize::try_from(request - 1)
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Some(decode_outcome(&row));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(Error::Decode(
                "the database returned no outcome for an append; its result is unknown: resend the same events (same ids) to find out".into(),
            )))
        })
        .collect())
}

fn decode_outcome(row: &tokio_postgres::Row) -> Result<Appended> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::Decode(format!(
            "unreadable append outcome ({e}); resend the same events (same ids) to learn it"
        ))
    };
    let outcome: &str = row.try_get(1).map_err(|e| unreadable(&e))?;
    match outcome {
        "appended" | "duplicate" => {
            let position: Option<i64> = row.try_get(2).map_err(|e| unreadable(&e))?;
            let position = position
                .filter(|p| *p > 0)
                .ok_or_else(|| unreadable(&"no position"))?;
            Ok(Appended {
                position: SequencePosition::from_sql(position),
                already_stored: outcome == "duplicate",
            })
        }
        "conflict" => {
            let conflict: Value = row.try_get(3).map_err(|e| unreadable(&e))?;
            let conflict: Conflict =
                serde_json::from_value(conflict).map_err(|e| unreadable(&e))?;
            Err(Error::Conflict(Box::new(conflict)))
        }
        _ => {
            let message: String = row
                .try_get::<_, Option<String>>(4)
                .map_err(|e| unreadable(&e))?
                .unwrap_or_default();
            let id = message
                .split_whitespace()
                .find_map(|w| Uuid::parse_str(w).ok())
                .unwrap_or_default();
            Err(Error::IdConflict { id, message })
        }
    }
}

fn to_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::invalid("too many events or tags in one append"))
}
