//! `BENCH_ONLY=appends`: the append path alone (R1 on 1, 16 and 64
//! connections, B1, B2, L1 and L2), in rounds, with no large log to fill:
//! for before/after comparisons of a change to the append (two builds run
//! one after the other on the same server settings).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dcbstore::Store;

use super::harness::{Figures, ServerCpu, Spread};
use super::setup::{checkpoint, database, fill_boundaries, ServerSetup};
use super::{baselines, workloads, BOUNDARIES};

/// One round: R1 (1, 16, 64), B1, B2, L1, L2 (16), L2 (64).
type Round = [Figures; 8];

pub async fn run(admin: &str, server: &ServerSetup, cpu: &ServerCpu, rounds: usize, secs: f64) {
    let admin_client =
        dcbstore::connection::connect(&dcbstore::connection::parse_config(admin).unwrap())
            .await
            .unwrap();
    let work = database(admin, "bench_work", true).await;
    let looped = database(admin, "bench_loop", true).await;
    fill_boundaries(&looped, BOUNDARIES as i64, 4).await;
    let store = Store::builder(&work)
        .unwrap()
        .pool_size(8)
        .build()
        .await
        .unwrap();
    let mut loop_stores = Vec::new();
    for pool in [4, 16, 32] {
        loop_stores.push(
            Store::builder(&looped)
                .unwrap()
                .pool_size(pool)
                .build()
                .await
                .unwrap(),
        );
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut all: Vec<Round> = Vec::new();
    for round in 1..=rounds {
        eprintln!("appends round {round}/{rounds} ...");
        let cp = || checkpoint(&admin_client, server);
        let mut figures = Vec::new();
        for conns in [1, 16, 64] {
            cp().await;
            figures.push(baselines::raw_inserts(&work, cpu, conns, secs).await);
        }
        for tasks in [1, 64] {
            cp().await;
            figures.push(workloads::conditional_appends(store.clone(), cpu, tasks, secs).await);
        }
        for (i, tasks) in [(0, 1), (1, 16), (2, 64)] {
            cp().await;
            figures.push(
                workloads::decide_loop(
                    loop_stores[i].clone(),
                    cpu,
                    tasks,
                    secs,
                    next.clone(),
                    BOUNDARIES,
                )
                .await
                .0,
            );
        }
        all.push(
            figures
                .try_into()
                .unwrap_or_else(|_| unreachable!("eight figures")),
        );
    }
    let ratio = |i: usize, base: usize| {
        Spread::of(
            &all.iter()
                .map(|r| r[i].rate() / r[base].rate())
                .collect::<Vec<_>>(),
        )
    };
    let cpu_of = |i: usize| {
        let v: Vec<f64> = all.iter().filter_map(|r| r[i].cpu_us_per_op()).collect();
        if v.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.0} µs", Spread::of(&v).median)
        }
    };
    let rate = |i: usize| Spread::of(&all.iter().map(|r| r[i].rate()).collect::<Vec<_>>()).median;
    let p = |i: usize, q: fn(&Figures) -> std::time::Duration| {
        Spread::of(
            &all.iter()
                .map(|r| q(&r[i]).as_secs_f64() * 1000.0)
                .collect::<Vec<_>>(),
        )
        .median
    };
    let mut out = String::from(
        "| id | workload | figure (median) | ratio to its baseline: median [min to max] | server CPU per op |\n|---|---|---|---|---|\n",
    );
    for (id, what, i, base) in [
        ("B1", "1 client, conditional append", 3, 0),
        ("B2", "64 tasks, conditional appends", 4, 2),
        ("L1", "decide loop, 1 client", 5, 0),
        ("L2 (16)", "decide loop, 16 tasks", 6, 1),
    ] {
        out.push_str(&format!(
            "| {id} | {what} | {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) | {} | {} |\n",
            rate(i),
            p(i, |f| f.p50),
            p(i, |f| f.p99),
            ratio(i, base).show(2),
            cpu_of(i)
        ));
    }
    out.push_str(&format!(
        "\nBaselines (medians): R1 {:.0}/s, {:.0}/s, {:.0}/s on 1, 16, 64 connections; L2 (64) {:.0}/s, ratio {}.\n",
        rate(0),
        rate(1),
        rate(2),
        rate(7),
        Spread::of(&all.iter().map(|r| r[7].rate() / r[2].rate()).collect::<Vec<_>>()).show(2)
    ));
    println!("{out}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-appends.md", &out);
}

/// L4, `BENCH_ONLY=young`: the 16-client decide loop from an empty store
/// for 60 s (`BENCH_YOUNG_SECONDS`); the cost per cycle (server CPU) in the
/// last 10 s against the first 10 s. A plan made while the log was small
/// that scans it would make the last windows cost more and more.
pub async fn young(admin: &str, cpu: &ServerCpu, total: f64) {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use dcbstore::{AppendCondition, Event, EventStore, Query, QueryItem, ReadOptions};

    const WINDOW: f64 = 10.0;
    let url = database(admin, "bench_young", true).await;
    let store = Store::builder(&url)
        .unwrap()
        .pool_size(16)
        .build()
        .await
        .unwrap();
    let windows = (total / WINDOW).ceil() as usize;
    let cycles: Arc<Vec<AtomicU64>> = Arc::new((0..windows).map(|_| AtomicU64::new(0)).collect());
    let start = Instant::now();
    let mut cpu_marks = Vec::with_capacity(windows + 1);
    cpu_marks.push(cpu.ticks());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (store, cycles) = (store.clone(), cycles.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                loop {
                    let w = (start.elapsed().as_secs_f64() / WINDOW) as usize;
                    if w >= cycles.len() {
                        return;
                    }
                    // Boundaries of this task, each taking four cycles (so
                    // a read finds 0 to 3 events, whatever the log's size):
                    // the log grows from nothing, a decision's read does not.
                    // (Boundaries that grew with the log would make every
                    // cycle cost more, plans or not.)
                    let tag = format!("young:{t}:{}", i / 4);
                    let boundary = Query::item(QueryItem::tags([tag.clone()]));
                    let seen = store
                        .read_boundary(&boundary, ReadOptions::new())
                        .await
                        .unwrap();
                    let _ =
                        store
                            .append(
                                vec![Event::new("Deposited", serde_json::json!({"n": i}))
                                    .with_tag(tag)],
                                Some(AppendCondition::new(boundary, seen.after)),
                            )
                            .await
                            .unwrap();
                    cycles[w].fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for w in 1..=windows {
        let until = Duration::from_secs_f64(WINDOW * w as f64);
        tokio::time::sleep(until.saturating_sub(start.elapsed())).await;
        cpu_marks.push(cpu.ticks());
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut out = String::from("| window | cycles/s | server CPU per cycle |\n|---|---|---|\n");
    let mut per_cycle = Vec::new();
    for w in 0..windows {
        let n = cycles[w].load(Ordering::Relaxed).max(1);
        let cpu_us = match (cpu_marks[w], cpu_marks[w + 1]) {
            (Some(a), Some(b)) => Some((b - a) as f64 * 10_000.0 / n as f64),
            _ => None,
        };
        per_cycle.push(cpu_us);
        out.push_str(&format!(
            "| {}-{} s | {:.0} | {} |\n",
            w as f64 * WINDOW,
            (w + 1) as f64 * WINDOW,
            n as f64 / WINDOW,
            cpu_us.map_or("n/a".into(), |c| format!("{c:.0} µs")),
        ));
    }
    let ratio = match (
        per_cycle.first().copied().flatten(),
        per_cycle.last().copied().flatten(),
    ) {
        (Some(first), Some(last)) => format!("{:.2}", last / first),
        _ => {
            // No CPU figures: wall time per cycle instead.
            let first = cycles[0].load(Ordering::Relaxed).max(1) as f64;
            let last = cycles[windows - 1].load(Ordering::Relaxed).max(1) as f64;
            format!("{:.2} (wall time)", first / last)
        }
    };
    let events = store.head().await.unwrap().map_or(0, |p| p.get());
    out.push_str(&format!(
        "\nL4: cost per cycle, last 10 s ÷ first 10 s: {ratio} (target ≤ 1.2); {events} events at the end.\n"
    ));
    println!("{out}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-young.md", &out);
}
