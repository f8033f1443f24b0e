//! [`StateQuery`] and [`Model`]: what a decision reads, folded into typed
//! state; models compose as tuples, each part seeing only its own events.

use crate::error::Result;
use crate::event::{Event, SequencedEvent};
use crate::query::{Query, QueryItem};

use super::Events;

/// A typed state folded from the events of [`Event`](StateQuery::Event)'s
/// types that carry every tag of [`tags`](StateQuery::tags): the query is
/// built from them, not written by hand.
///
/// ```
/// use dcbstore_core::typed::StateQuery;
/// # use dcbstore_core::schema::{EventDefinition, Level};
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, JsonSchema)] struct CourseDefined { course_id: String, capacity: u32 }
/// # impl EventDefinition for CourseDefined { const NAME: &'static str = "course_defined"; const LEVEL: Level = Level::Sourced; }
///
/// /// The capacity of a course, 0 before it is defined.
/// struct Capacity { course_id: String }
///
/// impl StateQuery for Capacity {
///     type Event = CourseDefined;
///     type State = u32;
///     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.course_id)] }
///     fn initial(&self) -> u32 { 0 }
///     fn apply(&self, _: u32, e: CourseDefined) -> u32 { e.capacity }
/// }
/// let q = Capacity { course_id: "c1".into() }.query();
/// assert_eq!(q.items_slice()[0].types, ["course_defined"]);
/// ```
pub trait StateQuery {
    /// The events it reads: one event type, or an enum of several
    /// (`#[derive(Events)]`).
    type Event: Events;
    /// The state it folds.
    type State;

    /// The tags every event it reads carries (AND'd); default: none.
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }

    /// The state before any event.
    fn initial(&self) -> Self::State;

    /// The state after `event` (in position order).
    fn apply(&self, state: Self::State, event: Self::Event) -> Self::State;

    /// The events it reads: one item of its event types and its tags.
    fn query(&self) -> Query {
        Query::item(QueryItem::types(Self::Event::types()).and_tags(self.tags()))
    }
}

/// What a decision reads: a [`StateQuery`], or a tuple of models (up to
/// four), whose query is the union of theirs and whose state the tuple of
/// theirs; each part folds only the events its own query matches, decoded
/// into its own types.
pub trait Model {
    /// The folded state.
    type State;

    /// The events it reads.
    fn query(&self) -> Query;

    /// The state before any event.
    fn initial(&self) -> Self::State;

    /// The state after `event`, which [`matches`](Self::matches); an
    /// [`Error::Undecodable`](crate::Error::Undecodable) when it cannot be
    /// decoded.
    fn fold(&self, state: Self::State, event: &SequencedEvent) -> Result<Self::State>;

    /// Whether `event` is one this model reads.
    fn matches(&self, event: &Event) -> bool;
}

impl<Q: StateQuery> Model for Q {
    type State = Q::State;

    fn query(&self) -> Query {
        StateQuery::query(self)
    }

    fn initial(&self) -> Q::State {
        StateQuery::initial(self)
    }

    fn fold(&self, state: Q::State, event: &SequencedEvent) -> Result<Q::State> {
        Ok(self.apply(state, Q::Event::decode(event)?))
    }

    fn matches(&self, event: &Event) -> bool {
        StateQuery::query(self).matches(event)
    }
}

macro_rules! tuple_model {
    ($($part:ident $i:tt),+) => {
        impl<$($part: Model),+> Model for ($($part,)+) {
            type State = ($($part::State,)+);

            fn query(&self) -> Query {
                crate::projection::union([$(self.$i.query()),+])
            }

            fn initial(&self) -> Self::State {
                ($(self.$i.initial(),)+)
            }

            fn fold(&self, state: Self::State, event: &SequencedEvent) -> Result<Self::State> {
                Ok(($(
                    if self.$i.matches(&event.event) {
                        self.$i.fold(state.$i, event)?
                    } else {
                        state.$i
                    },
                )+))
            }

            fn matches(&self, event: &Event) -> bool {
                $(self.$i.matches(event))||+
            }
        }
    };
}

tuple_model!(A 0, B 1);
tuple_model!(A 0, B 1, C 2);
tuple_model!(A 0, B 1, C 2, D 3);
