//! The in-memory log and its one writer step: the idempotency check, the
//! condition, and the write, under one lock (as the PostgreSQL store's
//! append lock makes them one step).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::condition::{AppendCondition, Appended};
use crate::conflict::{Conflict, CONFLICT_EVENTS_CAP};
use crate::error::{Error, Result};
use crate::event::{Event, SequencePosition, SequencedEvent};

/// The events in position order (position `n` at index `n - 1`: the store
/// hands out no gaps), and where each id is.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) events: Vec<SequencedEvent>,
    by_id: HashMap<Uuid, usize>,
}

impl Log {
    /// The highest position, `None` when empty.
    pub(super) fn head(&self) -> Option<SequencePosition> {
        self.events.last().map(|e| e.position)
    }

    /// Appends checked `events` (tags already a sorted set) unless
    /// `condition` fails, as the PostgreSQL store decides: an idempotent
    /// retry first, then the guards, then the write.
    pub(super) fn append(
        &mut self,
        events: Vec<Event>,
        condition: Option<&AppendCondition>,
    ) -> Result<Appended> {
        if let Some(retry) = self.retry(&events)? {
            return Ok(retry);
        }
        if let Some(condition) = condition {
            if let Some(conflict) = self.conflict(condition) {
                return Err(Error::Conflict(Box::new(conflict)));
            }
        }
        let recorded_at = self.now();
        let first = self.events.len() as u64 + 1;
        for (i, event) in events.into_iter().enumerate() {
            self.by_id.insert(event.id, self.events.len());
            self.events.push(SequencedEvent {
                position: SequencePosition::new(first + i as u64),
                event,
                recorded_at,
            });
        }
        Ok(Appended {
            position: self.head().unwrap_or(SequencePosition::new(first)),
            already_stored: false,
            commit_token: None,
        })
    }

    /// `Some` when every id is stored with the same content (the retry's
    /// original last position); an error when some are stored with other
    /// content, or only some are stored; `None` when none is.
    fn retry(&self, events: &[Event]) -> Result<Option<Appended>> {
        let stored: Vec<Option<&SequencedEvent>> = events
            .iter()
            .map(|e| self.by_id.get(&e.id).map(|&i| &self.events[i]))
            .collect();
        let found = stored.iter().flatten().count();
        if found == 0 {
            return Ok(None);
        }
        // As the PostgreSQL store answers: an id stored with other content
        // first, else an id stored by another append when only some are.
        let differs = events
            .iter()
            .zip(&stored)
            .find(|(e, s)| s.is_some_and(|s| !same_content(e, &s.event)));
        if let Some((e, _)) = differs {
            return Err(Error::IdConflict {
                id: e.id,
                message: format!("event id {} is already stored with different content", e.id),
            });
        }
        if found < events.len() {
            let id = events
                .iter()
                .zip(&stored)
                .find_map(|(e, s)| s.map(|_| e.id))
                .unwrap_or_default();
            return Err(Error::IdConflict {
                id,
                message: format!("event id {id} is already stored by another append; an idempotent retry must resend exactly the same events"),
            });
        }
        let last = stored.iter().flatten().map(|s| s.position).max();
        Ok(last.map(|position| Appended {
            position,
            already_stored: true,
            commit_token: None,
        }))
    }

    /// The conflict when a guard of `condition` is violated: the earliest
    /// matches of every violated guard (at most [`CONFLICT_EVENTS_CAP`]), the
    /// latest one's position, and the head.
    fn conflict(&self, condition: &AppendCondition) -> Option<Conflict> {
        let guards = &condition.guards;
        let mut events = Vec::new();
        let mut latest = None;
        for e in &self.events {
            let hit = guards.iter().any(|g| {
                g.after.is_none_or(|after| e.position > after)
                    && g.fail_if_events_match.matches(&e.event)
            });
            if hit {
                if events.len() < CONFLICT_EVENTS_CAP {
                    events.push(e.clone());
                }
                latest = Some(e.position);
            }
        }
        Some(Conflict {
            position: latest?,
            events,
            head: self.head()?,
        })
    }

    /// The time of an append: now, but never before the last event's, as
    /// `recorded_at` never goes back along positions.
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        self.events.last().map_or(now, |e| e.recorded_at.max(now))
    }
}

/// Content as the idempotency check compares it: type, data, metadata and
/// tags as a set (both sides are sorted sets here).
fn same_content(a: &Event, b: &Event) -> bool {
    a.event_type == b.event_type && a.data == b.data && a.metadata == b.metadata && a.tags == b.tags
}
