//! Events: what is appended ([`Event`]) and what is read back ([`SequencedEvent`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

/// A position in the log, assigned by the store. Positions start at 1, are
/// unique and increase strictly in commit order; gaps are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SequencePosition(u64);

impl SequencePosition {
    /// Wraps a raw position.
    #[must_use]
    pub const fn new(position: u64) -> Self {
        SequencePosition(position)
    }

    /// The raw position.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    #[doc(hidden)]
    pub fn from_sql(p: i64) -> Self {
        SequencePosition(u64::try_from(p).unwrap_or(0))
    }
}

impl From<u64> for SequencePosition {
    fn from(p: u64) -> Self {
        SequencePosition(p)
    }
}

impl From<SequencePosition> for u64 {
    fn from(p: SequencePosition) -> Self {
        p.0
    }
}

impl fmt::Display for SequencePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event to append: a type, JSON data, a set of tags, metadata and an id.
///
/// ```
/// use dcbstore_core::Event;
/// use serde_json::json;
///
/// let e = Event::new("CourseDefined", json!({"courseId": "c1", "capacity": 10}))
///     .with_tag("course:c1");
/// assert_eq!(e.event_type, "CourseDefined");
/// assert_eq!(e.tags, ["course:c1"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id. [`Event::new`] generates a UUID v7; set your own to make
    /// retries idempotent across processes.
    pub id: Uuid,
    /// The event type: non-empty.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON value.
    pub data: Value,
    /// A set of non-empty tags. Duplicates are removed on append and reads
    /// return them sorted.
    pub tags: Vec<String>,
    /// A JSON object, possibly empty.
    pub metadata: Map<String, Value>,
}

impl Event {
    /// A new event with a fresh UUID v7, no tags and empty metadata.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        Event {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            data,
            tags: Vec::new(),
            metadata: Map::new(),
        }
    }

    /// Adds one tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds tags.
    #[must_use]
    pub fn with_tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Replaces the id (for idempotent retries with ids you choose).
    #[must_use]
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Replaces the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: the event, its position and when it was recorded.
///
/// Serializes flat, as the CLI prints it:
/// `{"position", "id", "type", "data", "tags", "metadata", "recorded_at"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequencedEvent {
    /// Position in the log.
    pub position: SequencePosition,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// When the store recorded it (the append's transaction time).
    pub recorded_at: DateTime<Utc>,
}

/// An event as stored, with its data and metadata as the JSON text the
/// database holds (compact): every number keeps all its digits, whatever
/// its size, where [`SequencedEvent`]'s `Value` holds it as `serde_json`
/// does (an `f64` beyond 64-bit integers, unless the application enables
/// `serde_json`'s `arbitrary_precision`). What [`EventStore::read_raw`] yields,
/// `dcbstore read` prints and `dcbstore export` writes.
///
/// Serializes flat, as the CLI prints it:
/// `{"position", "id", "type", "data", "tags", "metadata", "recorded_at"}`.
///
/// [`EventStore::read_raw`]: crate::EventStore::read_raw
#[derive(Debug, Clone, Serialize)]
pub struct RawEvent {
    /// Position in the log.
    pub position: SequencePosition,
    /// Unique id.
    pub id: Uuid,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The data, as JSON text.
    pub data: Box<RawValue>,
    /// The tags, sorted.
    pub tags: Vec<String>,
    /// The metadata (a JSON object), as JSON text.
    pub metadata: Box<RawValue>,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl RawEvent {
    /// The event with its data and metadata as `serde_json` values, as
    /// [`read`](crate::EventStore::read) returns it: an
    /// [`Error::Undecodable`](crate::Error::Undecodable) naming its position when no `Value` holds them
    /// (a number no double holds, nesting past serde_json's limit), as that
    /// read would yield in its place.
    ///
    /// ```
    /// use dcbstore_core::{RawEvent, SequencePosition};
    /// use serde_json::value::RawValue;
    ///
    /// let raw = |data: &str| RawEvent {
    ///     position: SequencePosition::new(7),
    ///     id: uuid::Uuid::nil(),
    ///     event_type: "Measured".into(),
    ///     data: RawValue::from_string(data.into()).unwrap(),
    ///     tags: vec![],
    ///     metadata: RawValue::from_string("{}".into()).unwrap(),
    ///     recorded_at: chrono::Utc::now(),
    /// };
    /// assert_eq!(raw(r#"{"n": 1.5}"#).to_event().unwrap().event.data["n"], 1.5);
    /// let err = raw(r#"{"n": 1e400}"#).to_event().unwrap_err();
    /// assert_eq!(err.position(), Some(SequencePosition::new(7)));
    /// ```
    pub fn to_event(&self) -> crate::Result<SequencedEvent> {
        let field = |what: &str, e: &dyn fmt::Display| crate::Error::Undecodable {
            position: self.position,
            message: format!("{what}: {e}"),
        };
        Ok(SequencedEvent {
            position: self.position,
            event: Event {
                id: self.id,
                event_type: self.event_type.clone(),
                data: serde_json::from_str(self.data.get()).map_err(|e| field("its data", &e))?,
                tags: self.tags.clone(),
                metadata: serde_json::from_str(self.metadata.get())
                    .map_err(|e| field("its metadata", &e))?,
            },
            recorded_at: self.recorded_at,
        })
    }
}
