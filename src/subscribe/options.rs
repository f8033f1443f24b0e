//! [`SubscribeOptions`]: where a subscription starts and ends, how often it
//! polls, and how it rides out a lost connection.

use std::time::Duration;

use crate::event::SequencePosition;
use crate::read::ReadOptions;

/// Where a [`subscribe`](crate::Store::subscribe) starts and stops, and how
/// it waits and reconnects.
///
/// The window is a read's ([`ReadOptions`](crate::ReadOptions)), forwards
/// only: [`after`](Self::after) (or [`from`](Self::from)) is where it
/// starts; [`to`](Self::to) and [`limit`](Self::limit), when given, end it
/// (it waits for the log to reach them); without them it follows forever.
///
/// ```
/// use std::time::Duration;
/// use dcbstore::{SequencePosition, SubscribeOptions};
///
/// let resume = SubscribeOptions::new()
///     .after(SequencePosition::new(41))
///     .poll_interval(Duration::from_millis(250))
///     .reconnect_attempts(20);
/// # let _ = resume;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub(super) window: ReadOptions,
    pub(super) poll_interval: Duration,
    pub(super) reconnect_attempts: u32,
    pub(super) reconnect_min: Duration,
    pub(super) reconnect_max: Duration,
}

impl Default for SubscribeOptions {
    /// From the start, forever; polls every second when no notification
    /// comes; 10 reconnection attempts from 100 ms doubling to 5 s.
    fn default() -> Self {
        SubscribeOptions {
            window: ReadOptions::new(),
            poll_interval: Duration::from_secs(1),
            reconnect_attempts: 10,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

impl SubscribeOptions {
    /// From the start of the log, forever, with the default waits.
    #[must_use]
    pub fn new() -> Self {
        SubscribeOptions::default()
    }

    /// The window of a read: its start, `to` and `limit`. A backwards
    /// window cannot be followed: the subscription yields
    /// [`Error::Invalid`](crate::Error::Invalid).
    ///
    /// ```
    /// use dcbstore::{ReadOptions, SequencePosition, SubscribeOptions};
    ///
    /// let window = ReadOptions::new().after(SequencePosition::new(10)).limit(100);
    /// let options = SubscribeOptions::new().window(window);
    /// assert_eq!(options.start(), 10);
    /// ```
    #[must_use]
    pub fn window(mut self, window: ReadOptions) -> Self {
        self.window = window;
        self
    }

    /// On a store with replicas: follow on replicas that replayed `token`
    /// (an [`Appended::commit_token`](crate::Appended)), so the history
    /// includes that append (see
    /// [`ReadOptions::consistent_with`](crate::ReadOptions::consistent_with)).
    #[must_use]
    pub fn consistent_with(self, token: crate::CommitToken) -> Self {
        let window = self.window.consistent_with(token);
        self.window(window)
    }

    /// Only events with a position greater than `position`: resuming after
    /// the last event a consumer handled.
    #[must_use]
    pub fn after(self, position: SequencePosition) -> Self {
        let window = self.window.after(position);
        self.window(window)
    }

    /// [`after`](Self::after) when there is a position (from the start when
    /// `None`).
    #[must_use]
    pub fn after_opt(self, position: Option<SequencePosition>) -> Self {
        let window = self.window.after_opt(position);
        self.window(window)
    }

    /// Only events with a position of at least `position`.
    #[must_use]
    pub fn from(self, position: SequencePosition) -> Self {
        let window = self.window.from(position);
        self.window(window)
    }

    /// Ends once every matching event up to `position` (inclusive) is
    /// delivered, waiting for the log to reach it.
    #[must_use]
    pub fn to(self, position: SequencePosition) -> Self {
        let window = self.window.to(position);
        self.window(window)
    }

    /// Ends after `n` events (0: at once).
    #[must_use]
    pub fn limit(self, n: u64) -> Self {
        let window = self.window.limit(n);
        self.window(window)
    }
    /// How long a caught-up subscription waits for a notification before it
    /// reads anyway (default 1 s). Appends by the store's writer wake it at
    /// once; the poll covers those that notify nobody
    /// ([`append_in`](crate::append::append_in), plain SQL) and a lost
    /// listening connection. At least 1 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many times in a row a failed read (a lost connection, a server
    /// restarting, a timeout) is tried again before the stream yields the
    /// error and ends (default 10; 0: never). A read that succeeds starts
    /// the count again.
    #[must_use]
    pub fn reconnect_attempts(mut self, n: u32) -> Self {
        self.reconnect_attempts = n;
        self
    }

    /// The waits between those attempts: from `min`, doubling up to `max`,
    /// each plus a random part of up to itself (default 100 ms to 5 s).
    #[must_use]
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The position the subscription starts after (0: the start).
    #[must_use]
    pub fn start(&self) -> u64 {
        self.window.lower()
    }
}
