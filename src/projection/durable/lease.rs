//! A projection's lease: a session advisory lock on a dedicated connection,
//! which also LISTENs for appends. One runner at a time holds it; when its
//! process dies, the connection closes and the lock with it.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::AsyncMessage;

use crate::store::Store;

/// The lease of a projection: a session advisory lock held by a dedicated
/// connection, which also LISTENs for appends.
pub(super) struct Lease {
    client: tokio_postgres::Client,
    pub(super) wakeups: mpsc::UnboundedReceiver<()>,
}

impl Lease {
    /// Takes the lease; `None` when another session holds it (after waiting
    /// up to `wait`, or at once when `wait` is `None`).
    pub(super) async fn acquire(
        store: &Store,
        name: &str,
        wait: Option<Duration>,
    ) -> crate::error::Result<Option<Lease>> {
        let (client, mut connection) = crate::connection::open(store.config(), store.tls()).await?;
        let (tx, wakeups) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let AsyncMessage::Notification(_) = m {
                    let _ = tx.send(());
                }
            }
            // Dropping `tx` tells the runner the lease is gone.
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
        client.batch_execute("LISTEN dcbstore_events").await?;
        Ok(Some(Lease { client, wakeups }))
    }

    pub(super) fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }
}
