//! A durable consumer's batch: the events before the first one this reader
//! cannot decode, and that event's error. Projections and delivery apply
//! those events first, so that they stop exactly at the event (saying how
//! to redact it) instead of failing, and retrying, a whole batch.

use futures::StreamExt;

use super::ReadOptions;
use crate::error::{Error, Result};
use crate::event::SequencedEvent;
use crate::query::Query;
use crate::store::EventStore;

/// Reads `query` within `options` into memory, up to the first event that
/// cannot be decoded: the events before it, and its error (any other error
/// fails the read). A consumer delivers the events before an undecodable
/// one, then dead-letters or reports that one by its position, instead of
/// failing its whole page.
pub async fn read_decodable_prefix(
    store: &impl EventStore,
    query: &Query,
    options: ReadOptions,
) -> Result<(Vec<SequencedEvent>, Option<Error>)> {
    let mut stream = store.read(query, options);
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) if e.position().is_some() => return Ok((events, Some(e))),
            Err(e) => return Err(e),
        }
    }
    Ok((events, None))
}
