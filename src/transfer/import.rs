//! Import: JSON lines appended in batches, keeping their ids, each batch
//! checked against what is stored.

use std::collections::HashMap;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use chrono::{DateTime, Utc};
use postgres_types::Json;
use tokio_postgres::error::SqlState;

use super::line::{describe, differences, parse_line};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::json_bytes;
use crate::pooled::Expired;
use crate::store::Store;

/// Events per batch of an import, by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// How [`import`] works through its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ImportOptions {
    batch_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl ImportOptions {
    /// Batches of [`DEFAULT_BATCH_SIZE`] events.
    pub fn new() -> Self {
        ImportOptions::default()
    }

    /// Events per batch, from 1 to
    /// [`MAX_EVENTS_PER_APPEND`](crate::limits::MAX_EVENTS_PER_APPEND): each
    /// batch is validated whole, then appended as one atomic append. A batch
    /// also ends early before it would exceed
    /// [`MAX_APPEND_BYTES`](crate::limits::MAX_APPEND_BYTES).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.clamp(1, crate::limits::MAX_EVENTS_PER_APPEND);
        self
    }
}

/// How far an [`import`] got; its result, and what its progress callback sees
/// after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Event lines read, in completed batches (blank lines are skipped and
    /// not counted).
    pub lines_read: u64,
    /// Events appended.
    pub imported: u64,
    /// Events skipped because their id was already stored with the same
    /// content (or appeared earlier in the input with the same content).
    pub already_present: u64,
    /// Line number (1-based, blank lines counted) of the last line of the
    /// last completed batch: every event up to it is stored.
    pub last_line: u64,
    /// Bytes of input consumed by completed batches.
    pub bytes_read: u64,
}

/// Imports JSON lines from `input` into `store`, keeping each event's id: see
/// the [module documentation](crate::transfer) for the accepted lines and how batches
/// are checked against what is stored.
///
/// `input` is read synchronously, one batch at a time. `progress` is called
/// after each completed batch. On an error, the batches before it stay
/// imported (the last progress report says how far) and nothing of the
/// failing batch is written, so the import can be fixed and run again. The
/// error names the input line when a line is at fault.
pub async fn import<R: BufRead>(
    store: &Store,
    input: R,
    options: &ImportOptions,
    mut progress: impl FnMut(&ImportSummary),
) -> Result<ImportSummary> {
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        line: 0,
        bytes: 0,
    };
    let limits = *store.limits();
    let batch_size = options.batch_size.min(limits.max_events_per_append);
    let mut summary = ImportSummary::default();
    // A line read but left for the next batch (it would have made this one
    // too large for one append).
    let mut carried: Option<(u64, Stamped, usize)> = None;
    loop {
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let mut eof = false;
        while batch.events.len() < batch_size {
            let (n, event, size) = match carried.take() {
                Some(c) => c,
                None => {
                    let Some((n, text)) = lines.next()? else {
                        eof = true;
                        break;
                    };
                    let event = parse_line(n, text, &limits)?;
                    let size = json_bytes(&event.0.data) + json_bytes(&event.0.metadata);
                    (n, event, size)
                }
            };
            if !batch.events.is_empty() && bytes + size > limits.max_append_bytes {
                carried = Some((n, event, size));
                break;
            }
            bytes += size;
            batch.push(n, event)?;
        }
        if batch.read == 0 {
            break;
        }
        let read = batch.read;
        let (imported, present) = store_batch(store, batch).await?;
        summary.lines_read += read;
        summary.imported += imported;
        summary.already_present += present;
        summary.last_line = carried.as_ref().map_or(lines.line, |(n, _, _)| n - 1);
        summary.bytes_read = lines.bytes;
        progress(&summary);
        if eof && carried.is_none() {
            break;
        }
    }
    Ok(summary)
}

/// The input, line by line, with line numbers and bytes consumed.
pub(super) struct Lines<R> {
    pub(super) input: R,
    pub(super) buf: Vec<u8>,
    pub(super) line: u64,
    pub(super) bytes: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line and its number, `None` at the end (JSON
    /// whitespace only counts as blank).
    pub(super) fn next(&mut self) -> Result<Option<(u64, &str)>> {
        loop {
            self.buf.clear();
            let read = self.input.read_until(b'\n', &mut self.buf).map_err(|e| {
                Error::io(format!("cannot read the input after line {}", self.line), e)
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += read as u64;
            if !self.buf.trim_ascii().is_empty() {
                break;
            }
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| Error::invalid(format!("line {}: not valid UTF-8", self.line)))?;
        Ok(Some((self.line, text)))
    }
}

/// An event and the `recorded_at` its line gives.
type Stamped = (Event, Option<DateTime<Utc>>);

/// The validated events of one batch, in file order, without repeated ids.
#[derive(Default)]
struct Batch {
    /// (line number, event, recorded_at).
    events: Vec<(u64, Event, Option<DateTime<Utc>>)>,
    /// Index in `events` of each id.
    ids: HashMap<Uuid, usize>,
    /// Lines repeating an event earlier in the batch, identically.
    repeated: u64,
    /// Event lines read into this batch.
    read: u64,
}

impl Batch {
    fn push(&mut self, n: u64, (event, recorded_at): Stamped) -> Result<()> {
        self.read += 1;
        let earlier = self.ids.get(&event.id).and_then(|&i| self.events.get(i));
        if let Some((first, earlier, _)) = earlier {
            let differ = differences(earlier, &event);
            if differ.is_empty() {
                self.repeated += 1;
                return Ok(());
            }
            return Err(Error::IdConflict {
                id: event.id,
                message: format!(
                    "line {n}: event id {} is also on line {first}, with different content ({})",
                    event.id,
                    describe(&differ)
                ),
            });
        }
        self.ids.insert(event.id, self.events.len());
        self.events.push((n, event, recorded_at));
        Ok(())
    }
}

/// Looks the batch's ids up, then appends what is not stored yet. Returns
/// (imported, already present).
async fn store_batch(store: &Store, batch: Batch) -> Result<(u64, u64)> {
    let ids: Vec<Uuid> = batch.events.iter().map(|(_, e, _)| e.id).collect();
    let events = batch.events;
    // A concurrent import of the same input may store some of these ids
    // between the lookup and the append: then look again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = lookup(store, &ids).await?;
        let mut new = Vec::with_capacity(events.len());
        let mut present = batch.repeated;
        for (n, e, recorded_at) in &events {
            match stored.get(&e.id) {
                None => new.push((e.clone(), *recorded_at)),
                Some(s) => {
                    let differ = differences(e, s);
                    if !differ.is_empty() {
                        return Err(Error::IdConflict {
                            id: e.id,
                            message: format!(
                                "line {n}: event id {} is already stored with different content ({}); an import never changes a stored event",
                                e.id,
                                describe(&differ)
                            ),
                        });
                    }
                    present += 1;
                }
            }
        }
        if new.is_empty() {
            return Ok((0, present));
        }
        let count = new.len() as u64;
        match import_batch(store, new).await {
            Ok(()) => return Ok((count, present)),
            // Stored meanwhile (a concurrent import): look again.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) && attempts < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Appends `events` as one unconditional append that keeps each event's
/// `recorded_at` (`dcbstore.import_batch`), then wakes followers.
async fn import_batch(store: &Store, events: Vec<(Event, Option<DateTime<Utc>>)>) -> Result<()> {
    let outcome = store
        .pooled()
        .call(move |c| {
            Box::pin(async move {
                let n = events.len();
                let mut ids = Vec::with_capacity(n);
                let mut types = Vec::with_capacity(n);
                let mut data = Vec::with_capacity(n);
                let mut metadata = Vec::with_capacity(n);
                let mut tag_ends = Vec::with_capacity(n);
                let mut tags: Vec<&str> = Vec::new();
                let mut recorded = Vec::with_capacity(n);
                for (e, at) in &events {
                    ids.push(e.id);
                    types.push(e.event_type.as_str());
                    data.push(&e.data);
                    metadata.push(Json(&e.metadata));
                    tags.extend(e.tags.iter().map(String::as_str));
                    tag_ends.push(
                        i32::try_from(tags.len())
                            .map_err(|_| Error::invalid("too many tags in one import batch"))?,
                    );
                    recorded.push(*at);
                }
                let stmt = c.prepare_cached(IMPORT_SQL).await?;
                let wake = c.prepare_cached(WAKE_SQL).await?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                    [&ids, &types, &data, &metadata, &tag_ends, &tags, &recorded];
                // Polled in this order, the batch is sent first: pipelined,
                // the wake-up runs after its commit.
                let (imported, woken) =
                    futures::join!(c.query_one(&stmt, &params), c.execute(&wake, &[]));
                if let Err(e) = woken {
                    tracing::debug!(error = %e, "waking followers failed");
                }
                match imported {
                    Ok(_) => Ok(()),
                    Err(e) if e.code().is_none() => Err(Error::OutcomeUnknown {
                        reason: format!("connection lost during an import batch: {e}"),
                        source: Some(std::sync::Arc::new(e)),
                    }),
                    Err(e) => Err(e.into()),
                }
            })
        })
        .await?;
    outcome.unwrap_or_else(|Expired(t)| {
        Err(Error::OutcomeUnknown {
            reason: format!(
                "no answer from the server within {t:?} during an import batch; run the import again: it skips what is stored"
            ),
            source: None,
        })
    })
}

const IMPORT_SQL: &str = "SELECT dcbstore.import_batch($1, $2, $3, $4, $5, $6, $7::timestamptz[])";

/// As an append's: wakes followers once the batch has committed.
const WAKE_SQL: &str =
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify('dcbstore_events', '')";

/// The events stored with any of `ids`.
async fn lookup(store: &Store, ids: &[Uuid]) -> Result<HashMap<Uuid, Event>> {
    let client = store.pool().get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, type, data, tags, metadata FROM dcbstore.events WHERE id = ANY($1)",
        )
        .await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get(0)?;
        let metadata = match row.try_get(4)? {
            Value::Object(m) => m,
            _ => {
                return Err(Error::decode(format!(
                    "the stored metadata of event {id} is not a JSON object"
                )))
            }
        };
        stored.insert(
            id,
            Event {
                id,
                event_type: row.try_get(1)?,
                data: row.try_get(2)?,
                tags: row.try_get(3)?,
                metadata,
            },
        );
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_ids_in_a_batch_are_skipped_or_rejected() {
        let id = Uuid::now_v7();
        let mut batch = Batch::default();
        let e = Event::new("A", json!({"n": 1})).with_id(id);
        batch.push(1, (e.clone(), None)).expect("first");
        batch.push(2, (e.clone(), None)).expect("identical repeat");
        assert_eq!((batch.events.len(), batch.repeated, batch.read), (1, 1, 2));
        let err = batch
            .push(3, (Event::new("A", json!({"n": 2})).with_id(id), None))
            .expect_err("different content");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
