//! `dcbstore read` and `dcbstore head`: the log, as JSON lines.

use std::io::Write;

use futures::StreamExt;

use dcbstore::{Error, EventStore, Query, QueryItem, ReadOptions, SequencePosition};

use super::{output_error, Ctx, Outcome};

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
    let mut events = store.read(&query, window.options());
    while let Some(e) = events.next().await {
        let line = serde_json::to_string(&e?).map_err(|e| Error::output(e.to_string()))?;
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Outcome::Done);
            }
            return Err(output_error(e));
        }
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
