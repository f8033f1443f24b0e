//! Typed decisions against their untyped baselines, in the same run:
//!
//! - T1: a full read of the log into `SequencedEvent`s (JSON `Value`s): the
//!   baseline; T2: the same read with every event decoded into its Rust type
//!   (`typed::decode`, envelope and version check included). Target: T2 ÷
//!   T1 ≤ 1.2.
//! - M1: the typed decide loop (`store.decide`, one decision per course,
//!   each read, decided and appended under its condition) on PostgreSQL;
//!   M2: the same decisions on `MemoryStore`. Target: M1 ÷ M2 ≥ 20 (the
//!   in-memory store is for unit tests: it must never be the slow part).
//!
//! ```text
//! cargo bench --bench typed     # BENCH_EVENTS=200000, BENCH_DECISIONS=500, BENCH_ROUNDS=3
//! ```
//!
//! Prints a Markdown table and writes it to `target/bench-typed.md`.

use std::time::{Duration, Instant};

use dcbstore::memory::MemoryStore;
use dcbstore::typed::{decode, to_event, Decide, Decision, StateQuery};
use dcbstore::{Event, EventStore, Query, ReadOptions, Store};
use dcbstore_testing::Scratch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "course_defined", level = "sourced", version = 2)]
struct CourseDefined {
    #[tag(prefix = "course")]
    course_id: String,
    capacity: u32,
    title: String,
}

struct Exists(String);

impl StateQuery for Exists {
    type Event = CourseDefined;
    type State = bool;
    fn tags(&self) -> Vec<String> {
        vec![CourseDefined::course_id_tag(&self.0)]
    }
    fn initial(&self) -> bool {
        false
    }
    fn apply(&self, _: bool, _: CourseDefined) -> bool {
        true
    }
}

struct Define(String);

impl Decision for Define {
    type Model = Exists;
    type Emits = CourseDefined;
    type Error = String;
    fn model(&self) -> Exists {
        Exists(self.0.clone())
    }
    fn decide(&self, exists: &bool) -> Result<Vec<CourseDefined>, String> {
        if *exists {
            return Err("exists".into());
        }
        Ok(vec![CourseDefined {
            course_id: self.0.clone(),
            capacity: 30,
            title: format!("Course {}", self.0),
        }])
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// T1 (`typed` false) or T2 (`typed` true): one full read of the log.
async fn read_all(store: &Store, typed: bool) -> Duration {
    let start = Instant::now();
    let mut events = store.read(&Query::all(), ReadOptions::new());
    let mut n = 0u64;
    while let Some(e) = events.next().await {
        let e = e.expect("read");
        if typed {
            let course: CourseDefined = decode(&e).expect("decodes");
            n += u64::from(course.capacity);
        } else {
            n += e.event.data["capacity"].as_u64().unwrap_or(0);
        }
    }
    assert!(n > 0);
    start.elapsed()
}

/// `decisions` decisions, each on a course of its own, from `first`.
async fn decide_loop<S: EventStore + Sync>(store: &S, first: usize, decisions: usize) -> Duration {
    let start = Instant::now();
    for k in first..first + decisions {
        let decided = store.decide(&Define(format!("c{k}"))).await;
        assert!(
            matches!(decided, Ok(dcbstore::projection::Executed::Appended { .. })),
            "{decided:?}"
        );
    }
    start.elapsed()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = env("BENCH_EVENTS", 200_000);
    let decisions = env("BENCH_DECISIONS", 500);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let scratch = Scratch::start(true).await?;
    let store = Store::connect(scratch.url()).await?;

    let mut k = 0;
    while k < events {
        let batch: Vec<Event> = (k..(k + 1000).min(events))
            .map(|i| {
                to_event(&CourseDefined {
                    course_id: format!("fill-{i}"),
                    capacity: 30,
                    title: format!("Course number {i} of the filled log"),
                })
            })
            .collect::<Result<_, _>>()?;
        k += batch.len();
        let _ = store.append(batch, None).await?;
    }

    let (mut t1, mut t2, mut m1, mut m2) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Alternated, so that neither always reads a warmer cache.
        if round % 2 == 0 {
            t1.push(read_all(&store, false).await);
            t2.push(read_all(&store, true).await);
        } else {
            t2.push(read_all(&store, true).await);
            t1.push(read_all(&store, false).await);
        }
        m1.push(decide_loop(&store, (round + 1) * 1_000_000, decisions).await);
        m2.push(decide_loop(&MemoryStore::new(), 0, decisions).await);
    }
    let (t1, t2, m1, m2) = (median(t1), median(t2), median(m1), median(m2));
    let per = |d: Duration| d.as_secs_f64() * 1e6 / decisions as f64;
    let table = format!(
        "| run | what | median | ratio |\n|---|---|---|---|\n\
         | T1 | full read of {events} events (Value) | {:.0} ms | 1.00 |\n\
         | T2 | the same, each decoded to its type | {:.0} ms | {:.2} (target <= 1.2) |\n\
         | M1 | typed decide loop on PostgreSQL, {decisions} decisions | {:.0} us/decision | {:.1} x M2 (target >= 20) |\n\
         | M2 | the same on MemoryStore | {:.1} us/decision | 1.00 |\n",
        t1.as_secs_f64() * 1e3,
        t2.as_secs_f64() * 1e3,
        t2.as_secs_f64() / t1.as_secs_f64(),
        per(m1),
        m1.as_secs_f64() / m2.as_secs_f64(),
        per(m2),
    );
    println!("{table}");
    std::fs::write("target/bench-typed.md", &table)?;
    Ok(())
}
