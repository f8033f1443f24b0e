//! The [`Subscription`] stream: reads after the last delivered position
//! until caught up, waits for a wake-up, and reads again.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::stream::{BoxStream, Stream, StreamExt};

use super::SubscribeOptions;
use crate::error::{Error, Result};
use crate::event::{SequencePosition, SequencedEvent};
use crate::limits::Limits;
use crate::listener::{Listener, Wakeups};
use crate::pooled::Pooled;
use crate::query::Query;
use crate::read::Decode;
use crate::read::ReadOptions;
use crate::replica::{routed_read, Replicas};

/// The events matching a query, catch-up then live: returned by
/// [`Store::subscribe`](crate::Store::subscribe).
///
/// Positions strictly increase; no committed matching event is skipped. It
/// ends when its [`to`](SubscribeOptions::to) or
/// [`limit`](SubscribeOptions::limit) is reached, or after yielding an error
/// it could not ride out. An event it cannot decode is yielded as
/// [`Error::Undecodable`] in its place, and the subscription goes on. Dropping it releases its reads and, with the last
/// follower of its store, the listening connection.
///
/// `Subscription<RawEvent>` ([`Store::subscribe_raw`](crate::Store::subscribe_raw))
/// yields events with their data and metadata as stored JSON text.
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<T = SequencedEvent> {
    inner: BoxStream<'static, Result<T>>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// What a subscription reads from: the store's pool, limits and page size,
/// and its listener.
pub(crate) struct Source {
    pub(crate) pooled: Pooled,
    /// Reads may go to a replica (each read of the subscription to one
    /// that holds what it must see); wake-ups and the head are the
    /// primary's.
    pub(crate) replicas: Option<Arc<Replicas>>,
    pub(crate) limits: Limits,
    pub(crate) page_size: u64,
    pub(crate) listener: Arc<Listener>,
}

/// A subscription's state between events.
struct Follow<T> {
    source: Source,
    query: Query,
    options: SubscribeOptions,
    /// Opened at the first poll (inside the runtime), kept until dropped.
    wakeups: Option<Wakeups>,
    /// The last position delivered (or the start).
    last: u64,
    delivered: u64,
    /// The read in progress: (last, head at its first page].
    current: Option<BoxStream<'static, Result<T>>>,
    /// The head has passed `to`: the read in progress is the last.
    finishing: bool,
    failures: u32,
    backoff: Option<ExponentialBackoff>,
    done: bool,
}

/// Starts a subscription; nothing is sent before it is first polled.
pub(crate) fn subscribe<T: Decode>(
    source: Source,
    query: &Query,
    options: SubscribeOptions,
) -> Subscription<T> {
    let refused = if options.window.is_backwards() {
        Err(Error::invalid(
            "a subscription follows the log forwards: drop backwards() from its window",
        ))
    } else {
        query.validate_with(&source.limits)
    };
    if let Err(e) = refused {
        return Subscription {
            inner: futures::stream::once(async move { Err(e) }).boxed(),
        };
    }
    let follow = Follow {
        source,
        query: query.clone(),
        options,
        wakeups: None,
        last: options.window.lower(),
        delivered: 0,
        current: None,
        finishing: false,
        failures: 0,
        backoff: None,
        done: false,
    };
    Subscription {
        inner: futures::stream::unfold(follow, step).boxed(),
    }
}

async fn step<T: Decode>(mut f: Follow<T>) -> Option<(Result<T>, Follow<T>)> {
    loop {
        if f.done || f.reached_end() {
            return None;
        }
        if f.current.is_none() {
            let listener = f.source.listener.clone();
            let wakeups = f.wakeups.get_or_insert_with(|| listener.wakeups());
            // Before the read: a wake-up during it ends the next wait at once.
            wakeups.mark();
            f.current = Some(f.read());
        }
        let next = match f.current.as_mut() {
            Some(read) => read.next().await,
            None => None,
        };
        match next {
            Some(Ok(e)) => {
                let p = e.position().get();
                if p <= f.last {
                    // A read after `last` cannot return it; never deliver out
                    // of order, whatever happened.
                    f.done = true;
                    let message = format!("a subscription read position {p} after delivering {}: positions must increase; this is a bug, please report it", f.last);
                    return Some((Err(Error::decode(message)), f));
                }
                f.last = p;
                f.delivered += 1;
                f.recovered();
                return Some((Ok(e), f));
            }
            // One event this reader cannot decode: its error takes its place
            // (naming it) and the subscription goes on after it.
            Some(Err(e @ Error::Undecodable { .. }))
                if e.position().is_some_and(|p| p.get() > f.last) =>
            {
                f.last = e.position().map_or(f.last, SequencePosition::get);
                f.delivered += 1;
                return Some((Err(e), f));
            }
            Some(Err(e)) => {
                f.current = None;
                if let Some(e) = f.ride_out(e).await {
                    return Some((Err(e), f));
                }
            }
            None => {
                f.current = None;
                f.recovered();
                if f.finishing {
                    return None;
                }
                if let Some(to) = f.options.window.upper() {
                    // Is every position up to `to` committed? Then one last
                    // read covers the rest of the window.
                    match f.source.pooled.head().await {
                        Ok(head) if head.map_or(0, SequencePosition::get) >= to => {
                            f.finishing = true;
                            continue;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(e) = f.ride_out(e).await {
                                return Some((Err(e), f));
                            }
                            continue;
                        }
                    }
                }
                let poll = f.options.poll_interval;
                if let Some(w) = f.wakeups.as_mut() {
                    w.wait(poll).await;
                }
            }
        }
    }
}

impl<T: Decode> Follow<T> {
    fn reached_end(&self) -> bool {
        let w = &self.options.window;
        w.max_events().is_some_and(|l| self.delivered >= l)
            || w.upper().is_some_and(|t| self.last >= t)
    }

    /// A read of what follows the last delivered event, within the window.
    fn read(&self) -> BoxStream<'static, Result<T>> {
        let mut options = ReadOptions::new();
        if self.last > 0 {
            options = options.after(SequencePosition::new(self.last));
        }
        if let Some(to) = self.options.window.upper() {
            options = options.to(SequencePosition::new(to));
        }
        if let Some(limit) = self.options.window.max_events() {
            options = options.limit(limit.saturating_sub(self.delivered));
        }
        if let Some(token) = self.options.window.token() {
            options = options.consistent_with(token);
        }
        routed_read(
            self.source.pooled.clone(),
            self.source.replicas.clone(),
            &self.query,
            &self.source.limits,
            options,
            self.source.page_size,
        )
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.backoff = None;
    }

    /// After a failed read: waits and returns `None` when it is worth trying
    /// again, else the error to yield (and the stream ends).
    async fn ride_out(&mut self, e: Error) -> Option<Error> {
        if !e.is_transient() || self.failures >= self.options.reconnect_attempts {
            self.done = true;
            return Some(e);
        }
        self.failures += 1;
        let (min, max) = (self.options.reconnect_min, self.options.reconnect_max);
        let backoff = self.backoff.get_or_insert_with(|| {
            ExponentialBuilder::default()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_jitter()
                .without_max_times()
                .build()
        });
        let delay = backoff.next().unwrap_or(max);
        tracing::warn!(
            error = %e,
            attempt = self.failures,
            of = self.options.reconnect_attempts,
            after = self.last,
            retry_in = ?delay,
            "a subscription's read failed; resuming after the last delivered position"
        );
        tokio::time::sleep(delay).await;
        None
    }
}
