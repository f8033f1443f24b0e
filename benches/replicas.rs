//! Replica benchmark B12 of BENCHMARKS.md: reads on the primary alone
//! against reads on a hot standby, while B2's write load (64 tasks of
//! conditional appends) runs on the primary, on one machine; and the
//! read-your-writes latency from an append's acknowledgement to a read on
//! the standby consistent with it.
//!
//! `cargo bench --bench replicas`: starts a throwaway primary and standby
//! (`TestCluster::start_with_standby`), fills `BENCH_EVENTS` (default
//! 1,000,000) events server-side (B4's log: 1,000 account tags).

#[allow(dead_code)]
#[path = "dcb/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "dcb/setup.rs"]
mod setup;
#[allow(dead_code)]
#[path = "dcb/workloads.rs"]
mod workloads;

use std::time::{Duration, Instant};

use dcbstore::connection::{connect, parse_config};
use dcbstore::replica::ReplicaOptions;
use dcbstore::{Event, EventStore, Query, QueryItem, ReadOptions, Store};
use dcbstore_testing::TestCluster;
use harness::{percentiles, Figures, ServerCpu};
use serde_json::json;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// B4 and B5 on `reader` while B2's load runs on `writer`: (events/s of
/// the full read, the tag-read latencies, the writers' appends/s).
async fn reads_under_writes(
    reader: &Store,
    writer: &Store,
    cpu: &ServerCpu,
    events: u64,
) -> (f64, Figures, f64) {
    let load = {
        let (writer, cpu) = (writer.clone(), cpu.clone());
        tokio::spawn(async move { workloads::conditional_appends(writer, &cpu, 64, 8.0).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (secs, n, _) = workloads::read_everything(reader, cpu).await;
    assert!(n >= events, "the full read saw {n} events");
    let tags = workloads::tag_page_latency(reader, cpu, events / 2, 300).await;
    let writes = load.await.unwrap();
    (n as f64 / secs, tags, writes.rate())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: i64 = env("BENCH_EVENTS", 1_000_000);
    let rounds: usize = env("BENCH_RYW_ROUNDS", 500);
    let (primary, standby) = tokio::task::spawn_blocking(TestCluster::start_with_standby)
        .await
        .unwrap()
        .unwrap();
    let admin = primary.url("postgres");
    let url = setup::database(&admin, "bench_replicas", true).await;
    let filled = setup::fill(&url, events).await;
    let standby_url = standby.url("bench_replicas");
    let p = connect(&parse_config(&url).unwrap()).await.unwrap();
    let s = connect(&parse_config(&standby_url).unwrap()).await.unwrap();
    let started = Instant::now();
    dcbstore_testing::wait_for_replay(&p, &s, Duration::from_secs(600))
        .await
        .unwrap();
    eprintln!(
        "{events} events filled in {filled:.1} s; the standby replayed them {:.1} s later",
        started.elapsed().as_secs_f64()
    );
    let cpu = ServerCpu::locate(&p).await;
    let writer = Store::builder(&url)
        .unwrap()
        .pool_size(64)
        .build()
        .await
        .unwrap();
    let on_primary = Store::connect(&url).await.unwrap();
    let on_standby = Store::builder(&url)
        .unwrap()
        .replica(standby_url.clone())
        .replica_options(ReplicaOptions::new().max_lag_bytes(None).max_lag(None))
        .build()
        .await
        .unwrap();
    let n = events as u64;
    let (read_p, tags_p, writes_p) = reads_under_writes(&on_primary, &writer, &cpu, n).await;
    let (read_s, tags_s, writes_s) = reads_under_writes(&on_standby, &writer, &cpu, n).await;

    // Read-your-writes: append, then read the event's tag on the standby,
    // consistent with the append's commit token.
    let ryw = Store::builder(&url)
        .unwrap()
        .replica(standby_url)
        .replica_options(ReplicaOptions::new().consistency_timeout(Duration::from_secs(30)))
        .build()
        .await
        .unwrap();
    let mut lat = Vec::with_capacity(rounds);
    let start = Instant::now();
    for i in 0..rounds {
        let tag = format!("ryw:{i}");
        let a = ryw
            .append(
                vec![Event::new("Ryw", json!({"i": i})).with_tag(tag.clone())],
                None,
            )
            .await
            .unwrap();
        let acked = Instant::now();
        let token = a.commit_token.expect("a commit token");
        let got = ryw
            .read_all(
                &Query::item(QueryItem::tags([tag])),
                ReadOptions::new().consistent_with(token),
            )
            .await
            .unwrap();
        lat.push(acked.elapsed());
        assert_eq!(got.len(), 1, "the read sees the append");
    }
    let ryw_f = percentiles(lat, rounds as u64, start.elapsed().as_secs_f64());

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| id | workload, while B2's 64 writers run on the primary | primary alone | reads on the standby | ratio (standby / primary) |");
    println!("|---|---|---|---|---|");
    println!(
        "| B12 | B4: read the whole log forward, {n} events, decoded | {read_p:.0} events/s | {read_s:.0} events/s | {:.2} |",
        read_s / read_p
    );
    println!(
        "| B12 | B5: first 100 events of one tag after the middle, p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} (p50) |",
        ms(tags_p.p50),
        ms(tags_p.p99),
        ms(tags_s.p50),
        ms(tags_s.p99),
        ms(tags_s.p50) / ms(tags_p.p50)
    );
    println!(
        "| B12 | B2's writers meanwhile (conditional appends/s) | {writes_p:.0} | {writes_s:.0} | {:.2} |",
        writes_s / writes_p
    );
    println!(
        "\nRead-your-writes on the standby, from the append's acknowledgement to the consistent read's answer, {rounds} rounds: p50 {:.2} ms, p99 {:.2} ms.",
        ms(ryw_f.p50),
        ms(ryw_f.p99)
    );
    drop((primary, standby));
}
