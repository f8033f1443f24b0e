//! `/events`: the log through a query, a window and pages of 50, newest
//! first, with cursors in the URL ([`filter`](super::filter)); its live mode
//! is [`live`](super::live).

use std::collections::HashMap;

use axum::extract::State;
use axum_extra::extract::Query as UrlQuery;
use futures::{StreamExt, TryStreamExt};
use maud::{html, Markup};

use super::error::PageError;
use super::filter::{encode, Filter, Params, PAGE};
use super::page::{self, count};
use super::reads::Reading;
use super::state::Shared;
use dcbstore::event::{SequencePosition, SequencedEvent};
use dcbstore::read::ReadOptions;
use dcbstore::store::{EventStore, Store};

/// A page of events and whether there are more on either side.
struct Page {
    events: Vec<Listed>,
    older: bool,
    newer: bool,
}

/// An event of a page, or one this reader cannot decode (shown as such,
/// with how to redact it: it never takes its page down).
pub(crate) enum Listed {
    Event(SequencedEvent),
    Undecodable(SequencePosition, String),
}

impl Listed {
    pub(crate) fn position(&self) -> SequencePosition {
        match self {
            Listed::Event(e) => e.position,
            Listed::Undecodable(p, _) => *p,
        }
    }

    /// A read's item: an undecodable event is listed, any other error fails.
    pub(crate) fn of(item: dcbstore::Result<SequencedEvent>) -> dcbstore::Result<Listed> {
        match item {
            Ok(e) => Ok(Listed::Event(e)),
            Err(e @ dcbstore::Error::Undecodable { .. }) => {
                let p = e.position().unwrap_or(SequencePosition::new(0));
                Ok(Listed::Undecodable(p, e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Its table row.
    pub(crate) fn row(&self, redacted: bool) -> Markup {
        match self {
            Listed::Event(e) => row(e, redacted),
            Listed::Undecodable(p, message) => undecodable_row(p.get(), message),
        }
    }
}

async fn read_page(store: &Store, f: &Filter) -> Result<Page, PageError> {
    let read = |o: ReadOptions| {
        store
            .read(&f.query, o)
            .map(Listed::of)
            .try_collect::<Vec<_>>()
    };
    if let Some(n) = f.newer {
        // The 50 oldest events above the cursor, shown newest first.
        let mut events = read(f.window(Some(n), None).limit(PAGE + 1)).await?;
        let newer = events.len() as u64 > PAGE;
        events.truncate(PAGE as usize);
        events.reverse();
        let older = match events.last() {
            None => n > 0,
            Some(e) => !read(
                f.window(None, Some(e.position().get().saturating_sub(1)))
                    .backwards()
                    .limit(1),
            )
            .await?
            .is_empty(),
        };
        return Ok(Page {
            events,
            older,
            newer,
        });
    }
    let to = f.before.map(|b| b.saturating_sub(1));
    if f.before == Some(0) {
        return Ok(Page {
            events: Vec::new(),
            older: false,
            newer: true,
        });
    }
    let mut events = read(f.window(None, to).backwards().limit(PAGE + 1)).await?;
    let older = events.len() as u64 > PAGE;
    events.truncate(PAGE as usize);
    let newer = match (f.before, events.first()) {
        (None, _) => false,
        (Some(_), Some(e)) => !read(f.window(Some(e.position().get()), None).limit(1))
            .await?
            .is_empty(),
        (Some(b), None) => !read(f.window(Some(b.saturating_sub(1)), None).limit(1))
            .await?
            .is_empty(),
    };
    Ok(Page {
        events,
        older,
        newer,
    })
}

/// The latest redaction of each of `positions` that was redacted (on a
/// [`Reading`]: cut at the deadline, the statement is cancelled).
pub(crate) async fn redactions(
    console: &Shared,
    positions: &[u64],
) -> Result<HashMap<u64, (chrono::DateTime<chrono::Utc>, String)>, PageError> {
    if positions.is_empty() {
        return Ok(HashMap::new());
    }
    let ps: Vec<i64> = positions
        .iter()
        .filter_map(|p| i64::try_from(*p).ok())
        .collect();
    let mut reading = Reading::start(console).await?;
    let tx = reading.begin(console).await?;
    let rows = tx
        .query(
            "SELECT DISTINCT ON (\"position\") \"position\", redacted_at, reason FROM dcbstore.redactions
              WHERE \"position\" = ANY($1) ORDER BY \"position\", redacted_at DESC",
            &[&ps],
        )
        .await?;
    tx.commit().await?;
    reading.finish();
    rows.iter()
        .map(|r| {
            Ok((
                u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                (r.try_get(1)?, r.try_get(2)?),
            ))
        })
        .collect()
}

/// `GET /events`.
pub(crate) async fn page(
    State(console): State<Shared>,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Markup, PageError> {
    let f = Filter::parse(&params, &console.store)?;
    let p = read_page(&console.store, &f).await?;
    let positions: Vec<u64> = p.events.iter().map(|e| e.position().get()).collect();
    let marks = redactions(&console, &positions).await?;
    let head = console.store.head().await?.map_or(0, SequencePosition::get);
    // Live only on the newest page: new events go above it.
    let live = f.live && f.before.is_none() && f.newer.is_none();
    let stream = live.then(|| {
        let after = positions
            .first()
            .copied()
            .unwrap_or(head)
            .max(f.after.unwrap_or(0));
        f.url("/events/live", Some(("after", after)), false)
    });
    Ok(page::shell(
        "Events",
        "/events",
        html! {
            h1 { "Events" }
            (filter_form(&f))
            div.pager {
                @if p.newer { a #newer rel="prev" href=(f.url("/events", positions.first().map(|n| ("newer", *n)), false)) { "← Newer" } }
                @else { span.muted { "← Newer" } }
                @if p.older { a #older rel="next" href=(f.url("/events", positions.last().map(|o| ("before", *o)), false)) { "Older →" } }
                @else { span.muted { "Older →" } }
                @if live {
                    a href=(f.url("/events", None, false)) { "Stop live" }
                    span #live-status.muted { "live: connecting…" }
                } @else {
                    a #go-live href=(f.url("/events", None, true)) { "Live" }
                }
                span.muted { "head " (count(head)) }
            }
            table #events data-stream=[stream.as_deref()] {
                thead { tr { th.num { "position" } th { "recorded" } th { "type" } th { "tags" } th { "data" } } }
                tbody {
                    @for e in &p.events { (e.row(marks.contains_key(&e.position().get()))) }
                    @if p.events.is_empty() { tr #no-events { td colspan="5" .muted { "No events match." } } }
                }
            }
            @if live { script src="/assets/live.js" {} }
        },
    ))
}

fn filter_form(f: &Filter) -> Markup {
    html! {
        form.filter method="get" action="/events" {
            @for t in &f.types {
                input type="hidden" name="type" value=(t);
            }
            @for t in &f.tags {
                input type="hidden" name="tag" value=(t);
            }
            label { "type" input type="text" name="type" placeholder="add a type (OR)"; }
            label { "tag" input type="text" name="tag" placeholder="add a tag (AND)"; }
            label { "after" input type="number" min="0" name="after" value=[f.after]; }
            label { "to" input type="number" min="0" name="to" value=[f.to]; }
            @if let Some(q) = &f.json { label { "query" input type="text" name="query" value=(q); } }
            button type="submit" { "Filter" }
            a href="/events" { "clear" }
        }
        @if !f.types.is_empty() || !f.tags.is_empty() {
            p #filters {
                "Types: "
                @if f.types.is_empty() { span.muted { "any" } }
                @for t in &f.types { span.tag { (t) } " " }
                " · tags (all of): "
                @if f.tags.is_empty() { span.muted { "any" } }
                @for t in &f.tags { span.tag { (t) } " " }
            }
        }
    }
}

/// One event as a table row (the live mode sends the same rows).
pub(crate) fn row(e: &SequencedEvent, redacted: bool) -> Markup {
    let p = e.position.get();
    let data = serde_json::to_string(&e.event.data).unwrap_or_default();
    html! {
        tr data-position=(p) {
            td.num { a href=(format!("/events/{p}")) { (p) } }
            td.muted { (e.recorded_at.format("%Y-%m-%d %H:%M:%S%.3f")) }
            td { a href=(format!("/events?type={}", encode(&e.event.event_type))) { (e.event.event_type) } }
            td { @for t in &e.event.tags { a.tag href=(format!("/events?tag={}", encode(t))) { (t) } } }
            td {
                @if redacted { span.redacted { "redacted" } " " }
                pre { (preview(&data, 160)) }
            }
        }
    }
}

/// A row for an event this reader cannot decode: which, why, and how to
/// redact it.
pub(crate) fn undecodable_row(p: u64, message: &str) -> Markup {
    html! {
        tr.undecodable data-position=(p) {
            td.num { a href=(format!("/events/{p}")) { (p) } }
            td colspan="4" { span.redacted { "cannot be decoded" } " " (message) }
        }
    }
}

/// At most `max` characters of `s`, cut at a character boundary.
fn preview(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}
