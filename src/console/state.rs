//! What every handler shares: the store, the options, this process's
//! secrets and the metrics exporter's handle.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::options::ConsoleOptions;
use super::secrets::Secrets;
use crate::store::Store;

/// The console's shared state (cheap to clone).
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) options: Arc<ConsoleOptions>,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) metrics: Option<PrometheusHandle>,
}

impl Shared {
    pub(crate) fn new(
        store: Store,
        options: ConsoleOptions,
        metrics: Option<PrometheusHandle>,
    ) -> Shared {
        let secrets = Arc::new(Secrets::new(options.token.as_deref()));
        Shared {
            store,
            options: Arc::new(options),
            secrets,
            metrics,
        }
    }
}
