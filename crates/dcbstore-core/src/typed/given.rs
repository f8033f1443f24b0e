//! Given / when / then for deciders, in memory: `given(events)
//! .when(decision).then(events)` (or `.then_error(error)`), on a fresh
//! [`MemoryStore`]: no database, no I/O.

use std::fmt::Debug;

use futures::TryStreamExt;

use crate::event::{Event, SequencedEvent};
use crate::memory::MemoryStore;
use crate::projection::{CommandError, Executed};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::store::EventStore;

use super::{decide, Decision, Events};

/// The history of a decider test: typed events, appended in order to a
/// fresh [`MemoryStore`] before the decision runs.
///
/// ```
/// # use dcbstore_core::schema::{EventDefinition, Level};
/// # use dcbstore_core::typed::{Decision, StateQuery};
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
/// # struct CourseDefined { course_id: String, capacity: u32 }
/// # impl EventDefinition for CourseDefined {
/// #     const NAME: &'static str = "course_defined";
/// #     const LEVEL: Level = Level::Sourced;
/// #     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.course_id)] }
/// # }
/// # struct Exists(String);
/// # impl StateQuery for Exists {
/// #     type Event = CourseDefined; type State = bool;
/// #     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.0)] }
/// #     fn initial(&self) -> bool { false }
/// #     fn apply(&self, _: bool, _: CourseDefined) -> bool { true }
/// # }
/// # struct DefineCourse { course_id: String, capacity: u32 }
/// # impl Decision for DefineCourse {
/// #     type Model = Exists; type Emits = CourseDefined; type Error = String;
/// #     fn model(&self) -> Exists { Exists(self.course_id.clone()) }
/// #     fn decide(&self, exists: &bool) -> Result<Vec<CourseDefined>, String> {
/// #         if *exists { return Err(format!("course {} already exists", self.course_id)); }
/// #         Ok(vec![CourseDefined { course_id: self.course_id.clone(), capacity: self.capacity }])
/// #     }
/// # }
/// use dcbstore_core::typed::given;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let c1 = || CourseDefined { course_id: "c1".into(), capacity: 10 };
/// given(Vec::<CourseDefined>::new())
///     .when(DefineCourse { course_id: "c1".into(), capacity: 10 })
///     .then([c1()])
///     .await;
/// given([c1()])
///     .when(DefineCourse { course_id: "c1".into(), capacity: 10 })
///     .then_error("course c1 already exists".to_string())
///     .await;
/// # });
/// ```
pub fn given<E: Events>(events: impl IntoIterator<Item = E>) -> Given {
    Given { events: Vec::new() }.and(events)
}

/// Events to start from; see [`given`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Given {
    events: Vec<Event>,
}

impl Given {
    /// More history, of another event type.
    ///
    /// # Panics
    ///
    /// When an event cannot be written as JSON (a test's mistake).
    pub fn and<E: Events>(mut self, events: impl IntoIterator<Item = E>) -> Self {
        for e in events {
            match e.to_event() {
                Ok(event) => self.events.push(event),
                Err(err) => panic!("a given event cannot be stored: {err}"),
            }
        }
        self
    }

    /// The decision under test.
    pub fn when<D: Decision>(self, decision: D) -> When<D> {
        When {
            given: self.events,
            decision,
        }
    }
}

/// A decision over a history; see [`given`].
#[must_use]
pub struct When<D> {
    given: Vec<Event>,
    decision: D,
}

impl<D: Decision> When<D> {
    /// Runs the decision on a fresh store holding the history: its outcome,
    /// and the events it appended (stored, with positions).
    ///
    /// # Panics
    ///
    /// When the history cannot be appended (it breaks a limit).
    pub async fn outcome(
        self,
    ) -> (
        Result<Executed, CommandError<D::Error>>,
        Vec<SequencedEvent>,
    ) {
        let store = MemoryStore::new();
        let head = if self.given.is_empty() {
            None
        } else {
            match store.append(self.given, None).await {
                Ok(appended) => Some(appended.position),
                Err(e) => panic!("the given events cannot be appended: {e}"),
            }
        };
        let outcome = decide(&store, &self.decision).await;
        let appended = store
            .read(&Query::all(), ReadOptions::new().after_opt(head))
            .try_collect()
            .await
            .unwrap_or_default();
        (outcome, appended)
    }

    /// Asserts that the decision appends exactly `expected` (none: that it
    /// decides nothing), decoded back from the store.
    ///
    /// # Panics
    ///
    /// When it decides otherwise, fails, or appends other events.
    pub async fn then(self, expected: impl IntoIterator<Item = D::Emits>)
    where
        D::Emits: PartialEq + Debug,
        D::Error: Debug,
    {
        let expected: Vec<D::Emits> = expected.into_iter().collect();
        let (outcome, appended) = self.outcome().await;
        match (&outcome, expected.is_empty()) {
            (Ok(Executed::Appended { .. }), false) | (Ok(Executed::NothingToDo), true) => {}
            _ => panic!(
                "expected {} events, the decision ended with {outcome:?}",
                expected.len()
            ),
        }
        let decided: Vec<D::Emits> = appended
            .iter()
            .map(|e| D::Emits::decode(e).unwrap_or_else(|err| panic!("{err}")))
            .collect();
        assert_eq!(decided, expected, "the events decided");
    }

    /// Asserts that the decision refuses with `expected` and appends nothing.
    ///
    /// # Panics
    ///
    /// When it decides events, or ends otherwise.
    pub async fn then_error(self, expected: D::Error)
    where
        D::Error: PartialEq + Debug,
    {
        let (outcome, appended) = self.outcome().await;
        match outcome {
            Err(CommandError::Rejected(e)) => assert_eq!(e, expected, "the domain error"),
            Err(e) => panic!("expected the domain error {expected:?}, got {e:?}"),
            Ok(done) => {
                panic!("expected the domain error {expected:?}, the decision ended with {done:?}")
            }
        }
        assert!(
            appended.is_empty(),
            "a refused decision appended {appended:?}"
        );
    }
}
