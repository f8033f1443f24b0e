//! How console pages read the database without holding it: a few at a time
//! (the read permits), each within the per-request deadline, and the
//! console's own SQL under a `statement_timeout` of that deadline, so that
//! an abandoned page leaves no statement running. (The store's reads cancel
//! their statement when their future is dropped at the deadline.)

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::{Object, Transaction};

use super::error::PageError;
use super::state::Shared;

/// Runs the page while it holds one of the console's read permits (it
/// waits for one within the request's deadline).
pub(crate) async fn permit(State(console): State<Shared>, request: Request, next: Next) -> Response {
    let Ok(_permit) = console.reads.clone().acquire_owned().await else {
        return busy("the console is shutting down");
    };
    next.run(request).await
}

/// A read-only transaction whose statements are cancelled by the server at
/// the console's deadline.
pub(crate) async fn begin<'a>(
    client: &'a mut Object,
    console: &Shared,
) -> Result<Transaction<'a>, PageError> {
    let tx = client.build_transaction().read_only(true).start().await?;
    let ms = console.options.bounds.request_timeout.as_millis().max(1);
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
        .await?;
    Ok(tx)
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
