//! Preparing an append: every input check, before anything is sent.

use super::AppendCondition;
use crate::error::Result;
use crate::event::Event;
use crate::limits::Limits;
use dcbstore_core::limits::checked_bytes;

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
