//! `dcbstore read` and `dcbstore head`: the log, as JSON lines.

use std::io::Write;

use futures::StreamExt;

use dcbstore::{
    Error, EventStore, Query, QueryItem, RawEvent, ReadOptions, SequencePosition, SubscribeOptions,
};

use super::redactions::{redactions_in, Marks};
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

fn query_of(query: Option<Query>, types: Vec<String>, tags: Vec<String>) -> Query {
    match query {
        Some(q) => q,
        None if types.is_empty() && tags.is_empty() => Query::all(),
        None => Query::item(QueryItem::types(types).and_tags(tags)),
    }
}

/// Writes one event as a JSON line, with its redaction mark if it has one;
/// `false` when stdout is closed (the reader went away: not an error).
fn print(out: &mut dyn Write, e: &RawEvent, marks: &Marks, flush: bool) -> Result<bool, Error> {
    let line = marks.line(e)?;
    let written = writeln!(out, "{line}").and_then(|()| if flush { out.flush() } else { Ok(()) });
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(output_error(e)),
    }
}

/// Prints the events of `query` (or of `--type`/`--tag`; all without them)
/// in `window`, one JSON line each, data and metadata as stored (every digit
/// of every number); a closed stdout ends it quietly. An event that cannot
/// be read (see [`Error::Undecodable`]) is reported on stderr, naming it, and
/// the read goes on; the exit status is then 1.
pub(crate) async fn read(
    ctx: &Ctx,
    query: Option<Query>,
    types: Vec<String>,
    tags: Vec<String>,
    window: Window,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let query = query_of(query, types, tags);
    let store = ctx.store().await?;
    let marks = redactions_in(&store, window.after, window.from, window.to).await?;
    let mut events = store.read_raw(&query, window.options());
    let mut first_undecodable = None;
    while let Some(e) = events.next().await {
        match e {
            Ok(e) => {
                if !print(out, &e, &marks, false)? {
                    break;
                }
            }
            // Reported now and, the first of them, as the command's error
            // once every other event is printed.
            Err(e @ Error::Undecodable { .. }) => match first_undecodable {
                None => first_undecodable = Some(e),
                Some(_) => eprintln!("dcbstore: {e}"),
            },
            Err(e) => return Err(e),
        }
    }
    match first_undecodable {
        Some(e) => Err(e),
        None => Ok(Outcome::Done),
    }
}

/// `read --follow`: the history, then each new event as it commits, every
/// line flushed; ends at the window's end, on SIGINT or SIGTERM, or when
/// stdout closes (all exit 0). Redactions are marked as of the start.
pub(crate) async fn follow(
    ctx: &Ctx,
    query: Option<Query>,
    types: Vec<String>,
    tags: Vec<String>,
    window: Window,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let query = query_of(query, types, tags);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("cannot handle SIGTERM", e))?;
    let interrupt = tokio::signal::ctrl_c();
    let mut interrupt = std::pin::pin!(interrupt);
    let started = async {
        let store = ctx.store().await?;
        let marks = redactions_in(&store, window.after, window.from, window.to).await?;
        Ok::<_, Error>((store, marks))
    };
    let (store, marks) = tokio::select! {
        started = started => started?,
        _ = &mut interrupt => return Ok(Outcome::Done),
        _ = terminate.recv() => return Ok(Outcome::Done),
    };
    let mut events = store.subscribe_raw(&query, SubscribeOptions::new().window(window.options()));
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = &mut interrupt => break,
            _ = terminate.recv() => break,
        };
        match next {
            None => break,
            // Reported, naming the event and how to redact it; following goes on.
            Some(Err(e @ Error::Undecodable { .. })) => eprintln!("dcbstore: {e}"),
            Some(e) => {
                if !print(out, &e?, &marks, true)? {
                    break;
                }
            }
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
