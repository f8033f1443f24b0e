//! `/healthz` (the process is up), `/readyz` (the database answers and is
//! migrated to this build's schema) and `/metrics` (Prometheus text).
//!
//! Both probes are open to anyone who reaches the port, so `/readyz` says
//! only which of three states the store is in; the error itself goes to
//! the console's log. Neither takes a read permit: they answer while pages
//! wait for one.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::Shared;
use dcbstore::migrate;
use dcbstore::{Error, PgResultExt};

/// How long `/readyz` waits for the database.
const READY_WAIT: Duration = Duration::from_secs(5);

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the database is reachable and migrated, 503 and
/// which of those failed otherwise.
pub(crate) async fn readyz(State(console): State<Shared>) -> Response {
    let ready = tokio::time::timeout(READY_WAIT, async {
        let client = console.store.pool().get().await.db()?;
        migrate::status(&**client).await?.require_up_to_date()
    })
    .await;
    let reason = match ready {
        Ok(Ok(())) => return (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(Error::NotMigrated { .. })) => {
            "the database is not migrated to this build's schema: run `dcbstore migrate`"
        }
        Ok(Err(Error::DatabaseAhead { .. })) => {
            "the database was migrated by a newer dcbstore: upgrade this one"
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "console not ready");
            "the database does not answer (the console's log says why)"
        }
        Err(_) => {
            tracing::warn!(wait = ?READY_WAIT, "console not ready: the database did not answer in time");
            "the database does not answer (the console's log says why)"
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {reason}\n"),
    )
        .into_response()
}

/// `GET /metrics`: what the process's Prometheus recorder holds.
pub(crate) async fn metrics(State(console): State<Shared>) -> Response {
    match &console.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this console was built without a Prometheus recorder: the application exports its metrics itself (see dcbstore::metrics)\n",
        )
            .into_response(),
    }
}
