//! [`Fence`]: what a sink or a transport asks before each send, so that a
//! consumer that lost its lease stops at its next send.

use dcbstore::consumer::Lease;

/// Whether the consumer that hands a batch over still holds its lease.
///
/// A relay's runner passes one to [`Transport::publish_fenced`]: the
/// transport asks before each send and stops at the first send after the
/// lease is lost (its database connection closed, so another runner may be
/// sending the same events). [`confirm`](Self::confirm) asks the database
/// (one round trip on the lease's own connection);
/// [`holds`](Self::holds) asks nobody (false once the connection closed or
/// a confirmation failed), for sends too many and too fast for a round
/// trip each. Outside a runner (a direct publish, a dead-letter retry) the
/// fence is [`unfenced`](Self::unfenced) and always holds.
///
/// [`Transport::publish_fenced`]: super::Transport::publish_fenced
pub struct Fence<'a> {
    lease: Option<&'a Lease>,
}

impl std::fmt::Debug for Fence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("leased", &self.lease.is_some())
            .field("holds", &self.holds())
            .finish()
    }
}

impl<'a> Fence<'a> {
    /// The fence of a runner holding `lease`.
    pub(crate) fn of(lease: &'a Lease) -> Fence<'a> {
        Fence { lease: Some(lease) }
    }

    /// No lease to lose: every send may go.
    #[must_use]
    pub fn unfenced() -> Fence<'static> {
        Fence { lease: None }
    }

    /// Whether the lease may still be held, without a round trip: false
    /// once its connection closed or a [`confirm`](Self::confirm) failed.
    #[must_use]
    pub fn holds(&self) -> bool {
        self.lease.is_none_or(Lease::is_alive)
    }

    /// Whether the lease is still this runner's, asked of the database (one
    /// round trip on the lease's connection). Once false, always false.
    pub async fn confirm(&self) -> bool {
        match self.lease {
            Some(lease) => lease.confirm().await,
            None => true,
        }
    }
}
