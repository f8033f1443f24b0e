//! [`StoreBuilder`]: the settings of a [`Store`], and connecting it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Config;

use super::{Inner, Store};
use crate::append::{BatchLimits, HeadGauge, Writer};
use crate::connection::{connect_reason, describe, tls_connector, ConnectOptions};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::listener::Listener;
use crate::migrate;
use crate::pooled::Pooled;
use crate::read::Readers;
use crate::replica::{ReplicaOptions, Replicas};
use crate::tls::TlsSettings;

/// Configuration for a [`Store`].
///
/// ```no_run
/// # async fn f() -> dcbstore::Result<()> {
/// let store = dcbstore::Store::builder("postgres://app@localhost/app")?
///     .pool_size(32)
///     .page_size(500)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreBuilder {
    config: Config,
    tls: TlsSettings,
    pool_size: usize,
    page_size: u64,
    max_batch_events: usize,
    writers: usize,
    wait_timeout: Option<Duration>,
    timeout: Option<Duration>,
    /// The limits given to [`limits`](Self::limits); `None`: the database's.
    limits: Option<Limits>,
    statement_timeout: Option<Duration>,
    lock_timeout: Option<Duration>,
    replicas: Vec<String>,
    replica_options: ReplicaOptions,
    /// The application's own pool, when it gives one ([`pool`](Self::pool)).
    pool: Option<Pool>,
}

impl StoreBuilder {
    /// A builder from a parsed driver configuration (TLS as its `sslmode`
    /// says, without certificate verification: see [`StoreBuilder::tls`]).
    pub fn new(config: Config) -> Self {
        let tls = ConnectOptions::from(&config).tls;
        StoreBuilder {
            config,
            tls,
            pool_size: 16,
            page_size: 1000,
            max_batch_events: 10_000,
            writers: 1,
            wait_timeout: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(60)),
            limits: None,
            statement_timeout: None,
            lock_timeout: None,
            replicas: Vec::new(),
            replica_options: ReplicaOptions::default(),
            pool: None,
        }
    }

    /// Builds the store on the application's own pool instead of a pool of
    /// its own: its appends, reads and boundary reads take connections from
    /// `pool`, so the application runs one pool for its rows and its events
    /// (and appends in its own transactions with
    /// [`append_in`](crate::append::append_in) on the same connections).
    /// The pool's size, timeouts and session settings are the
    /// application's ([`pool_size`](Self::pool_size),
    /// [`statement_timeout`](Self::statement_timeout) and
    /// [`lock_timeout`](Self::lock_timeout) do not apply to it); the store
    /// keeps its batching writers (at most half the pool's connections) and
    /// its one listening connection, opened from this builder's connection
    /// string, for subscriptions and projections. The pool must reach the
    /// same database as the connection string.
    ///
    /// ```no_run
    /// # async fn f(app_pool: deadpool_postgres::Pool) -> dcbstore::Result<()> {
    /// let store = dcbstore::Store::builder("postgres://app@localhost/app")?
    ///     .pool(app_pool)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// A streaming replica (hot standby) of the database, for reads; call
    /// it once per replica. The connection string is completed like the
    /// primary's (the `PG*` variables, the password file) and uses the same
    /// TLS settings. Reads, subscriptions, projection catch-up and replay go
    /// to a healthy replica that holds what they must see; appends,
    /// conditions and decisions stay on the primary (see
    /// [`replica`](crate::replica)).
    pub fn replica(mut self, database_url: impl Into<String>) -> Self {
        self.replicas.push(database_url.into());
        self
    }

    /// How the replicas are used: lag limits, the consistency wait,
    /// read-your-writes (default [`ReplicaOptions::default`]).
    pub fn replica_options(mut self, options: ReplicaOptions) -> Self {
        self.replica_options = options;
        self
    }

    /// The TLS settings of every connection (`sslmode`, `sslrootcert`; set
    /// from the connection string by [`Store::builder`]).
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Maximum number of pooled connections (default 16).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Events fetched per page by reads (default 1000): bounds read memory.
    pub fn page_size(mut self, n: u64) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Soft cap on events combined into one append transaction (default 10,000).
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.max_batch_events = n.max(1);
        self
    }

    /// Batches in flight at once (default 1, at most half the pool). Batches
    /// commit one at a time under the append lock, so one writer makes the
    /// largest batches; more writers overlap the work done before the lock
    /// (the log check up to the head, the round trip), which pays only when
    /// the server has cores to spare. On 2 cores one writer measured best.
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = n.max(1);
        self
    }

    /// Client-side limit on each database call of an append, a read page or
    /// `head` (default 60 s; `None`: none). When a server stops answering,
    /// the call fails with [`Error::Timeout`] (reads) or
    /// [`Error::OutcomeUnknown`] (appends) and its connection is closed.
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// Server-side `statement_timeout` for the store's connections (default:
    /// the server's). An append cancelled by it wrote nothing
    /// ([`Error::Timeout`]).
    pub fn statement_timeout(mut self, t: Option<Duration>) -> Self {
        self.statement_timeout = t;
        self
    }

    /// Server-side `lock_timeout` for the store's connections (default: the
    /// server's): bounds how long an append waits for the append lock, which
    /// a long transaction calling `dcbstore.append` holds until it ends.
    /// Where neither sets one, an append waits at most 10 s for the append
    /// lock, then fails with [`Error::Timeout`] (nothing written).
    pub fn lock_timeout(mut self, t: Option<Duration>) -> Self {
        self.lock_timeout = t;
        self
    }

    /// The limits appends and reads are checked against before anything is
    /// sent (default: the database's, `dcbstore.limits`, which every entry
    /// point enforces, [`Limits::DEFAULT`] unless the schema's owner changed
    /// them). [`build`](Self::build) refuses limits outside
    /// [`Limits::CEILING`], and limits above the database's (it would refuse
    /// what they let through), saying how to raise those. A batch of appends
    /// the writer sends together stays within `max_append_bytes`, whatever
    /// its neighbours.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// How long to wait for a pooled connection (default 30 s; `None`: forever).
    pub fn pool_wait_timeout(mut self, t: Option<Duration>) -> Self {
        self.wait_timeout = t;
        self
    }

    /// Connects, checks the schema is this build's, and starts the writer.
    ///
    /// Fails with [`Error::NotMigrated`] or [`Error::DatabaseAhead`] when the
    /// schema is not exactly this build's. Must run inside a tokio runtime.
    pub async fn build(mut self) -> Result<Store> {
        let mut options = self.config.get_options().unwrap_or_default().to_string();
        for (name, t) in [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ] {
            if let Some(t) = t {
                options.push_str(&format!(" -c {name}={}", t.as_millis().max(1)));
            }
        }
        if !options.is_empty() {
            self.config.options(options.trim());
        }
        if self.config.get_connect_timeout().is_none() {
            self.config.connect_timeout(Duration::from_secs(10));
        }
        self.config.ssl_mode(self.tls.mode.driver_mode());
        let target = describe(&self.config);
        let config = self.config.clone();
        let kept_config = self.config.clone();
        if let Some(limits) = &self.limits {
            limits.validate()?;
        }
        let connector = tls_connector(&config, &self.tls)?;
        let pool = match self.pool.take() {
            Some(pool) => {
                self.pool_size = pool.status().max_size.max(1);
                pool
            }
            None => pool_of(
                self.config.clone(),
                connector.clone(),
                self.pool_size,
                self.wait_timeout,
            )?,
        };
        let client = pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => Error::Connect {
                target,
                reason: connect_reason(&config, &self.tls, &e),
                source: crate::error::pg_driver_error(e),
            },
            other => crate::error::pool_error(other),
        })?;
        let status = migrate::status(&**client).await?;
        status.require_up_to_date()?;
        let database = crate::limits::of_database(&**client).await?;
        let limits = match self.limits {
            None => database,
            Some(limits) => {
                limits.within(&database)?;
                limits
            }
        };
        tracing::info!(
            server = %describe(&kept_config),
            pool_size = self.pool_size,
            schema_version = status.expected_version,
            "store connected"
        );
        drop(client);
        let writers = self.writers.min(self.pool_size / 2).max(1);
        let pooled = Pooled {
            pool,
            timeout: self.timeout,
            tls: connector,
        };
        let batches = BatchLimits {
            events: self.max_batch_events,
            bytes: limits.max_append_bytes,
        };
        let writer = Writer::spawn(pooled.clone(), batches, writers);
        // Each reader is one statement at a time for every boundary read
        // waiting; two, so that the next batch gathers while one is read.
        let readers = Readers::spawn(pooled.clone(), writers.max(2));
        let replicas = self.replica_pools(&options_of(&kept_config)).await?;
        let listener = Arc::new(Listener::new(kept_config.clone(), self.tls.clone()));
        Ok(Store {
            inner: Arc::new(Inner {
                config: kept_config,
                tls: self.tls,
                pooled,
                writer,
                readers,
                page_size: self.page_size,
                limits,
                listener,
                store_id: status.store_id.unwrap_or_default(),
                head_gauge: HeadGauge::default(),
                replicas,
            }),
        })
    }

    /// The replicas' pools (connected lazily: a replica that is down at
    /// start is skipped until it answers).
    async fn replica_pools(&self, server_options: &str) -> Result<Option<Arc<Replicas>>> {
        if self.replicas.is_empty() {
            return Ok(None);
        }
        let mut servers = Vec::with_capacity(self.replicas.len());
        for url in &self.replicas {
            let resolved = ConnectOptions::resolve(url)?;
            let mut config = resolved.config;
            if !server_options.is_empty() && config.get_options().is_none() {
                config.options(server_options);
            }
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(Duration::from_secs(10));
            }
            config.ssl_mode(self.tls.mode.driver_mode());
            let connector = tls_connector(&config, &self.tls)?;
            let name = describe(&config);
            let pool = pool_of(config, connector.clone(), self.pool_size, self.wait_timeout)?;
            servers.push((
                name,
                Pooled {
                    pool,
                    timeout: self.timeout,
                    tls: connector,
                },
            ));
        }
        tracing::info!(replicas = servers.len(), "store reads on replicas");
        Ok(Some(Arc::new(Replicas::new(servers, self.replica_options))))
    }
}

/// The server options (`-c statement_timeout=...`) the primary's
/// connections were given, for the replicas' too.
fn options_of(config: &Config) -> String {
    config.get_options().unwrap_or_default().to_string()
}

/// A pool of `size` connections to `config`.
fn pool_of(
    config: Config,
    connector: tokio_postgres_rustls::MakeRustlsConnect,
    size: usize,
    wait_timeout: Option<Duration>,
) -> Result<Pool> {
    let connect_timeout = config.get_connect_timeout().copied();
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(wait_timeout)
        // A server that accepts connections but never answers must not
        // hang the pool: bound the handshake and the recycling check.
        .create_timeout(connect_timeout)
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| Error::Config(e.to_string()))
}
