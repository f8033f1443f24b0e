//! `/dead-letters`: the events consumers gave up on, with their payload and
//! error; retry and discard (POST, CSRF token) when actions are allowed.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::Query as UrlQuery;
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::same_origin;
use super::error::PageError;
use super::filter::encode;
use super::page;
use super::state::Shared;
use crate::delivery::{self as dead_letters, Selection};

/// Dead letters shown per page.
const SHOWN: usize = 200;

/// `?subscriber=`: one consumer's dead letters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    subscriber: Option<String>,
    done: Option<String>,
}

/// `GET /dead-letters`.
pub(crate) async fn page(
    State(console): State<Shared>,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Markup, PageError> {
    let only = params.subscriber.as_deref().filter(|s| !s.is_empty());
    let all = dead_letters::list(&console.store, only).await?;
    let total = all.len();
    let letters: Vec<_> = all.into_iter().take(SHOWN).collect();
    // The payloads in one primary-key lookup of at most SHOWN positions.
    let positions: Vec<i64> = letters
        .iter()
        .filter_map(|l| i64::try_from(l.position).ok())
        .collect();
    let client = console.store.pool().get().await?;
    let payloads: std::collections::HashMap<u64, (String, serde_json::Value)> = client
        .query(
            "SELECT position, type, data FROM dcbstore.events WHERE position = ANY($1)",
            &[&positions],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                (r.try_get(1)?, r.try_get(2)?),
            ))
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let actions = console.options.allow_actions;
    let csrf = &console.secrets.csrf;
    let can_retry = |name: &str| {
        console
            .options
            .deliveries
            .as_ref()
            .is_some_and(|d| d.names().contains(&name))
    };
    Ok(page::shell(
        "Dead letters",
        "/dead-letters",
        html! {
            h1 { "Dead letters" }
            @if let Some(done) = &params.done { p.ok #done { (done) } }
            @if let Some(s) = only { p { "Of " code { (s) } " · " a href="/dead-letters" { "all consumers" } } }
            @if !actions {
                p.muted { "Read only: start the console with --allow-actions to retry or discard." }
            }
            @if total > SHOWN { p.muted { "Showing the first " (SHOWN) " of " (total) "." } }
            @if letters.is_empty() {
                p.muted #no-dead-letters { "No dead letters." }
            } @else {
                table #dead-letters {
                    thead { tr {
                        th { "subscriber" } th.num { "position" } th { "type" } th.num { "attempts" }
                        th { "error" } th { "first failed" } th { "last failed" } th { "payload" }
                        @if actions { th { "" } }
                    } }
                    tbody {
                        @for l in &letters {
                            @let e = payloads.get(&l.position);
                            tr {
                                td { a href=(format!("/dead-letters?subscriber={}", encode(&l.subscriber))) { (l.subscriber) } }
                                td.num { a href=(format!("/events/{}", l.position)) { (l.position) } }
                                td { (e.map_or("", |e| e.0.as_str())) }
                                td.num { (l.attempts) }
                                td.error { (l.last_error) }
                                td.muted { (l.first_failed_at.format("%Y-%m-%d %H:%M:%S")) }
                                td.muted { (l.last_failed_at.format("%Y-%m-%d %H:%M:%S")) }
                                td { pre { (e.map(|e| serde_json::to_string_pretty(&e.1).unwrap_or_default()).unwrap_or_default()) } }
                                @if actions {
                                    td {
                                        @if can_retry(&l.subscriber) {
                                            form.inline method="post" action="/dead-letters/retry" {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="subscriber" value=(l.subscriber);
                                                input type="hidden" name="position" value=(l.position);
                                                button type="submit" { "Retry" }
                                            }
                                        }
                                        form.inline method="post" action="/dead-letters/discard" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="subscriber" value=(l.subscriber);
                                            input type="hidden" name="position" value=(l.position);
                                            button type="submit" { "Discard" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if actions && console.options.deliveries.is_none() {
                    p.muted { "Retry needs the failed handler: it is offered when the application embeds the console with its deliveries (ConsoleOptions::deliveries), or run the application's `dead-letters retry`." }
                }
            }
        },
    ))
}

/// A retry or discard form.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    subscriber: String,
    position: Option<u64>,
}

fn check(console: &Shared, headers: &HeaderMap, form: &ActionForm) -> Result<Selection, PageError> {
    if !console.options.allow_actions {
        return Err(PageError::Forbidden(
            "this console is read only: start it with --allow-actions to retry or discard dead letters".into(),
        ));
    }
    if !console.secrets.csrf_matches(&form.csrf) || !same_origin(headers) {
        return Err(PageError::Forbidden(
            "the form's CSRF token is not this console's (it restarted, or the request came from another site): reload the page and try again".into(),
        ));
    }
    Ok(form.position.map_or(Selection::All, Selection::Position))
}

fn back(subscriber: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/dead-letters?subscriber={}&done={}",
        encode(subscriber),
        encode(done)
    ))
    .into_response()
}

/// `POST /dead-letters/discard`.
pub(crate) async fn discard(
    State(console): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let which = check(&console, &headers, &form)?;
    let n = dead_letters::discard(&console.store, &form.subscriber, which).await?;
    tracing::info!(subscriber = %form.subscriber, discarded = n, "dead letters discarded from the console");
    Ok(back(&form.subscriber, &format!("discarded {n}")))
}

/// `POST /dead-letters/retry`.
pub(crate) async fn retry(
    State(console): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let which = check(&console, &headers, &form)?;
    let Some(deliveries) = console.options.deliveries.as_ref() else {
        return Err(PageError::Forbidden(
            "retrying needs the failed handler: embed the console with the application's deliveries (ConsoleOptions::deliveries)".into(),
        ));
    };
    let r = deliveries
        .retry(&console.store, &form.subscriber, which)
        .await?;
    tracing::info!(subscriber = %form.subscriber, tried = r.tried, delivered = r.delivered, "dead letters retried from the console");
    Ok(back(
        &form.subscriber,
        &format!(
            "retried {}: {} delivered, {} failed again",
            r.tried, r.delivered, r.failed
        ),
    ))
}
