//! The settings of runners and rebuilds, and what they report.

use std::time::Duration;

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
