//! What a console serves and to whom: its address, its token, whether it
//! may act, and what it knows besides the store (a schema file, the
//! application's deliveries).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dcbstore::schema::SchemaFile;
use dcbstore::{Error, Result};
use dcbstore_delivery::Deliveries;

/// The address `dcbstore serve` binds when none is given: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7433";

/// The shortest token a console on a non-loopback address accepts: anyone
/// who reaches the port may guess, so a short one would not hold.
pub const MIN_PUBLIC_TOKEN_CHARS: usize = 16;

/// How a [`Console`](super::Console) serves.
///
/// ```
/// use dcbstore_console::ConsoleOptions;
///
/// let options = ConsoleOptions::new()
///     .listen("0.0.0.0:7433".parse().unwrap())
///     .token("a long random secret");
/// assert!(options.check_bind().is_ok());
/// // Without the token, a non-loopback address is refused, and so is a
/// // token anyone could guess.
/// assert!(ConsoleOptions::new().listen("0.0.0.0:7433".parse().unwrap()).check_bind().is_err());
/// assert!(ConsoleOptions::new().listen("0.0.0.0:7433".parse().unwrap()).token("x").check_bind().is_err());
/// ```
#[derive(Clone)]
pub struct ConsoleOptions {
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) insecure_no_auth: bool,
    pub(crate) allow_actions: bool,
    pub(crate) schema: Option<Arc<SchemaFile>>,
    pub(crate) deliveries: Option<Arc<Deliveries>>,
    pub(crate) stats_interval: Duration,
    pub(crate) refresh_stats: bool,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) bounds: super::bounds::Bounds,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7433))),
            token: None,
            insecure_no_auth: false,
            allow_actions: false,
            schema: None,
            deliveries: None,
            stats_interval: Duration::from_secs(2),
            refresh_stats: true,
            allowed_hosts: Vec::new(),
            bounds: super::bounds::Bounds::default(),
        }
    }
}

// The token never reaches a log through Debug.
impl fmt::Debug for ConsoleOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("allow_actions", &self.allow_actions)
            .field("schema", &self.schema.as_ref().map(|s| s.events.len()))
            .field("deliveries", &self.deliveries.as_ref().map(|d| d.names()))
            .field("stats_interval", &self.stats_interval)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("bounds", &self.bounds)
            .finish()
    }
}

impl ConsoleOptions {
    /// Loopback on port 7433, read-only, without a configured token: then
    /// the console makes up a random one at start, which
    /// [`BoundConsole::url`](super::BoundConsole::url) carries (see
    /// [`requires_auth`](Self::requires_auth)).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The address to bind (default [`DEFAULT_LISTEN`]).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Requires this bearer token on every page and on `/metrics` (browsers
    /// log in once through a form that sets a cookie). `/healthz` and
    /// `/readyz` stay open for probes; they reveal nothing but up and ready.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Serves without a token: on a non-loopback address anyone who reaches
    /// the port reads the whole log, and on loopback any local process or
    /// user does (no random token is made up either). Only behind an
    /// authenticating proxy. A configured [`token`](Self::token) still holds.
    #[must_use]
    pub fn insecure_no_auth(mut self, yes: bool) -> Self {
        self.insecure_no_auth = yes;
        self
    }

    /// Allows the actions (retry and discard dead letters): POST forms with
    /// a CSRF token. Off by default: the console only reads.
    #[must_use]
    pub fn allow_actions(mut self, yes: bool) -> Self {
        self.allow_actions = yes;
        self
    }

    /// The application's committed schema file, shown at `/schema`.
    #[must_use]
    pub fn schema(mut self, schema: SchemaFile) -> Self {
        self.schema = Some(Arc::new(schema));
        self
    }

    /// The application's durable subscribers and relays: with them (and
    /// [`allow_actions`](Self::allow_actions)) dead letters can be retried,
    /// which needs the handler that failed. Without, only discarded.
    #[must_use]
    pub fn deliveries(mut self, deliveries: Deliveries) -> Self {
        self.deliveries = Some(Arc::new(deliveries));
        self
    }

    /// How often the statistics are refreshed and the gauges sampled
    /// (default 2 s).
    #[must_use]
    pub fn stats_interval(mut self, every: Duration) -> Self {
        self.stats_interval = every.max(Duration::from_millis(50));
        self
    }

    /// Whether this console keeps `dcbstore.stats_*` current (default yes).
    /// Several consoles on one store may all refresh: the counts stay exact.
    #[must_use]
    pub fn refresh_stats(mut self, yes: bool) -> Self {
        self.refresh_stats = yes;
        self
    }

    /// The address it binds.
    #[must_use]
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Answers to `name` (a DNS name or an address, without a port) besides
    /// the address it listens on and `localhost`: the name a proxy or a
    /// browser uses for it. Requests for any other `Host` get 421, so that
    /// a site whose name was rebound to this address cannot read it.
    #[must_use]
    pub fn allowed_host(mut self, name: impl Into<String>) -> Self {
        let given = name.into();
        // A port given with the name is dropped: ports are not compared.
        let host = given
            .trim()
            .parse::<axum::http::uri::Authority>()
            .map_or_else(|_| given.trim().to_owned(), |a| a.host().to_owned());
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if !name.is_empty() {
            self.allowed_hosts.push(name);
        }
        self
    }

    /// Whether pages need a token: the configured one, or without one the
    /// random one made up at start; not with
    /// [`insecure_no_auth`](Self::insecure_no_auth) alone.
    #[must_use]
    pub fn requires_auth(&self) -> bool {
        self.token.is_some() || !self.insecure_no_auth
    }

    /// Refuses a non-loopback address without a token (or an explicit
    /// [`insecure_no_auth`](Self::insecure_no_auth)), an empty token, and
    /// on a non-loopback address a token shorter than
    /// [`MIN_PUBLIC_TOKEN_CHARS`].
    pub fn check_bind(&self) -> Result<()> {
        if let Some(token) = self.token.as_deref() {
            let chars = token.trim().chars().count();
            if chars == 0 {
                return Err(Error::invalid(
                    "the console token is empty: give a long random secret (for example `openssl rand -hex 32`)",
                ));
            }
            if !self.listen.ip().is_loopback() && chars < MIN_PUBLIC_TOKEN_CHARS {
                return Err(Error::invalid(format!(
                    "the console token has {chars} characters: on {} anyone who reaches the port may guess it, so it needs at least {MIN_PUBLIC_TOKEN_CHARS} \
                     (for example `openssl rand -hex 32`)",
                    self.listen
                )));
            }
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() && !self.insecure_no_auth {
            return Err(Error::invalid(format!(
                "refusing to serve the console on {} without authentication: anyone who reaches it could read the whole log. \
                 Give --token-file FILE (or DCBSTORE_CONSOLE_TOKEN, or --token), bind a loopback address, or pass --insecure-no-auth behind an authenticating proxy",
                self.listen
            )));
        }
        Ok(())
    }
}

/// The bounds (`super::bounds`): what one console may hold at once, and for
/// how long.
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
