//! [`ReadOptions`]: the window, direction and limit of a read.

use crate::commit::CommitToken;
use crate::event::SequencePosition;

/// The window and order of a read.
///
/// The lower bound is [`after`](Self::after) (exclusive) or
/// [`from`](Self::from) (inclusive); the upper bound [`to`](Self::to) is
/// inclusive. The window bounds positions the same way in both directions;
/// [`limit`](Self::limit) counts returned events.
///
/// ```
/// use dcbstore_core::{ReadOptions, SequencePosition};
///
/// let last_ten_before_100 = ReadOptions::new()
///     .to(SequencePosition::new(99))
///     .backwards()
///     .limit(10);
/// # let _ = last_ten_before_100;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    pub(super) after: u64,
    pub(super) to: Option<u64>,
    pub(super) backwards: bool,
    pub(super) limit: Option<u64>,
    pub(super) consistent_with: Option<CommitToken>,
}

impl ReadOptions {
    /// All events, forwards, no limit.
    #[must_use]
    pub fn new() -> Self {
        ReadOptions::default()
    }

    /// Only events with a position greater than `position`.
    #[must_use]
    pub fn after(mut self, position: SequencePosition) -> Self {
        self.after = position.get();
        self
    }

    /// Only events with a position greater than `position`, when there is one
    /// (the form a decision model's "last position read" takes).
    #[must_use]
    pub fn after_opt(self, position: Option<SequencePosition>) -> Self {
        match position {
            Some(p) => self.after(p),
            None => self,
        }
    }

    /// Only events with a position of at least `position`.
    #[must_use]
    pub fn from(mut self, position: SequencePosition) -> Self {
        self.after = position.get().saturating_sub(1);
        self
    }

    /// Only events with a position of at most `position`.
    #[must_use]
    pub fn to(mut self, position: SequencePosition) -> Self {
        self.to = Some(position.get());
        self
    }

    /// Highest positions first.
    #[must_use]
    pub fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// At most `n` events (0 returns nothing).
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// On a store with replicas: read on a replica only once it has
    /// replayed `token` (an [`Appended::commit_token`](crate::Appended)),
    /// waiting up to the replicas' consistency timeout, then on the primary.
    /// The read never misses what that append wrote. Without replicas, every
    /// read is on the primary and this changes nothing.
    #[must_use]
    pub fn consistent_with(mut self, token: CommitToken) -> Self {
        self.consistent_with = Some(token);
        self
    }

    /// The commit token the read must see, if any.
    pub fn token(&self) -> Option<CommitToken> {
        self.consistent_with
    }

    /// The same window, its upper bound lowered to `position` if above it.
    #[must_use]
    pub fn at_most(mut self, position: SequencePosition) -> Self {
        let p = position.get();
        self.to = Some(self.to.map_or(p, |to| to.min(p)));
        self
    }

    /// The exclusive lower bound (0: from the start).
    pub fn lower(&self) -> u64 {
        self.after
    }

    /// The inclusive upper bound, if any.
    pub fn upper(&self) -> Option<u64> {
        self.to
    }

    /// The limit, if any.
    pub fn max_events(&self) -> Option<u64> {
        self.limit
    }

    /// Whether the read goes from the highest position down.
    #[must_use]
    pub fn is_backwards(&self) -> bool {
        self.backwards
    }
}
