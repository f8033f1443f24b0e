//! Append throughput and latency, as ratios against raw PostgreSQL measured
//! in the same run on the same server.
//!
//! ```text
//! cargo bench --bench append            # BENCH_SECONDS=5 per workload by default
//! DATABASE_URL=... cargo bench --bench append
//! ```
//!
//! Workloads:
//! - R1-1 / R1-64: one single-row INSERT per transaction into a bare table, 1 and 64 connections;
//! - B1: 1 client, conditional append of 1 event (tag query, after = its last position);
//! - B2: 64 tasks sharing one Store, conditional appends on disjoint tags (batched commits);
//! - B2u: the same 64 tasks through 64 separate Stores (no batching: one commit per append,
//!   what 64 processes would see).
//!
//! Prints a Markdown table and writes it to `target/bench-append.md`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbstore::connection::{connect, parse_config};
use dcbstore::testing::Scratch;
use dcbstore::{AppendCondition, Event, EventStore, Query, QueryItem, SequencePosition, Store};
use serde_json::json;
use tokio::sync::Mutex;

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

/// Runs `op(task, i)` in `tasks` concurrent loops for `secs` seconds.
async fn run<F, Fut>(tasks: usize, secs: f64, op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let s = Instant::now();
                    op(t, i).await;
                    lat.push(s.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("bench task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops: all.len() as u64,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
    }
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
        }
    })
    .await
}

async fn conditional_appends(stores: Vec<Store>, tasks: usize, secs: f64) -> Figures {
    let last: Arc<Vec<Mutex<Option<SequencePosition>>>> =
        Arc::new((0..tasks).map(|_| Mutex::new(None)).collect());
    let stores = Arc::new(stores);
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    run(tasks, secs, move |t, i| {
        let (stores, last, run_id) = (stores.clone(), last.clone(), run_id.clone());
        async move {
            let store = &stores[t % stores.len()];
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
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let scratch = Scratch::start(true).await.unwrap();
    let url = scratch.url().to_string();
    let client = connect(&parse_config(&url).unwrap()).await.unwrap();
    let settings: Vec<String> = client
        .query(
            "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'server_version') ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    eprintln!("R1-1 ...");
    let r1_1 = raw_inserts(&url, 1, secs).await;
    eprintln!("R1-64 ...");
    let r1_64 = raw_inserts(&url, 64, secs).await;
    let shared = Store::builder(&url)
        .unwrap()
        .pool_size(4)
        .build()
        .await
        .unwrap();
    eprintln!("B1 ...");
    let b1 = conditional_appends(vec![shared.clone()], 1, secs).await;
    eprintln!("B2 ...");
    let b2 = conditional_appends(vec![shared.clone()], 64, secs).await;
    let mut separate = Vec::new();
    for _ in 0..64 {
        separate.push(
            Store::builder(&url)
                .unwrap()
                .pool_size(1)
                .build()
                .await
                .unwrap(),
        );
    }
    eprintln!("B2u ...");
    let b2u = conditional_appends(separate, 64, secs).await;

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let mut table = String::from(
        "| id | workload | ops/s | p50 ms | p99 ms | baseline | baseline ops/s | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut row = |id: &str, what: &str, f: &Figures, base: Option<(&str, &Figures)>| {
        let (bname, brate, ratio) = match base {
            Some((n, b)) => (
                n.to_string(),
                format!("{:.0}", b.rate()),
                format!("{:.2}", f.rate() / b.rate()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        table.push_str(&format!(
            "| {id} | {what} | {:.0} | {} | {} | {bname} | {brate} | {ratio} |\n",
            f.rate(),
            ms(f.p50),
            ms(f.p99)
        ));
    };
    row(
        "R1-1",
        "raw single-row INSERT per transaction, 1 connection",
        &r1_1,
        None,
    );
    row(
        "R1-64",
        "raw single-row INSERT per transaction, 64 connections",
        &r1_64,
        None,
    );
    row(
        "B1",
        "1 client, conditional append of 1 event",
        &b1,
        Some(("R1-1", &r1_1)),
    );
    row(
        "B2",
        "64 tasks, one Store, conditional appends on disjoint tags",
        &b2,
        Some(("R1-64", &r1_64)),
    );
    row(
        "B2u",
        "64 tasks, 64 Stores (no batching), disjoint tags",
        &b2u,
        Some(("R1-64", &r1_64)),
    );
    row(
        "B2/B1",
        "64 concurrent tasks against one writer",
        &b2,
        Some(("B1", &b1)),
    );
    let report = format!(
        "{table}\n{secs} s per workload; server: {}\n",
        settings.join(", ")
    );
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-append.md", &report);
}
