//! Subscriptions to the in-memory log: catch up in pages, then wait for the
//! head to move, as the PostgreSQL store's subscriptions do.

use futures::stream::BoxStream;
use futures::StreamExt;

use super::{MemoryStore, PAGE};
use crate::error::{Error, Result};
use crate::event::SequencedEvent;
use crate::query::Query;
use crate::read::ReadOptions;

/// Where a subscription is: the window still to deliver, what is left of
/// its limit, and the head it waits on.
struct Following {
    store: MemoryStore,
    query: Query,
    window: ReadOptions,
    remaining: Option<u64>,
    head: tokio::sync::watch::Receiver<u64>,
}

pub(super) fn subscribe(
    store: MemoryStore,
    query: Query,
    window: ReadOptions,
) -> BoxStream<'static, Result<SequencedEvent>> {
    let refused = if window.is_backwards() {
        Err(Error::invalid(
            "a subscription goes forwards: drop `backwards()` from its window, or use `read` for a backwards read",
        ))
    } else {
        query.validate_with(store.limits())
    };
    if let Err(e) = refused {
        return futures::stream::once(async move { Err(e) }).boxed();
    }
    let head = store.watch_head();
    let state = Following {
        store,
        query,
        remaining: window.max_events(),
        window,
        head,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            let upper = s.window.upper().unwrap_or(u64::MAX);
            if s.remaining == Some(0) || s.window.lower() >= upper {
                return None;
            }
            // Mark the head seen before reading, so that an append after
            // the read wakes the wait below.
            let head = *s.head.borrow_and_update();
            let n = s.remaining.map_or(PAGE, |r| r.min(PAGE));
            let page = s.store.page(&s.query, &s.window.limit(n), head);
            // Past what this page covered: its last event when full, else
            // everything up to the head it read at.
            let covered = match page.last() {
                Some(last) if page.len() as u64 == n => last.position.get(),
                _ => head.min(upper),
            };
            if covered > s.window.lower() {
                s.window = s.window.after(crate::event::SequencePosition::new(covered));
            }
            if let Some(r) = s.remaining.as_mut() {
                *r -= page.len() as u64;
            }
            if !page.is_empty() {
                return Some((futures::stream::iter(page.into_iter().map(Ok)), s));
            }
            if s.window.lower() >= upper || s.head.changed().await.is_err() {
                // The window is done, or the store is gone (no append can
                // come any more).
                return None;
            }
        }
    })
    .flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use crate::memory::MemoryStore;
    use crate::{Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition};

    type Events = futures::stream::BoxStream<'static, crate::Result<crate::SequencedEvent>>;

    /// The next position of `s`, `None` when it ended.
    async fn next(s: &mut Events) -> Option<crate::Result<u64>> {
        s.next().await.map(|e| e.map(|e| e.position.get()))
    }

    fn tagged(tag: &str) -> Event {
        Event::new("E", json!({})).with_tag(tag)
    }

    #[tokio::test]
    async fn a_subscription_catches_up_then_follows_live_and_ends_at_its_window() {
        let store = MemoryStore::new();
        let a = Query::item(QueryItem::tags(["a"]));
        let _ = store
            .append(vec![tagged("a"), tagged("b"), tagged("a")], None)
            .await
            .unwrap();
        let mut live = store.subscribe(&a, ReadOptions::new());
        let mut ending = store.subscribe(
            &a,
            ReadOptions::new().after(SequencePosition::new(1)).limit(2),
        );
        assert_eq!(next(&mut live).await.unwrap().unwrap(), 1);
        assert_eq!(next(&mut live).await.unwrap().unwrap(), 3);
        assert_eq!(next(&mut ending).await.unwrap().unwrap(), 3);
        // Appended after the catch-up: delivered as it comes, in order.
        let appender = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                for tag in ["b", "a", "a"] {
                    let _ = store.append(vec![tagged(tag)], None).await.unwrap();
                }
            })
        };
        assert_eq!(next(&mut live).await.unwrap().unwrap(), 5);
        assert_eq!(next(&mut live).await.unwrap().unwrap(), 6);
        assert_eq!(next(&mut ending).await.unwrap().unwrap(), 5);
        assert!(next(&mut ending).await.is_none(), "its limit of 2 ends it");
        appender.await.unwrap();
        let backwards = store
            .subscribe(&a, ReadOptions::new().backwards())
            .next()
            .await;
        assert!(matches!(backwards, Some(Err(crate::Error::Invalid(_)))));
    }
}
