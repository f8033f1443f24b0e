//! `/dead-letters`: the events consumers gave up on, with their payload and
//! error; retry and discard (POST, CSRF token) when actions are allowed.
//!
//! Pages of 200 by a keyset cursor (`after_subscriber`, `after`): a page
//! reads 201 rows of the primary key's index whatever the table holds, and
//! payloads and errors arrive cut to a preview. After an action the page
//! shows what it did from numbers in the URL, never text from it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::Query as UrlQuery;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::error::PageError;
use super::filter::encode;
use super::host::same_origin;
use super::page;
use super::reads;
use super::state::Shared;
use dcbstore_delivery::{self as dead_letters, Selection};

/// Dead letters shown per page.
const SHOWN: i64 = 200;

/// Characters of a payload or an error shown in the table (the event's
/// page shows all of its data).
const PREVIEW: i32 = 2000;

/// `?subscriber=`: one consumer's dead letters; `after_subscriber` and
/// `after` the page's keyset cursor; what the last action did (numbers
/// only: the page never shows text from the URL).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    subscriber: Option<String>,
    after_subscriber: Option<String>,
    after: Option<i64>,
    discarded: Option<u64>,
    retried: Option<u64>,
    delivered: Option<u64>,
    failed: Option<u64>,
}

/// One row of the page.
struct Letter {
    subscriber: String,
    position: i64,
    attempts: i32,
    last_error: String,
    first_failed_at: DateTime<Utc>,
    last_failed_at: DateTime<Utc>,
    event_type: Option<String>,
    payload: Option<String>,
}

/// A page of dead letters from the keyset cursor, in (subscriber, position)
/// order: an index range scan of the primary key, and previews cut in SQL.
async fn letters(
    console: &Shared,
    only: Option<&str>,
    from: Option<(&str, i64)>,
) -> Result<Vec<Letter>, PageError> {
    let mut reading = reads::Reading::start(console).await?;
    let tx = reading.begin(console).await?;
    let (after_s, after_p) = from.map_or((None, 0), |(s, p)| (Some(s), p));
    let rows = tx
        .query(
            "SELECT d.subscriber, d.\"position\", d.attempts, left(d.last_error, $5), d.first_failed_at,
                    d.last_failed_at, e.type, left(e.data::text, $5)
               FROM dcbstore.dead_letters d
               LEFT JOIN dcbstore.events e ON e.\"position\" = d.\"position\"
              WHERE ($1::text IS NULL OR d.subscriber = $1)
                AND ($2::text IS NULL OR (d.subscriber, d.\"position\") > ($2, $3))
              ORDER BY d.subscriber, d.\"position\"
              LIMIT $4",
            &[&only, &after_s, &after_p, &(SHOWN + 1), &PREVIEW],
        )
        .await?;
    tx.commit().await?;
    reading.finish();
    rows.iter()
        .map(|r| {
            Ok(Letter {
                subscriber: r.try_get(0)?,
                position: r.try_get(1)?,
                attempts: r.try_get(2)?,
                last_error: r.try_get(3)?,
                first_failed_at: r.try_get(4)?,
                last_failed_at: r.try_get(5)?,
                event_type: r.try_get(6)?,
                payload: r.try_get(7)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(PageError::from)
}

/// What the last action did, from the redirect's numbers.
fn outcome(p: &Params) -> Option<String> {
    match (p.discarded, p.retried) {
        (Some(n), _) => Some(format!("discarded {n}")),
        (None, Some(n)) => Some(format!(
            "retried {n}: {} delivered, {} failed again",
            p.delivered.unwrap_or(0),
            p.failed.unwrap_or(0)
        )),
        (None, None) => None,
    }
}

/// `GET /dead-letters`.
pub(crate) async fn page(
    State(console): State<Shared>,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Markup, PageError> {
    let only = params.subscriber.as_deref().filter(|s| !s.is_empty());
    let from = params
        .after_subscriber
        .as_deref()
        .map(|s| (s, params.after.unwrap_or(0)));
    let mut letters = letters(&console, only, from).await?;
    let more = letters.len() as i64 > SHOWN;
    letters.truncate(usize::try_from(SHOWN).unwrap_or(200));
    let next = letters.last().filter(|_| more).map(|l| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(o) = only {
            s.append_pair("subscriber", o);
        }
        s.append_pair("after_subscriber", &l.subscriber);
        s.append_pair("after", &l.position.to_string());
        format!("/dead-letters?{}", s.finish())
    });
    let done = outcome(&params);
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
            @if let Some(done) = &done { p.ok #done { (done) } }
            @if let Some(s) = only { p { "Of " code { (s) } " · " a href="/dead-letters" { "all consumers" } } }
            @if !actions {
                p.muted { "Read only: start the console with --allow-actions to retry or discard." }
            }
            @if from.is_some() { p.muted { a href=(only.map_or("/dead-letters".to_owned(), |o| format!("/dead-letters?subscriber={}", encode(o)))) { "← First page" } } }
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
                            tr {
                                td { a href=(format!("/dead-letters?subscriber={}", encode(&l.subscriber))) { (l.subscriber) } }
                                td.num { a href=(format!("/events/{}", l.position)) { (l.position) } }
                                td { (l.event_type.as_deref().unwrap_or("")) }
                                td.num { (l.attempts) }
                                td.error { (l.last_error) }
                                td.muted { (l.first_failed_at.format("%Y-%m-%d %H:%M:%S")) }
                                td.muted { (l.last_failed_at.format("%Y-%m-%d %H:%M:%S")) }
                                td { pre { (l.payload.as_deref().unwrap_or("")) } }
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
                @if let Some(next) = &next { p.pager { a #more rel="next" href=(next) { "Next " (SHOWN) " →" } } }
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
        "/dead-letters?subscriber={}&{done}",
        encode(subscriber)
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
    Ok(back(&form.subscriber, &format!("discarded={n}")))
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
            "retried={}&delivered={}&failed={}",
            r.tried, r.delivered, r.failed
        ),
    ))
}
