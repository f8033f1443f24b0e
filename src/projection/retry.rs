//! [`Retry`]: how often [`execute_with`](super::execute_with) tries a
//! decision, and how long it waits between attempts.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The retries of a decision: at most [`max_attempts`](Self::max_attempts)
/// appends, with an exponential backoff with jitter between them (from
/// `min_delay`, doubling up to `max_delay`, each delay plus a random part of
/// up to itself).
///
/// Writers of different processes that met on one boundary then come back
/// at different moments. The default delays are short (0.5 ms, at most
/// 2 ms), well under a batch's time: within one [`Store`](crate::Store) the
/// batch already breaks the tie (oldest decision first, see
/// [`EventStore::append_since`](crate::EventStore::append_since)), and a
/// retry that waits longer is absent from the next batch, where newer
/// decisions overtake it. Measured with 64 tasks on 8 boundaries
/// (benchmark B7): waits of 1 to 8 ms gave a p99 / p50 of 17 to 24, no wait
/// 8.6, at the same throughput (a retry after a complete conflict costs no
/// read, so waiting spares the server little).
///
/// ```
/// use std::time::Duration;
/// use dcbstore::projection::Retry;
///
/// let patient = Retry::attempts(20).delays(Duration::from_millis(5), Duration::from_secs(1));
/// assert_eq!(patient.max_attempts(), 20);
/// let eager = Retry::attempts(5).no_delay();
/// # let _ = eager;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    max_attempts: u32,
    min_delay: Duration,
    max_delay: Duration,
}

impl Default for Retry {
    /// 10 attempts, 0.5 ms to 2 ms apart.
    fn default() -> Self {
        Retry::attempts(10)
    }
}

impl Retry {
    /// At most `n` attempts (at least 1), with the default delays.
    #[must_use]
    pub fn attempts(n: u32) -> Self {
        Retry {
            max_attempts: n.max(1),
            min_delay: Duration::from_micros(500),
            max_delay: Duration::from_millis(2),
        }
    }

    /// Delays from `min` doubling up to `max` (`max` is raised to `min` if
    /// below it), each plus a random part of up to itself.
    #[must_use]
    pub fn delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Retries at once (no backoff).
    #[must_use]
    pub fn no_delay(self) -> Self {
        self.delays(Duration::ZERO, Duration::ZERO)
    }

    /// The most appends tried.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The waits between attempts, in order, without end: for a retry loop
    /// of one's own that waits as [`execute_with`](super::execute_with) does.
    #[must_use]
    pub fn backoff(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        if self.min_delay.is_zero() {
            return Box::new(std::iter::repeat(Duration::ZERO));
        }
        Box::new(
            ExponentialBuilder::new()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_jitter()
                .without_max_times()
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_bounds_and_vary() {
        let retry = Retry::attempts(3).delays(Duration::from_millis(2), Duration::from_millis(16));
        let a: Vec<Duration> = retry.backoff().take(12).collect();
        let b: Vec<Duration> = retry.backoff().take(12).collect();
        assert!(
            a.iter()
                .all(|d| *d >= Duration::from_millis(2) && *d <= Duration::from_millis(32)),
            "{a:?}"
        );
        assert!(
            a[8..].iter().all(|d| *d >= Duration::from_millis(16)),
            "{a:?}"
        );
        assert_ne!(a, b, "jitter makes two writers' delays differ");
        assert!(Retry::attempts(2)
            .no_delay()
            .backoff()
            .take(3)
            .all(|d| d.is_zero()));
        assert_eq!(Retry::attempts(0).max_attempts(), 1);
    }
}
