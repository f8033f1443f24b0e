//! The peers table of BENCHMARKS.md: the decide loop (1, 16 and 64
//! clients), 100-event batches and a decision's tag read at 1,000,000
//! events, through dcbstore and through UmaDB's own Rust client against its
//! own server, beside raw PostgreSQL inserts, in one run on one machine.
//!
//! ```text
//! benches/peers/run                   # installs umadb 0.7.8 when missing, then this
//! BENCH_ROUNDS=3 BENCH_SECONDS=5 UMADB_BIN=umadb cargo run --release
//! ```
//!
//! A script beside the library, never one of its dependencies: its own
//! workspace, sharing the dcb bench's harness, baselines and workloads, so
//! that dcbstore's figures here are the ones `cargo bench --bench dcb`
//! measures. Every store is fresh for each timed workload (the loop from an
//! empty log), except the tag reads' 1,000,000-event logs, filled once.
//! Prints the table and writes `target/bench-peers.md`.

// The dcb bench's modules, shared: not all of their functions are used here.
#![allow(dead_code)]

#[path = "../../dcb/baselines.rs"]
mod baselines;
#[path = "../../dcb/harness.rs"]
mod harness;
#[path = "../../dcb/setup.rs"]
mod setup;
mod uma;
#[path = "../../dcb/workloads.rs"]
mod workloads;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dcbstore::connection::{connect, parse_config};
use dcbstore::Store;

use harness::{env, Figures, ServerCpu, Spread};

/// Boundaries of the loop (`loop:0`..), taken in turn: on an empty log
/// each holds a few events by the end of a workload.
const BOUNDARIES: u64 = 10_000;
/// Events in the tag reads' logs, and the events a read takes.
const LOG: u64 = 1_000_000;
const READ: u32 = 10;
const READS: u64 = 2_000;
const BATCH: u64 = 100;

/// One round: for each workload, (raw inserts, UmaDB, dcbstore).
struct Round {
    loops: [(Figures, Figures, Figures); 3],
    batches: (Figures, Figures),
    reads: (Figures, Figures),
}

#[tokio::main]
async fn main() {
    let secs: f64 = env("BENCH_SECONDS", 5.0);
    let rounds: usize = env("BENCH_ROUNDS", 3);
    let bin: String = env("UMADB_BIN", "umadb".to_string());
    let scratch = std::env::current_dir()
        .expect("a working directory")
        .join("target/peers-scratch");
    let (_cluster, admin) = setup::server().await;
    let server = setup::tune_server(&admin).await;
    let admin_client = connect(&parse_config(&admin).unwrap()).await.unwrap();
    let cpu = ServerCpu::locate(&admin_client).await;
    let cp = || setup::checkpoint(&admin_client, &server);

    eprintln!("the tag reads' logs: {LOG} events in each store ...");
    let read_url = setup::database(&admin, "peers_1m", false).await;
    setup::fill(&read_url, LOG as i64).await;
    let read_store = Store::connect(&read_url).await.unwrap();
    let read_uma = uma::Server::start(&bin, &scratch, "reads").await;
    uma::fill(&read_uma, LOG).await;

    let mut all = Vec::new();
    for round in 1..=rounds {
        eprintln!("peers round {round}/{rounds} ...");
        let mut loops = Vec::new();
        for (tasks, pool) in [(1, 4), (16, 16), (64, 32)] {
            let raw_url = setup::database(&admin, "peers_raw", true).await;
            cp().await;
            let raw = baselines::raw_inserts(&raw_url, &cpu, tasks, secs).await;
            let peer = uma::Server::start(&bin, &scratch, "loop").await;
            let theirs = uma::decide_loop(&peer, tasks, secs, BOUNDARIES).await;
            drop(peer);
            let url = setup::database(&admin, "peers_loop", true).await;
            let store = Store::builder(&url)
                .unwrap()
                .pool_size(pool)
                .build()
                .await
                .unwrap();
            cp().await;
            let next = Arc::new(AtomicU64::new(0));
            let (ours, _) =
                workloads::decide_loop(store, &cpu, tasks, secs, next, BOUNDARIES).await;
            loops.push((raw, theirs, ours));
        }
        let peer = uma::Server::start(&bin, &scratch, "batches").await;
        let theirs = uma::batches(&peer, BATCH, secs).await;
        drop(peer);
        let url = setup::database(&admin, "peers_batches", true).await;
        let store = Store::connect(&url).await.unwrap();
        cp().await;
        let ours = workloads::batches(store, &cpu, BATCH, secs).await;
        let batches = (theirs, ours);
        let reads = (
            uma::tag_reads(&read_uma, READS, READ).await,
            workloads::boundary_latency(&read_store, &cpu, READS as usize).await,
        );
        all.push(Round {
            loops: loops
                .try_into()
                .unwrap_or_else(|_| unreachable!("three loops")),
            batches,
            reads,
        });
    }
    let out = report(&all);
    println!("{out}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-peers.md", &out);
    let _ = std::fs::remove_dir_all(&scratch);
}

fn spread(all: &[Round], f: impl Fn(&Round) -> f64) -> Spread {
    Spread::of(&all.iter().map(f).collect::<Vec<_>>())
}

fn cpu(all: &[Round], f: impl Fn(&Round) -> &Figures) -> String {
    let v: Vec<f64> = all.iter().filter_map(|r| f(r).cpu_us_per_op()).collect();
    if v.is_empty() {
        "n/a".to_string()
    } else {
        format!("{:.0} µs", Spread::of(&v).median)
    }
}

fn report(all: &[Round]) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::from(
        "| workload | raw INSERT (R1) | UmaDB 0.7.8 | dcbstore | dcbstore ÷ UmaDB | UmaDB ÷ R1 | dcbstore ÷ R1 | server CPU per op: UmaDB / dcbstore |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (i, clients) in [1, 16, 64].into_iter().enumerate() {
        let l = |r: &Round| r.loops[i].clone();
        let rate = |f: fn(&(Figures, Figures, Figures)) -> &Figures| {
            spread(all, |r| f(&l(r)).rate()).median
        };
        let p = |f: fn(&(Figures, Figures, Figures)) -> &Figures| {
            (
                spread(all, |r| ms(f(&l(r)).p50)).median,
                spread(all, |r| ms(f(&l(r)).p99)).median,
            )
        };
        let (tp50, tp99) = p(|x| &x.1);
        let (op50, op99) = p(|x| &x.2);
        out.push_str(&format!(
            "| decide loop, {clients} client(s): read a tag, append 1 event under its condition | {:.0}/s | {:.0}/s (p50 {tp50:.2} ms, p99 {tp99:.2} ms) | {:.0}/s (p50 {op50:.2} ms, p99 {op99:.2} ms) | **{}** | {} | {} | {} / {} |\n",
            rate(|x| &x.0),
            rate(|x| &x.1),
            rate(|x| &x.2),
            spread(all, |r| l(r).2.rate() / l(r).1.rate()).show(2),
            spread(all, |r| l(r).1.rate() / l(r).0.rate()).show(2),
            spread(all, |r| l(r).2.rate() / l(r).0.rate()).show(2),
            cpu(all, |r| &r.loops[i].1),
            cpu(all, |r| &r.loops[i].2),
        ));
    }
    out.push_str(&format!(
        "| {BATCH}-event batches, 1 client | | {:.0} events/s | {:.0} events/s | **{}** | | | {} / {} per event |\n",
        spread(all, |r| r.batches.0.rate()).median,
        spread(all, |r| r.batches.1.rate()).median,
        spread(all, |r| r.batches.1.rate() / r.batches.0.rate()).show(2),
        cpu(all, |r| &r.batches.0),
        cpu(all, |r| &r.batches.1),
    ));
    out.push_str(&format!(
        "| a decision's read of a tag's first {READ} events (with the head), log of {LOG} events, p50 | | {:.3} ms (p99 {:.3}) | {:.3} ms (p99 {:.3}) | **{}** (UmaDB's latency ÷ dcbstore's: above 1 is faster) | | | {} / {} |\n",
        spread(all, |r| ms(r.reads.0.p50)).median,
        spread(all, |r| ms(r.reads.0.p99)).median,
        spread(all, |r| ms(r.reads.1.p50)).median,
        spread(all, |r| ms(r.reads.1.p99)).median,
        spread(all, |r| ms(r.reads.0.p50) / ms(r.reads.1.p50)).show(2),
        cpu(all, |r| &r.reads.0),
        cpu(all, |r| &r.reads.1),
    ));
    out.push_str(&format!(
        "\n{} round(s); ratios are medians of the rounds' ratios [min to max]. Fresh stores for every timed workload but the reads.\n",
        all.len()
    ));
    out
}
