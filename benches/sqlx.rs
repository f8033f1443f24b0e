//! The append inside an application's transaction, sqlx against
//! tokio-postgres, in the same run on the same server:
//!
//! - A1: `BEGIN`, `dcbstore::append::append_in` (tokio-postgres, a
//!   connection of the store's pool), `COMMIT`: the baseline;
//! - A2: the same with `dcbstore::sqlx::append_in` in an sqlx transaction.
//!
//! Each append is one decision's: its events tagged with a key of their
//! own, under a condition on that key. One client, rounds alternating
//! A1/A2, with 1 and with 10 events per append, on an empty store and
//! again once the log holds `BENCH_FILL` events. Target: A2 ÷ A1 ≤ 1.2.
//!
//! Then what waking the store's followers costs such appends (W1: no
//! wake-up, the baseline; W2: `wake` inside the transaction, sent by
//! PostgreSQL at commit, which then holds the cluster's notify lock through
//! its commit; W3: `wake` after the commit, one more statement), with 1 and
//! with 16 clients: time per append, ratio to W1.
//!
//! ```text
//! cargo bench --bench sqlx      # BENCH_APPENDS=2000, BENCH_ROUNDS=3, BENCH_FILL=200000
//! ```
//!
//! Prints a Markdown table and writes it to `target/bench-sqlx.md`.

use std::time::{Duration, Instant};

use dcbstore::{AppendCondition, Event, EventStore, Query, QueryItem, Store};
use dcbstore_testing::Scratch;
use serde_json::json;
use sqlx::PgPool;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `size` events of decision `key`, and its condition (nothing of that key
/// after the head).
fn decision(
    key: &str,
    size: usize,
    after: Option<dcbstore::SequencePosition>,
) -> (Vec<Event>, AppendCondition) {
    let events = (0..size)
        .map(|i| {
            Event::new("SeatTaken", json!({"seat": i, "key": key}))
                .with_tags([format!("key:{key}"), "course:bench".to_string()])
        })
        .collect();
    let condition =
        AppendCondition::new(Query::item(QueryItem::tags([format!("key:{key}")])), after);
    (events, condition)
}

async fn native(store: &Store, run: &str, appends: usize, size: usize) -> Duration {
    let after = store.head().await.expect("head");
    let mut client = store.pool().get().await.expect("a connection");
    let start = Instant::now();
    for i in 0..appends {
        let (events, condition) = decision(&format!("{run}-{i}"), size, after);
        let tx = client.transaction().await.expect("begin");
        let _ = dcbstore::append::append_in(&*tx, events, Some(&condition))
            .await
            .expect("appended");
        tx.commit().await.expect("commit");
    }
    start.elapsed()
}

async fn sqlx(store: &Store, pool: &PgPool, run: &str, appends: usize, size: usize) -> Duration {
    let after = store.head().await.expect("head");
    let mut conn = pool.acquire().await.expect("a connection");
    let start = Instant::now();
    for i in 0..appends {
        let (events, condition) = decision(&format!("{run}-{i}"), size, after);
        let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
        let _ = dcbstore::sqlx::append_in(&mut tx, events, Some(&condition))
            .await
            .expect("appended");
        tx.commit().await.expect("commit");
    }
    start.elapsed()
}

/// How a transaction's append wakes followers.
#[derive(Clone, Copy, Debug)]
enum Wake {
    None,
    Inside,
    After,
}

/// `clients` clients, each `appends` sqlx appends of one event in a
/// transaction of its own, waking as `wake` says: wall time per append.
async fn waking(
    store: &Store,
    pool: &PgPool,
    run: &str,
    clients: usize,
    appends: usize,
    wake: Wake,
) -> f64 {
    let after = store.head().await.expect("head");
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, run) = (pool.clone(), run.to_string());
            tokio::spawn(async move {
                let mut conn = pool.acquire().await.expect("a connection");
                for i in 0..appends {
                    let (events, condition) = decision(&format!("{run}-{c}-{i}"), 1, after);
                    let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
                    let _ = dcbstore::sqlx::append_in(&mut tx, events, Some(&condition))
                        .await
                        .expect("appended");
                    if matches!(wake, Wake::Inside) {
                        dcbstore::sqlx::wake(&mut tx).await.expect("wake");
                    }
                    tx.commit().await.expect("commit");
                    if matches!(wake, Wake::After) {
                        dcbstore::sqlx::wake(&mut conn).await.expect("wake");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    start.elapsed().as_secs_f64() * 1e6 / (clients * appends) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let appends = env("BENCH_APPENDS", 2000);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let fill = env("BENCH_FILL", 200_000);
    let scratch = Scratch::start(true).await?;
    let store = Store::connect(scratch.url()).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with(dcbstore::sqlx::connect_options(scratch.url())?)
        .await?;
    let settings = {
        let client = store.pool().get().await?;
        dcbstore_testing::server_settings(&client).await?
    };

    let mut table = String::from(
        "| log | events per append | A1 tokio-postgres µs/append | A2 sqlx µs/append | A2 ÷ A1 [min-max] |\n|---|---|---|---|---|\n",
    );
    for log in ["empty", "full"] {
        if log == "full" {
            // The log grows by the earlier rounds too; fill it to `fill`.
            let have = store.head().await?.map_or(0, |p| p.get() as usize);
            let mut n = have;
            while n < fill {
                let batch: Vec<Event> = (0..1000.min(fill - n))
                    .map(|i| {
                        Event::new("Filler", json!({"i": n + i}))
                            .with_tags([format!("fill:{}", (n + i) % 5000)])
                    })
                    .collect();
                n += batch.len();
                let _ = store.append(batch, None).await?;
            }
            let client = store.pool().get().await?;
            client
                .batch_execute("ANALYZE dcbstore.events; ANALYZE dcbstore.event_tags")
                .await?;
        }
        for size in [1, 10] {
            let (mut a1, mut a2, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            // A warm-up of each, then rounds alternating which goes first.
            let _ = native(&store, &format!("w1-{log}-{size}"), 100, size).await;
            let _ = sqlx(&store, &pool, &format!("w2-{log}-{size}"), 100, size).await;
            for r in 0..rounds {
                let tag = |p: &str| format!("{p}-{log}-{size}-{r}");
                let (n, s) = if r % 2 == 0 {
                    let n = native(&store, &tag("a1"), appends, size).await;
                    (n, sqlx(&store, &pool, &tag("a2"), appends, size).await)
                } else {
                    let s = sqlx(&store, &pool, &tag("a2"), appends, size).await;
                    (native(&store, &tag("a1"), appends, size).await, s)
                };
                let per = |d: Duration| d.as_secs_f64() * 1e6 / appends as f64;
                a1.push(per(n));
                a2.push(per(s));
                ratios.push(per(s) / per(n));
            }
            let (lo, hi) = (
                ratios.iter().copied().fold(f64::MAX, f64::min),
                ratios.iter().copied().fold(0.0, f64::max),
            );
            let row = format!(
                "| {log} | {size} | {:.0} | {:.0} | **{:.2}** [{lo:.2}-{hi:.2}] |\n",
                median(a1),
                median(a2),
                median(ratios)
            );
            print!("{row}");
            table.push_str(&row);
        }
    }
    table.push_str("\n| clients | W1 no wake-up µs/append | W2 wake inside ÷ W1 [min-max] | W3 wake after ÷ W1 [min-max] |\n|---|---|---|---|\n");
    for clients in [1, 16] {
        let per_client = (appends / clients).max(50);
        let (mut w1, mut w2, mut w3) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            let tag = |p: &str| format!("{p}-{clients}-{r}");
            let order = [Wake::None, Wake::Inside, Wake::After];
            let mut got = [0.0; 3];
            for k in 0..3 {
                let i = (k + r) % 3;
                got[i] = waking(
                    &store,
                    &pool,
                    &tag(&format!("w{i}")),
                    clients,
                    per_client,
                    order[i],
                )
                .await;
            }
            w1.push(got[0]);
            w2.push(got[1] / got[0]);
            w3.push(got[2] / got[0]);
        }
        let spread = |v: &[f64]| {
            (
                v.iter().copied().fold(f64::MAX, f64::min),
                v.iter().copied().fold(0.0, f64::max),
            )
        };
        let ((a, b), (c, d)) = (spread(&w2), spread(&w3));
        let row = format!(
            "| {clients} | {:.0} | **{:.2}** [{a:.2}-{b:.2}] | **{:.2}** [{c:.2}-{d:.2}] |\n",
            median(w1),
            median(w2),
            median(w3)
        );
        print!("{row}");
        table.push_str(&row);
    }
    let head = store.head().await?.map_or(0, |p| p.get());
    let report = format!(
        "{table}\n{rounds} rounds of {appends} appends (1 client; 16 clients: {} each); log at the end: {head} events; server: {settings}\n",
        (appends / 16).max(50)
    );
    println!("\n{report}");
    std::fs::write("target/bench-sqlx.md", report)?;
    Ok(())
}
