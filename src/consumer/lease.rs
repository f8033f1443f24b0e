//! The lease of a projection, durable subscriber or relay: one runner at a
//! time per name, in any process.
//!
//! A lease is a row of `dcbstore.leases`, taken and checked only through the
//! SECURITY DEFINER functions of `sql/functions/leases.sql`. The taker's
//! dedicated connection holds a session advisory lock on a random key drawn
//! when it took the lease, so the lease ends when that connection closes
//! (the process died, the network broke), and no other role can take it
//! first or hold it back: the key is unknown until drawn, and only a lock of
//! the holder's own backend counts. Each takeover bumps the lease's
//! generation: checkpoint moves compare it under the row lock
//! ([`Lease::fence`]), and senders ask before each send whether the lease is
//! still theirs ([`Lease::confirm`]). (Wake-ups on appends come from the
//! store's shared listening connection, as for subscriptions.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use deadpool_postgres::Transaction;
use tokio::sync::oneshot;

use crate::error::PgResultExt;
use crate::store::Store;

/// A consumer's lease, held by a dedicated connection: [`follow`](super::follow)
/// takes it and hands it to each turn.
pub struct Lease {
    client: tokio_postgres::Client,
    /// Completes (with an error) when the connection, and the lock, is gone.
    lost: oneshot::Receiver<()>,
    name: String,
    generation: i64,
    /// `dcbstore.lease_held`, prepared once: a confirmation before each
    /// send is then one round trip.
    held: tokio_postgres::Statement,
    /// Set once a check found the lease gone: it never comes back.
    gone: AtomicBool,
    /// The store's limit on a database call: a confirmation that takes
    /// longer counts as a lost lease (the database may have ended it).
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("generation", &self.generation)
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Takes the lease `name` for `owner`; `None` when another runner holds
    /// it (after polling for up to `wait`, or at once when `wait` is `None`).
    pub(crate) async fn acquire(
        store: &Store,
        name: &str,
        owner: &str,
        wait: Option<Duration>,
    ) -> crate::error::Result<Option<Lease>> {
        let (client, connection) = crate::connection::open(store.config(), store.tls()).await?;
        let (tx, lost) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = connection.await;
            // Dropping `tx` tells the runner the lease is gone.
            drop(tx);
        });
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        // Polled, not waited for in the database: the holder's lock is on a
        // key only it knows, and waiting must end at the deadline anyway.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(500))
            .with_jitter()
            .without_max_times()
            .build();
        let generation = loop {
            let taken: Option<i64> = client
                .query_one("SELECT dcbstore.take_lease($1, $2)", &[&name, &owner])
                .await
                .db()?
                .try_get(0)
                .db()?;
            if let Some(g) = taken {
                break g;
            }
            let Some(deadline) = deadline else {
                return Ok(None);
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let delay = delays.next().unwrap_or(Duration::from_millis(500));
            tokio::time::sleep(delay.min(deadline - now)).await;
        };
        let held = client
            .prepare("SELECT dcbstore.lease_held($1, $2)")
            .await
            .db()?;
        Ok(Some(Lease {
            client,
            lost,
            name: name.to_string(),
            generation,
            held,
            gone: AtomicBool::new(false),
            timeout: store.pooled().timeout,
        }))
    }

    /// Completes when the lease's connection is gone (the lock with it).
    pub async fn lost(&mut self) {
        let _ = (&mut self.lost).await;
    }

    /// Whether the lease may still be held, without asking the database:
    /// false once its connection closed or a check found it gone.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        !self.gone.load(Ordering::SeqCst) && !self.client.is_closed()
    }

    /// Asks the database, on the lease's own connection, whether this
    /// runner still holds the lease: one round trip. False (for good) when
    /// the connection is gone, the answer does not come within the store's
    /// timeout, or the lease is another's.
    pub async fn confirm(&self) -> bool {
        if !self.is_alive() {
            return false;
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&self.name, &self.generation];
        let ask = self.client.query_one(&self.held, &params);
        let answer = match self.timeout {
            Some(t) => tokio::time::timeout(t, ask).await.ok(),
            None => Some(ask.await),
        };
        let held = matches!(answer, Some(Ok(row)) if row.try_get::<_, bool>(0).unwrap_or(false));
        if !held {
            self.gone.store(true, Ordering::SeqCst);
            tracing::warn!(lease = %self.name, generation = self.generation, "the lease is lost: this runner stops sending");
        }
        held
    }

    /// In a checkpoint transaction: locks the lease's row until `tx` ends
    /// and says whether the lease is still at this runner's generation. A
    /// runner whose lease another took over gets false and must move
    /// nothing.
    pub async fn fence(&self, tx: &Transaction<'_>) -> crate::error::Result<bool> {
        let current: bool = tx
            .query_one(
                "SELECT dcbstore.lease_current($1, $2)",
                &[&self.name, &self.generation],
            )
            .await
            .db()?
            .try_get(0)
            .db()?;
        if !current {
            self.gone.store(true, Ordering::SeqCst);
        }
        Ok(current)
    }
}
