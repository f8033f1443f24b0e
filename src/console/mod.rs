//! The operations console: `dcbstore serve`, or embedded in an
//! application's own service.
//!
//! Server-rendered pages that work without JavaScript (a few lines of
//! script add the live mode):
//!
//! | URL | What |
//! |---|---|
//! | `/` | store id, schema version, head, events of the last minute and hour, volume by type, most used tags, appends per minute |
//! | `/events` | the log through repeatable `type` and `tag` (or `query`, JSON), the window `after`/`from`/`to`, pages of 50 with the cursors `before`/`newer`; `live=1` follows it |
//! | `/events/{position}` | one event: data and metadata as JSON, tags, redaction mark |
//! | `/projections` | checkpoints, lag in events and seconds, state, errors |
//! | `/dead-letters` | payloads and errors; retry and discard with [`ConsoleOptions::allow_actions`] |
//! | `/schema` | the committed schema file ([`ConsoleOptions::schema`]) |
//! | `/metrics` | Prometheus text format ([`install_prometheus`]) |
//! | `/healthz`, `/readyz` | the process is up; the database answers and is migrated |
//!
//! Counts never scan the log: [`refresh`] folds new events into
//! `dcbstore.stats_*` (migration 8) in bounded batches, from the console's
//! background task, which also samples the gauges of `/metrics`.
//!
//! Safety: every value is HTML-escaped (maud), every response carries a
//! Content-Security-Policy without inline script, a non-loopback address
//! needs a token ([`ConsoleOptions::check_bind`]), actions are POST forms
//! with a CSRF token, and no connection setting is shown or logged.
//!
//! ```no_run
//! # async fn run() -> dcbstore::Result<()> {
//! use dcbstore::console::{install_prometheus, Console, ConsoleOptions};
//!
//! let store = dcbstore::Store::connect("postgres://console@localhost/app").await?;
//! let console = Console::new(store, ConsoleOptions::new())?.with_metrics(install_prometheus()?);
//! let bound = console.bind().await?;
//! println!("console on http://{}", bound.local_addr());
//! bound.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod auth;
mod chart;
mod dead_letters;
mod error;
mod event;
mod events;
mod filter;
mod health;
mod live;
mod options;
mod overview;
mod page;
mod projections;
mod schema;
mod secrets;
mod state;
mod stats;

use std::future::Future;
use std::net::SocketAddr;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use options::{ConsoleOptions, DEFAULT_LISTEN};
pub use page::CONTENT_SECURITY_POLICY;
pub use stats::{refresh, refresh_until};

use crate::error::{Error, Result};
use crate::store::Store;
use state::Shared;

/// The console of one store.
#[derive(Clone)]
pub struct Console {
    shared: Shared,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console of `store`. Refuses options that would expose the log
    /// ([`ConsoleOptions::check_bind`]).
    pub fn new(store: Store, options: ConsoleOptions) -> Result<Console> {
        options.check_bind()?;
        Ok(Console {
            shared: Shared::new(store, options, None),
        })
    }

    /// Serves `/metrics` from this Prometheus recorder's handle (see
    /// [`install_prometheus`]). Without one, `/metrics` answers 404: an
    /// application that installs its own recorder exports it itself.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Console {
        self.shared.metrics = Some(handle);
        self
    }

    /// The routes, to serve or to nest in an application's own router.
    /// The statistics are kept current only by [`serve`](BoundConsole::serve)
    /// (or by calling [`refresh`]).
    pub fn router(&self) -> Router {
        let s = self.shared.clone();
        let pages = Router::new()
            .route("/", get(overview::page))
            .route("/events", get(events::page))
            .route("/events/live", get(live::live))
            .route("/events/{position}", get(event::page))
            .route("/projections", get(projections::page))
            .route("/dead-letters", get(dead_letters::page))
            .route("/dead-letters/retry", post(dead_letters::retry))
            .route("/dead-letters/discard", post(dead_letters::discard))
            .route("/schema", get(schema::page))
            .route("/metrics", get(health::metrics))
            .route_layer(middleware::from_fn_with_state(s.clone(), auth::require));
        Router::new()
            .merge(pages)
            .route("/login", get(auth::login_form).post(auth::login))
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/assets/console.css", get(page::css))
            .route("/assets/live.js", get(page::live_js))
            .layer(middleware::from_fn(page::security_headers))
            .with_state(s)
    }

    /// Binds the configured address.
    pub async fn bind(self) -> Result<BoundConsole> {
        let addr = self.shared.options.listen;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::invalid(format!(
                "cannot listen on {addr}: {e} (another process may hold the port: give --listen with another address)"
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(BoundConsole {
            console: self,
            listener,
            local,
        })
    }

    /// Binds and serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.bind().await?.serve(shutdown).await
    }
}

/// A console with its listening socket.
#[derive(Debug)]
pub struct BoundConsole {
    console: Console,
    listener: tokio::net::TcpListener,
    local: SocketAddr,
}

impl BoundConsole {
    /// The address it listens on (the port chosen when 0 was asked for).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` completes, keeping the statistics and the
    /// gauges current in the background.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let background = tokio::spawn(stats::run(self.console.shared.clone()));
        let app = self.console.router();
        tracing::info!(address = %self.local, "console listening");
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        background.abort();
        served.map_err(|e| Error::invalid(format!("the console's server failed: {e}")))
    }
}

/// Installs a Prometheus recorder as this process's `metrics` recorder and
/// returns its handle, for [`Console::with_metrics`]. Fails when the process
/// already has a recorder (one per process): then export with that one.
pub fn install_prometheus() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder().map_err(|e| {
        Error::invalid(format!(
            "cannot install the Prometheus recorder: {e} (the process already has a metrics recorder: serve /metrics from it instead)"
        ))
    })?;
    // HELP and unit lines for every metric the crate emits.
    crate::metrics::describe();
    Ok(handle)
}
