//! Delivery benchmarks B10 and B11 of BENCHMARKS.md, each against a
//! baseline measured in the same run on the same server:
//!
//! - B10: level-3 delivery throughput to a no-op durable subscriber over a
//!   log of `BENCH_DELIVERY_EVENTS` events, as a ratio to the rate at which
//!   the same events were appended (B3's workload: unconditional appends of
//!   1,000 events per call); and append-to-delivery latency, p50 and p99.
//! - B11: level-4 publish throughput through a relay to a real nats-server
//!   (JetStream, `Nats-Msg-Id` on every message), as a ratio to the same
//!   append rate; and append-to-delivery latency (an ordinary NATS
//!   subscriber on the stream's subjects timestamps arrivals).
//!
//! `cargo bench --bench delivery`; uses `DATABASE_URL` when set, else a
//! throwaway cluster; nats-server from the system.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcbstore::{Event, EventStore, HandlerError, Store};
use dcbstore_delivery::dispatch::Envelope;
use dcbstore_delivery::nats::NatsTransport;
use dcbstore_delivery::{DeliveryConfig, DurableSubscriber, Relay, SubscriberConfig};
use dcbstore_test_support::NatsServer;
use dcbstore_testing::TestDatabase;
use futures::StreamExt;
use serde_json::json;

const NAME: &str = "bench_event";

/// Counts deliveries and timestamps the ones tagged for latency.
#[derive(Clone, Default)]
struct NoOp {
    delivered: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl DurableSubscriber for NoOp {
    fn name(&self) -> &str {
        "bench-noop"
    }
    fn events(&self) -> Vec<String> {
        vec![NAME.into()]
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = envelope.payload["probe"].as_i64() {
            self.arrivals.lock().unwrap().push((i, Instant::now()));
        }
        Ok(())
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Appends `n` events in calls of 1,000: the append rate (events/s).
async fn fill(store: &Store, n: u64) -> f64 {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(1000);
        let events = (0..k)
            .map(|i| Event::new(NAME, json!({"i": done + i, "pad": "x".repeat(100)})))
            .collect();
        let _ = store.append(events, None).await.unwrap();
        done += k;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Waits until `count()` reaches `n`; the seconds it took from `since`.
async fn until(n: u64, since: Instant, count: impl Fn() -> u64) -> f64 {
    while count() < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    since.elapsed().as_secs_f64()
}

/// p50 and p99, in ms.
fn percentiles(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort_unstable();
    let at = |p: f64| {
        d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1)))
            .map_or(0.0, |x| x.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.99))
}

/// Appends `probes` single events, one at a time, and measures from each
/// append's acknowledgement to its arrival (`arrived(i)`).
async fn latency(
    store: &Store,
    probes: std::ops::Range<i64>,
    arrived: impl Fn(i64) -> Option<Instant>,
) -> (f64, f64) {
    let mut all = Vec::new();
    for i in probes {
        let _ = store
            .append(vec![Event::new(NAME, json!({"probe": i}))], None)
            .await
            .unwrap();
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(10);
        loop {
            if let Some(at) = arrived(i) {
                all.push(at.saturating_duration_since(acked));
                break;
            }
            assert!(Instant::now() < deadline, "probe {i} not delivered in 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    percentiles(all)
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        batch_size: 1000,
        ..DeliveryConfig::default()
    }
}

#[tokio::main]
async fn main() {
    let n: u64 = env("BENCH_DELIVERY_EVENTS", 200_000);
    let probes: i64 = env("BENCH_DELIVERY_PROBES", 300);
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::builder(db.url()).unwrap().build().await.unwrap();

    eprintln!("B10: appending {n} events (the baseline), then delivering them ...");
    let append_rate = fill(&store, n).await;
    let noop = NoOp::default();
    let started = Instant::now();
    let runner = SubscriberConfig::new(noop.clone(), config()).start(&store);
    let secs = until(n, started, || noop.delivered.load(Ordering::Relaxed)).await;
    let b10_rate = n as f64 / secs;
    let arrivals = noop.arrivals.clone();
    let b10_latency = latency(&store, 0..probes, |i| {
        arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == i)
            .map(|(_, at)| *at)
    })
    .await;
    runner.stop().await;

    eprintln!("B11: publishing the same log to nats-server (JetStream) ...");
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap()
        .expect("nats-server (install it: apt-get install nats-server)");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["dcbstore.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let probe_arrivals: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let mut sub = client.subscribe("dcbstore.>").await.unwrap();
    {
        let seen = seen.clone();
        let probe_arrivals = probe_arrivals.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                seen.fetch_add(1, Ordering::Relaxed);
                if let Ok(envelope) = serde_json::from_slice::<Envelope>(&m.payload) {
                    if let Some(i) = envelope.payload["probe"].as_i64() {
                        probe_arrivals.lock().unwrap().push((i, Instant::now()));
                    }
                }
            }
        });
    }
    let transport = NatsTransport::connect(nats.url()).await.unwrap();
    let total = n + probes as u64;
    let started = Instant::now();
    let relay = Relay::for_events(transport, vec![NAME.into()], config()).start(&store);
    let secs = until(total, started, || seen.load(Ordering::Relaxed)).await;
    let b11_rate = total as f64 / secs;
    // Probes of their own for B11 (B10's were published above).
    let b11_latency = latency(&store, probes..2 * probes, |i| {
        probe_arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == i)
            .map(|(_, at)| *at)
    })
    .await;
    relay.stop().await;

    let report = format!(
        "| id | workload | figure | baseline | ratio | \n|---|---|---|---|---|\n\
| B10 | level-3 delivery to a no-op durable subscriber, {n} events, batches of 1,000 | {b10_rate:.0} events/s; append to delivery p50 {:.2} ms, p99 {:.2} ms | B3-style append of the same events (1,000 per call): {append_rate:.0} events/s | {:.2} |\n\
| B11 | level-4 relay to nats-server JetStream with Nats-Msg-Id, {total} events, batches of 1,000 | {b11_rate:.0} events/s; append to arrival p50 {:.2} ms, p99 {:.2} ms | the same append rate: {append_rate:.0} events/s | {:.2} |\n",
        b10_latency.0,
        b10_latency.1,
        b10_rate / append_rate,
        b11_latency.0,
        b11_latency.1,
        b11_rate / append_rate,
    );
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-delivery.md", &report);
}
