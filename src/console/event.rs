//! `/events/{position}`: one event, its data and metadata as formatted
//! JSON, its tags as links, and its redaction mark.

use axum::extract::{Path, State};
use futures::TryStreamExt;
use maud::{html, Markup};

use super::error::PageError;
use super::events::redactions;
use super::filter::encode;
use super::page;
use super::state::Shared;
use crate::event::SequencePosition;
use crate::query::Query;
use crate::read::ReadOptions;
use crate::store::EventStore;

/// `GET /events/{position}`.
pub(crate) async fn page(
    State(console): State<Shared>,
    Path(position): Path<String>,
) -> Result<Markup, PageError> {
    let p: u64 = position
        .parse()
        .ok()
        .filter(|p| *p > 0 && i64::try_from(*p).is_ok())
        .ok_or_else(|| {
            PageError::BadRequest(format!(
                "{position:?} is not a position: positions are whole numbers from 1"
            ))
        })?;
    let at = SequencePosition::new(p);
    let found: Vec<_> = console
        .store
        .read(&Query::all(), ReadOptions::new().from(at).to(at))
        .try_collect()
        .await?;
    let Some(e) = found.into_iter().next() else {
        return Err(PageError::NotFound(format!(
            "no event at position {p}: the log's positions run from 1 to its head (see the overview)"
        )));
    };
    let marks = redactions(&console, &[p]).await?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    Ok(page::shell(
        &format!("Event {p}"),
        "/events",
        html! {
            h1 { "Event " (p) }
            div.pager {
                @if p > 1 { a rel="prev" href=(format!("/events/{}", p - 1)) { "← " (p - 1) } }
                a rel="next" href=(format!("/events/{}", p + 1)) { (p + 1) " →" }
            }
            @if let Some((at, reason)) = marks.get(&p) {
                p #redaction { span.redacted { "redacted" } " on " (at.format("%Y-%m-%d %H:%M:%S UTC")) ": " (reason) }
            }
            table #event {
                tbody {
                    tr { th { "position" } td { (p) } }
                    tr { th { "id" } td { code { (e.event.id) } } }
                    tr { th { "type" } td { a href=(format!("/events?type={}", encode(&e.event.event_type))) { (e.event.event_type) } } }
                    tr { th { "tags" } td #tags {
                        @for t in &e.event.tags { a.tag href=(format!("/events?tag={}", encode(t))) { (t) } }
                        @if e.event.tags.is_empty() { span.muted { "none" } }
                    } }
                    tr { th { "recorded" } td { (e.recorded_at.to_rfc3339()) } }
                }
            }
            h2 { "Data" }
            pre #data { (pretty(&e.event.data)) }
            h2 { "Metadata" }
            pre #metadata { (pretty(&serde_json::Value::Object(e.event.metadata.clone()))) }
        },
    ))
}
