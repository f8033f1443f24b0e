//! dcbstore against the server it runs on: every figure next to a raw
//! PostgreSQL baseline measured in the same round, on the same server.
//!
//! ```text
//! cargo bench --bench dcb                 # BENCH_SECONDS=5 per timed workload
//! BENCH_ONLY=appends cargo bench --bench dcb   # R1, B1, B2, L1, L2 alone
//! BENCH_ONLY=young cargo bench --bench dcb     # L4: the loop from an empty store, 60 s
//! ```
//!
//! Three rounds (`BENCH_ROUNDS`); each measures every baseline and every
//! workload once, with a `CHECKPOINT` before each timed workload and
//! `max_wal_size` raised so that no other checkpoint falls inside one. The
//! report gives each ratio as the median of the rounds' ratios [min to max],
//! and the server's CPU time per operation (from `/proc`, when the server
//! runs on this machine).
//!
//! Baselines (tokio-postgres): R1 one single-row INSERT per transaction (1,
//! 16 and 64 connections), R2 binary COPY of 1,000,000 rows into a bare
//! table, R2s the same rows into copies of dcbstore's tables, R3 binary
//! `COPY (SELECT ...) TO STDOUT` of 1,000,000 rows, R4 a tag's first 10 rows
//! by a prepared statement. dcbstore: B1..B9 and L1..L3 of BENCHMARKS.md.
//! The 10,000,000-event log lives in a cluster kept under
//! `target/dcbstore-bench-pg` (or in `DATABASE_URL`'s server) and is reused
//! when it already exists. Prints the table and writes `target/bench-dcb.md`.

mod appends;
mod baselines;
mod harness;
mod setup;
mod workloads;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use dcbstore::connection::{connect, parse_config};
use dcbstore::Store;

use harness::{env, Figures, ServerCpu, Spread};
use setup::{checkpoint, database, fill, fill_boundaries, tune_server};

/// The decide loop's boundaries: this many tags of 4 events each; each
/// cycle takes the next, so a boundary grows by one event every this many
/// cycles (the report gives the mean size read).
const BOUNDARIES: u64 = 200_000;

/// One round's figures.
struct Round {
    r1: [Figures; 3],
    r2: f64,
    r2s: f64,
    r3: (f64, usize),
    r4: Figures,
    b1: Figures,
    b2: Figures,
    b3: Figures,
    b4: (f64, u64, u64),
    b5: (Figures, Figures),
    b6: (Figures, Figures),
    b7: (Figures, f64),
    b8: [(Figures, Figures, Figures); 2],
    b9: (f64, u64, u64),
    l1: (Figures, f64),
    l2: [(Figures, f64); 2],
    l3: Figures,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let secs: f64 = env("BENCH_SECONDS", 5.0);
    let rounds: usize = env("BENCH_ROUNDS", 3);
    let big: i64 = env("BENCH_BIG_LOG", 10_000_000);
    let (_cluster, admin) = setup::server().await;
    let server = tune_server(&admin).await;
    let admin_client = connect(&parse_config(&admin).unwrap()).await.unwrap();
    let cpu = ServerCpu::locate(&admin_client).await;
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("appends") => {
            appends::run(&admin, &server, &cpu, rounds, secs).await;
            return;
        }
        Ok("young") => {
            appends::young(&admin, &cpu, env("BENCH_YOUNG_SECONDS", 60.0)).await;
            return;
        }
        _ => {}
    }
    let work = database(&admin, "bench_work", true).await;
    let looped = database(&admin, "bench_loop", true).await;
    let small = database(&admin, "bench_100k", false).await;
    let million = database(&admin, "bench_1m", false).await;
    let large = database(&admin, &format!("bench_{big}"), false).await;
    eprintln!("logs: 100k, 1M, {big} (reused when present), {BOUNDARIES} boundaries ...");
    fill(&small, 100_000).await;
    fill(&million, 1_000_000).await;
    let generated = fill(&large, big).await;
    fill_boundaries(&looped, BOUNDARIES as i64, 4).await;

    let store = Store::builder(&work)
        .unwrap()
        .pool_size(8)
        .build()
        .await
        .unwrap();
    let loop_stores = [
        Store::builder(&looped)
            .unwrap()
            .pool_size(4)
            .build()
            .await
            .unwrap(),
        Store::builder(&looped)
            .unwrap()
            .pool_size(16)
            .build()
            .await
            .unwrap(),
        Store::builder(&looped)
            .unwrap()
            .pool_size(32)
            .build()
            .await
            .unwrap(),
    ];
    let next_boundary = Arc::new(AtomicU64::new(0));
    let mstore = Store::connect(&million).await.unwrap();
    let sstore = Store::connect(&small).await.unwrap();
    let lstore = Store::connect(&large).await.unwrap();

    let mut all = Vec::new();
    for round in 1..=rounds {
        let cp = || checkpoint(&admin_client, &server);
        eprintln!("round {round}/{rounds}: R1 ...");
        cp().await;
        let r1_1 = baselines::raw_inserts(&work, &cpu, 1, secs).await;
        cp().await;
        let r1_16 = baselines::raw_inserts(&work, &cpu, 16, secs).await;
        cp().await;
        let r1_64 = baselines::raw_inserts(&work, &cpu, 64, secs).await;
        eprintln!("round {round}/{rounds}: R2, R2s, B3 ...");
        cp().await;
        let r2 = baselines::copy_bare(&work, &cpu, 1_000_000).await;
        cp().await;
        let r2s = baselines::copy_dcbstore_tables(&work, &cpu, 1_000_000).await;
        cp().await;
        let b3 = workloads::batches(store.clone(), &cpu, 1000, secs).await;
        eprintln!("round {round}/{rounds}: B1, B2, B7 ...");
        cp().await;
        let b1 = workloads::conditional_appends(store.clone(), &cpu, 1, secs).await;
        cp().await;
        let b2 = workloads::conditional_appends(store.clone(), &cpu, 64, secs).await;
        cp().await;
        let b7 = workloads::racing_appends(store.clone(), &cpu, 64, 8, secs).await;
        eprintln!("round {round}/{rounds}: L1, L2 ...");
        cp().await;
        let l1 = workloads::decide_loop(
            loop_stores[0].clone(),
            &cpu,
            1,
            secs,
            next_boundary.clone(),
            BOUNDARIES,
        )
        .await;
        cp().await;
        let l2_16 = workloads::decide_loop(
            loop_stores[1].clone(),
            &cpu,
            16,
            secs,
            next_boundary.clone(),
            BOUNDARIES,
        )
        .await;
        cp().await;
        let l2_64 = workloads::decide_loop(
            loop_stores[2].clone(),
            &cpu,
            64,
            secs,
            next_boundary.clone(),
            BOUNDARIES,
        )
        .await;
        eprintln!("round {round}/{rounds}: B8 ...");
        cp().await;
        let b8 = [
            workloads::wake_up_latency(&work, &store, 1, 500).await,
            workloads::wake_up_latency(&work, &store, 64, 200).await,
        ];
        eprintln!("round {round}/{rounds}: R3, B4 ...");
        cp().await;
        let r3 = baselines::copy_out(&million, &cpu).await;
        let b4 = workloads::read_everything(&mstore, &cpu).await;
        assert_eq!(b4.1, 1_000_000);
        eprintln!("round {round}/{rounds}: B9 ...");
        let b9 = workloads::catch_up(&mstore, &cpu, 1_000_000).await;
        assert_eq!(b9.1, 1_000_000);
        eprintln!("round {round}/{rounds}: B5, B6, L3, R4 ...");
        cp().await;
        let b5 = (
            workloads::tag_page_latency(&sstore, &cpu, 0, 200).await,
            workloads::tag_page_latency(&lstore, &cpu, (big / 2) as u64, 200).await,
        );
        let b6 = (
            workloads::conditional_appends(sstore.clone(), &cpu, 1, secs.min(3.0)).await,
            workloads::conditional_appends(lstore.clone(), &cpu, 1, secs.min(3.0)).await,
        );
        let r4 = baselines::raw_tag_read(&large, &cpu, 500).await;
        let l3 = workloads::boundary_latency(&lstore, &cpu, 500).await;
        all.push(Round {
            r1: [r1_1, r1_16, r1_64],
            r2,
            r2s,
            r3,
            r4,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
            b8,
            b9,
            l1,
            l2: [l2_16, l2_64],
            l3,
        });
    }

    let settings = dcbstore_testing::server_settings(&admin_client)
        .await
        .unwrap();
    let report = report(&all, big, generated, &server.note, &settings, cpu.known());
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-dcb.md", &report);
}

/// The median [min to max] of `f` over the rounds.
fn spread(rounds: &[Round], f: impl Fn(&Round) -> f64) -> Spread {
    Spread::of(&rounds.iter().map(f).collect::<Vec<_>>())
}

/// Server CPU per operation over the rounds, as text.
fn cpu(rounds: &[Round], f: impl Fn(&Round) -> &Figures) -> String {
    let v: Vec<f64> = rounds.iter().filter_map(|r| f(r).cpu_us_per_op()).collect();
    if v.is_empty() {
        "n/a".into()
    } else {
        format!("{:.0} µs", Spread::of(&v).median)
    }
}

fn report(
    r: &[Round],
    big: i64,
    generated: f64,
    server: &str,
    settings: &str,
    cpu_known: bool,
) -> String {
    let mut rows = vec![
        "| id | workload | figure (median) | baseline (median) | ratio: median [min to max] | target | server CPU per op: dcbstore / baseline |".to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    let mut row = |id: &str,
                   what: &str,
                   fig: String,
                   base: String,
                   ratio: Spread,
                   target: &str,
                   cpu: String| {
        rows.push(format!(
            "| {id} | {what} | {fig} | {base} | {} | {target} | {cpu} |",
            ratio.show(2)
        ));
    };
    let rate = |f: fn(&Round) -> &Figures| spread(r, |x| f(x).rate()).median;
    let p50 = |f: fn(&Round) -> &Figures| spread(r, |x| ms(f(x).p50)).median;
    let p99 = |f: fn(&Round) -> &Figures| spread(r, |x| ms(f(x).p99)).median;
    let both = |a: String, b: String| format!("{a} / {b}");

    row(
        "B1",
        "1 client, conditional append of 1 event (tag query, after = its last append)",
        format!(
            "{:.0} appends/s (p50 {:.2} ms, p99 {:.2} ms)",
            rate(|x| &x.b1),
            p50(|x| &x.b1),
            p99(|x| &x.b1)
        ),
        format!("R1 1 conn: {:.0} inserts/s", rate(|x| &x.r1[0])),
        spread(r, |x| x.b1.rate() / x.r1[0].rate()),
        ">= 0.8",
        both(cpu(r, |x| &x.b1), cpu(r, |x| &x.r1[0])),
    );
    row(
        "B2",
        "64 concurrent tasks, conditional appends on disjoint tags",
        format!(
            "{:.0} appends/s (p50 {:.2} ms, p99 {:.2} ms)",
            rate(|x| &x.b2),
            p50(|x| &x.b2),
            p99(|x| &x.b2)
        ),
        format!("R1 64 conns: {:.0} inserts/s", rate(|x| &x.r1[2])),
        spread(r, |x| x.b2.rate() / x.r1[2].rate()),
        ">= 1.5",
        both(cpu(r, |x| &x.b2), cpu(r, |x| &x.r1[2])),
    );
    let r2s = spread(r, |x| 1e6 / x.r2s).median;
    let r2 = spread(r, |x| 1e6 / x.r2).median;
    row(
        "B3",
        "1 client, unconditional append, 1,000 events per call",
        format!(
            "{:.0} events/s; ratio to R2 (bare table) {}",
            rate(|x| &x.b3),
            spread(r, |x| x.b3.rate() / (1e6 / x.r2)).show(2)
        ),
        format!("R2s COPY into dcbstore's tables: {r2s:.0} rows/s (R2 bare: {r2:.0} rows/s)"),
        spread(r, |x| x.b3.rate() / (1e6 / x.r2s)),
        ">= 0.7 of R2s",
        format!("{} per event", cpu(r, |x| &x.b3)),
    );
    row(
        "B4",
        "read the whole log forward, 1,000,000 events, decoded",
        format!(
            "{:.0} events/s (peak RSS {} MB)",
            spread(r, |x| 1e6 / x.b4.0).median,
            r.iter().map(|x| x.b4.2).max().unwrap_or(0) / 1024
        ),
        format!(
            "R3 COPY TO binary: {:.0} rows/s ({:.0} MB)",
            spread(r, |x| 1e6 / x.r3.0).median,
            r.first().map_or(0.0, |x| x.r3.1 as f64 / 1e6)
        ),
        spread(r, |x| x.r3.0 / x.b4.0),
        ">= 0.5",
        String::new(),
    );
    row(
        "B5",
        &format!("first 100 events of one tag after a position, log of {big} events"),
        format!("p50 {:.3} ms", spread(r, |x| ms(x.b5.1.p50)).median),
        format!(
            "same at 100,000 events: p50 {:.3} ms",
            spread(r, |x| ms(x.b5.0.p50)).median
        ),
        spread(r, |x| ms(x.b5.1.p50) / ms(x.b5.0.p50)),
        "<= 1.5 (latency)",
        both(cpu(r, |x| &x.b5.1), cpu(r, |x| &x.b5.0)),
    );
    row(
        "B6",
        &format!("B1's p50 latency at {big} events"),
        format!("p50 {:.3} ms", spread(r, |x| ms(x.b6.1.p50)).median),
        format!(
            "at 100,000 events: p50 {:.3} ms",
            spread(r, |x| ms(x.b6.0.p50)).median
        ),
        spread(r, |x| ms(x.b6.1.p50) / ms(x.b6.0.p50)),
        "<= 1.3",
        both(cpu(r, |x| &x.b6.1), cpu(r, |x| &x.b6.0)),
    );
    row(
        "B7",
        "64 tasks racing on 8 shared boundaries (real conflicts, retry with backoff)",
        format!(
            "{:.0} successes/s, conflict rate {:.0}% (p50 {:.2} ms, p99 {:.2} ms, p99/p50 {})",
            rate(|x| &x.b7.0),
            spread(r, |x| x.b7.1 * 100.0).median,
            p50(|x| &x.b7.0),
            p99(|x| &x.b7.0),
            spread(r, |x| x.b7.0.p99.as_secs_f64() / x.b7.0.p50.as_secs_f64()).show(1)
        ),
        format!("B2: {:.0} appends/s", rate(|x| &x.b2)),
        spread(r, |x| x.b7.0.rate() / x.b2.rate()),
        "report; p99/p50 < 10",
        cpu(r, |x| &x.b7.0),
    );
    for (i, (followers, appends)) in [(1, 500), (64, 200)].into_iter().enumerate() {
        row(
            "B8",
            &format!("wake-up latency: append acknowledged to delivery by {followers} subscription(s) on another store, {appends} appends"),
            format!(
                "p50 {:.3} ms, p99 {:.3} ms (raw NOTIFY to a LISTENer: p50 {:.3} ms)",
                spread(r, |x| ms(x.b8[i].0.p50)).median,
                spread(r, |x| ms(x.b8[i].0.p99)).median,
                spread(r, |x| ms(x.b8[i].2.p50)).median
            ),
            format!(
                "the append itself: p50 {:.3} ms",
                spread(r, |x| ms(x.b8[i].1.p50)).median
            ),
            spread(r, |x| ms(x.b8[i].0.p50) / ms(x.b8[i].1.p50)),
            "report",
            String::new(),
        );
    }
    row(
        "B9",
        "a subscription's catch-up over the 1,000,000-event log, from the start, decoded",
        format!(
            "{:.0} events/s (peak RSS {} MB)",
            spread(r, |x| x.b9.1 as f64 / x.b9.0).median,
            spread(r, |x| x.b9.2 as f64 / 1024.0).median as u64
        ),
        format!(
            "B4 full read: {:.0} events/s",
            spread(r, |x| x.b4.1 as f64 / x.b4.0).median
        ),
        spread(r, |x| (x.b9.1 as f64 / x.b9.0) / (x.b4.1 as f64 / x.b4.0)),
        ">= 0.8",
        String::new(),
    );
    row(
        "L1",
        "decide loop, 1 client: read a boundary (about 5 events), append 1 event after the read's position",
        format!(
            "{:.0} cycles/s (p50 {:.2} ms, p99 {:.2} ms; {:.1} events read per cycle)",
            rate(|x| &x.l1.0), p50(|x| &x.l1.0), p99(|x| &x.l1.0), spread(r, |x| x.l1.1).median
        ),
        format!("R1 1 conn: {:.0} inserts/s", rate(|x| &x.r1[0])),
        spread(r, |x| x.l1.0.rate() / x.r1[0].rate()),
        ">= 0.5",
        both(cpu(r, |x| &x.l1.0), cpu(r, |x| &x.r1[0])),
    );
    for (i, (tasks, conns, target)) in [(16, 1, ">= 0.7"), (64, 2, ">= 1.0")]
        .into_iter()
        .enumerate()
    {
        row(
            &format!("L2 ({tasks})"),
            &format!("decide loop, {tasks} concurrent tasks on disjoint boundaries"),
            format!(
                "{:.0} cycles/s (p50 {:.2} ms, p99 {:.2} ms; {:.1} events read per cycle)",
                spread(r, |x| x.l2[i].0.rate()).median,
                spread(r, |x| ms(x.l2[i].0.p50)).median,
                spread(r, |x| ms(x.l2[i].0.p99)).median,
                spread(r, |x| x.l2[i].1).median
            ),
            format!(
                "R1 {tasks} conns: {:.0} inserts/s",
                spread(r, |x| x.r1[conns].rate()).median
            ),
            spread(r, |x| x.l2[i].0.rate() / x.r1[conns].rate()),
            target,
            {
                let a: Vec<f64> = r.iter().filter_map(|x| x.l2[i].0.cpu_us_per_op()).collect();
                let b: Vec<f64> = r
                    .iter()
                    .filter_map(|x| x.r1[conns].cpu_us_per_op())
                    .collect();
                if a.is_empty() || b.is_empty() {
                    "n/a".into()
                } else {
                    format!(
                        "{:.0} µs / {:.0} µs",
                        Spread::of(&a).median,
                        Spread::of(&b).median
                    )
                }
            },
        );
    }
    row(
        "L3",
        &format!(
            "a tag's first 10 events as a decision reads them (with the head), log of {big} events"
        ),
        format!("p50 {:.3} ms", spread(r, |x| ms(x.l3.p50)).median),
        format!(
            "R4 prepared raw SELECT of the same rows: p50 {:.3} ms",
            spread(r, |x| ms(x.r4.p50)).median
        ),
        spread(r, |x| ms(x.l3.p50) / ms(x.r4.p50)),
        "<= 1.5 (latency)",
        both(cpu(r, |x| &x.l3), cpu(r, |x| &x.r4)),
    );
    format!(
        "{}\n\n{} rounds; baselines (medians): R1 {:.0}/s, {:.0}/s, {:.0}/s on 1, 16, 64 connections; R2 {:.2} s, R2s {:.2} s for 1,000,000 rows; R3 {:.2} s for 1,000,000 rows.\nServer CPU: {}. {big}-event log: {}. Checkpoints: {server}.\nServer: {settings}\n",
        rows.join("\n"),
        r.len(),
        rate(|x| &x.r1[0]),
        rate(|x| &x.r1[1]),
        rate(|x| &x.r1[2]),
        spread(r, |x| x.r2).median,
        spread(r, |x| x.r2s).median,
        spread(r, |x| x.r3.0).median,
        if cpu_known { "from /proc, the postmaster and its children" } else { "not measured (the server is not on this machine)" },
        if generated > 0.0 { format!("generated server-side in {generated:.0} s") } else { "reused".to_string() },
    )
}
