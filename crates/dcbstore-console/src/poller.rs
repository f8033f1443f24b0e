//! One follower of the log for all live streams: it subscribes once, from
//! the head when the first stream opens, renders each new event's row once,
//! and broadcasts it; every stream filters the rows in memory. However many
//! browsers follow, the database sees one subscription and one redaction
//! lookup per batch. It stops when no stream is left.
//!
//! [`Feed::cursor`] is the last position broadcast, stored before the row
//! is sent: a stream that subscribes and then reads the cursor gets every
//! later row from the channel, and reads the rest from the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, Mutex};

use super::error::PageError;
use super::events::{redactions, Listed};
use super::state::Shared;
use dcbstore::event::{Event, SequencePosition};
use dcbstore::query::Query;
use dcbstore::store::EventStore;
use dcbstore::subscribe::SubscribeOptions;

/// Rows a stream may fall behind before it reads the log instead.
const CAPACITY: usize = 1024;

/// Events rendered together (one redaction lookup).
const BATCH: usize = 256;

/// How often a follower with nothing to send checks for listeners.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// One event as the live streams get it.
pub(crate) struct Row {
    pub(crate) position: u64,
    /// For the streams' filters (`None`: an event this reader cannot decode).
    pub(crate) event: Option<Event>,
    /// The table row, rendered once.
    pub(crate) html: String,
}

/// The follower's output. Only the follower and the [`Poller`] hold it
/// (streams hold a receiver and the cursor), so the channel closes when the
/// follower stops.
struct Feed {
    rows: broadcast::Sender<Arc<Row>>,
    cursor: Arc<AtomicU64>,
}

/// What a stream holds of the feed: the last position broadcast, and the
/// rows after it.
pub(crate) struct Listener {
    cursor: Arc<AtomicU64>,
    pub(crate) rows: broadcast::Receiver<Arc<Row>>,
}

impl Listener {
    /// The last position broadcast.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::SeqCst)
    }
}

/// The console's follower, started on demand.
#[derive(Default)]
pub(crate) struct Poller {
    current: Mutex<Option<Arc<Feed>>>,
}

impl Poller {
    /// A listener of the running feed (subscribed before the caller reads
    /// the cursor), starting a follower when none runs.
    pub(crate) async fn listen(self: &Arc<Self>, console: &Shared) -> Result<Listener, PageError> {
        // Under the lock: a follower stops only under it too, after making
        // sure no one listens, so no listener subscribes to a stopping feed.
        let mut current = self.current.lock().await;
        if let Some(feed) = current.as_ref() {
            return Ok(Listener {
                cursor: feed.cursor.clone(),
                rows: feed.rows.subscribe(),
            });
        }
        let head = console.store.head().await?.map_or(0, SequencePosition::get);
        let (rows, rx) = broadcast::channel(CAPACITY);
        let feed = Arc::new(Feed {
            rows,
            cursor: Arc::new(AtomicU64::new(head)),
        });
        *current = Some(feed.clone());
        let listener = Listener {
            cursor: feed.cursor.clone(),
            rows: rx,
        };
        tokio::spawn(follow(console.clone(), self.clone(), feed, head));
        Ok(listener)
    }

    /// Stops following when no one listens (or `anyway`): the feed is
    /// taken out, so its channel closes when the follower returns.
    async fn stop(&self, feed: &Arc<Feed>, anyway: bool) -> bool {
        let mut current = self.current.lock().await;
        if !anyway && feed.rows.receiver_count() > 0 {
            return false;
        }
        if current.as_ref().is_some_and(|f| Arc::ptr_eq(f, feed)) {
            *current = None;
        }
        true
    }
}

/// Follows the log from `head`, broadcasting rows, until no one listens or
/// the subscription fails (the streams then end; browsers reconnect).
async fn follow(console: Shared, poller: Arc<Poller>, feed: Arc<Feed>, head: u64) {
    let options = SubscribeOptions::new().after(SequencePosition::new(head));
    let mut events = console
        .store
        .subscribe(&Query::all(), options)
        .ready_chunks(BATCH);
    let mut idle = tokio::time::interval(IDLE_CHECK);
    loop {
        let chunk = tokio::select! {
            chunk = events.next() => chunk,
            _ = idle.tick() => {
                if feed.rows.receiver_count() == 0 && poller.stop(&feed, false).await {
                    return;
                }
                continue;
            }
        };
        let Some(chunk) = chunk else {
            poller.stop(&feed, true).await;
            return;
        };
        let mut failed = false;
        let mut batch = Vec::with_capacity(chunk.len());
        for item in chunk {
            match Listed::of(item) {
                Ok(e) => batch.push(e),
                Err(e) => {
                    tracing::warn!(error = %e, "the console's live feed stopped");
                    failed = true;
                }
            }
        }
        let positions: Vec<u64> = batch.iter().map(|e| e.position().get()).collect();
        let marks = redactions(&console, &positions).await.unwrap_or_default();
        for e in batch {
            let position = e.position().get();
            let html = e.row(marks.contains_key(&position)).into_string();
            feed.cursor.store(position, Ordering::SeqCst);
            // No receiver is not an error: the idle check ends the follower.
            let _ = feed.rows.send(Arc::new(Row {
                position,
                event: match e {
                    Listed::Event(e) => Some(e.event),
                    Listed::Undecodable(..) => None,
                },
                html,
            }));
        }
        if (failed || feed.rows.receiver_count() == 0) && poller.stop(&feed, failed).await {
            return;
        }
    }
}
