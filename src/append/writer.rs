//! The batching writer: one task (or a few) taking every append waiting and
//! sending them as one transaction.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch::execute_batch;
use super::prepare::PreparedAppend;
use super::request::Request;
use super::Appended;
use crate::error::{Error, Result};

/// At most this many requests share one transaction: it bounds the work done
/// under the append lock when many requests guard one hot boundary.
const MAX_BATCH_REQUESTS: usize = 256;

/// Handle to the writer task; cloning shares the task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
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
        let events: usize = appends.iter().map(|a| a.events.len()).sum();
        let requests = appends.len();
        let result = execute_batch(&pool, appends, timeout).await;
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
            Err(e) => tracing::warn!(
                requests,
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
