//! `/events`: the log through a query, a window and pages of 50, newest
//! first, with cursors in the URL; its live mode (`/events/live`, server-sent
//! events) adds events as they are appended, through [`Store::subscribe`].

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum_extra::extract::Query as UrlQuery;
use futures::{Stream, StreamExt, TryStreamExt};
use maud::{html, Markup};
use serde::Deserialize;

use super::error::PageError;
use super::page::{self, count};
use super::state::Shared;
use crate::event::{SequencePosition, SequencedEvent};
use crate::query::{Query, QueryItem};
use crate::read::ReadOptions;
use crate::store::{EventStore, Store};
use crate::subscribe::SubscribeOptions;

/// Events per page.
pub(crate) const PAGE: u64 = 50;

/// The URL's parameters (a contract, like the CLI's flags): repeatable
/// `type` and `tag` (one query item: types OR'd, tags AND'd) or `query`
/// (a JSON query, the store's semantics); the window `after`, `from`,
/// `to`; the page cursors `before` (the page of older events) and `newer`
/// (the page of newer events); `live`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default, rename = "type")]
    types: Vec<String>,
    #[serde(default, rename = "tag")]
    tags: Vec<String>,
    query: Option<String>,
    after: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    newer: Option<String>,
    live: Option<String>,
}

/// `Params` checked: the query and the window in the store's terms.
pub(crate) struct Filter {
    types: Vec<String>,
    tags: Vec<String>,
    json: Option<String>,
    pub(crate) query: Query,
    after: Option<u64>,
    to: Option<u64>,
    before: Option<u64>,
    newer: Option<u64>,
    live: bool,
}

fn position(name: &str, v: Option<&str>) -> Result<Option<u64>, PageError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            PageError::BadRequest(format!(
                "{name}={v:?} is not a position: give a whole number from 0"
            ))
        }),
    }
}

impl Filter {
    pub(crate) fn parse(p: &Params, store: &Store) -> Result<Filter, PageError> {
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let (types, tags) = (clean(&p.types), clean(&p.tags));
        let json = p
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        let query = match (&json, types.is_empty(), tags.is_empty()) {
            (Some(_), false, _) | (Some(_), _, false) => {
                return Err(PageError::BadRequest(
                    "give either `query` (a JSON query) or `type` and `tag`, not both".into(),
                ))
            }
            (Some(q), ..) => Query::from_json_with(q, store.limits())?,
            (None, true, true) => Query::all(),
            (None, false, _) => Query::item(QueryItem::types(types.clone()).and_tags(tags.clone())),
            (None, true, false) => Query::item(QueryItem::tags(tags.clone())),
        };
        query.validate_with(store.limits())?;
        let from = position("from", p.from.as_deref())?;
        let after = match (position("after", p.after.as_deref())?, from) {
            (Some(_), Some(_)) => {
                return Err(PageError::BadRequest(
                    "give `after` or `from`, not both".into(),
                ))
            }
            (a, None) => a,
            (None, Some(f)) => Some(f.saturating_sub(1)),
        };
        let before = position("before", p.before.as_deref())?;
        let newer = position("newer", p.newer.as_deref())?;
        if before.is_some() && newer.is_some() {
            return Err(PageError::BadRequest(
                "give `before` or `newer`, not both".into(),
            ));
        }
        Ok(Filter {
            types,
            tags,
            json,
            query,
            after,
            to: position("to", p.to.as_deref())?,
            before,
            newer,
            live: p.live.as_deref().is_some_and(|v| v != "0" && !v.is_empty()),
        })
    }

    /// This filter's URL with other cursors (and live mode) than its own.
    fn url(&self, path: &str, cursor: Option<(&str, u64)>, live: bool) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for t in &self.types {
            s.append_pair("type", t);
        }
        for t in &self.tags {
            s.append_pair("tag", t);
        }
        if let Some(q) = &self.json {
            s.append_pair("query", q);
        }
        if let Some(a) = self.after {
            s.append_pair("after", &a.to_string());
        }
        if let Some(t) = self.to {
            s.append_pair("to", &t.to_string());
        }
        if let Some((name, p)) = cursor {
            s.append_pair(name, &p.to_string());
        }
        if live {
            s.append_pair("live", "1");
        }
        let qs = s.finish();
        if qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{qs}")
        }
    }

    /// The window's options, narrowed to `(after, to]`.
    fn window(&self, after: Option<u64>, to: Option<u64>) -> ReadOptions {
        let after = after.max(self.after);
        let to = match (to, self.to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut o = ReadOptions::new().after_opt(after.map(SequencePosition::new));
        if let Some(t) = to {
            o = o.to(SequencePosition::new(t));
        }
        o
    }
}

/// Percent-encodes a query-string value.
pub(crate) fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A page of events and whether there are more on either side.
struct Page {
    events: Vec<SequencedEvent>,
    older: bool,
    newer: bool,
}

async fn read_page(store: &Store, f: &Filter) -> Result<Page, PageError> {
    let read = |o: ReadOptions| store.read(&f.query, o).try_collect::<Vec<_>>();
    if let Some(n) = f.newer {
        // The 50 oldest events above the cursor, shown newest first.
        let mut events = read(f.window(Some(n), None).limit(PAGE + 1)).await?;
        let newer = events.len() as u64 > PAGE;
        events.truncate(PAGE as usize);
        events.reverse();
        let older = match events.last() {
            None => n > 0,
            Some(e) => !read(
                f.window(None, Some(e.position.get().saturating_sub(1)))
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
        (Some(_), Some(e)) => !read(f.window(Some(e.position.get()), None).limit(1))
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

/// The latest redaction of each of `positions` that was redacted.
pub(crate) async fn redactions(
    store: &Store,
    positions: &[u64],
) -> Result<HashMap<u64, (chrono::DateTime<chrono::Utc>, String)>, PageError> {
    if positions.is_empty() {
        return Ok(HashMap::new());
    }
    let ps: Vec<i64> = positions
        .iter()
        .filter_map(|p| i64::try_from(*p).ok())
        .collect();
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (\"position\") \"position\", redacted_at, reason FROM dcbstore.redactions
              WHERE \"position\" = ANY($1) ORDER BY \"position\", redacted_at DESC",
            &[&ps],
        )
        .await?;
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
    let positions: Vec<u64> = p.events.iter().map(|e| e.position.get()).collect();
    let marks = redactions(&console.store, &positions).await?;
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
                    @for e in &p.events { (row(e, marks.get(&e.position.get()).is_some())) }
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

/// At most `max` characters of `s`, cut at a character boundary.
fn preview(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// `GET /events/live`: server-sent events, one `row` event per appended
/// event, from `after` (or the browser's `Last-Event-ID` on reconnect).
pub(crate) async fn live(
    State(console): State<Shared>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, PageError> {
    let f = Filter::parse(&params, &console.store)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let after = resume.or(f.after).unwrap_or(0);
    let mut options = SubscribeOptions::new().after(SequencePosition::new(after));
    if let Some(t) = f.to {
        options = options.to(SequencePosition::new(t));
    }
    let store = console.store.clone();
    let events = console
        .store
        .subscribe(&f.query, options)
        .then(move |item| {
            let store = store.clone();
            async move {
                Ok::<_, Infallible>(match item {
                    Ok(e) => {
                        let p = e.position.get();
                        let redacted = redactions(&store, &[p])
                            .await
                            .map(|m| m.contains_key(&p))
                            .unwrap_or(false);
                        SseEvent::default()
                            .event("row")
                            .id(p.to_string())
                            .data(row(&e, redacted).into_string())
                    }
                    Err(e) => SseEvent::default().event("failed").data(e.to_string()),
                })
            }
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
