//! dcbstore against the server it runs on: every figure next to a raw
//! PostgreSQL baseline measured in the same run, on the same server.
//!
//! ```text
//! cargo bench --bench dcb                 # BENCH_SECONDS=5 per timed workload
//! ```
//!
//! Baselines (tokio-postgres on a bare table): R1 one single-row INSERT per
//! transaction (1 and 64 connections), R2 binary COPY of 1,000,000 rows, R3
//! binary `COPY (SELECT ...) TO STDOUT` of 1,000,000 rows. dcbstore: B1..B7 of
//! BENCHMARKS.md. The 10,000,000-event log lives in a cluster kept under
//! `target/dcbstore-bench-pg` (or in `DATABASE_URL`'s server) and is reused
//! when it already exists. Prints the table and writes `target/bench-dcb.md`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbstore::connection::{connect, parse_config};
use dcbstore::testing::{to_key_value, TestCluster};
use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

struct Figures {
    ops: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

fn percentiles(mut all: Vec<Duration>, ops: u64, secs: f64) -> Figures {
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// Runs `op(task, i)` in `tasks` concurrent loops for `secs` seconds; `op`
/// returns how many operations it counts for (0 for a failed attempt).
async fn run<F, Fut>(tasks: usize, secs: f64, op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut ops, mut i) = (Vec::new(), 0, 0);
                while Instant::now() < deadline {
                    let s = Instant::now();
                    let n = op(t, i).await;
                    if n > 0 {
                        lat.push(s.elapsed());
                        ops += n;
                    }
                    i += 1;
                }
                (lat, ops)
            })
        })
        .collect();
    let (mut all, mut ops) = (Vec::new(), 0);
    for h in handles {
        let (l, n) = h.await.expect("bench task");
        all.extend(l);
        ops += n;
    }
    percentiles(all, ops, start.elapsed().as_secs_f64())
}

async fn database(admin: &str, name: &str, fresh: bool) -> String {
    let config = parse_config(admin).unwrap();
    let client = connect(&config).await.unwrap();
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    if exists && fresh {
        client
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
    if !exists || fresh {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    let mut c = config.clone();
    c.dbname(name);
    let url = to_key_value(&c);
    let mut client = connect(&c).await.unwrap();
    let _ = dcbstore::migrate(&mut client).await.unwrap();
    url
}

/// Fills a log with `n` events server-side (1,000 accounts as tags), unless
/// it already holds them. Returns the seconds it took (0 when reused).
async fn fill(url: &str, n: i64) -> f64 {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    let head: Option<i64> = client
        .query_one("SELECT dcbstore.head()", &[])
        .await
        .unwrap()
        .get(0);
    // B6 appends a few events to the logs it measures: more is fine.
    if head.is_some_and(|h| h >= n) {
        return 0.0;
    }
    assert!(
        head.is_none(),
        "a partial bench log: drop the database and run again"
    );
    let start = Instant::now();
    let chunk = 1_000_000i64;
    let mut lo = 1;
    while lo <= n {
        let hi = (lo + chunk - 1).min(n);
        client
            .execute(
                "INSERT INTO dcbstore.events (position, id, type, data, metadata, tags)
                 SELECT g, gen_random_uuid(), 'Deposited', jsonb_build_object('amount', g % 100), '{}',
                        ARRAY['account:' || (g % 1000)]
                   FROM generate_series($1::bigint, $2::bigint) g",
                &[&lo, &hi],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO dcbstore.event_tags (tag, position, type)
                 SELECT 'account:' || (g % 1000), g, 'Deposited' FROM generate_series($1::bigint, $2::bigint) g",
                &[&lo, &hi],
            )
            .await
            .unwrap();
        lo = hi + 1;
    }
    client
        .batch_execute("VACUUM ANALYZE dcbstore.events")
        .await
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE dcbstore.event_tags")
        .await
        .unwrap();
    start.elapsed().as_secs_f64()
}

async fn raw_inserts(url: &str, conns: usize, secs: f64) -> Figures {
    let config = parse_config(url).unwrap();
    let admin = connect(&config).await.unwrap();
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS bench_raw;
             CREATE TABLE bench_raw (position bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE,
                 type text NOT NULL, data jsonb NOT NULL, tags text[] NOT NULL);",
        )
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..conns {
        let c = connect(&config).await.unwrap();
        let stmt = c
            .prepare("INSERT INTO bench_raw (id, type, data, tags) VALUES ($1, $2, $3, $4)")
            .await
            .unwrap();
        clients.push(Arc::new((c, stmt)));
    }
    let clients = Arc::new(clients);
    run(conns, secs, move |t, i| {
        let clients = clients.clone();
        async move {
            let (c, stmt) = &*clients[t];
            let tags = vec![format!("t{t}")];
            c.execute(
                stmt,
                &[&uuid::Uuid::now_v7(), &"Bench", &json!({"i": i}), &tags],
            )
            .await
            .unwrap();
            1
        }
    })
    .await
}

/// B1/B2: conditional appends of one event on a boundary per task.
async fn conditional_appends(store: Store, tasks: usize, secs: f64) -> Figures {
    let last: Arc<Vec<Mutex<Option<SequencePosition>>>> =
        Arc::new((0..tasks).map(|_| Mutex::new(None)).collect());
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    run(tasks, secs, move |t, i| {
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

/// B7: tasks racing on shared boundaries; a conflict re-reads and retries.
/// Returns the figures of successes and the conflict rate.
async fn racing_appends(
    store: Store,
    tasks: usize,
    boundaries: usize,
    secs: f64,
) -> (Figures, f64) {
    let conflicts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let (c2, a2) = (conflicts.clone(), attempts.clone());
    let figures = run(tasks, secs, move |t, i| {
        let (store, run_id, conflicts, attempts) =
            (store.clone(), run_id.clone(), c2.clone(), a2.clone());
        async move {
            let tag = format!("race:{run_id}:{}", t % boundaries);
            let q = Query::item(QueryItem::tags([tag.clone()]));
            loop {
                let last = store
                    .read_all(&q, ReadOptions::new().backwards().limit(1))
                    .await
                    .unwrap()
                    .first()
                    .map(|e| e.position);
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match store
                    .append(
                        vec![Event::new("Bench", json!({"i": i})).with_tag(tag.clone())],
                        Some(AppendCondition::new(q.clone(), last)),
                    )
                    .await
                {
                    Ok(_) => return 1,
                    Err(Error::Conflict(_)) => {
                        conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    })
    .await;
    let rate = conflicts.load(std::sync::atomic::Ordering::Relaxed) as f64
        / attempts.load(std::sync::atomic::Ordering::Relaxed).max(1) as f64;
    (figures, rate)
}

/// Peak resident memory of this process, reset first when `reset`.
/// B8: from an append's acknowledgement to the wake-up (`NOTIFY
/// dcbstore_events`) reaching a `LISTEN`ing connection, over `rounds`
/// sequential appends; also each append's own latency. A wake-up that
/// arrives before the acknowledgement counts as 0.
async fn wake_up_latency(url: &str, store: &Store, rounds: usize) -> (Figures, Figures) {
    let (client, mut connection) = parse_config(url)
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut wakeups) = tokio::sync::mpsc::unbounded_channel();
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
    let (mut wake, mut ack) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..rounds {
        while wakeups.try_recv().is_ok() {}
        let sent = Instant::now();
        let _ = store
            .append(
                vec![Event::new("Woken", json!({"i": i})).with_tag("wake")],
                None,
            )
            .await
            .unwrap();
        let acked = Instant::now();
        let woken = tokio::time::timeout(Duration::from_secs(5), wakeups.recv())
            .await
            .expect("a wake-up within 5 s")
            .unwrap();
        ack.push(acked - sent);
        wake.push(woken.saturating_duration_since(acked));
    }
    let secs = start.elapsed().as_secs_f64();
    (
        percentiles(wake, rounds as u64, secs),
        percentiles(ack, rounds as u64, secs),
    )
}

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

/// p50 latency of `first 100 events of one tag after a position`.
async fn tag_page_latency(store: &Store, after: u64, rounds: usize) -> Duration {
    let mut lat = Vec::new();
    for i in 0..rounds {
        let tag = format!("account:{}", 7 + (i % 50));
        let s = Instant::now();
        let page = store
            .read_all(
                &Query::item(QueryItem::tags([tag])),
                ReadOptions::new()
                    .after(SequencePosition::new(after))
                    .limit(100),
            )
            .await
            .unwrap();
        lat.push(s.elapsed());
        assert!(!page.is_empty());
    }
    percentiles(lat, rounds as u64, 1.0).p50
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let big: i64 = std::env::var("BENCH_BIG_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let (_cluster, admin) = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let dir = std::env::current_dir()
                .unwrap()
                .join("target/dcbstore-bench-pg");
            let cluster = tokio::task::spawn_blocking(move || TestCluster::start_persistent(dir))
                .await
                .unwrap()
                .unwrap();
            let url = cluster.url("postgres");
            (Some(cluster), url)
        }
    };
    let work = database(&admin, "bench_work", true).await;
    let small = database(&admin, "bench_100k", false).await;
    let million = database(&admin, "bench_1m", false).await;
    let large = database(&admin, &format!("bench_{big}"), false).await;
    eprintln!("logs: 100k, 1M, {big} (reused when present) ...");
    fill(&small, 100_000).await;
    fill(&million, 1_000_000).await;
    let generated = fill(&large, big).await;

    eprintln!("R1 ...");
    let r1_1 = raw_inserts(&work, 1, secs).await;
    let r1_64 = raw_inserts(&work, 64, secs).await;

    eprintln!("R2 ...");
    let client = connect(&parse_config(&work).unwrap()).await.unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_copy;
             CREATE TABLE bench_copy (position bigint PRIMARY KEY, id uuid NOT NULL UNIQUE,
                 type text NOT NULL, data jsonb NOT NULL, tags text[] NOT NULL);",
        )
        .await
        .unwrap();
    let start = Instant::now();
    let sink = client
        .copy_in("COPY bench_copy FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::JSONB,
            Type::TEXT_ARRAY,
        ],
    );
    futures::pin_mut!(writer);
    for k in 0..1_000_000i64 {
        let data = json!({"amount": k % 100});
        let tags = vec![format!("account:{}", k % 1000)];
        writer
            .as_mut()
            .write(&[&(k + 1), &uuid::Uuid::now_v7(), &"Deposited", &data, &tags])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    let r2 = start.elapsed().as_secs_f64();

    eprintln!("B3 ...");
    let store = Store::builder(&work)
        .unwrap()
        .pool_size(8)
        .build()
        .await
        .unwrap();
    let b3 = run(1, secs, {
        let store = store.clone();
        move |_, i| {
            let store = store.clone();
            async move {
                let batch: Vec<Event> = (0..1000u64)
                    .map(|k| {
                        Event::new("Deposited", json!({"amount": (i * 1000 + k) % 100}))
                            .with_tag(format!("account:{}", k % 1000))
                    })
                    .collect();
                let _ = store.append(batch, None).await.unwrap();
                1000
            }
        }
    })
    .await;

    eprintln!("B1, B2, B7 ...");
    let b1 = conditional_appends(store.clone(), 1, secs).await;
    let b2 = conditional_appends(store.clone(), 64, secs).await;
    let (b7, conflict_rate) = racing_appends(store.clone(), 64, 8, secs).await;
    eprintln!("B8 ...");
    let (b8, b8_ack) = wake_up_latency(&work, &store, 500).await;

    eprintln!("R3, B4 ...");
    let mclient = connect(&parse_config(&million).unwrap()).await.unwrap();
    let start = Instant::now();
    let copy = mclient
        .copy_out("COPY (SELECT position, id, type, data, tags, metadata, recorded_at FROM dcbstore.events ORDER BY position) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    futures::pin_mut!(copy);
    let mut bytes = 0usize;
    while let Some(chunk) = copy.next().await {
        bytes += chunk.unwrap().len();
    }
    let r3 = start.elapsed().as_secs_f64();
    let mstore = Store::connect(&million).await.unwrap();
    let rss_before = peak_rss_kb(true);
    let start = Instant::now();
    let n = mstore
        .read(&Query::all(), ReadOptions::new())
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    let b4 = start.elapsed().as_secs_f64();
    let b4_peak = peak_rss_kb(false);
    assert_eq!(n, 1_000_000);

    eprintln!("B5, B6 ...");
    let sstore = Store::connect(&small).await.unwrap();
    let lstore = Store::connect(&large).await.unwrap();
    let b5_small = tag_page_latency(&sstore, 0, 200).await;
    let b5_large = tag_page_latency(&lstore, (big / 2) as u64, 200).await;
    let b6_small = conditional_appends(sstore.clone(), 1, secs.min(3.0)).await;
    let b6_large = conditional_appends(lstore.clone(), 1, secs.min(3.0)).await;

    let settings = dcbstore::testing::server_settings(&client).await.unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut rows = vec![
        "| id | workload | figure | baseline figure | ratio | target |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let mut row = |id: &str, what: &str, fig: String, base: String, ratio: f64, target: &str| {
        rows.push(format!(
            "| {id} | {what} | {fig} | {base} | {ratio:.2} | {target} |"
        ));
    };
    row(
        "B1",
        "1 client, conditional append of 1 event (tag query, after = head)",
        format!(
            "{:.0} appends/s (p50 {:.2} ms, p99 {:.2} ms)",
            b1.rate(),
            ms(b1.p50),
            ms(b1.p99)
        ),
        format!("R1 1 conn: {:.0} inserts/s", r1_1.rate()),
        b1.rate() / r1_1.rate(),
        ">= 0.8",
    );
    row(
        "B2",
        "64 concurrent tasks, conditional appends on disjoint tags",
        format!(
            "{:.0} appends/s (p50 {:.2} ms, p99 {:.2} ms)",
            b2.rate(),
            ms(b2.p50),
            ms(b2.p99)
        ),
        format!("R1 64 conns: {:.0} inserts/s", r1_64.rate()),
        b2.rate() / r1_64.rate(),
        ">= 1.5",
    );
    row(
        "B3",
        "1 client, unconditional append, 1,000 events per call",
        format!("{:.0} events/s", b3.rate()),
        format!("R2 COPY binary: {:.0} rows/s", 1e6 / r2),
        b3.rate() / (1e6 / r2),
        ">= 0.5",
    );
    row(
        "B4",
        "read the whole log forward, 1,000,000 events, decoded",
        format!(
            "{:.0} events/s (peak RSS {} MB)",
            1e6 / b4,
            b4_peak.max(rss_before) / 1024
        ),
        format!(
            "R3 COPY TO binary: {:.0} rows/s ({:.0} MB)",
            1e6 / r3,
            bytes as f64 / 1e6
        ),
        r3 / b4,
        ">= 0.5",
    );
    row(
        "B5",
        &format!("first 100 events of one tag after a position, log of {big} events"),
        format!("p50 {:.3} ms", ms(b5_large)),
        format!("same at 100,000 events: p50 {:.3} ms", ms(b5_small)),
        ms(b5_large) / ms(b5_small),
        "<= 1.5 (latency)",
    );
    row(
        "B6",
        &format!("B1's p50 latency at {big} events"),
        format!("p50 {:.3} ms", ms(b6_large.p50)),
        format!("at 100,000 events: p50 {:.3} ms", ms(b6_small.p50)),
        ms(b6_large.p50) / ms(b6_small.p50),
        "<= 1.3",
    );
    row(
        "B7",
        "64 tasks racing on 8 shared boundaries (real conflicts, retry)",
        format!(
            "{:.0} successes/s, conflict rate {:.0}% (p50 {:.2} ms, p99 {:.2} ms)",
            b7.rate(),
            conflict_rate * 100.0,
            ms(b7.p50),
            ms(b7.p99)
        ),
        format!("B2: {:.0} appends/s", b2.rate()),
        b7.rate() / b2.rate(),
        "report",
    );
    row(
        "B8",
        "wake-up latency: append acknowledged to NOTIFY received by one LISTENer, 500 appends",
        format!("p50 {:.3} ms, p99 {:.3} ms", ms(b8.p50), ms(b8.p99)),
        format!("the append itself: p50 {:.3} ms", ms(b8_ack.p50)),
        ms(b8.p50) / ms(b8_ack.p50),
        "report",
    );
    let report = format!(
        "{}\n\nBaselines in the same run: R1 1 conn {:.0}/s (p50 {:.2} ms), R1 64 conns {:.0}/s (p50 {:.2} ms), R2 {:.2} s for 1,000,000 rows, R3 {:.2} s for 1,000,000 rows.\n{big}-event log: {}; server: {}\n",
        rows.join("\n"),
        r1_1.rate(), ms(r1_1.p50), r1_64.rate(), ms(r1_64.p50), r2, r3,
        if generated > 0.0 { format!("generated server-side in {generated:.0} s") } else { "reused".to_string() },
        settings
    );
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-dcb.md", &report);
}
