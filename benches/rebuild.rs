//! Rebuild throughput of projections over a large log, against a raw binary
//! `COPY (SELECT ...) TO STDOUT` of the same rows in the same run.
//!
//! ```text
//! cargo bench --bench rebuild          # BENCH_EVENTS=1000000 by default
//! ```
//!
//! - R3: `COPY (SELECT <event columns> FROM dcbstore.events ORDER BY position) TO STDOUT (FORMAT binary)`;
//! - F1: in-memory fold over every event (`projection::replay`, decoded events);
//! - F2: in-memory fold over one tag (a tenth of the events);
//! - D1: durable projection rebuild (reset, replay; one multi-row INSERT per
//!   batch of 5,000 events into a read-model table, in the checkpoint's transaction);
//! - D2: the same with the default `apply_batch` (one INSERT per event), on a
//!   tenth of the log.
//!
//! Prints a Markdown table and writes it to `target/bench-rebuild.md`.

use std::time::{Duration, Instant};

use dcbstore::connection::{connect, parse_config};
use dcbstore::projection::durable::{self, DurableProjection, RunnerConfig};
use dcbstore::projection::{replay, Fold};
use dcbstore::HandlerError;
use dcbstore::{Event, EventStore, Query, QueryItem, SequencedEvent, Store};
use dcbstore_testing::Scratch;
use deadpool_postgres::Transaction;
use futures::StreamExt;
use serde_json::json;

/// A read model of one row per event; `batched` selects one statement per
/// batch (D1) or the default one statement per event (D2).
struct Totals {
    name: &'static str,
    query: Query,
    batched: bool,
}

impl DurableProjection for Totals {
    fn name(&self) -> &str {
        self.name
    }

    fn query(&self) -> Query {
        self.query.clone()
    }

    async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY, account text NOT NULL, amount bigint NOT NULL)",
            self.name
        ))
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute(&format!("TRUNCATE {}", self.name)).await?;
        Ok(())
    }

    /// One statement per batch: what a read model built for fast rebuilds does.
    async fn apply_batch(
        &self,
        tx: &Transaction<'_>,
        events: &[SequencedEvent],
    ) -> Result<(), HandlerError> {
        if !self.batched {
            for e in events {
                self.apply(tx, e).await?;
            }
            return Ok(());
        }
        let positions: Vec<i64> = events.iter().map(|e| e.position.get() as i64).collect();
        let accounts: Vec<&str> = events
            .iter()
            .map(|e| e.event.tags.first().map_or("", String::as_str))
            .collect();
        let amounts: Vec<i64> = events
            .iter()
            .map(|e| e.event.data["amount"].as_i64().unwrap_or(0))
            .collect();
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO {} SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])",
                self.name
            ))
            .await?;
        tx.execute(&stmt, &[&positions, &accounts, &amounts])
            .await?;
        Ok(())
    }

    async fn apply(&self, tx: &Transaction<'_>, e: &SequencedEvent) -> Result<(), HandlerError> {
        let stmt = tx
            .prepare_cached(&format!("INSERT INTO {} VALUES ($1, $2, $3)", self.name))
            .await?;
        let account = e.event.tags.first().map_or("", String::as_str);
        let amount = e.event.data["amount"].as_i64().unwrap_or(0);
        tx.execute(&stmt, &[&(e.position.get() as i64), &account, &amount])
            .await?;
        Ok(())
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let scratch = Scratch::start(true).await.unwrap();
    let url = scratch.url().to_string();
    let client = connect(&parse_config(&url).unwrap()).await.unwrap();
    let store = Store::builder(&url)
        .unwrap()
        .pool_size(8)
        .build()
        .await
        .unwrap();

    // The log: batched appends of 5,000 events, ten accounts (tags).
    eprintln!("generating {events} events ...");
    let start = Instant::now();
    let chunk = 5_000u64;
    let mut i = 0u64;
    while i < events {
        let n = chunk.min(events - i);
        let batch: Vec<Event> = (i..i + n)
            .map(|k| {
                Event::new("Deposited", json!({"amount": k % 100, "note": "bench"}))
                    .with_tag(format!("account:{}", k % 10))
            })
            .collect();
        let _ = store.append(batch, None).await.unwrap();
        i += n;
    }
    let generation = start.elapsed();
    for table in ["dcbstore.events", "dcbstore.event_tags"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }

    eprintln!("R3 COPY TO ...");
    let start = Instant::now();
    let copy = client
        .copy_out(
            "COPY (SELECT position, id, type, data, tags, metadata, recorded_at FROM dcbstore.events ORDER BY position) TO STDOUT (FORMAT binary)",
        )
        .await
        .unwrap();
    let mut bytes = 0usize;
    futures::pin_mut!(copy);
    while let Some(chunk) = copy.next().await {
        bytes += chunk.unwrap().len();
    }
    let r3 = start.elapsed();

    eprintln!("F1 fold all ...");
    let all = Fold::new(Query::all(), 0i64, |sum, e: &SequencedEvent| {
        sum + e.event.data["amount"].as_i64().unwrap_or(0)
    });
    let start = Instant::now();
    let (sum, _) = replay(&store, &all, 0, None, |_| {}).await.unwrap();
    let f1 = start.elapsed();
    assert!(sum > 0);

    eprintln!("F2 fold one tag ...");
    let one = Fold::new(Query::item(QueryItem::tags(["account:3"])), 0u64, |n, _| {
        n + 1
    });
    let start = Instant::now();
    let (n3, _) = replay(&store, &one, 0, None, |_| {}).await.unwrap();
    let f2 = start.elapsed();

    let rebuild_config = RunnerConfig {
        batch_size: 5_000,
        ..RunnerConfig::default()
    };
    eprintln!("D1 durable rebuild, batched ...");
    let batched = Totals {
        name: "bench_totals",
        query: Query::all(),
        batched: true,
    };
    let start = Instant::now();
    let applied = durable::rebuild(
        &store,
        &batched,
        &rebuild_config,
        Duration::from_secs(10),
        |_| {},
    )
    .await
    .unwrap();
    let d1 = start.elapsed();
    assert_eq!(applied, events);

    eprintln!("D2 durable rebuild, per event ...");
    let per_event = Totals {
        name: "bench_totals_per_event",
        query: Query::item(QueryItem::tags(["account:3"])),
        batched: false,
    };
    let start = Instant::now();
    let applied_d2 = durable::rebuild(
        &store,
        &per_event,
        &rebuild_config,
        Duration::from_secs(10),
        |_| {},
    )
    .await
    .unwrap();
    let d2 = start.elapsed();

    let settings = dcbstore_testing::server_settings(&client).await.unwrap();
    let base = rate(events, r3);
    let mut table = String::from(
        "| id | workload | events | seconds | events/s | baseline | baseline events/s | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    table.push_str(&format!(
        "| R3 | COPY (SELECT ...) TO STDOUT binary, {:.0} MB | {events} | {:.2} | {base:.0} | - | - | - |\n",
        bytes as f64 / 1e6,
        r3.as_secs_f64()
    ));
    for (id, what, n, d) in [
        ("F1", "in-memory fold, every event (decoded)", events, f1),
        ("F2", "in-memory fold, one tag of ten", n3, f2),
        (
            "D1",
            "durable rebuild, one INSERT per 5,000-event batch",
            applied,
            d1,
        ),
        (
            "D2",
            "durable rebuild, one INSERT per event (one tag of ten)",
            applied_d2,
            d2,
        ),
    ] {
        table.push_str(&format!(
            "| {id} | {what} | {n} | {:.2} | {:.0} | R3 | {base:.0} | {:.2} |\n",
            d.as_secs_f64(),
            rate(n, d),
            rate(n, d) / base
        ));
    }
    let report = format!(
        "{table}\nlog generated with batched appends (5,000 events per call) in {:.1} s ({:.0} events/s); server: {}\n",
        generation.as_secs_f64(),
        rate(events, generation),
        settings
    );
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-rebuild.md", &report);
}
