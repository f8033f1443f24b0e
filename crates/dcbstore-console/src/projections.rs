//! `/projections`: every checkpoint of `dcbstore.projections` (durable
//! projections, subscribers, relays): where it stands, how far behind the
//! head in events and seconds, its state and last error.

use axum::extract::State;
use maud::{html, Markup};

use super::error::PageError;
use super::page::{self, count, seconds};
use super::reads;
use super::state::Shared;
use super::stats::lags;
use dcbstore::projection::durable;

/// `GET /projections`.
pub(crate) async fn page(State(console): State<Shared>) -> Result<Markup, PageError> {
    let rows = durable::status(&console.store).await?;
    let mut reading = reads::Reading::start(&console).await?;
    let tx = reading.begin(&console).await?;
    let lags = lags(&*tx).await?;
    let dead: std::collections::HashMap<String, i64> = tx
        .query(
            "SELECT subscriber, count(*) FROM dcbstore.dead_letters GROUP BY subscriber",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    tx.commit().await?;
    reading.finish();
    let head = rows.first().map_or(0, |r| r.head);
    Ok(page::shell(
        "Projections",
        "/projections",
        html! {
            h1 { "Projections, subscribers and relays" }
            p.muted { "Head " (count(head)) ". Lag in seconds is the age of the oldest event not yet applied." }
            @if rows.is_empty() {
                p.muted { "No durable projection, subscriber or relay has run against this store yet." }
            } @else {
                table #projections {
                    thead { tr {
                        th { "name" } th { "kind" } th.num { "checkpoint" } th.num { "lag (events)" }
                        th.num { "lag (time)" } th { "state" } th.num { "failures" } th.num { "dead letters" }
                        th { "last error" } th { "owner" } th { "updated" }
                    } }
                    tbody {
                        @for r in &rows {
                            @let lag = lags.iter().find(|l| l.name == r.name);
                            tr data-name=(r.name) {
                                td { (r.name) }
                                td { (lag.map_or("projection", |l| l.kind.as_str())) }
                                td.num { (count(r.checkpoint)) }
                                td.num { (count(r.lag)) }
                                td.num { (lag.map_or("-".to_string(), |l| seconds(l.seconds))) }
                                td class=(if r.state == "failed" { "failed" } else { "" }) { (r.state) }
                                td.num { (r.failures) }
                                td.num {
                                    @match dead.get(&r.name) {
                                        Some(n) => a href=(format!("/dead-letters?subscriber={}", super::filter::encode(&r.name))) { (n) },
                                        None => "0",
                                    }
                                }
                                td {
                                    @if let Some(e) = &r.last_error {
                                        span.error { (e) }
                                        @if let Some(p) = r.error_position { " at " a href=(format!("/events/{p}")) { (p) } }
                                    }
                                }
                                td.muted { (r.owner.as_deref().unwrap_or("")) }
                                td.muted { (r.updated_at.format("%Y-%m-%d %H:%M:%S")) }
                            }
                        }
                    }
                }
            }
        },
    ))
}
