//! The model one read builds for a decision ([`DecisionModel`]): its state,
//! the query read and the position read at; brought up to date by a read of
//! what it misses, or by a conflict's events.

use super::Projection;
use crate::condition::AppendCondition;
use crate::conflict::Conflict;
use crate::error::Result;
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::store::EventStore;
use crate::typed::Model;

/// A decision model reads its boundary this many events at a time (each
/// page one call, one snapshot): memory stays bounded however large the
/// boundary, and a boundary of fewer events is one round trip.
const PAGE: u64 = 1000;

/// The state of a projection built by one read, with what an append needs to
/// keep the decision consistent: the query read and the position it was
/// read at.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionModel<S> {
    /// The folded state.
    pub state: S,
    /// The query that was read.
    pub query: Query,
    /// The position of the last event read, `None` when none matched.
    pub last_position: Option<SequencePosition>,
    /// The position through which the model has seen every matching event:
    /// the head its read saw (`None`: the log was empty). The append
    /// condition goes after it.
    pub read_at: Option<SequencePosition>,
}

impl<S> DecisionModel<S> {
    /// Builds the model with one read of `projection`'s query (a
    /// [`read_boundary`](EventStore::read_boundary) per
    /// thousand events).
    pub async fn build<P, St>(store: &St, projection: &P) -> Result<Self>
    where
        P: Projection<State = S>,
        St: EventStore + Sync,
    {
        Self::build_of(store, &Folding(projection)).await
    }

    /// [`build`](Self::build) for any [`Model`]: a projection's fold, or a
    /// typed state query's, whose decoding may fail.
    pub(crate) async fn build_of<M, St>(store: &St, model: &M) -> Result<Self>
    where
        M: Model<State = S>,
        St: EventStore + Sync,
    {
        let built = DecisionModel {
            state: model.initial(),
            query: model.query(),
            last_position: None,
            read_at: None,
        };
        built.catch_up_of(store, model).await
    }

    /// The model brought up to date: the events appended after
    /// [`read_at`](Self::read_at) folded in, read the same way as
    /// [`build`](Self::build) reads.
    pub async fn catch_up<P, St>(self, store: &St, projection: &P) -> Result<Self>
    where
        P: Projection<State = S>,
        St: EventStore + Sync,
    {
        self.catch_up_of(store, &Folding(projection)).await
    }

    /// [`catch_up`](Self::catch_up) for any [`Model`].
    pub(crate) async fn catch_up_of<M, St>(mut self, store: &St, model: &M) -> Result<Self>
    where
        M: Model<State = S>,
        St: EventStore + Sync,
    {
        loop {
            let page = ReadOptions::new().after_opt(self.read_at).limit(PAGE);
            let boundary = store.read_boundary(&self.query, page).await?;
            let full = boundary.events.len() as u64 == PAGE;
            for e in &boundary.events {
                self.state = model.fold(self.state, e)?;
                self.last_position = Some(e.position);
            }
            // A full page says "seen through its last event"; the last page
            // through the head it was read at.
            self.read_at = boundary.after.or(self.read_at);
            if !full {
                return Ok(self);
            }
        }
    }

    /// Folds a conflict's events into the model and moves it to the
    /// conflict's head, when the conflict carries every event the model
    /// misses ([`Conflict::is_complete`]): a retry then needs no read.
    /// Returns the model unchanged and `false` otherwise.
    pub fn absorb<P>(self, projection: &P, conflict: &Conflict) -> (Self, bool)
    where
        P: Projection<State = S>,
    {
        let folded = self.absorb_by(
            conflict,
            |e| projection.matches(e),
            |state, e| Ok::<_, std::convert::Infallible>(projection.apply(state, e)),
        );
        match folded {
            Ok(absorbed) => absorbed,
            Err(never) => match never {},
        }
    }

    /// [`absorb`](Self::absorb) for any [`Model`]: an error when one of the
    /// conflict's events cannot be decoded.
    pub(crate) fn absorb_of<M>(self, model: &M, conflict: &Conflict) -> Result<(Self, bool)>
    where
        M: Model<State = S>,
    {
        self.absorb_by(
            conflict,
            |e| model.matches(e),
            |state, e| model.fold(state, e),
        )
    }

    fn absorb_by<E>(
        mut self,
        conflict: &Conflict,
        matches: impl Fn(&Event) -> bool,
        mut fold: impl FnMut(S, &SequencedEvent) -> std::result::Result<S, E>,
    ) -> std::result::Result<(Self, bool), E> {
        let behind = self.read_at.is_none_or(|r| r < conflict.head);
        if !conflict.is_complete() || !behind {
            return Ok((self, false));
        }
        for e in &conflict.events {
            // Only the model's own guard is in its condition, so every event
            // matches its query; checked anyway, so that a condition built
            // elsewhere cannot feed the fold foreign events.
            if self.read_at.is_none_or(|r| e.position > r) && matches(&e.event) {
                self.state = fold(self.state, e)?;
                self.last_position = Some(e.position);
            }
        }
        self.read_at = Some(conflict.head);
        Ok((self, true))
    }

    /// The DCB condition that keeps a decision made from this model
    /// consistent: fail if an event matching the model's query was appended
    /// after the position it was read at.
    #[must_use]
    pub fn append_condition(&self) -> AppendCondition {
        AppendCondition::new(self.query.clone(), self.read_at)
    }
}

/// A projection as a [`Model`]: its fold never fails.
pub(crate) struct Folding<'a, P: ?Sized>(pub(crate) &'a P);

impl<P: Projection + ?Sized> Model for Folding<'_, P> {
    type State = P::State;

    fn query(&self) -> Query {
        self.0.query()
    }

    fn initial(&self) -> P::State {
        self.0.initial()
    }

    fn fold(&self, state: P::State, event: &SequencedEvent) -> Result<P::State> {
        Ok(self.0.apply(state, event))
    }

    fn matches(&self, event: &Event) -> bool {
        self.0.matches(event)
    }
}
