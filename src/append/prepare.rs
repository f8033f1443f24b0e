//! Preparing an append: every input check, before anything is sent.

use std::collections::HashSet;

use super::AppendCondition;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::{json_bytes, Limit, Limits};

/// A validated append, ready to join a batch: tags sorted and deduplicated,
/// the condition, and its size.
#[derive(Debug)]
pub(crate) struct PreparedAppend {
    pub(super) events: Vec<Event>,
    pub(super) condition: Option<AppendCondition>,
    /// Bytes it takes in a batch: its events' JSON, types, tags and ids.
    pub(super) bytes: usize,
}

impl PreparedAppend {
    pub(crate) fn new(
        events: Vec<Event>,
        condition: Option<&AppendCondition>,
        limits: &Limits,
    ) -> Result<Self> {
        let json = checked_bytes(limits, &events, condition)?;
        let names: usize = events
            .iter()
            .map(|e| 16 + e.event_type.len() + e.tags.iter().map(String::len).sum::<usize>())
            .sum();
        let bytes = json + names;
        let mut events = events;
        for e in &mut events {
            e.tags.sort_unstable();
            e.tags.dedup();
        }
        Ok(PreparedAppend {
            events,
            condition: condition.cloned(),
            bytes,
        })
    }
}

/// Checks an append as [`EventStore::append`](crate::EventStore::append)
/// does before sending it, against the default [`Limits`]: the number and
/// size of the events, their types, tags and JSON, unique ids, and the
/// condition. `Ok` means the store will not reject it as invalid (it may
/// still conflict).
///
/// ```
/// use dcbstore::{append, Event};
/// use serde_json::json;
///
/// assert!(append::check(&[Event::new("Deposited", json!({"amount": 5}))], None).is_ok());
/// assert!(append::check(&[Event::new("", json!(null))], None).is_err());
/// ```
pub fn check(events: &[Event], condition: Option<&AppendCondition>) -> Result<()> {
    check_with(&Limits::DEFAULT, events, condition)
}

/// [`check`] against `limits` (a store's).
pub fn check_with(
    limits: &Limits,
    events: &[Event],
    condition: Option<&AppendCondition>,
) -> Result<()> {
    checked_bytes(limits, events, condition).map(|_| ())
}

/// The checks of [`check_with`]; the bytes of the events' JSON.
fn checked_bytes(
    limits: &Limits,
    events: &[Event],
    condition: Option<&AppendCondition>,
) -> Result<usize> {
    if events.is_empty() {
        return Err(Error::invalid("an append needs at least one event"));
    }
    if events.len() > limits.max_events_per_append {
        return Err(limits.exceeded(
            Limit::EventsPerAppend,
            events.len(),
            format!(
                "an append of {} events is over the limit of {}: split it into several appends (each is atomic on its own)",
                events.len(),
                limits.max_events_per_append
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(events.len());
    let mut total = 0usize;
    for (i, e) in events.iter().enumerate() {
        limits.check_name(&format!("event {} type", i + 1), &e.event_type)?;
        if e.tags.len() > limits.max_tags_per_event {
            return Err(limits.exceeded(
                Limit::TagsPerEvent,
                e.tags.len(),
                format!(
                    "event {} has {} tags; the limit is {}",
                    i + 1,
                    e.tags.len(),
                    limits.max_tags_per_event
                ),
            ));
        }
        let bytes = json_bytes(&e.data) + json_bytes(&e.metadata);
        if bytes > limits.max_event_bytes {
            return Err(limits.exceeded(
                Limit::EventBytes,
                bytes,
                format!(
                    "event {} is {bytes} bytes of JSON (data and metadata); the limit is {}: keep large payloads elsewhere and store a reference",
                    i + 1,
                    limits.max_event_bytes
                ),
            ));
        }
        total += bytes;
        if total > limits.max_append_bytes {
            return Err(limits.exceeded(
                Limit::AppendBytes,
                total,
                format!(
                    "the append is over {} bytes of JSON by event {}: split it into several appends",
                    limits.max_append_bytes,
                    i + 1
                ),
            ));
        }
        for t in &e.tags {
            limits.check_name(&format!("event {} tag", i + 1), t)?;
        }
        limits.check_data(&format!("event {} data", i + 1), &e.data)?;
        limits.check_metadata(&format!("event {} metadata", i + 1), &e.metadata)?;
        if !seen.insert(e.id) {
            return Err(Error::invalid(format!(
                "event id {} appears twice in one append",
                e.id
            )));
        }
    }
    if let Some(c) = condition {
        c.validate_with(limits)?;
    }
    Ok(total)
}
