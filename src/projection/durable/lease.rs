//! A projection's lease: a session advisory lock on a dedicated connection.
//! One runner at a time holds it; when its process dies, the connection
//! closes and the lock with it. (Wake-ups on appends come from the store's
//! shared listening connection, as for subscriptions.)

use std::time::Duration;

use tokio::sync::oneshot;
use tokio_postgres::error::SqlState;

use crate::store::Store;

/// The lease of a projection: a session advisory lock held by a dedicated
/// connection.
pub(crate) struct Lease {
    client: tokio_postgres::Client,
    /// Completes (with an error) when the connection, and the lock, is gone.
    lost: oneshot::Receiver<()>,
}

impl Lease {
    /// Takes the lease; `None` when another session holds it (after waiting
    /// up to `wait`, or at once when `wait` is `None`).
    pub(crate) async fn acquire(
        store: &Store,
        name: &str,
        wait: Option<Duration>,
    ) -> crate::error::Result<Option<Lease>> {
        let (client, connection) = crate::connection::open(store.config(), store.tls()).await?;
        let (tx, lost) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = connection.await;
            // Dropping `tx` tells the runner the lease is gone.
            drop(tx);
        });
        let key = format!("dcbstore.projection:{name}");
        let got: bool = match wait {
            None => client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&key],
                )
                .await?
                .try_get(0)?,
            Some(wait) => {
                let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX).max(1);
                client
                    .batch_execute(&format!("SET lock_timeout = {ms}"))
                    .await?;
                match client
                    .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
                    .await
                {
                    Ok(_) => true,
                    Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !got {
            return Ok(None);
        }
        Ok(Some(Lease { client, lost }))
    }

    /// Completes when the lease's connection is gone (the lock with it).
    pub(crate) async fn lost(&mut self) {
        let _ = (&mut self.lost).await;
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }
}
