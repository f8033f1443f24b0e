//! `dcbstore read` and `dcbstore head`: the log, as JSON lines.

use std::io::Write;

use futures::StreamExt;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use dcbstore::{
    Error, EventStore, Query, QueryItem, ReadOptions, SequencePosition, SequencedEvent, Store,
};

use super::{output_error, write_json, Ctx, Outcome};

/// The window flags of `read`.
pub(crate) struct Window {
    pub(crate) after: Option<u64>,
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) backwards: bool,
    pub(crate) limit: Option<u64>,
}

impl Window {
    fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::new();
        if let Some(a) = self.after {
            options = options.after(SequencePosition::new(a));
        }
        if let Some(f) = self.from {
            options = options.from(SequencePosition::new(f));
        }
        if let Some(t) = self.to {
            options = options.to(SequencePosition::new(t));
        }
        if self.backwards {
            options = options.backwards();
        }
        if let Some(l) = self.limit {
            options = options.limit(l);
        }
        options
    }
}

/// Prints the events of `query` (or of `--type`/`--tag`; all without them)
/// in `window`, one JSON line each; a closed stdout ends it quietly.
pub(crate) async fn read(
    ctx: &Ctx,
    query: Option<Query>,
    types: Vec<String>,
    tags: Vec<String>,
    window: Window,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let query = match query {
        Some(q) => q,
        None if types.is_empty() && tags.is_empty() => Query::all(),
        None => Query::item(QueryItem::types(types).and_tags(tags)),
    };
    let store = ctx.store().await?;
    let redacted = redactions_in(&store, &window).await?;
    let mut events = store.read(&query, window.options());
    while let Some(e) = events.next().await {
        let e = e?;
        let line = match redacted.get(&e.position.get()) {
            None => serde_json::to_string(&e),
            Some(mark) => serde_json::to_string(&Marked {
                event: &e,
                redacted: mark,
            }),
        }
        .map_err(|e| Error::output(e.to_string()))?;
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Outcome::Done);
            }
            return Err(output_error(e));
        }
    }
    Ok(Outcome::Done)
}

/// A redacted event's line: the event, then when and why it was redacted
/// (the latest redaction).
#[derive(serde::Serialize)]
struct Marked<'a> {
    #[serde(flatten)]
    event: &'a SequencedEvent,
    redacted: &'a Redaction,
}

/// When and why an event was redacted.
#[derive(serde::Serialize)]
pub(crate) struct Redaction {
    at: DateTime<Utc>,
    reason: String,
    by: String,
}

/// The latest redaction of each redacted position in the window (few:
/// redactions are rare), read before the events.
async fn redactions_in(store: &Store, window: &Window) -> Result<HashMap<u64, Redaction>, Error> {
    let low = window
        .after
        .map(|a| a.saturating_add(1))
        .or(window.from)
        .unwrap_or(1);
    let high = window.to.unwrap_or(i64::MAX.unsigned_abs());
    let (low, high) = (
        i64::try_from(low).unwrap_or(i64::MAX),
        i64::try_from(high).unwrap_or(i64::MAX),
    );
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (\"position\") \"position\", redacted_at, reason, redacted_by
               FROM dcbstore.redactions WHERE \"position\" BETWEEN $1 AND $2
              ORDER BY \"position\", redaction DESC",
            &[&low, &high],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let position: i64 = r.try_get(0)?;
            Ok((
                u64::try_from(position).unwrap_or(0),
                Redaction {
                    at: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    by: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

/// `dcbstore redactions [--position N]`: the audit rows, one JSON line each,
/// in the order they were written.
pub(crate) async fn redactions(
    ctx: &Ctx,
    position: Option<u64>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = ctx.connect().await?;
    let position = position.map(|p| i64::try_from(p).unwrap_or(i64::MAX));
    let rows = client
        .query(
            "SELECT redaction, \"position\", redacted_at, redacted_by, reason, erased_sha256, replacement_sha256
               FROM dcbstore.redactions WHERE $1::bigint IS NULL OR \"position\" = $1
              ORDER BY redaction",
            &[&position],
        )
        .await?;
    for r in &rows {
        #[derive(serde::Serialize)]
        struct Row {
            redaction: i64,
            position: i64,
            redacted_at: DateTime<Utc>,
            redacted_by: String,
            reason: String,
            erased_sha256: String,
            replacement_sha256: Option<String>,
        }
        let row = Row {
            redaction: r.try_get(0)?,
            position: r.try_get(1)?,
            redacted_at: r.try_get(2)?,
            redacted_by: r.try_get(3)?,
            reason: r.try_get(4)?,
            erased_sha256: r.try_get(5)?,
            replacement_sha256: r.try_get(6)?,
        };
        write_json(out, &row)?;
    }
    Ok(Outcome::Done)
}

/// Prints the head position, or `null` for an empty store.
pub(crate) async fn head(ctx: &Ctx, out: &mut dyn Write) -> Result<Outcome, Error> {
    let store = ctx.store().await?;
    match store.head().await? {
        Some(p) => writeln!(out, "{p}"),
        None => writeln!(out, "null"),
    }
    .map_err(output_error)?;
    Ok(Outcome::Done)
}
