//! What every handler shares: the store, the options, this process's
//! secrets, the metrics exporter's handle, and the bounded resources (the
//! read and live-stream permits, the login limiter, the live feed).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

use super::limiter::Limiter;
use super::options::ConsoleOptions;
use super::secrets::Secrets;
use dcbstore::store::Store;

/// The console's shared state (cheap to clone).
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) options: Arc<ConsoleOptions>,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Pages reading the database at once.
    pub(crate) reads: Arc<Semaphore>,
    /// Live streams open at once.
    pub(crate) live: Arc<Semaphore>,
    pub(crate) limiter: Arc<Limiter>,
}

impl Shared {
    pub(crate) fn new(
        store: Store,
        options: ConsoleOptions,
        metrics: Option<PrometheusHandle>,
    ) -> Shared {
        let b = options.bounds;
        let secrets = Arc::new(Secrets::new(
            options.token.as_deref(),
            !options.insecure_no_auth,
            b.session_lifetime,
        ));
        Shared {
            store,
            reads: Arc::new(Semaphore::new(b.max_reads)),
            live: Arc::new(Semaphore::new(b.max_live_streams)),
            limiter: Arc::new(Limiter::new(b.login_attempts_per_minute)),
            options: Arc::new(options),
            secrets,
            metrics,
        }
    }
}
