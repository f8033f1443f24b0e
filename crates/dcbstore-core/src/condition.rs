//! The DCB append condition ([`AppendCondition`] of [`AppendGuard`]s) and a
//! successful append's answer, [`Appended`] (a failed condition's is a
//! [`Conflict`](crate::Conflict)).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::SequencePosition;
use crate::limits::{Limit, Limits};
use crate::query::Query;

/// One guard of an [`AppendCondition`]: fail if an event matching
/// `fail_if_events_match` exists after `after` (anywhere when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendGuard {
    /// The query whose matches make the append fail.
    #[serde(rename = "query")]
    pub fail_if_events_match: Query,
    /// Only events after this position count.
    #[serde(default)]
    pub after: Option<SequencePosition>,
}

/// The DCB append condition: one or more guards, any of which failing makes
/// the append write nothing and return [`Error::Conflict`].
///
/// ```
/// use dcbstore_core::{AppendCondition, Query, QueryItem, SequencePosition};
///
/// // The DCB specification's single condition:
/// let c = AppendCondition::new(Query::item(QueryItem::tags(["course:c1"])), Some(SequencePosition::new(42)));
/// // A decision that read two boundaries at different positions:
/// let c = c.and(Query::item(QueryItem::tags(["student:s1"])), None);
/// assert_eq!(c.guards.len(), 2);
/// assert!(c.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppendCondition {
    /// The guards; the append fails when any of them matches.
    pub guards: Vec<AppendGuard>,
}

impl AppendCondition {
    /// A condition with one guard (the DCB specification's condition).
    #[must_use]
    pub fn new(fail_if_events_match: Query, after: Option<SequencePosition>) -> Self {
        AppendCondition {
            guards: vec![AppendGuard {
                fail_if_events_match,
                after,
            }],
        }
    }

    /// Adds a guard.
    #[must_use]
    pub fn and(mut self, fail_if_events_match: Query, after: Option<SequencePosition>) -> Self {
        self.guards.push(AppendGuard {
            fail_if_events_match,
            after,
        });
        self
    }

    /// Checks the guards as an append does before sending them, against
    /// the default [`Limits`]: at least one, at most
    /// [`max_guards`](Limits::max_guards), each query valid, each position
    /// one the database can hold.
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&Limits::DEFAULT)
    }

    /// [`validate`](Self::validate) against `limits` (a store's).
    pub fn validate_with(&self, limits: &Limits) -> Result<()> {
        if self.guards.is_empty() {
            return Err(Error::invalid(
                "append condition has no guards: pass no condition for an unconditional append",
            ));
        }
        if self.guards.len() > limits.max_guards {
            return Err(limits.exceeded(
                Limit::Guards,
                self.guards.len(),
                format!(
                    "append condition has {} guards; the limit is {}",
                    self.guards.len(),
                    limits.max_guards
                ),
            ));
        }
        for g in &self.guards {
            g.fail_if_events_match.validate_with(limits)?;
            if g.after.is_some_and(|p| i64::try_from(p.get()).is_err()) {
                return Err(Error::invalid(format!(
                    "a guard's after position must be at most {}",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }
}

/// A successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Appended {
    /// Position of the last event of the append.
    pub position: SequencePosition,
    /// True when every event was already stored with the same content (an
    /// idempotent retry): nothing new was written.
    pub already_stored: bool,
    /// A WAL position at or after the commit, for reads on replicas that
    /// must see this append
    /// ([`ReadOptions::consistent_with`](crate::ReadOptions::consistent_with)).
    /// `None` for an append in the caller's transaction
    /// (`dcbstore::append::append_in`), which has not committed.
    pub commit_token: Option<crate::commit::CommitToken>,
}
