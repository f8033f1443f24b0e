//! [`DeliveryConfig`]: batches, attempts, backoff and the failure policy of
//! a durable subscriber or a relay.

use std::time::Duration;

/// What a consumer does with an event it could not deliver within
/// [`max_attempts`](DeliveryConfig::max_attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Record it in `dcbstore.dead_letters` and move on to the next event
    /// (in the transaction that moves the checkpoint past it). The default.
    #[default]
    DeadLetter,
    /// Stop at it and retry it, with backoff, until it succeeds: nothing
    /// behind it is delivered meanwhile (for consumers that need order more
    /// than progress).
    Block,
}

/// How a durable subscriber or a relay delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Events read and handed over per batch (default 100).
    pub batch_size: u64,
    /// Attempts per event before [`on_failure`](Self::on_failure) applies
    /// (default 5; at least 1).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter (default 100 ms).
    pub retry_min: Duration,
    /// Longest retry delay (default 10 s), also between tries while a
    /// transport is unavailable.
    pub retry_max: Duration,
    /// How often a caught-up consumer reads when no append wakes it
    /// (default 1 s).
    pub poll_interval: Duration,
    /// Dead-letter (default) or block.
    pub on_failure: OnFailure,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_size: 100,
            max_attempts: 5,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            on_failure: OnFailure::DeadLetter,
        }
    }
}
