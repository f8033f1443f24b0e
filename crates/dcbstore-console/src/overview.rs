//! `/`: the store at a glance.

use axum::extract::State;
use maud::{html, Markup};

use super::error::PageError;
use super::page::{self, count};
use super::reads;
use super::state::Shared;
use super::{chart, stats};
use dcbstore::migrate;

/// `GET /`.
pub(crate) async fn page(State(console): State<Shared>) -> Result<Markup, PageError> {
    let mut reading = reads::Reading::start(&console).await?;
    let tx = reading.begin(&console).await?;
    let status = migrate::status(&*tx).await?;
    let head: i64 = tx
        .query_one("SELECT coalesce(dcbstore.head(), 0)", &[])
        .await?
        .try_get(0)?;
    let head = u64::try_from(head).unwrap_or(0);
    let o = stats::overview(&*tx, 20).await?;
    tx.commit().await?;
    reading.finish();
    let widest = o.types.first().map_or(1, |t| t.1).max(1);
    Ok(page::shell(
        "Overview",
        "/",
        html! {
            h1 { "Overview" }
            div.cards {
                div.card { div.label { "Head" } div.value #head { (count(head)) } }
                div.card { div.label { "Last minute" } div.value #last-minute { (count(o.last_minute())) } }
                div.card { div.label { "Last hour" } div.value #last-hour { (count(o.last_hour())) } }
                div.card { div.label { "Schema version" }
                    div.value { (status.installed_version.map_or("none".to_string(), |v| v.to_string())) } }
                div.card { div.label { "Store id" }
                    div #store-id { (status.store_id.map_or("-".to_string(), |id| id.to_string())) } }
            }
            p.muted {
                "Counts come from dcbstore.stats_*, maintained in the background: they cover the events up to position "
                (count(o.cursor))
                @if o.cursor < head { " (" (count(head - o.cursor)) " newer events not yet counted)" }
                @if let Some(at) = o.refreshed_at { ", refreshed " (at.format("%H:%M:%S UTC")) }
                ". \"Last minute\" is the last complete minute, \"last hour\" the 60 before the current one."
            }
            h2 { "Appends per minute, last hour" }
            (chart::rate(&o.minutes))
            h2 { "Events by type" }
            (bars(&o.types, widest, "type"))
            h2 { "Most used tags" }
            (bars(&o.tags, o.tags.first().map_or(1, |t| t.1).max(1), "tag"))
        },
    ))
}

fn bars(rows: &[(String, u64)], widest: u64, param: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "None yet." }
        } @else {
            table.bars {
                thead { tr { th { (param) } th.num { "events" } th { "" } } }
                tbody {
                    @for (name, n) in rows {
                        tr {
                            td { a href=(format!("/events?{param}={}", super::filter::encode(name))) { (name) } }
                            td.num { (count(*n)) }
                            td {
                                // An SVG bar: the policy forbids inline styles.
                                svg width="200" height="10" xmlns="http://www.w3.org/2000/svg" {
                                    rect.bar width=(n * 200 / widest) height="10" {}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
