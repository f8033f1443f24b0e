//! Decisions: the model one read builds ([`DecisionModel`]) and the DCB
//! command pattern with retries ([`execute`]).

use std::fmt;

use super::{replay, Projection};
use crate::append::{AppendCondition, Appended};
use crate::error::Error;
use crate::event::{Event, SequencePosition};
use crate::query::Query;
use crate::store::EventStore;

/// The state of a projection built by one read, with what an append needs to
/// keep the decision consistent: the query read and the last position read.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionModel<S> {
    /// The folded state.
    pub state: S,
    /// The query that was read.
    pub query: Query,
    /// The position of the last event read, `None` when none matched.
    pub last_position: Option<SequencePosition>,
}

impl<S> DecisionModel<S> {
    /// Builds the model with one read of `projection`'s query.
    pub async fn build<P, St>(store: &St, projection: &P) -> crate::error::Result<Self>
    where
        P: Projection<State = S>,
        St: EventStore,
    {
        let (state, last_position) =
            replay(store, projection, projection.initial(), None, |_| {}).await?;
        Ok(DecisionModel {
            state,
            query: projection.query(),
            last_position,
        })
    }

    /// The DCB condition that keeps a decision made from this model
    /// consistent: fail if an event matching the model's query was appended
    /// after the last position read.
    #[must_use]
    pub fn append_condition(&self) -> AppendCondition {
        AppendCondition::new(self.query.clone(), self.last_position)
    }
}

/// Why [`execute`] did not append.
#[derive(Debug)]
pub enum CommandError<E> {
    /// The decision rejected the command (a domain error).
    Rejected(E),
    /// Every attempt met a concurrent change; gave up after this many.
    Exhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed.
    Store(Error),
}

impl<E: fmt::Display> fmt::Display for CommandError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Rejected(e) => write!(f, "{e}"),
            CommandError::Exhausted { attempts } => write!(
                f,
                "gave up after {attempts} attempts: the decision's events kept changing concurrently; retry later or raise the attempt limit"
            ),
            CommandError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CommandError<E> {}

impl<E> CommandError<E> {
    /// The domain error, when the decision rejected the command.
    pub fn rejected(&self) -> Option<&E> {
        match self {
            CommandError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

/// What a successful [`execute`] did.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Executed {
    /// The decided events were appended.
    Appended {
        /// Where: the position of the last one. `already_stored` when a
        /// retry after a lost acknowledgement found them committed.
        appended: Appended,
        /// The events appended (with the ids they were stored under).
        events: Vec<Event>,
        /// Appends tried: 1, plus one per conflict or unknown outcome.
        attempts: u32,
    },
    /// The decision produced no events: nothing to append.
    NothingToDo,
}

/// The DCB command pattern with retries: build `projection`'s model with one
/// read, let `decide` turn its state into events (or a domain error), append
/// them with the model's [`append_condition`](DecisionModel::append_condition);
/// on a conflict, rebuild and decide again, at most `max_attempts` times.
///
/// `decide` must be a pure function of the state: it may run several times.
/// When the connection is lost while the append is in flight
/// ([`Error::OutcomeUnknown`]), the same events (same ids) are resent with
/// the same condition: a retry that finds them committed reports them
/// `already_stored`, so a decision is never appended twice.
///
/// ```no_run
/// use dcbstore::projection::{execute, Fold};
/// use dcbstore::{Event, Query, QueryItem, Store};
/// use serde_json::json;
///
/// # async fn f(store: Store) -> Result<(), Box<dyn std::error::Error>> {
/// let exists = Fold::new(
///     Query::item(QueryItem::types(["CourseDefined"]).and_tags(["course:c1"])),
///     false,
///     |_, _| true,
/// );
/// execute(&store, &exists, 5, |exists| {
///     if *exists {
///         return Err(r#"Course with id "c1" already exists"#.to_string());
///     }
///     Ok(vec![Event::new("CourseDefined", json!({"courseId": "c1"})).with_tag("course:c1")])
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn execute<St, P, E, F>(
    store: &St,
    projection: &P,
    max_attempts: u32,
    mut decide: F,
) -> Result<Executed, CommandError<E>>
where
    St: EventStore,
    P: Projection,
    F: FnMut(&P::State) -> Result<Vec<Event>, E>,
{
    let max_attempts = max_attempts.max(1);
    let mut attempts = 0;
    while attempts < max_attempts {
        let model = DecisionModel::build(store, projection)
            .await
            .map_err(CommandError::Store)?;
        let events = decide(&model.state).map_err(CommandError::Rejected)?;
        if events.is_empty() {
            return Ok(Executed::NothingToDo);
        }
        let condition = model.append_condition();
        // The same decision until it is known to be stored or refused.
        loop {
            attempts += 1;
            match store.append(events.clone(), Some(condition.clone())).await {
                Ok(appended) => {
                    return Ok(Executed::Appended {
                        appended,
                        events,
                        attempts,
                    })
                }
                Err(Error::Conflict(_)) => break,
                Err(e) if e.is_outcome_unknown() && attempts < max_attempts => {}
                Err(e) => return Err(CommandError::Store(e)),
            }
        }
    }
    Err(CommandError::Exhausted {
        attempts: max_attempts,
    })
}
