//! What a page answers when it cannot render: a status and a message that
//! says what to do, in the page shell (HTML, escaped like everything else).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio_postgres::error::SqlState;

use super::page;
use dcbstore::{Error, PgErrorExt};

/// A page's failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// A parameter the page cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// An action this console does not allow.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<tokio_postgres::Error> for PageError {
    fn from(e: tokio_postgres::Error) -> Self {
        PageError::Store(dcbstore::pg_error(e))
    }
}

impl From<deadpool_postgres::PoolError> for PageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PageError::Store(dcbstore::pool_error(e))
    }
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::Store(Error::Invalid(_) | Error::LimitExceeded { .. }) => {
                StatusCode::BAD_REQUEST
            }
            PageError::Store(e) if e.sql_state() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                StatusCode::FORBIDDEN
            }
            PageError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            PageError::Store(e) if e.sql_state() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
                "{e}. The console's role lacks a privilege: a read-only console needs `dcbstore grant ROLE --read-only`; actions need the application's grant (`dcbstore grant ROLE`), run as the schema's owner"
            ),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "console page failed");
        }
        let body = page::shell(
            "Error",
            "",
            maud::html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error { (self.message()) }
            },
        );
        (status, body).into_response()
    }
}
