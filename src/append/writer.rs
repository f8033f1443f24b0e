//! The batching writer: one task (or a few) taking every append waiting and
//! sending them as one transaction.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch::execute_batch;
use super::prepare::PreparedAppend;
use super::request::Request;
use crate::error::{Error, Result};
use crate::pooled::Pooled;
use crate::Appended;

/// At most this many requests share one transaction: it bounds the work done
/// under the append lock when many requests guard one hot boundary.
const MAX_BATCH_REQUESTS: usize = 256;

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Soft cap on events: a batch takes no more requests once it has this many.
    pub(crate) events: usize,
    /// Cap on the JSON bytes of a batch: a request that would take it over
    /// waits for the next one (a request alone may reach it), so a batch's
    /// message stays far below PostgreSQL's 1 GiB.
    pub(crate) bytes: usize,
}

/// Handle to the writer task; cloning shares the task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(pooled: Pooled, limits: BatchLimits, writers: usize) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(run_writer(pooled.clone(), rx.clone(), limits));
        }
        Writer { tx }
    }

    pub(crate) async fn append(&self, append: PreparedAppend, since: Instant) -> Result<Appended> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                append,
                since,
                reply,
            })
            .await
            // Never handed over: not written.
            .map_err(|_| Error::NotWritten(Box::new(Error::Closed)))?;
        // Handed over, and the writer went away before answering: it may
        // have been in the middle of this append's batch.
        rx.await.map_err(|_| Error::OutcomeUnknown {
            reason: "the store's writer stopped before answering".into(),
            source: None,
        })?
    }
}

/// Takes the next batch: `carried` (a request the last batch had no room
/// for) or the first waiting, then whatever else waits, within `limits`.
async fn next_batch(
    rx: &Mutex<mpsc::Receiver<Request>>,
    carried: &mut Option<Request>,
    limits: BatchLimits,
) -> Option<Vec<Request>> {
    let (first, mut rx) = match carried.take() {
        // With a request in hand, never wait for the receiver: another
        // writer may be holding it, idle, until the next append arrives.
        Some(r) => match rx.try_lock() {
            Ok(rx) => (r, Some(rx)),
            Err(_) => (r, None),
        },
        None => {
            let mut rx = rx.lock().await;
            let first = rx.recv().await?;
            (first, Some(rx))
        }
    };
    let (mut events, mut bytes) = (first.append.events.len(), first.append.bytes);
    let mut batch = vec![first];
    // Take whatever else is already waiting: these share one commit.
    while let Some(rx) = rx.as_mut() {
        if events >= limits.events || batch.len() >= MAX_BATCH_REQUESTS {
            break;
        }
        let Ok(r) = rx.try_recv() else {
            break;
        };
        if bytes + r.append.bytes > limits.bytes {
            *carried = Some(r);
            break;
        }
        events += r.append.events.len();
        bytes += r.append.bytes;
        batch.push(r);
    }
    // A caller that gave up before its append was sent: do not send it.
    batch.retain(|r| !r.reply.is_closed());
    // The requests of a batch are concurrent: any order is theirs to be
    // decided in. Oldest decision first, so that one which lost a race is
    // not overtaken on its boundary by newer ones (stable: arrival order
    // among equals).
    batch.sort_by_key(|r| r.since);
    Some(batch)
}

async fn run_writer(pooled: Pooled, rx: Arc<Mutex<mpsc::Receiver<Request>>>, limits: BatchLimits) {
    let mut carried = None;
    while let Some(batch) = next_batch(&rx, &mut carried, limits).await {
        if batch.is_empty() {
            continue;
        }
        let (appends, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.append, r.reply)).unzip();
        let results = run_batch(&pooled, appends).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// One outcome per append of the batch. A batch the database refused as a
/// whole because of what a request holds (bad data, a constraint, a limit, a
/// rule of the database raising an error) is sent again request by request,
/// so that only the request at fault fails.
async fn run_batch(pooled: &Pooled, appends: Vec<PreparedAppend>) -> Vec<Result<Appended>> {
    let started = std::time::Instant::now();
    let events: usize = appends.iter().map(|a| a.events.len()).sum();
    let requests = appends.len();
    let appends = Arc::new(appends);
    let result = execute_batch(pooled, appends.clone()).await;
    match &result {
        Ok(results) => tracing::debug!(
            requests,
            events,
            conflicts = results
                .iter()
                .filter(|r| matches!(r, Err(Error::Conflict(_))))
                .count(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "append batch"
        ),
        Err(e) => tracing::warn!(requests, events, error = %e, "append batch failed"),
    }
    match result {
        Ok(results) => results,
        Err(Error::Database(e)) if requests > 1 && refused_for_its_content(&e) => {
            tracing::warn!(error = %e, "sending the batch's appends one by one");
            let Ok(appends) = Arc::try_unwrap(appends) else {
                return (0..requests)
                    .map(|_| Err(Error::Database(e.clone())))
                    .collect();
            };
            let mut results = Vec::with_capacity(requests);
            for append in appends {
                let one = execute_batch(pooled, Arc::new(vec![append])).await;
                results.push(one.and_then(|mut r| {
                    r.pop()
                        .unwrap_or_else(|| Err(Error::decode("the database returned no outcome")))
                }));
            }
            results
        }
        Err(e) => (0..requests).map(|_| Err(e.clone())).collect(),
    }
}

/// Whether the database refused a statement for the data it was given:
/// SQLSTATE classes 22 (data exception), 23 (integrity constraint), 54
/// (program limit) and P0 (raised by a function or trigger). Anything else
/// (permissions, a read-only server, a missing function) fails every request
/// alike: sending them one by one would only repeat it.
fn refused_for_its_content(e: &crate::error::DriverError) -> bool {
    e.code().is_some_and(|c| {
        ["22", "23", "54", "P0"]
            .iter()
            .any(|class| c.starts_with(class))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::Event;
    use crate::limits::Limits;

    fn request(n: i64, since: Instant) -> (Request, oneshot::Receiver<Result<Appended>>) {
        let event = Event::new("T", serde_json::json!({ "n": n }));
        let append =
            PreparedAppend::new(vec![event], None, &Limits::default()).expect("a valid append");
        let (reply, rx) = oneshot::channel();
        (
            Request {
                append,
                since,
                reply,
            },
            rx,
        )
    }

    fn order(batch: &[Request]) -> Vec<i64> {
        batch
            .iter()
            .map(|r| r.append.events[0].data["n"].as_i64().unwrap_or(-1))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_is_decided_oldest_decision_first_and_in_arrival_order_among_equals() {
        let (tx, rx) = mpsc::channel(16);
        let rx = Mutex::new(rx);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Arrival order 0..5; decisions first tried at 5, 1, 3, 1, 0 ms.
        let mut answers = Vec::new();
        for (n, ms) in [(0, 5), (1, 1), (2, 3), (3, 1), (4, 0)] {
            let (r, answer) = request(n, at(ms));
            answers.push(answer);
            tx.send(r).await.expect("the channel is open");
        }
        let limits = BatchLimits {
            events: 1000,
            bytes: 1 << 20,
        };
        let batch = next_batch(&rx, &mut None, limits).await.expect("a batch");
        assert_eq!(order(&batch), [4, 1, 3, 2, 0]);
    }
}
