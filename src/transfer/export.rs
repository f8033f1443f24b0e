//! Export: the log (or part of it) as JSON lines, streamed in pages.

use std::io::{BufWriter, Write};

use futures::TryStreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::SequencePosition;
use crate::query::Query;
use crate::read::ReadOptions;
use crate::store::EventStore;

/// What [`export`] writes: the events of a query (all by default) after a
/// position (from the start by default).
#[derive(Debug, Clone)]
#[must_use]
pub struct ExportOptions {
    query: Query,
    after: Option<SequencePosition>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            query: Query::all(),
            after: None,
        }
    }
}

impl ExportOptions {
    /// Every event of the log.
    pub fn new() -> Self {
        ExportOptions::default()
    }

    /// Only events with a position greater than `position`: a tail, for
    /// example everything since the last backup.
    pub fn after(mut self, position: SequencePosition) -> Self {
        self.after = Some(position);
        self
    }

    /// Only the events matching `query`. An export of part of the log
    /// imported elsewhere does not reproduce its positions.
    pub fn query(mut self, query: Query) -> Self {
        self.query = query;
        self
    }
}

/// How far an [`export`] got; its result, and what its progress callback sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Events written so far.
    pub exported: u64,
    /// The head when the export started: the snapshot it writes (`None`: the
    /// store was empty).
    pub head: Option<SequencePosition>,
    /// The `after` position of the options.
    pub after: Option<SequencePosition>,
    /// Position of the last event written.
    pub last_position: Option<SequencePosition>,
}

/// Writes the events selected by `options` to `out`, one JSON line each, in
/// position order, as of the head when the export starts.
///
/// The log is streamed with the store's paging read (bounded memory) and
/// `out` is buffered here. `progress` is called once when the head is known
/// (nothing exported yet) and after each event. Fails on the first error,
/// having written a prefix of the export.
pub async fn export<S, W>(
    store: &S,
    options: &ExportOptions,
    out: W,
    mut progress: impl FnMut(&ExportSummary),
) -> Result<ExportSummary>
where
    S: EventStore,
    W: Write,
{
    let head = store.head().await?;
    let mut summary = ExportSummary {
        exported: 0,
        head,
        after: options.after,
        last_position: None,
    };
    progress(&summary);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    if let Some(head) = head {
        if options.after.is_none_or(|a| a < head) {
            let read = ReadOptions::new().after_opt(options.after).to(head);
            let mut events = store.read_raw(&options.query, read);
            while let Some(e) = events.try_next().await? {
                serde_json::to_writer(&mut out, &e).map_err(write_error)?;
                out.write_all(b"\n").map_err(write_error)?;
                summary.exported += 1;
                summary.last_position = Some(e.position);
                progress(&summary);
            }
        }
    }
    out.flush().map_err(write_error)?;
    Ok(summary)
}

fn write_error(e: impl Into<std::io::Error>) -> Error {
    Error::io("cannot write the export", e.into())
}
