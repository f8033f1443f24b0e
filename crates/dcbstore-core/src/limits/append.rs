//! The checks of an append, before anything is written: the number and size
//! of the events, their types, tags and JSON, unique ids, and the
//! condition. Every store runs them (dcbstore's `Store` before sending,
//! the in-memory store before writing), so that none accepts what another
//! refuses.

use std::collections::HashSet;

use super::{json_bytes, Limit, Limits};
use crate::condition::AppendCondition;
use crate::error::{Error, Result};
use crate::event::Event;

/// Checks an append as every [`EventStore`](crate::EventStore) does before
/// it writes (dcbstore's `Store` before sending it), against the default [`Limits`]: the number and
/// size of the events, their types, tags and JSON, unique ids, and the
/// condition. `Ok` means the store will not reject it as invalid (it may
/// still conflict).
///
/// ```
/// use dcbstore_core::limits::check;
/// use dcbstore_core::Event;
/// use serde_json::json;
///
/// assert!(check(&[Event::new("Deposited", json!({"amount": 5}))], None).is_ok());
/// assert!(check(&[Event::new("", json!(null))], None).is_err());
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

/// The checks of [`check_with`]; the bytes of the events' JSON (data and
/// metadata), which a store uses to size its batches.
pub fn checked_bytes(
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
