//! What the consumer loop reports through the `metrics` facade (names in
//! [`dcbstore::metrics`]), apart from the loop so that it reads as delivery.

use std::time::Instant;

use super::sink::Consumer;
use dcbstore::event::{SequencePosition, SequencedEvent};
use dcbstore::metrics::{
    age_seconds, DELIVERED_TOTAL, DELIVERY_BATCH_SECONDS, DELIVERY_LATENCY_SECONDS,
    SUBSCRIBER_LAG_EVENTS, SUBSCRIBER_LAG_SECONDS,
};
use dcbstore::store::{EventStore, Store};

/// `events` went through, in a hand-over that began at `began`.
pub(super) fn delivered(c: &Consumer, events: &[SequencedEvent], began: Instant) {
    let kind = c.sink.kind();
    ::metrics::counter!(DELIVERED_TOTAL, "consumer" => c.name.clone(), "kind" => kind)
        .increment(events.len() as u64);
    ::metrics::histogram!(DELIVERY_BATCH_SECONDS, "consumer" => c.name.clone())
        .record(began.elapsed().as_secs_f64());
    if let Some(last) = events.last() {
        ::metrics::histogram!(DELIVERY_LATENCY_SECONDS, "consumer" => c.name.clone())
            .record(age_seconds(last.recorded_at));
    }
}

/// Sets the lag gauges after `events` (a batch read) were delivered. A
/// short batch was everything the consumer takes up to the head: caught up,
/// no query. Only behind a full one is the head read (one cheap query per
/// batch, never when idle).
pub(super) async fn after_batch(store: &Store, c: &Consumer, events: &[SequencedEvent]) {
    let Some(last) = events.last() else {
        return;
    };
    if (events.len() as u64) < c.config.batch_size {
        lag(c, 0, None);
        return;
    }
    match store.head().await {
        Ok(head) => {
            let head = head.map_or(0, SequencePosition::get);
            lag(c, head.saturating_sub(last.position.get()), Some(last));
        }
        // The gauges wait for the next batch; delivery does not.
        Err(e) => tracing::debug!(consumer = %c.name, error = %e, "no head for the lag gauges"),
    }
}

/// Where the consumer stands after a batch: `behind` events between its
/// checkpoint and the head, `last` the last event delivered (`None`: nothing
/// it takes is left, 0 seconds).
pub(super) fn lag(c: &Consumer, behind: u64, last: Option<&SequencedEvent>) {
    let seconds = last.map_or(0.0, |e| age_seconds(e.recorded_at));
    ::metrics::gauge!(SUBSCRIBER_LAG_EVENTS, "subscriber" => c.name.clone()).set(behind as f64);
    ::metrics::gauge!(SUBSCRIBER_LAG_SECONDS, "subscriber" => c.name.clone()).set(seconds);
}
