//! `/events/live`: server-sent events, one `row` per appended event that
//! matches the filter: nothing skipped, nothing repeated, resumed after the
//! browser's `Last-Event-ID` when it reconnects.
//!
//! At most [`max_live_streams`](super::ConsoleOptions::max_live_streams)
//! are open at once (503 beyond). They share one follower of the log
//! ([`poller`](super::poller)): a stream first reads what it missed from
//! the log, a page at a time under a read permit and the deadline, up to
//! the follower's cursor, then takes the follower's rows. One that falls
//! behind the channel reads the log again from where it was.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::Query as UrlQuery;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::OwnedSemaphorePermit;

use super::error::PageError;
use super::events::{redactions, Listed};
use super::filter::{Filter, Params, PAGE};
use super::poller::{Listener, Poller, Row};
use super::reads::{busy, Held};
use super::state::Shared;
use dcbstore::event::SequencePosition;
use dcbstore::query::Query;
use dcbstore::read::ReadOptions;
use dcbstore::store::EventStore;

/// `GET /events/live`: server-sent events, one `row` event per appended
/// event, from `after` (or the browser's `Last-Event-ID` on reconnect).
pub(crate) async fn live(
    State(console): State<Shared>,
    poller: Arc<Poller>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Response, PageError> {
    let f = Filter::parse(&params, &console.store)?;
    let Ok(permit) = console.live.clone().try_acquire_owned() else {
        let mut r = busy(&format!(
            "{} live streams are open, the most this console serves; close one, or reload later",
            console.options.bounds.max_live_streams
        ));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(r);
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let listener = poller.listen(&console).await?;
    let follow = Follow {
        console,
        query: f.query,
        to: f.to,
        last: resume.or(f.after).unwrap_or(0),
        listener,
        catching_up: true,
        pending: VecDeque::new(),
        done: false,
        _permit: permit,
    };
    let events = futures::stream::unfold(follow, |mut s| async move {
        s.next().await.map(|e| (Ok::<_, Infallible>(e), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One stream's state.
struct Follow {
    console: Shared,
    query: Query,
    to: Option<u64>,
    /// The last position this stream is done with (sent, or passed over).
    last: u64,
    listener: Listener,
    catching_up: bool,
    pending: VecDeque<SseEvent>,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done || self.to.is_some_and(|t| self.last >= t) {
                return None;
            }
            if self.catching_up {
                let upto = self.listener.cursor().min(self.to.unwrap_or(u64::MAX));
                if self.last >= upto {
                    self.catching_up = false;
                    continue;
                }
                match self.page(upto).await {
                    Ok(()) => {}
                    Err(e) => self.fail(&e.to_string()),
                }
                continue;
            }
            match self.listener.rows.recv().await {
                Ok(row) => self.take(&row),
                // Fell behind the channel: read the log from `last` again.
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => {
                    self.fail("the console's live feed stopped; reconnecting");
                }
            }
        }
    }

    /// One page of the log in `(last, upto]`, under a read permit and the
    /// deadline.
    async fn page(&mut self, upto: u64) -> Result<(), PageError> {
        let console = &self.console;
        let deadline = console.options.bounds.request_timeout;
        let options = ReadOptions::new()
            .after(SequencePosition::new(self.last))
            .to(SequencePosition::new(upto))
            .limit(PAGE);
        let read = async {
            let held = Held::acquire(console).await;
            let events: Vec<Listed> = console
                .store
                .read(&self.query, options)
                .map(Listed::of)
                .try_collect()
                .await?;
            let positions: Vec<u64> = events.iter().map(|e| e.position().get()).collect();
            let marks = redactions(console, &positions).await?;
            if let Some(h) = held {
                h.release();
            }
            Ok::<_, PageError>((events, marks))
        };
        let (events, marks) = tokio::time::timeout(deadline, read).await.map_err(|_| {
            PageError::BadRequest("reading the log took longer than the console's deadline".into())
        })??;
        if (events.len() as u64) < PAGE {
            self.last = upto;
        }
        for e in &events {
            let p = e.position().get();
            self.pending.push_back(
                SseEvent::default()
                    .event("row")
                    .id(p.to_string())
                    .data(e.row(marks.contains_key(&p)).into_string()),
            );
            self.last = self.last.max(p);
        }
        Ok(())
    }

    /// A row of the follower.
    fn take(&mut self, r: &Arc<Row>) {
        if r.position <= self.last {
            return;
        }
        self.last = r.position;
        // An event the follower could not decode matches only a stream of
        // every event (its type and tags are unknown to the filter).
        let matches = r
            .event
            .as_ref()
            .map_or(matches!(self.query, Query::All), |e| self.query.matches(e));
        if self.to.is_none_or(|t| r.position <= t) && matches {
            self.pending.push_back(
                SseEvent::default()
                    .event("row")
                    .id(r.position.to_string())
                    .data(r.html.clone()),
            );
        }
    }

    fn fail(&mut self, why: &str) {
        self.pending
            .push_back(SseEvent::default().event("failed").data(why));
        self.done = true;
    }
}
