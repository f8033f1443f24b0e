//! [`Decision`]: a state query's state turned into typed events or a domain
//! error, and [`decide`], the DCB loop that runs it.

use crate::projection::{run, CommandError, Executed, Retry};
use crate::store::EventStore;

use super::{Events, Model};

/// A decision: the [`Model`] it reads (a state query, or a tuple of
/// them), and how it turns the model's state into new events or a domain
/// error. [`decide`] reads the model's boundary, decides, appends under the
/// model's condition, and on a conflict folds what changed and decides
/// again. `decide` must depend only on the state: it may run several times.
///
/// ```
/// use dcbstore_core::memory::MemoryStore;
/// use dcbstore_core::schema::{EventDefinition, Level};
/// use dcbstore_core::typed::{decide, Decision, StateQuery};
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
/// struct CourseDefined { course_id: String, capacity: u32 }
/// impl EventDefinition for CourseDefined {
///     const NAME: &'static str = "course_defined";
///     const LEVEL: Level = Level::Sourced;
///     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.course_id)] }
/// }
///
/// struct Exists(String);
/// impl StateQuery for Exists {
///     type Event = CourseDefined;
///     type State = bool;
///     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.0)] }
///     fn initial(&self) -> bool { false }
///     fn apply(&self, _: bool, _: CourseDefined) -> bool { true }
/// }
///
/// struct DefineCourse { course_id: String, capacity: u32 }
/// impl Decision for DefineCourse {
///     type Model = Exists;
///     type Emits = CourseDefined;
///     type Error = String;
///     fn model(&self) -> Exists { Exists(self.course_id.clone()) }
///     fn decide(&self, exists: &bool) -> Result<Vec<CourseDefined>, String> {
///         if *exists {
///             return Err(format!("course {} already exists", self.course_id));
///         }
///         Ok(vec![CourseDefined { course_id: self.course_id.clone(), capacity: self.capacity }])
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let define = DefineCourse { course_id: "c1".into(), capacity: 10 };
/// decide(&store, &define).await.unwrap();
/// let again = decide(&store, &define).await.unwrap_err();
/// assert_eq!(again.rejected().map(String::as_str), Some("course c1 already exists"));
/// # });
/// ```
pub trait Decision {
    /// What it reads.
    type Model: Model;
    /// The events it decides: one event type, or an enum of several
    /// (`#[derive(Events)]`).
    type Emits: Events;
    /// Its domain error.
    type Error;

    /// The model to read, for this decision's arguments.
    fn model(&self) -> Self::Model;

    /// The new events given the state read, or why the command is refused.
    fn decide(
        &self,
        state: &<Self::Model as Model>::State,
    ) -> Result<Vec<Self::Emits>, Self::Error>;
}

/// `store.decide(&decision)` on every [`EventStore`]: [`decide`] as a
/// method.
pub trait Decide: EventStore + Sync + Sized {
    /// Runs a typed [`Decision`]: reads its model's boundary, decides,
    /// appends under the model's condition, and on a conflict folds what
    /// changed and decides again ([`decide`], 10 attempts).
    fn decide<D: Decision>(
        &self,
        decision: &D,
    ) -> impl std::future::Future<Output = Result<Executed, CommandError<D::Error>>> {
        decide(self, decision)
    }
}

impl<St: EventStore + Sync> Decide for St {}

/// Runs `decision` on `store` with the default [`Retry`] (10 attempts):
/// reads its model's boundary, decides, appends under the model's
/// condition; on a conflict folds the conflict's events (or reads what it
/// misses) and decides again. Errors: the domain's
/// ([`CommandError::Rejected`]), a conflict on every attempt
/// ([`CommandError::Exhausted`], with the last conflict), an event that
/// cannot be decoded ([`CommandError::Undecodable`], naming its position
/// and event), the store's ([`CommandError::Store`]).
pub async fn decide<St, D>(store: &St, decision: &D) -> Result<Executed, CommandError<D::Error>>
where
    St: EventStore + Sync,
    D: Decision,
{
    decide_with(store, decision, &Retry::default()).await
}

/// [`decide`] with its retries set by `retry`.
pub async fn decide_with<St, D>(
    store: &St,
    decision: &D,
    retry: &Retry,
) -> Result<Executed, CommandError<D::Error>>
where
    St: EventStore + Sync,
    D: Decision,
{
    let model = decision.model();
    run(store, &model, retry, |state| {
        let emits = decision.decide(state).map_err(CommandError::Rejected)?;
        emits
            .iter()
            .map(|e| e.to_event().map_err(CommandError::Store))
            .collect()
    })
    .await
}
