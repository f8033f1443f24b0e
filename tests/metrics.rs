//! The delivery layer's instrumentation reaches a `metrics` recorder: what
//! an operator's exporter (or the operations console) would show.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::store;
use dcbstore::delivery::{DeliveryConfig, DurableSubscriber, Subscription};
use dcbstore::dispatch::Envelope;
use dcbstore::{Event, EventStore, HandlerError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

struct FailsOnOdd(Arc<Mutex<u32>>);

impl DurableSubscriber for FailsOnOdd {
    fn name(&self) -> &str {
        "metered"
    }
    fn events(&self) -> Vec<String> {
        vec!["Metered".into()]
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        if envelope.payload["n"].as_u64().unwrap_or(0) % 2 == 1 {
            return Err("odd".into());
        }
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_and_dead_lettered_events_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let (store, _db) = store().await;
    let events = (0..6)
        .map(|n| Event::new("Metered", json!({ "n": n })))
        .collect();
    let _ = store.append(events, None).await.unwrap();
    let done = Arc::new(Mutex::new(0));
    let config = DeliveryConfig {
        max_attempts: 2,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(2),
        poll_interval: Duration::from_millis(20),
        ..DeliveryConfig::default()
    };
    let runner = Subscription::new(FailsOnOdd(done.clone()), config).start(&store);
    for _ in 0..400 {
        if *done.lock().unwrap() == 3
            && dcbstore::delivery::list(&store, None).await.unwrap().len() == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    runner.stop().await;

    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str| -> u64 {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == name)
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(counter("dcbstore_delivered_total"), 3);
    assert_eq!(counter("dcbstore_dead_letters_total"), 3);
    assert_eq!(
        counter("dcbstore_delivery_failures_total"),
        6,
        "two attempts each"
    );
    let histograms: Vec<String> = snapshot
        .into_iter()
        .filter(|(_, _, _, v)| matches!(v, DebugValue::Histogram(_)))
        .map(|(key, _, _, _)| key.key().name().to_string())
        .collect();
    assert!(
        histograms
            .iter()
            .any(|n| n == "dcbstore_delivery_latency_seconds"),
        "{histograms:?}"
    );
}
