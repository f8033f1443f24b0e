//! What one console may hold at once, and for how long: the bounds that
//! keep it (and `/healthz`) answering whatever its clients do.
//!
//! | bound | default | beyond it |
//! |---|---|---|
//! | [`max_connections`](ConsoleOptions::max_connections) | 256 | a few spare connections answer `/healthz` and `/readyz`, anything else 503; past those the connection is closed |
//! | [`max_live_streams`](ConsoleOptions::max_live_streams) | 32 | 503 |
//! | [`max_reads`](ConsoleOptions::max_reads) | 4 | waits, within the deadline |
//! | [`request_timeout`](ConsoleOptions::request_timeout) | 10 s | 503, and the page's statements are cancelled |
//! | [`header_timeout`](ConsoleOptions::header_timeout) | 10 s | the connection is closed (slow or idle) |
//! | [`session_lifetime`](ConsoleOptions::session_lifetime) | 12 h | the browser logs in again |
//! | [`login_attempts_per_minute`](ConsoleOptions::login_attempts_per_minute) | 20 | 429 |

use std::time::Duration;

use super::options::ConsoleOptions;

/// The bounds of [`ConsoleOptions`] (see the [module](self)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) max_connections: usize,
    pub(crate) max_live_streams: usize,
    pub(crate) max_reads: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) session_lifetime: Duration,
    pub(crate) login_attempts_per_minute: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            // Well under the 1,024 descriptors a process gets by default,
            // with room for the pool, the spare connections and the files.
            max_connections: 256,
            max_live_streams: 32,
            // A quarter of the store's default pool of 16: the
            // application, the poller and /readyz keep connections.
            max_reads: 4,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            session_lifetime: Duration::from_secs(12 * 3600),
            login_attempts_per_minute: 20,
        }
    }
}

impl ConsoleOptions {
    /// Connections served at once (default 256). Beyond them a few spare
    /// connections still answer `/healthz` and `/readyz` (other paths get
    /// 503); beyond those, new connections are closed at once.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.bounds.max_connections = n.max(1);
        self
    }

    /// Live streams (`/events/live`) open at once (default 32); one more
    /// gets 503. All of them share one follower of the log.
    #[must_use]
    pub fn max_live_streams(mut self, n: usize) -> Self {
        self.bounds.max_live_streams = n;
        self
    }

    /// Pages reading the database at once (default 4); others wait their
    /// turn within [`request_timeout`](Self::request_timeout). Keep it
    /// below the store's pool size.
    #[must_use]
    pub fn max_reads(mut self, n: usize) -> Self {
        self.bounds.max_reads = n.max(1);
        self
    }

    /// How long a page may take, waiting for its turn included (default
    /// 10 s): then it answers 503 and its statements are cancelled (the
    /// console's own SQL also runs under this `statement_timeout`).
    #[must_use]
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.bounds.request_timeout = t.max(Duration::from_millis(100));
        self
    }

    /// The per-request deadline ([`request_timeout`](Self::request_timeout)),
    /// for the store's `statement_timeout` when the console has a store of
    /// its own (`dcbstore serve` does).
    #[must_use]
    pub fn deadline(&self) -> Duration {
        self.bounds.request_timeout
    }

    /// How long a client may take to send a request's headers, and how
    /// long a kept-alive connection may sit idle (default 10 s).
    #[must_use]
    pub fn header_timeout(mut self, t: Duration) -> Self {
        self.bounds.header_timeout = t.max(Duration::from_millis(100));
        self
    }

    /// How long a login lasts (default 12 h): the cookie's `Max-Age`, and
    /// checked by the server, which signs the expiry into the cookie.
    #[must_use]
    pub fn session_lifetime(mut self, t: Duration) -> Self {
        self.bounds.session_lifetime = t.max(Duration::from_secs(1));
        self
    }

    /// Token checks (login form, `?token=`, bearer token) one client
    /// address may make per minute (default 20, at least 1); one more gets
    /// 429. IPv6 clients count per /64.
    #[must_use]
    pub fn login_attempts_per_minute(mut self, n: u32) -> Self {
        self.bounds.login_attempts_per_minute = n.max(1);
        self
    }
}
