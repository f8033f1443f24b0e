//! What handlers receive: the [`Envelope`] of an emitted event, the
//! [`Levels`] a handler is registered for, and the per-emit [`EmitContext`].

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use dcbstore::append::AppendCondition;
use dcbstore::schema::{Kind, Level};

/// An emitted event with everything handlers need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id (UUID v7); the store's event id at level 5.
    pub id: Uuid,
    /// The event's name.
    pub name: String,
    /// Domain or integration.
    pub kind: Kind,
    /// The schema version the payload was validated against.
    pub version: u32,
    /// Where it is routed (from the schema file: authoritative at runtime).
    pub level: Level,
    /// The event, as JSON.
    pub payload: Value,
    /// Caller and enricher metadata.
    pub metadata: Map<String, Value>,
    /// When it was emitted.
    pub occurred_at: DateTime<Utc>,
    /// Deduplication key for handlers (default: the id).
    pub idempotency_key: String,
    /// Tags derived from the payload.
    pub tags: Vec<String>,
}

/// Which levels a handler receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Levels {
    /// Every level.
    All,
    /// An inclusive range, such as `Level::Job..=Level::Broker`.
    Range(RangeInclusive<Level>),
    /// These levels.
    List(Vec<Level>),
}

impl Levels {
    /// Whether `level` is selected.
    #[must_use]
    pub fn contains(&self, level: Level) -> bool {
        match self {
            Levels::All => true,
            Levels::Range(r) => r.contains(&level),
            Levels::List(l) => l.contains(&level),
        }
    }
}

impl From<RangeInclusive<Level>> for Levels {
    fn from(r: RangeInclusive<Level>) -> Self {
        Levels::Range(r)
    }
}

impl From<Level> for Levels {
    fn from(l: Level) -> Self {
        Levels::List(vec![l])
    }
}

/// Per-emit context handed to every handler.
#[derive(Debug, Clone, Default)]
pub struct EmitContext {
    /// The append condition of a "decide, then emit" step (used at level 5).
    pub condition: Option<AppendCondition>,
}
