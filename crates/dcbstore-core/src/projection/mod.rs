//! Projections: folding events into state, decision models, and the DCB
//! command pattern (read, decide, append with the model's condition). (The
//! `dcbstore` crate adds durable projections, whose state is a read model in
//! PostgreSQL.)
//!
//! A [`Projection`] names the events it needs (a [`Query`]), an initial state,
//! and how one event changes the state. Projections compose: a tuple of
//! projections is a projection whose query is the union of theirs and whose
//! state is the tuple of their states, so one read builds them all.
//!
//! ```
//! use dcbstore_core::projection::{Fold, Projection};
//! use dcbstore_core::{Event, Query, QueryItem, SequencePosition, SequencedEvent};
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

mod decision;
mod execute;
mod replay;
mod retry;

pub use decision::DecisionModel;
pub(crate) use execute::run;
pub use execute::{execute, execute_with, CommandError, Executed};
pub use replay::{replay, ReplayProgress};
pub use retry::Retry;

use crate::event::{Event, SequencedEvent};
use crate::query::{Query, QueryItem};

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
