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
//! Safety, each guarantee with the module that keeps it:
//!
//! - Every value is HTML-escaped (maud) and every response carries a
//!   Content-Security-Policy without inline script (`page`).
//! - Every page needs a token: the configured one (at least
//!   [`MIN_PUBLIC_TOKEN_CHARS`] on a non-loopback address, which cannot go
//!   without one: [`ConsoleOptions::check_bind`]), or on loopback without
//!   one a random token made up at start, printed once in the URL
//!   [`BoundConsole::url`]; sessions expire, token checks are rate limited
//!   per client, and the login sends the browser only to a path of this
//!   console (`auth`, `limiter`, `secrets`).
//! - A request whose `Host` is not `localhost`, the console's address or a
//!   name given with [`ConsoleOptions::allowed_host`] gets 421: a site
//!   whose name was rebound to 127.0.0.1 reads nothing (`host`).
//! - Actions are POST forms with a CSRF token and an `Origin` of this host;
//!   after one, the page shows numbers from the URL, never text.
//! - Resources are bounded ([`bounds`](ConsoleOptions::max_connections)):
//!   connections (spare ones still answer `/healthz` and `/readyz`), live
//!   streams (one shared follower of the log), reads at once, a deadline
//!   per page with the page's statements cancelled, header and idle
//!   timeouts, dead letters in keyset pages.
//! - `/readyz` tells unauthenticated callers which state the store is in,
//!   not its errors; no connection setting is shown or logged; the
//!   `/metrics` gauges of consumers are zeroed when their rows go, and
//!   labelled only by consumers the store knows (`gauges`).
//!
//! ```no_run
//! # async fn run() -> dcbstore::Result<()> {
//! use dcbstore_console::{install_prometheus, Console, ConsoleOptions};
//!
//! let store = dcbstore::Store::connect("postgres://console@localhost/app").await?;
//! let console = Console::new(store, ConsoleOptions::new())?.with_metrics(install_prometheus()?);
//! let bound = console.bind().await?;
//! println!("console on http://{}", bound.local_addr());
//! bound.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![warn(missing_docs)]

mod auth;
mod bounds;
mod chart;
mod dead_letters;
mod error;
mod event;
mod events;
mod filter;
mod gauges;
mod health;
mod host;
mod limiter;
mod live;
mod options;
mod overview;
mod page;
mod poller;
mod projections;
mod reads;
mod schema;
mod secrets;
mod server;
mod state;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::timeout::TimeoutLayer;

pub use options::{ConsoleOptions, DEFAULT_LISTEN, MIN_PUBLIC_TOKEN_CHARS};
pub use page::CONTENT_SECURITY_POLICY;
pub use stats::{refresh, refresh_until};

use dcbstore::store::Store;
use dcbstore::{Error, Result};
use state::Shared;

/// The console of one store.
#[derive(Clone)]
pub struct Console {
    shared: Shared,
    /// The one follower of the log for every live stream of this console
    /// (and of every router made from it).
    poller: Arc<poller::Poller>,
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
            poller: Arc::new(poller::Poller::default()),
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

    /// The token made up at start because none was configured (the
    /// console is on loopback and not
    /// [`insecure_no_auth`](ConsoleOptions::insecure_no_auth)): show it to
    /// the operator once, for example as [`BoundConsole::url`].
    #[must_use]
    pub fn generated_token(&self) -> Option<&str> {
        self.shared.secrets.generated_token()
    }

    /// The routes, to serve or to nest in an application's own router.
    /// The statistics are kept current only by [`serve`](BoundConsole::serve)
    /// (or by calling [`refresh`]). Served by another server, the connection
    /// and header bounds are that server's, the login limiter sees one
    /// client unless it inserts axum's `ConnectInfo`, and requests must name
    /// `localhost`, an address, or a name given with
    /// [`ConsoleOptions::allowed_host`] (the service's own names: others get
    /// 421).
    pub fn router(&self) -> Router {
        let s = self.shared.clone();
        let deadline = s.options.bounds.request_timeout;
        let reading = Router::new()
            .route("/", get(overview::page))
            .route("/events", get(events::page))
            .route("/events/{position}", get(event::page))
            .route("/projections", get(projections::page))
            .route("/dead-letters", get(dead_letters::page))
            .route("/dead-letters/retry", post(dead_letters::retry))
            .route("/dead-letters/discard", post(dead_letters::discard))
            .route_layer(middleware::from_fn_with_state(s.clone(), reads::permit));
        let pages = Router::new()
            .merge(reading)
            .route("/events/live", {
                let poller = self.poller.clone();
                get(move |state, headers, params| live::live(state, poller, headers, params))
            })
            .route("/schema", get(schema::page))
            .route("/metrics", get(health::metrics))
            .route_layer(middleware::from_fn_with_state(s.clone(), auth::require))
            .route_layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                deadline,
            ))
            .route_layer(middleware::map_response(reads::explain_deadline));
        Router::new()
            .merge(pages)
            .route("/login", get(auth::login_form).post(auth::login))
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/assets/console.css", get(page::css))
            .route("/assets/live.js", get(page::live_js))
            .layer(middleware::from_fn(page::security_headers))
            .layer(middleware::from_fn_with_state(s.clone(), host::check))
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

    /// The URL to open: with the [generated token](Console::generated_token)
    /// as `?token=` when there is one (the first visit exchanges it for the
    /// session cookie). A secret: show it once, to the operator, never in a
    /// log.
    #[must_use]
    pub fn url(&self) -> String {
        let mut url = format!("http://{}/", self.local);
        if let Some(token) = self.console.generated_token() {
            url.push_str("?token=");
            url.push_str(token);
        }
        url
    }

    /// Serves until `shutdown` completes, keeping the statistics and the
    /// gauges current in the background, within the connection bounds of
    /// [`ConsoleOptions::max_connections`] and
    /// [`header_timeout`](ConsoleOptions::header_timeout).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let background = tokio::spawn(gauges::run(self.console.shared.clone()));
        let app = self.console.router();
        let bounds = self.console.shared.options.bounds;
        // The address only: the URL carries the token.
        tracing::info!(address = %self.local, "console listening");
        server::serve(self.listener, app, bounds, shutdown).await;
        background.abort();
        Ok(())
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
    dcbstore::metrics::describe();
    Ok(handle)
}
