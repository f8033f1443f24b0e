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
