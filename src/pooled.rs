//! Calls on pooled connections, below both reads and appends: the client-side
//! timeout, and the head.

use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::event::SequencePosition;

/// A call that ran out of time: its connection was closed, not reused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired(pub(crate) Duration);

/// Runs `call` on the pooled `client`, within `timeout` when there is one.
///
/// On expiry the connection, which may still be busy with the call, is
/// closed instead of going back to the pool (the next caller would read the
/// abandoned call's answer), and the result is [`Expired`]: what expiry means
/// (nothing happened, or the outcome is unknown) is the caller's to say.
pub(crate) async fn call<T>(
    client: Object,
    timeout: Option<Duration>,
    call: impl for<'a> FnOnce(&'a ClientWrapper) -> BoxFuture<'a, Result<T>>,
) -> std::result::Result<Result<T>, Expired> {
    let Some(t) = timeout else {
        return Ok(call(&client).await);
    };
    match tokio::time::timeout(t, call(&client)).await {
        Ok(r) => Ok(r),
        Err(_) => {
            drop(Object::take(client));
            Err(Expired(t))
        }
    }
}

/// [`call`] for a read-only call: expiry is [`Error::Timeout`] (nothing was
/// written, retrying is safe).
pub(crate) async fn read<T>(
    client: Object,
    timeout: Option<Duration>,
    operation: &str,
    f: impl for<'a> FnOnce(&'a ClientWrapper) -> BoxFuture<'a, Result<T>>,
) -> Result<T> {
    call(client, timeout, f).await.unwrap_or_else(|Expired(t)| {
        Err(Error::Timeout {
            operation: operation.to_string(),
            after: Some(t),
            hint: "the server did not answer: check that it is up and not overloaded; the call was abandoned and its connection closed".into(),
            source: None,
        })
    })
}

/// The highest committed position (`None`: an empty store), within `timeout`.
pub(crate) async fn head(
    pool: &Pool,
    timeout: Option<Duration>,
) -> Result<Option<SequencePosition>> {
    let client = pool.get().await?;
    let head: Option<i64> = read(client, timeout, "reading the head", |c| {
        Box::pin(async move {
            let stmt = c.prepare_cached("SELECT dcbstore.head()").await?;
            Ok(c.query_one(&stmt, &[]).await?.try_get(0)?)
        })
    })
    .await?;
    Ok(head.map(SequencePosition::from_sql))
}
