//! `/events/{position}`: one event, its data and metadata as formatted
//! JSON, its tags as links, and its redaction mark.

use axum::extract::{Path, State};
use futures::StreamExt;
use maud::{html, Markup};

use super::error::PageError;
use super::events::redactions;
use super::filter::encode;
use super::page;
use super::reads::Reading;
use super::state::Shared;
use dcbstore::event::SequencePosition;
use dcbstore::query::Query;
use dcbstore::read::ReadOptions;
use dcbstore::store::EventStore;

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
    // As stored: an event no `Value` can hold is shown too, every digit kept.
    let found: Vec<_> = console
        .store
        .read_raw(&Query::all(), ReadOptions::new().from(at).to(at))
        .collect()
        .await;
    let e = match found.into_iter().next() {
        None => {
            return Err(PageError::NotFound(format!(
                "no event at position {p}: the log's positions run from 1 to its head (see the overview)"
            )))
        }
        Some(e) => e?,
    };
    // Whether a reader of `Value`s decodes it (projections, subscribers).
    let undecodable = e.to_event().err();
    let marks = redactions(&console, &[p]).await?;
    let (data, metadata) = pretty(&console, p).await?;
    Ok(page::shell(
        &format!("Event {p}"),
        "/events",
        html! {
            h1 { "Event " (p) }
            div.pager {
                @if p > 1 { a rel="prev" href=(format!("/events/{}", p - 1)) { "← " (p - 1) } }
                a rel="next" href=(format!("/events/{}", p + 1)) { (p + 1) " →" }
            }
            @if let Some(err) = &undecodable {
                p #undecodable { span.redacted { "cannot be decoded" } " " (err.to_string()) }
            }
            @if let Some((at, reason)) = marks.get(&p) {
                p #redaction { span.redacted { "redacted" } " on " (at.format("%Y-%m-%d %H:%M:%S UTC")) ": " (reason) }
            }
            table #event {
                tbody {
                    tr { th { "position" } td { (p) } }
                    tr { th { "id" } td { code { (e.id) } } }
                    tr { th { "type" } td { a href=(format!("/events?type={}", encode(&e.event_type))) { (e.event_type) } } }
                    tr { th { "tags" } td #tags {
                        @for t in &e.tags { a.tag href=(format!("/events?tag={}", encode(t))) { (t) } }
                        @if e.tags.is_empty() { span.muted { "none" } }
                    } }
                    tr { th { "recorded" } td { (e.recorded_at.to_rfc3339()) } }
                }
            }
            h2 { "Data" }
            pre #data { (data) }
            h2 { "Metadata" }
            pre #metadata { (metadata) }
        },
    ))
}

/// The event's data and metadata as PostgreSQL formats them
/// (`jsonb_pretty`): indented, every digit of every number kept, which a
/// `serde_json::Value` would round (on a [`Reading`]: cut at the deadline,
/// the statement is cancelled).
async fn pretty(console: &Shared, p: u64) -> Result<(String, String), PageError> {
    let position = i64::try_from(p).unwrap_or(i64::MAX);
    let mut reading = Reading::start(console).await?;
    let tx = reading.begin(console).await?;
    let row = tx
        .query_opt(
            "SELECT jsonb_pretty(data), jsonb_pretty(metadata) FROM dcbstore.events WHERE \"position\" = $1",
            &[&position],
        )
        .await?;
    tx.commit().await?;
    reading.finish();
    Ok(match row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (String::new(), String::new()),
    })
}
