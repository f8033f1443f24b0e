//! How console pages read the database without holding it: a few at a time
//! (the read permits), each within the per-request deadline. A page cut at
//! the deadline leaves no statement running: the store's reads cancel
//! theirs when dropped, and the console's own SQL runs on a [`Reading`],
//! which does the same (and under a `statement_timeout` of the deadline
//! besides). The permit of a cut page is given back a moment later, once
//! the cancel had time to land, so that at most `max_reads` statements run
//! at once even while pages are being cut.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dcbstore::Store;
use deadpool_postgres::{Object, Transaction};
use tokio::sync::OwnedSemaphorePermit;

use super::error::PageError;
use super::state::Shared;

/// How long the permit of a cut page stays taken (a cancel request takes
/// milliseconds; the store waits as long for its own).
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// A read permit that, dropped before [`Held::release`] (the page was cut),
/// is given back only after [`CANCEL_GRACE`].
pub(crate) struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Waits for one of the console's read permits.
    pub(crate) async fn acquire(console: &Shared) -> Option<Held> {
        console
            .reads
            .clone()
            .acquire_owned()
            .await
            .ok()
            .map(|p| Held(Some(p)))
    }

    /// The page is done: the permit goes back now.
    pub(crate) fn release(mut self) {
        self.0.take();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    tokio::time::sleep(CANCEL_GRACE).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Runs the page while it holds one of the console's read permits (it
/// waits for one within the request's deadline).
pub(crate) async fn permit(
    State(console): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let Some(held) = Held::acquire(&console).await else {
        return busy("the console is shutting down");
    };
    let response = next.run(request).await;
    held.release();
    response
}

/// A pooled connection for the console's own SQL. Dropped before
/// [`finish`](Reading::finish) (the page was cut, or failed), it cancels
/// what the server still runs for it and closes the connection rather than
/// give the pool one with an abandoned statement.
pub(crate) struct Reading {
    client: Option<Object>,
    store: Store,
}

impl Reading {
    /// A connection from the store's pool.
    pub(crate) async fn start(console: &Shared) -> Result<Reading, PageError> {
        Ok(Reading {
            client: Some(console.store.pool().get().await?),
            store: console.store.clone(),
        })
    }

    /// A read-only transaction whose statements the server also ends at
    /// the console's deadline.
    pub(crate) async fn begin(&mut self, console: &Shared) -> Result<Transaction<'_>, PageError> {
        let Some(client) = self.client.as_mut() else {
            return Err(PageError::BadRequest("this reading is finished".into()));
        };
        let tx = client.build_transaction().read_only(true).start().await?;
        let ms = console.options.bounds.request_timeout.as_millis().max(1);
        tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
            .await?;
        Ok(tx)
    }

    /// The page read what it needed: the connection goes back to the pool.
    pub(crate) fn finish(mut self) {
        self.client.take();
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.store.abandon(client);
        }
    }
}

/// Gives the bare 503 of the deadline (tower-http's timeout) a message.
pub(crate) async fn explain_deadline(response: Response) -> Response {
    let bare = response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if bare {
        return busy("the page took longer than the console's deadline; narrow the query or the window, or try again");
    }
    response
}

/// 503 with what to do.
pub(crate) fn busy(why: &str) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Body::from(format!("503 Service Unavailable: {why}\n")),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
