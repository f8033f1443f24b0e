//! The [`EventStore`] trait: the DCB store API that decisions are written
//! against (the `dcbstore` crate's `Store` implements it on PostgreSQL).

use std::future::Future;
use std::time::Instant;

use futures::stream::BoxStream;

use crate::condition::{AppendCondition, Appended};
use crate::error::Result;
use crate::event::{Event, RawEvent, SequencePosition, SequencedEvent};
use crate::query::Query;
use crate::read::{seen_through, Boundary, ReadOptions};

/// The DCB event store API.
///
/// `dcbstore::Store` is the PostgreSQL implementation; the trait lets code that makes
/// decisions stay independent of storage.
pub trait EventStore {
    /// Appends `events` atomically, with consecutive positions in the given
    /// order, unless `condition` fails: then nothing is written and the result
    /// is [`Error::Conflict`](crate::Error::Conflict) carrying the conflicting events.
    ///
    /// If the call is cancelled (its future dropped) after the append was
    /// handed to the writer, or fails with a connection error, the append may
    /// or may not have been written. Resending the same events (same ids) is
    /// always safe: it either appends them or reports them `already_stored`
    /// with their positions.
    fn append(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended>> + Send;

    /// [`append`](Self::append) for a decision first tried at `since`: a
    /// retry after a conflict passes the instant of its first attempt.
    ///
    /// `dcbstore::Store` decides the appends of one batch oldest first, so that a
    /// decision that lost a race on a boundary is not overtaken there by
    /// newer ones (each batch lets one decision per boundary win; in arrival
    /// order, writers that come back from a conflict would keep losing to
    /// fresh ones). [`execute`](crate::projection::execute) does this. This
    /// default ignores `since`.
    fn append_since(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
        since: Instant,
    ) -> impl Future<Output = Result<Appended>> + Send {
        let _ = since;
        self.append(events, condition)
    }

    /// Streams the events matching `query` within `options`' window, as a
    /// snapshot taken when the stream is first polled (events committed later
    /// are not returned).
    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<SequencedEvent>>;

    /// [`read`](Self::read) with each event's data and metadata as JSON text
    /// ([`RawEvent`]), as the store holds them: `dcbstore::Store` returns the
    /// database's text, so numbers keep every digit, and a value no
    /// `serde_json::Value` can hold (one written before the database refused
    /// such values) is read as it is. What `dcbstore read` prints and
    /// `dcbstore::transfer::export` writes. This default
    /// encodes what [`read`](Self::read) returns.
    fn read_raw(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, Result<RawEvent>> {
        use futures::StreamExt;
        self.read(query, options)
            .map(|e| {
                let e = e?;
                let raw = |v: &serde_json::Value| {
                    serde_json::value::to_raw_value(v).map_err(|err| crate::Error::Undecodable {
                        position: e.position,
                        message: format!("its JSON: {err}"),
                    })
                };
                Ok(RawEvent {
                    position: e.position,
                    id: e.event.id,
                    data: raw(&e.event.data)?,
                    metadata: raw(&serde_json::Value::Object(e.event.metadata.clone()))?,
                    event_type: e.event.event_type,
                    tags: e.event.tags,
                    recorded_at: e.recorded_at,
                })
            })
            .boxed()
    }

    /// The highest committed position, `None` for an empty store.
    fn head(&self) -> impl Future<Output = Result<Option<SequencePosition>>> + Send;

    /// Reads the events matching `query` within `options` into memory,
    /// together with the position a decision made from them appends after
    /// ([`Boundary::after`]): the first step of the DCB decide loop.
    ///
    /// `dcbstore::Store` reads the head and the first page in one statement. This
    /// default, for other stores, reads the head first and then the events up
    /// to it.
    fn read_boundary(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> impl Future<Output = Result<Boundary>> + Send
    where
        Self: Sync,
    {
        let query = query.clone();
        async move {
            let head = self.head().await?;
            let bounded = match head {
                Some(h) => options.at_most(h),
                None => options,
            };
            let events: Vec<SequencedEvent> =
                futures::TryStreamExt::try_collect(self.read(&query, bounded)).await?;
            let after = seen_through(&events, &options, head);
            Ok(Boundary { events, after })
        }
    }
}
