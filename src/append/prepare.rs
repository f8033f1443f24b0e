//! Preparing an append: every input check, before anything is sent.

use std::collections::HashSet;

use serde_json::Value;

use super::AppendCondition;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::{
    check_data, check_metadata, check_name, json_bytes, MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND,
    MAX_EVENT_BYTES, MAX_TAGS_PER_EVENT,
};

/// A validated append, ready to join a batch: tags sorted and deduplicated,
/// the condition in its JSON form.
#[derive(Debug)]
pub(crate) struct PreparedAppend {
    pub(super) events: Vec<Event>,
    pub(super) condition: Option<Value>,
}

impl PreparedAppend {
    pub(crate) fn new(events: Vec<Event>, condition: Option<&AppendCondition>) -> Result<Self> {
        check(&events, condition)?;
        let mut events = events;
        for e in &mut events {
            e.tags.sort_unstable();
            e.tags.dedup();
        }
        Ok(PreparedAppend {
            events,
            condition: condition.map(AppendCondition::to_json),
        })
    }
}

/// Checks an append as [`EventStore::append`](crate::EventStore::append)
/// does before sending it: the number and size of the events, their types,
/// tags and JSON, unique ids, and the condition. `Ok` means the store will
/// not reject it as invalid (it may still conflict).
///
/// ```
/// use dcbstore::{append, Event};
/// use serde_json::json;
///
/// assert!(append::check(&[Event::new("Deposited", json!({"amount": 5}))], None).is_ok());
/// assert!(append::check(&[Event::new("", json!(null))], None).is_err());
/// ```
pub fn check(events: &[Event], condition: Option<&AppendCondition>) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid("an append needs at least one event"));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(Error::invalid(format!(
            "an append of {} events is over the limit of {MAX_EVENTS_PER_APPEND}: split it into several appends (each is atomic on its own)",
            events.len()
        )));
    }
    let mut seen = HashSet::with_capacity(events.len());
    let mut total = 0usize;
    for (i, e) in events.iter().enumerate() {
        check_name(&format!("event {} type", i + 1), &e.event_type)?;
        if e.tags.len() > MAX_TAGS_PER_EVENT {
            return Err(Error::invalid(format!(
                "event {} has {} tags; the limit is {MAX_TAGS_PER_EVENT}",
                i + 1,
                e.tags.len()
            )));
        }
        let bytes = json_bytes(&e.data) + json_bytes(&e.metadata);
        if bytes > MAX_EVENT_BYTES {
            return Err(Error::invalid(format!(
                "event {} is {bytes} bytes of JSON (data and metadata); the limit is {MAX_EVENT_BYTES}: keep large payloads elsewhere and store a reference",
                i + 1
            )));
        }
        total += bytes;
        if total > MAX_APPEND_BYTES {
            return Err(Error::invalid(format!(
                "the append is over {MAX_APPEND_BYTES} bytes of JSON by event {}: split it into several appends",
                i + 1
            )));
        }
        for t in &e.tags {
            check_name(&format!("event {} tag", i + 1), t)?;
        }
        check_data(&format!("event {} data", i + 1), &e.data)?;
        check_metadata(&format!("event {} metadata", i + 1), &e.metadata)?;
        if !seen.insert(e.id) {
            return Err(Error::invalid(format!(
                "event id {} appears twice in one append",
                e.id
            )));
        }
    }
    if let Some(c) = condition {
        c.validate()?;
    }
    Ok(())
}
