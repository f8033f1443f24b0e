//! What a caller hands the writer: a prepared append, since when its
//! decision waits, and where to answer.

use std::time::Instant;

use tokio::sync::oneshot;

use super::prepare::PreparedAppend;
use super::Appended;
use crate::error::Result;

pub(super) struct Request {
    pub(super) append: PreparedAppend,
    /// The first attempt of the decision: a batch is decided oldest first.
    pub(super) since: Instant,
    pub(super) reply: oneshot::Sender<Result<Appended>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}
