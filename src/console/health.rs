//! `/healthz` (the process is up), `/readyz` (the database answers and is
//! migrated to this build's schema) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::Shared;
use crate::migrate;

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the database is reachable and migrated, 503 and
/// the reason otherwise.
pub(crate) async fn readyz(State(console): State<Shared>) -> Response {
    let ready = async {
        let client = console.store.pool().get().await?;
        migrate::status(&**client).await?.require_up_to_date()
    }
    .await;
    match ready {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
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
