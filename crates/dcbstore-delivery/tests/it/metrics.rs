//! Delivery's instrumentation reaches a `metrics` recorder: what an
//! operator's exporter (or the operations console) would show.
//!
//! Each test records into its own thread-local [`Recording`] on a
//! current-thread runtime, so that tests running in parallel never count
//! each other's deliveries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcbstore::metrics::*;
use dcbstore::{Event, EventStore, HandlerError};
use dcbstore_delivery::dispatch::Envelope;
use dcbstore_delivery::{DeliveryConfig, DurableSubscriber, SubscriberConfig};
use dcbstore_test_support::recording::{self, Recording};
use dcbstore_test_support::{five_aged_events, store};
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

#[tokio::test]
async fn delivered_and_dead_lettered_events_are_counted() {
    let recording = Recording::default();
    let _local = metrics::set_default_local_recorder(&recording);

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
    let runner = SubscriberConfig::new(FailsOnOdd(done.clone()), config).start(&store);
    for _ in 0..400 {
        if *done.lock().unwrap() == 3
            && dcbstore_delivery::list(&store, None).await.unwrap().len() == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    runner.stop().await;

    let counter = |name: &str| recording.count(name, None);
    assert_eq!(counter("dcbstore_delivered_total"), 3);
    assert_eq!(counter("dcbstore_dead_letters_total"), 3);
    assert_eq!(
        counter("dcbstore_delivery_failures_total"),
        6,
        "two attempts each"
    );
    let histograms: Vec<String> = recording
        .emits()
        .into_iter()
        .filter(|e| matches!(e.op, recording::Op::Record(_)))
        .map(|e| e.name)
        .collect();
    assert!(
        histograms
            .iter()
            .any(|n| n == "dcbstore_delivery_latency_seconds"),
        "{histograms:?}"
    );
}

struct Trailing(Arc<Mutex<u32>>);

impl DurableSubscriber for Trailing {
    fn name(&self) -> &str {
        "trailing"
    }
    fn events(&self) -> Vec<String> {
        vec!["Trailed".into()]
    }
    async fn handle(&self, _: &Envelope) -> Result<(), HandlerError> {
        *self.0.lock().expect("handled lock") += 1;
        Ok(())
    }
}

#[tokio::test]
async fn subscriber_lag_falls_to_zero_once_everything_is_delivered() {
    let recording = Recording::default();
    let _local = metrics::set_default_local_recorder(&recording);
    let (store, _db) = store().await;
    five_aged_events(&store, "Trailed").await;
    let handled = Arc::new(Mutex::new(0));
    let config = DeliveryConfig {
        batch_size: 2,
        poll_interval: Duration::from_millis(20),
        ..DeliveryConfig::default()
    };
    let runner = SubscriberConfig::new(Trailing(handled.clone()), config).start(&store);
    let label = ("subscriber", "trailing");
    recording.until_zero(SUBSCRIBER_LAG_EVENTS, label).await;
    runner.stop().await;
    assert_eq!(*handled.lock().expect("handled lock"), 5);
    recording::assert_lag_history(
        &recording.sets(SUBSCRIBER_LAG_EVENTS, Some(label)),
        &recording.sets(SUBSCRIBER_LAG_SECONDS, Some(label)),
    );
}
