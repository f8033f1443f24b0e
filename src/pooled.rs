//! Calls on pooled connections, below both reads and appends: the client-side
//! timeout, the cancellation of what is abandoned, and the head.

use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures::future::BoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, PgResultExt, Result};
use crate::event::SequencePosition;

/// How long a cancel request may take before it is given up (the server may
/// be the one that stopped answering).
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// How long a timed-out caller waits for its cancel request to be taken
/// before it gets its error (the request goes on in the background).
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// A call that ran out of time: its statement was cancelled and its
/// connection closed, not reused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired(pub(crate) Duration);

/// The store's pool, with what its calls need: the client-side timeout, and
/// the TLS connector that cancel requests go through.
#[derive(Clone)]
pub(crate) struct Pooled {
    pub(crate) pool: Pool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A pooled connection while a call runs on it. Abandoned (the call timed
/// out, or its future was dropped), it cancels the statement the server may
/// still be running, so that no backend goes on waiting for a lock or
/// commits later, and closes the connection instead of returning it to the
/// pool, where the next caller would read the abandoned call's answer.
struct InFlight {
    client: Option<Object>,
    tls: MakeRustlsConnect,
}

impl InFlight {
    /// The call finished: the connection goes back to the pool, unless the
    /// call found it gone (then the pool could hand it out again before its
    /// recycling check notices).
    fn finish<T>(mut self, result: &Result<T>) {
        let Some(client) = self.client.take() else {
            return;
        };
        if matches!(result, Err(Error::Database(e)) if connection_gone(e)) {
            drop(Object::take(client));
        } else {
            drop(client);
        }
    }

    /// Cancels the statement, waits a moment for the server to take the
    /// request (so that a caller who gets its timeout finds the statement
    /// gone), then closes the connection.
    async fn cancel(mut self) {
        if let Some(client) = self.client.take() {
            let token = client.cancel_token();
            let tls = self.tls.clone();
            let request = tokio::spawn(async move {
                let _ = tokio::time::timeout(CANCEL_WAIT, token.cancel_query(tls)).await;
            });
            let _ = tokio::time::timeout(CANCEL_GRACE, request).await;
            drop(Object::take(client));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            abandon(&self.tls, client);
        }
    }
}

/// Cancels what `client` may still be running (in the background, through
/// `tls`, when a runtime is there to send the request) and closes it
/// instead of returning it to the pool.
pub(crate) fn abandon(tls: &MakeRustlsConnect, client: Object) {
    let token = client.cancel_token();
    let tls = tls.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CANCEL_WAIT, token.cancel_query(tls)).await;
        });
    }
    drop(Object::take(client));
}

impl Pooled {
    /// Runs `call` on a pooled connection, within the timeout when there is
    /// one. On expiry the statement is cancelled and the connection closed,
    /// and the result is [`Expired`]: what expiry means (nothing happened, or
    /// the outcome is unknown) is the caller's to say.
    pub(crate) async fn call<T>(
        &self,
        call: impl for<'a> FnOnce(&'a ClientWrapper) -> BoxFuture<'a, Result<T>>,
    ) -> Result<std::result::Result<Result<T>, Expired>> {
        let client = self.pool.get().await.db()?;
        let in_flight = InFlight {
            client: Some(client),
            tls: self.tls.clone(),
        };
        let outcome = {
            let Some(client) = in_flight.client.as_ref() else {
                return Err(Error::Closed);
            };
            match self.timeout {
                None => Ok(call(client).await),
                Some(t) => tokio::time::timeout(t, call(client))
                    .await
                    .map_err(|_| Expired(t)),
            }
        };
        match outcome {
            Ok(result) => {
                in_flight.finish(&result);
                Ok(Ok(result))
            }
            Err(expired) => {
                in_flight.cancel().await;
                Ok(Err(expired))
            }
        }
    }

    /// [`call`](Self::call) for a read-only call: expiry is
    /// [`Error::Timeout`] (nothing was written, retrying is safe). A
    /// connection found gone (closed, or its backend terminated) is tried
    /// again, on another: the pool can hand out a connection whose backend
    /// is gone before the client has noticed, and a read is safe to
    /// repeat. (The closed one is not reused: the pool's recycling check
    /// drops it.)
    pub(crate) async fn read<T>(
        &self,
        operation: &str,
        f: impl for<'a> Fn(&'a ClientWrapper) -> BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        // Every connection in the pool may be such a one (a restarted
        // server): each failure drops one, so a pool's worth of tries ends
        // on a fresh connection.
        let mut tries = self.pool.status().max_size;
        loop {
            match self.read_once(operation, &f).await {
                Err(Error::Database(e)) if connection_gone(&e) && tries > 0 => {
                    tries -= 1;
                    tracing::debug!(error = %e, "a pooled connection was closed; reading on another");
                }
                other => return other,
            }
        }
    }

    async fn read_once<T>(
        &self,
        operation: &str,
        f: &impl for<'a> Fn(&'a ClientWrapper) -> BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        self.call(f).await?.unwrap_or_else(|Expired(t)| {
            Err(Error::Timeout {
                operation: operation.to_string(),
                after: Some(t),
                hint: "the server did not answer: check that it is up and not overloaded; the call was cancelled and its connection closed".into(),
                source: None,
            })
        })
    }

    /// The highest committed position (`None`: an empty store).
    pub(crate) async fn head(&self) -> Result<Option<SequencePosition>> {
        let head: Option<i64> = self
            .read("reading the head", |c| {
                Box::pin(async move {
                    let stmt = c.prepare_cached("SELECT dcbstore.head()").await.db()?;
                    c.query_one(&stmt, &[]).await.db()?.try_get(0).db()
                })
            })
            .await?;
        Ok(head.map(SequencePosition::from_sql))
    }
}

/// Whether an error says the connection itself is gone: closed, or its
/// backend terminated (by an administrator, or a server crash), as the
/// first statement on such a pooled connection finds.
fn connection_gone(e: &crate::error::DriverError) -> bool {
    e.downcast_ref::<tokio_postgres::Error>().is_some_and(|e| {
        e.is_closed()
            || e.code()
                .is_some_and(|c| *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN)
    })
}
