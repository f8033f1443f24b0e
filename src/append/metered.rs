//! What an append call reports through the `metrics` facade (names in
//! [`crate::metrics`]): counted at the entry points, per call, from what the
//! call returns, so that metering costs no query and sees each caller's
//! outcome even when the writer batched several calls into one transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::metrics::{
    APPENDED_EVENTS_TOTAL, APPENDS_TOTAL, APPEND_BATCH_SIZE, APPEND_DURATION_SECONDS,
    CONFLICTS_TOTAL, HEAD_POSITION,
};
use crate::Appended;

/// One append call being metered: started before its input is checked, so
/// that refused input counts as an `error` call too.
pub(crate) struct AppendMeter {
    started: Instant,
    events: usize,
}

impl AppendMeter {
    pub(crate) fn start(events: usize) -> Self {
        AppendMeter {
            started: Instant::now(),
            events,
        }
    }

    /// Records the call's outcome, duration and size. A call whose future
    /// is dropped records nothing: its outcome is unknown.
    pub(crate) fn finish(self, result: &Result<Appended>) {
        let outcome = match result {
            Ok(a) if a.already_stored => "duplicate",
            Ok(_) => "appended",
            Err(Error::Conflict(_)) => "conflict",
            Err(_) => "error",
        };
        ::metrics::counter!(APPENDS_TOTAL, "outcome" => outcome).increment(1);
        ::metrics::histogram!(APPEND_DURATION_SECONDS).record(self.started.elapsed().as_secs_f64());
        ::metrics::histogram!(APPEND_BATCH_SIZE).record(self.events as f64);
        match outcome {
            "conflict" => ::metrics::counter!(CONFLICTS_TOTAL).increment(1),
            "appended" => ::metrics::counter!(APPENDED_EVENTS_TOTAL).increment(self.events as u64),
            _ => {}
        }
    }
}

/// The highest position a store's appends returned. Calls finish out of
/// order (several writers, batches answered concurrently), so the gauge is
/// set to the maximum, never to a position below one already reported; a
/// duplicate's older position cannot lower it either.
#[derive(Debug, Default)]
pub(crate) struct HeadGauge(AtomicU64);

impl HeadGauge {
    pub(crate) fn record(&self, appended: &Appended) {
        let position = appended.position.get();
        let highest = self.0.fetch_max(position, Ordering::Relaxed).max(position);
        ::metrics::gauge!(HEAD_POSITION).set(highest as f64);
    }
}
