//! What one console may hold at once, and for how long: the bounds that
//! keep it (and `/healthz`) answering whatever its clients do.
//!
//! | bound | default | beyond it |
//! |---|---|---|
//! | [`max_connections`](crate::ConsoleOptions::max_connections) | 256 | a few spare connections answer `/healthz` and `/readyz`, anything else 503; past those the connection is closed |
//! | [`max_live_streams`](crate::ConsoleOptions::max_live_streams) | 32 | 503 |
//! | [`max_reads`](crate::ConsoleOptions::max_reads) | 4 | waits, within the deadline |
//! | [`request_timeout`](crate::ConsoleOptions::request_timeout) | 10 s | 503, and the page's statements are cancelled |
//! | [`header_timeout`](crate::ConsoleOptions::header_timeout) | 10 s | the connection is closed (slow or idle) |
//! | [`session_lifetime`](crate::ConsoleOptions::session_lifetime) | 12 h | the browser logs in again |
//! | [`login_attempts_per_minute`](crate::ConsoleOptions::login_attempts_per_minute) | 20 | 429 |

use std::time::Duration;

/// The bounds of [`ConsoleOptions`](crate::ConsoleOptions) (see
/// the [module](self)); their setters are `ConsoleOptions`' own.
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
