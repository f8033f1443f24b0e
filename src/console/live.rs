//! `/events/live`: server-sent events, one `row` per appended event that
//! matches the filter, through [`Store::subscribe`](crate::Store::subscribe):
//! nothing skipped, nothing repeated, resumed after the browser's
//! `Last-Event-ID` when it reconnects.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum_extra::extract::Query as UrlQuery;
use futures::{Stream, StreamExt};

use super::error::PageError;
use super::events::{redactions, row};
use super::filter::{Filter, Params};
use super::state::Shared;
use crate::event::SequencePosition;
use crate::subscribe::SubscribeOptions;

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
