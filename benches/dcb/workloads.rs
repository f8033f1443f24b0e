//! dcbstore's workloads: B1..B9 and the decide loop L1..L3 of BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbstore::connection::parse_config;
use dcbstore::projection::Retry;
use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::sync::Mutex;

use crate::harness::{percentiles, run, timed, Figures, ServerCpu};

/// B1/B2/B6: conditional appends of one event on a boundary per task, each
/// after the position of the task's previous append (no read).
pub async fn conditional_appends(
    store: Store,
    cpu: &ServerCpu,
    tasks: usize,
    secs: f64,
) -> Figures {
    let last: Arc<Vec<Mutex<Option<SequencePosition>>>> =
        Arc::new((0..tasks).map(|_| Mutex::new(None)).collect());
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    run(cpu, tasks, secs, move |t, i| {
        let (store, last, run_id) = (store.clone(), last.clone(), run_id.clone());
        async move {
            let tag = format!("bench:{run_id}:{t}");
            let mut after = last[t].lock().await;
            let cond = AppendCondition::new(Query::item(QueryItem::tags([tag.clone()])), *after);
            let a = store
                .append(
                    vec![Event::new("Bench", json!({"i": i})).with_tag(tag)],
                    Some(cond),
                )
                .await
                .expect("disjoint boundaries never conflict");
            *after = Some(a.position);
            1
        }
    })
    .await
}

/// B3: unconditional appends of `size` events per call (1,000), one client.
pub async fn batches(store: Store, cpu: &ServerCpu, size: u64, secs: f64) -> Figures {
    run(cpu, 1, secs, move |_, i| {
        let store = store.clone();
        async move {
            let batch: Vec<Event> = (0..size)
                .map(|k| {
                    Event::new("Deposited", json!({"amount": (i * size + k) % 100}))
                        .with_tag(format!("account:{}", k % 1000))
                })
                .collect();
            let _ = store.append(batch, None).await.unwrap();
            size
        }
    })
    .await
}

/// L1/L2: the decide loop on `tasks` concurrent tasks. Each cycle takes the
/// next boundary (`loop:k`, k counting up over the `boundaries` filled by
/// `fill_boundaries`, so concurrent cycles never share one), reads it with
/// `read_boundary`, and appends one event to it under the condition
/// "nothing new in it after the read's position". Returns the figures and
/// the mean number of events a read returned.
pub async fn decide_loop(
    store: Store,
    cpu: &ServerCpu,
    tasks: usize,
    secs: f64,
    next: Arc<AtomicU64>,
    boundaries: u64,
) -> (Figures, f64) {
    let read = Arc::new(AtomicU64::new(0));
    let r2 = read.clone();
    let f = run(cpu, tasks, secs, move |_, i| {
        let (store, next, read) = (store.clone(), next.clone(), r2.clone());
        async move {
            let k = next.fetch_add(1, Ordering::Relaxed) % boundaries;
            let tag = format!("loop:{k}");
            let boundary = Query::item(QueryItem::tags([tag.clone()]));
            let seen = store
                .read_boundary(&boundary, ReadOptions::new())
                .await
                .unwrap();
            read.fetch_add(seen.events.len() as u64, Ordering::Relaxed);
            let _ = store
                .append(
                    vec![Event::new("Deposited", json!({"amount": i % 100})).with_tag(tag)],
                    Some(AppendCondition::new(boundary, seen.after)),
                )
                .await
                .expect("a boundary no other cycle touches never conflicts");
            1
        }
    })
    .await;
    let mean = read.load(Ordering::Relaxed) as f64 / f.ops.max(1) as f64;
    (f, mean)
}

/// B7: tasks racing on shared boundaries: read the boundary's latest event
/// (its position is the condition's), append as of the first attempt; after
/// a complete conflict go again at once after its head, after an incomplete
/// one wait [`Retry`]'s default backoff and read again, as `execute` does. Returns
/// the figures of successes and the conflict rate.
pub async fn racing_appends(
    store: Store,
    cpu: &ServerCpu,
    tasks: usize,
    boundaries: usize,
    secs: f64,
) -> (Figures, f64) {
    let conflicts = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let (c2, a2) = (conflicts.clone(), attempts.clone());
    let figures = run(cpu, tasks, secs, move |t, i| {
        let (store, run_id, conflicts, attempts) =
            (store.clone(), run_id.clone(), c2.clone(), a2.clone());
        async move {
            let tag = format!("race:{run_id}:{}", t % boundaries);
            let q = Query::item(QueryItem::tags([tag.clone()]));
            let mut delays = Retry::default().backoff();
            let since = std::time::Instant::now();
            let mut after = None;
            loop {
                // As execute: a complete conflict is the boundary up to its
                // head, so the retry needs no read.
                let seen = match after.take() {
                    Some(head) => Some(head),
                    None => {
                        store
                            .read_boundary(&q, ReadOptions::new().backwards().limit(1))
                            .await
                            .unwrap()
                            .after
                    }
                };
                attempts.fetch_add(1, Ordering::Relaxed);
                match store
                    .append_since(
                        vec![Event::new("Bench", json!({"i": i})).with_tag(tag.clone())],
                        Some(AppendCondition::new(q.clone(), seen)),
                        since,
                    )
                    .await
                {
                    Ok(_) => return 1,
                    Err(Error::Conflict(c)) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                        if c.is_complete() {
                            after = Some(c.head);
                        } else if let Some(d) = delays.next() {
                            tokio::time::sleep(d).await;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    })
    .await;
    let rate =
        conflicts.load(Ordering::Relaxed) as f64 / attempts.load(Ordering::Relaxed).max(1) as f64;
    (figures, rate)
}

/// B4: the whole log read forwards and decoded. Seconds, events, and the
/// peak resident memory (kB) during the read.
pub async fn read_everything(store: &Store, cpu: &ServerCpu) -> (f64, u64, u64) {
    let _ = peak_rss_kb(true);
    let (n, secs, _) = timed(cpu, async {
        store
            .read(&Query::all(), ReadOptions::new())
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await
            .unwrap()
    })
    .await;
    (secs, n, peak_rss_kb(false))
}

/// Peak resident memory of this process, reset first when `reset`.
fn peak_rss_kb(reset: bool) -> u64 {
    if reset {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// B5: latency of the first 100 events of one tag after a position.
pub async fn tag_page_latency(
    store: &Store,
    cpu: &ServerCpu,
    after: u64,
    rounds: usize,
) -> Figures {
    tag_read_latency(
        store,
        cpu,
        rounds,
        |_| {
            ReadOptions::new()
                .after(SequencePosition::new(after))
                .limit(100)
        },
        false,
    )
    .await
}

/// L3: latency of a tag's first 10 events read as a decision reads them
/// (`read_boundary`: the events and the head, one statement).
pub async fn boundary_latency(store: &Store, cpu: &ServerCpu, rounds: usize) -> Figures {
    tag_read_latency(store, cpu, rounds, |_| ReadOptions::new().limit(10), true).await
}

async fn tag_read_latency(
    store: &Store,
    cpu: &ServerCpu,
    rounds: usize,
    options: impl Fn(usize) -> ReadOptions,
    boundary: bool,
) -> Figures {
    let before = cpu.ticks();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let q = Query::item(QueryItem::tags([format!("account:{}", 7 + (i % 50))]));
        let s = Instant::now();
        let n = if boundary {
            let b = store.read_boundary(&q, options(i)).await.unwrap();
            assert!(b.after.is_some());
            b.events.len()
        } else {
            store.read_all(&q, options(i)).await.unwrap().len()
        };
        lat.push(s.elapsed());
        assert!(n > 0);
    }
    let mut f = percentiles(lat, rounds as u64, start.elapsed().as_secs_f64());
    f.server_cpu = cpu.since(before);
    f
}

/// B8: wake-up latency of subscriptions: from an append's acknowledgement to
/// its delivery by each of `followers` [`Store::subscribe`] streams (on a
/// store of their own, sharing its one listening connection), over `rounds`
/// appends, one at a time. Returns the delivery latencies (all followers'),
/// the appends' own latencies, and a raw LISTENer's NOTIFY latency.
pub async fn wake_up_latency(
    url: &str,
    store: &Store,
    followers: usize,
    rounds: usize,
) -> (Figures, Figures, Figures) {
    let (client, mut connection) = parse_config(url)
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut notified) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(_) = m {
                let _ = tx.send(Instant::now());
            }
        }
    });
    client
        .batch_execute("LISTEN dcbstore_events")
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    let fstore = Store::builder(url)
        .unwrap()
        .pool_size(16)
        .build()
        .await
        .unwrap();
    let tag = format!("wake:{}", uuid::Uuid::now_v7().simple());
    let q = Query::item(QueryItem::tags([tag.clone()]));
    let (dtx, mut delivered) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..followers {
        let mut sub = fstore.subscribe(&q, dcbstore::SubscribeOptions::new().after_opt(head));
        let dtx = dtx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(e) = sub.next().await {
                let _ = e.unwrap();
                if dtx.send(Instant::now()).is_err() {
                    return;
                }
            }
        }));
    }
    // Every follower caught up and waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut wake, mut ack, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..rounds {
        while notified.try_recv().is_ok() {}
        let sent = Instant::now();
        let _ = store
            .append(
                vec![Event::new("Woken", json!({"i": i})).with_tag(tag.clone())],
                None,
            )
            .await
            .unwrap();
        let acked = Instant::now();
        for _ in 0..followers {
            let at = tokio::time::timeout(Duration::from_secs(5), delivered.recv())
                .await
                .expect("a delivery within 5 s")
                .unwrap();
            wake.push(at.saturating_duration_since(acked));
        }
        if let Ok(Some(at)) = tokio::time::timeout(Duration::from_secs(1), notified.recv()).await {
            raw.push(at.saturating_duration_since(acked));
        }
        ack.push(acked - sent);
    }
    let secs = start.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }
    let n = rounds as u64;
    (
        percentiles(wake, n * followers as u64, secs),
        percentiles(ack, n, secs),
        percentiles(raw, n, secs),
    )
}

/// B9: a subscription's catch-up over the whole log: from the start until it
/// delivered `events` events (the log's size). Seconds, events, peak RSS.
pub async fn catch_up(store: &Store, cpu: &ServerCpu, events: u64) -> (f64, u64, u64) {
    let _ = peak_rss_kb(true);
    let (n, secs, _) = timed(cpu, async {
        store
            .subscribe(
                &Query::all(),
                dcbstore::SubscribeOptions::new().limit(events),
            )
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await
            .unwrap()
    })
    .await;
    (secs, n, peak_rss_kb(false))
}
