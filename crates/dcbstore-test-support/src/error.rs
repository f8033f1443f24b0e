//! Why a test helper could not start what it runs.

/// A helper process (chromedriver, nats-server) could not be found, started
/// or reached; the message says which and what to install or set.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

/// The result of the helpers of this crate.
pub type Result<T> = std::result::Result<T, Error>;
