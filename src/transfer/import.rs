//! Import: JSON lines appended in batches, keeping their ids, each batch
//! checked against what is stored.

use crate::error::{PgErrorExt, PgResultExt};
use std::collections::HashMap;
use std::io::{BufRead, Read};

use serde::Serialize;
use uuid::Uuid;

use tokio_postgres::error::SqlState;

use super::line::{describe, differences, parse_line, Line};
use crate::error::{Error, Result};
use crate::limits::Limits;
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
    let limits = *store.limits();
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        line: 0,
        bytes: 0,
        cap: line_cap(&limits),
    };
    let batch_size = options.batch_size.min(limits.max_events_per_append);
    let mut summary = ImportSummary::default();
    // A line read but left for the next batch (it would have made this one
    // too large for one append).
    let mut carried: Option<(u64, Line, usize)> = None;
    // The last line with a recorded_at, and its time.
    let mut last_stamp: Option<(u64, chrono::DateTime<chrono::Utc>)> = None;
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
                    let line = parse_line(n, text, &limits)?;
                    if let (Some(at), Some((_, previous))) = (line.recorded_at, last_stamp) {
                        if at < previous {
                            return Err(Error::invalid(format!(
                                "line {n}: recorded_at {} is before line {}'s ({}): times never go back along positions; keep the export's order, or leave recorded_at out to stamp events with the time of the import",
                                at.to_rfc3339(),
                                last_stamp.map_or(0, |(l, _)| l),
                                previous.to_rfc3339()
                            )));
                        }
                    }
                    if let Some(at) = line.recorded_at {
                        last_stamp = Some((n, at));
                    }
                    let size = line.bytes();
                    (n, line, size)
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

/// The longest line an import reads, for `limits`: an event of
/// `max_event_bytes` of compact JSON, twice over (a line may be indented or
/// spaced), its tags and type (escaped, at worst six bytes a byte), and room
/// for the other fields. Nothing longer is held in memory: a longer line is
/// an error before the rest of it is read.
pub fn line_cap(limits: &Limits) -> usize {
    let names = (limits.max_tags_per_event + 1) * (6 * limits.max_name_bytes + 4);
    2 * limits.max_event_bytes + names + 4096
}

/// The input, line by line, with line numbers and bytes consumed; no line
/// longer than `cap` is held.
pub(super) struct Lines<R> {
    pub(super) input: R,
    pub(super) buf: Vec<u8>,
    pub(super) line: u64,
    pub(super) bytes: u64,
    pub(super) cap: usize,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line and its number, `None` at the end (JSON
    /// whitespace only counts as blank).
    pub(super) fn next(&mut self) -> Result<Option<(u64, &str)>> {
        loop {
            self.buf.clear();
            let limit = u64::try_from(self.cap)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let read = (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| {
                    Error::io(format!("cannot read the input after line {}", self.line), e)
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += read as u64;
            if self.buf.len() > self.cap && self.buf.last() != Some(&b'\n') {
                return Err(Error::invalid(format!(
                    "line {}: longer than {} bytes, more than an event within the limits can take (max_event_bytes {}): an import line holds one event, as export writes it",
                    self.line,
                    self.cap,
                    (self.cap - 4096) / 2
                )));
            }
            if !self.buf.trim_ascii().is_empty() {
                break;
            }
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| Error::invalid(format!("line {}: not valid UTF-8", self.line)))?;
        Ok(Some((self.line, text)))
    }
}

/// The validated events of one batch, in file order, without repeated ids.
#[derive(Default)]
struct Batch {
    /// (line number, line).
    events: Vec<(u64, Line)>,
    /// Index in `events` of each id.
    ids: HashMap<Uuid, usize>,
    /// Lines repeating an event earlier in the batch, identically.
    repeated: u64,
    /// Event lines read into this batch.
    read: u64,
}

impl Batch {
    fn push(&mut self, n: u64, line: Line) -> Result<()> {
        self.read += 1;
        let event = &line.event;
        let earlier = self.ids.get(&event.id).and_then(|&i| self.events.get(i));
        if let Some((first, earlier)) = earlier {
            let differ = differences(&earlier.event, event);
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
        self.events.push((n, line));
        Ok(())
    }
}

/// Looks the batch's ids up, then appends what is not stored yet. Returns
/// (imported, already present).
async fn store_batch(store: &Store, batch: Batch) -> Result<(u64, u64)> {
    let events = batch.events;
    // A concurrent import of the same input may store some of these ids
    // between the lookup and the append: then look again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = lookup(store, &events).await?;
        let mut new = Vec::with_capacity(events.len());
        let mut numbers = Vec::with_capacity(events.len());
        let mut present = batch.repeated;
        for (n, line) in &events {
            let e = &line.event;
            match stored.get(&e.id) {
                None => {
                    new.push(line);
                    numbers.push(*n);
                }
                Some(s) => {
                    let differ = s.differences(e);
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
        match import_batch(store, &new).await {
            Ok(()) => return Ok((count, present)),
            // Stored meanwhile (a concurrent import): look again.
            Err(e) if e.sql_state() == Some(&SqlState::UNIQUE_VIOLATION) && attempts < 3 => {
                continue
            }
            Err(e) => return Err(on_line(e, &numbers)),
        }
    }
}

/// The store's refusal of an event of the batch ("event 2: ..."), as the
/// input line it came from ("line 17: ..."), as every error of an import
/// names the line.
fn on_line(e: Error, numbers: &[u64]) -> Error {
    let Some(db) = e.as_db_error() else {
        return e;
    };
    if db.code() != &SqlState::INVALID_PARAMETER_VALUE {
        return e;
    }
    let message = db.message();
    let located = message
        .strip_prefix("event ")
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(k, reason)| {
            let k: usize = k.parse().ok()?;
            Some(format!(
                "line {}: {reason}",
                numbers.get(k.checked_sub(1)?)?
            ))
        });
    match located {
        Some(message) => Error::Invalid(message),
        None => e,
    }
}

/// Appends `lines` as one unconditional append that keeps each event's
/// `recorded_at` (`dcbstore.import_batch`), then wakes followers. Data and
/// metadata go as the lines' JSON text: stored exactly, every digit kept.
async fn import_batch(store: &Store, lines: &[&Line]) -> Result<()> {
    let n = lines.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut tag_ends = Vec::with_capacity(n);
    let mut tags: Vec<String> = Vec::new();
    let mut recorded = Vec::with_capacity(n);
    for line in lines {
        let e = &line.event;
        ids.push(e.id);
        types.push(e.event_type.clone());
        data.push(line.data.clone());
        metadata.push(line.metadata.clone());
        tags.extend(e.tags.iter().cloned());
        tag_ends.push(
            i32::try_from(tags.len())
                .map_err(|_| Error::invalid("too many tags in one import batch"))?,
        );
        recorded.push(line.recorded_at);
    }
    let params = std::sync::Arc::new((ids, types, data, metadata, tag_ends, tags, recorded));
    let outcome = store
        .pooled()
        .call(move |c| {
            let params = params.clone();
            Box::pin(async move {
                let (ids, types, data, metadata, tag_ends, tags, recorded) = &*params;
                let stmt = c.prepare_cached(IMPORT_SQL).await.db()?;
                let wake = c
                    .prepare_cached(crate::append::AFTER_COMMIT_SQL)
                    .await
                    .db()?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                    [ids, types, data, metadata, tag_ends, tags, recorded];
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
                        source: Some(crate::error::pg_driver_error(e)),
                    }),
                    Err(e) => Err(crate::error::pg_error(e)),
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

const IMPORT_SQL: &str =
    "SELECT dcbstore.import_batch($1, $2, $3::text[], $4::text[], $5, $6, $7::timestamptz[])";

/// What is stored under an id of the batch, compared with its line in the
/// database (jsonb equality: numbers by value, every digit, objects whatever
/// their key order).
struct Stored {
    event_type: String,
    tags: Vec<String>,
    same_data: bool,
    same_metadata: bool,
}

impl Stored {
    fn differences(&self, e: &crate::event::Event) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.event_type != e.event_type {
            differ.push("type");
        }
        if !self.same_data {
            differ.push("data");
        }
        if self.tags != e.tags {
            differ.push("tags");
        }
        if !self.same_metadata {
            differ.push("metadata");
        }
        differ
    }
}

/// The events stored with the batch's ids, each compared with its line.
async fn lookup(store: &Store, lines: &[(u64, Line)]) -> Result<HashMap<Uuid, Stored>> {
    let ids: Vec<Uuid> = lines.iter().map(|(_, l)| l.event.id).collect();
    let data: Vec<&str> = lines.iter().map(|(_, l)| l.data.as_str()).collect();
    let metadata: Vec<&str> = lines.iter().map(|(_, l)| l.metadata.as_str()).collect();
    let client = store.pool().get().await.db()?;
    let stmt = client
        .prepare_cached(
            "SELECT e.id, e.type, e.tags, e.data = u.data::jsonb, e.metadata = u.metadata::jsonb
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, data, metadata)
               JOIN dcbstore.events e ON e.id = u.id",
        )
        .await
        .db()?;
    let rows = client.query(&stmt, &[&ids, &data, &metadata]).await.db()?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        stored.insert(
            row.try_get(0).db()?,
            Stored {
                event_type: row.try_get(1).db()?,
                tags: row.try_get(2).db()?,
                same_data: row.try_get(3).db()?,
                same_metadata: row.try_get(4).db()?,
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
        let line = |n: u64| {
            let text = json!({"id": id, "type": "A", "data": {"n": n}}).to_string();
            parse_line(1, &text, &Limits::DEFAULT).expect("a valid line")
        };
        batch.push(1, line(1)).expect("first");
        batch.push(2, line(1)).expect("identical repeat");
        assert_eq!((batch.events.len(), batch.repeated, batch.read), (1, 1, 2));
        let err = batch.push(3, line(2)).expect_err("different content");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
