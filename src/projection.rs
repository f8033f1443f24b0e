//! Projections: folding events into state, decision models, and the DCB
//! command pattern (read, decide, append with the model's condition).
//!
//! A [`Projection`] names the events it needs (a [`Query`]), an initial state,
//! and how one event changes the state. Projections compose: a tuple of
//! projections is a projection whose query is the union of theirs and whose
//! state is the tuple of their states, so one read builds them all.
//!
//! ```
//! use dcbstore::projection::{Fold, Projection};
//! use dcbstore::{Event, Query, QueryItem, SequencePosition, SequencedEvent};
//! use serde_json::json;
//!
//! let capacity = Fold::new(
//!     Query::item(QueryItem::types(["CourseDefined", "CourseCapacityChanged"]).and_tags(["course:c1"])),
//!     0u64,
//!     |_, e: &SequencedEvent| e.event.data["capacity"].as_u64().unwrap_or(0),
//! );
//! let subscriptions = Fold::new(
//!     Query::item(QueryItem::types(["StudentSubscribed"]).and_tags(["course:c1"])),
//!     0u64,
//!     |n, _| n + 1,
//! );
//! let model = (capacity, subscriptions);
//! assert_eq!(model.query().items_slice().len(), 2);
//! let e = SequencedEvent {
//!     position: SequencePosition::new(1),
//!     event: Event::new("CourseDefined", json!({"capacity": 10})).with_tag("course:c1"),
//!     recorded_at: chrono::Utc::now(),
//! };
//! assert_eq!(model.apply(model.initial(), &e), (10, 0));
//! ```

use std::fmt;

use futures::TryStreamExt;

use crate::{
    AppendCondition, Appended, Error, Event, EventStore, Query, QueryItem, ReadOptions,
    SequencePosition, SequencedEvent,
};

/// Folds the events matching [`query`](Projection::query) into a state.
pub trait Projection {
    /// The state built by the fold.
    type State;

    /// The events this projection needs.
    fn query(&self) -> Query;

    /// The state before any event.
    fn initial(&self) -> Self::State;

    /// The state after `event`. Called only with events matching
    /// [`query`](Projection::query), in position order.
    fn apply(&self, state: Self::State, event: &SequencedEvent) -> Self::State;

    /// Whether `event` matches [`query`](Projection::query). Override it to
    /// avoid building the query per event (composed projections ask for
    /// every event they fold).
    fn matches(&self, event: &Event) -> bool {
        self.query().matches(event)
    }
}

/// A projection from a query, an initial state and a function.
#[derive(Clone)]
pub struct Fold<S, F> {
    query: Query,
    initial: S,
    apply: F,
}

impl<S, F> Fold<S, F>
where
    S: Clone,
    F: Fn(S, &SequencedEvent) -> S,
{
    /// A projection of the events matching `query`, starting from `initial`.
    pub fn new(query: Query, initial: S, apply: F) -> Self {
        Fold {
            query,
            initial,
            apply,
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for Fold<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fold")
            .field("query", &self.query)
            .field("initial", &self.initial)
            .finish_non_exhaustive()
    }
}

impl<S, F> Projection for Fold<S, F>
where
    S: Clone,
    F: Fn(S, &SequencedEvent) -> S,
{
    type State = S;

    fn query(&self) -> Query {
        self.query.clone()
    }

    fn initial(&self) -> S {
        self.initial.clone()
    }

    fn apply(&self, state: S, event: &SequencedEvent) -> S {
        (self.apply)(state, event)
    }

    fn matches(&self, event: &Event) -> bool {
        self.query.matches(event)
    }
}

impl<P: Projection + ?Sized> Projection for &P {
    type State = P::State;

    fn query(&self) -> Query {
        (**self).query()
    }

    fn initial(&self) -> P::State {
        (**self).initial()
    }

    fn apply(&self, state: P::State, event: &SequencedEvent) -> P::State {
        (**self).apply(state, event)
    }

    fn matches(&self, event: &Event) -> bool {
        (**self).matches(event)
    }
}

/// The union of queries: [`Query::All`] if any is, else all their items.
#[must_use]
pub fn union(queries: impl IntoIterator<Item = Query>) -> Query {
    let mut items: Vec<QueryItem> = Vec::new();
    for q in queries {
        match q {
            Query::All => return Query::All,
            Query::Items(more) => {
                for item in more {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
            }
        }
    }
    Query::Items(items)
}

macro_rules! tuple_projection {
    ($($name:ident . $idx:tt),+) => {
        impl<$($name: Projection),+> Projection for ($($name,)+) {
            type State = ($($name::State,)+);

            fn query(&self) -> Query {
                union([$(self.$idx.query()),+])
            }

            fn initial(&self) -> Self::State {
                ($(self.$idx.initial(),)+)
            }

            fn matches(&self, event: &Event) -> bool {
                $(self.$idx.matches(event))||+
            }

            fn apply(&self, state: Self::State, event: &SequencedEvent) -> Self::State {
                // Each part sees only the events its own query matches.
                ($(
                    if self.$idx.matches(&event.event) {
                        self.$idx.apply(state.$idx, event)
                    } else {
                        state.$idx
                    },
                )+)
            }
        }
    };
}

tuple_projection!(A.0, B.1);
tuple_projection!(A.0, B.1, C.2);
tuple_projection!(A.0, B.1, C.2, D.3);
tuple_projection!(A.0, B.1, C.2, D.3, E.4);
tuple_projection!(A.0, B.1, C.2, D.3, E.4, F.5);

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
    pub async fn build<P, St>(store: &St, projection: &P) -> crate::Result<Self>
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

/// Progress of a [`replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events applied so far.
    pub applied: u64,
    /// Position of the last event applied.
    pub position: SequencePosition,
}

/// Folds `projection`'s events after `after` (all when `None`) into `state`,
/// streaming the log in pages (memory stays bounded whatever its size), as of
/// the moment the replay starts. Calls `progress` after each event; returns
/// the state and the position of the last event applied (or `after`).
///
/// Rebuilding from scratch is `replay(store, &p, p.initial(), None, ..)`;
/// resuming a snapshot taken at position `s` is `replay(store, &p, state, Some(s), ..)`.
pub async fn replay<St, P>(
    store: &St,
    projection: &P,
    state: P::State,
    after: Option<SequencePosition>,
    mut progress: impl FnMut(ReplayProgress),
) -> crate::Result<(P::State, Option<SequencePosition>)>
where
    St: EventStore,
    P: Projection,
{
    let mut events = store.read(&projection.query(), ReadOptions::new().after_opt(after));
    let mut state = state;
    let mut last = after;
    let mut applied = 0;
    while let Some(e) = events.try_next().await? {
        state = projection.apply(state, &e);
        applied += 1;
        last = Some(e.position);
        progress(ReplayProgress {
            applied,
            position: e.position,
        });
    }
    Ok((state, last))
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
