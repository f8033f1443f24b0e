//! The crate's instrumentation reaches a `metrics` recorder: what an
//! operator's exporter (or the operations console) would show.
//!
//! Each test records into its own thread-local [`Recording`] (or
//! `DebuggingRecorder`) on a current-thread runtime, so that tests running in
//! parallel never count each other's appends, and the console's tests may
//! install the binary's one global recorder.

use crate::common::recording;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{ev, store};
use dcbstore::append::append_in;
use dcbstore::delivery::{DeliveryConfig, DurableSubscriber, SubscriberConfig};
use dcbstore::dispatch::Envelope;
use dcbstore::metrics::*;
use dcbstore::projection::durable::{DurableProjection, Runner, RunnerConfig};
use dcbstore::{
    AppendCondition, Error, Event, EventStore, HandlerError, Query, QueryItem, SequencedEvent,
};
use deadpool_postgres::Transaction;
use metrics_util::debugging::DebuggingRecorder;
use recording::Recording;
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
            && dcbstore::delivery::list(&store, None).await.unwrap().len() == 3
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

#[test]
fn describe_gives_every_metric_a_help_text() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        describe();
        // Only registered metrics appear in a snapshot: register each name
        // as all three kinds, and see which kind was described.
        for name in ALL {
            metrics::counter!(*name).increment(0);
            metrics::gauge!(*name).set(0.0);
            metrics::histogram!(*name).record(0.0);
        }
    });
    let snapshot = snapshotter.snapshot().into_vec();
    for name in ALL {
        let described = snapshot
            .iter()
            .filter(|(key, _, help, _)| key.key().name() == *name && help.is_some())
            .count();
        assert_eq!(described, 1, "{name} described {described} times");
    }
}

#[tokio::test]
async fn appends_are_counted_by_outcome_with_their_sizes_durations_and_the_head() {
    let recording = Recording::default();
    let _local = metrics::set_default_local_recorder(&recording);
    let (store, _db) = store().await;

    let first = vec![
        ev("Counted", &["c:1"]),
        ev("Counted", &["c:1"]),
        ev("Counted", &["c:1"]),
    ];
    let appended = store.append(first.clone(), None).await.expect("append");
    assert_eq!(appended.position.get(), 3);
    let again = store.append(first, None).await.expect("idempotent retry");
    assert!(again.already_stored);
    let guard = AppendCondition::new(Query::item(QueryItem::tags(["c:1"])), None);
    let refused = store
        .append(vec![ev("Counted", &["c:1"])], Some(guard))
        .await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let no_guards = AppendCondition { guards: vec![] };
    let invalid = store
        .append(vec![ev("Counted", &[])], Some(no_guards))
        .await;
    assert!(matches!(invalid, Err(Error::Invalid(_))), "{invalid:?}");
    let mut client = store.pool().get().await.expect("a connection");
    let tx = client.transaction().await.expect("a transaction");
    let inside = append_in(&*tx, vec![ev("Counted", &[])], None)
        .await
        .expect("append_in");
    tx.commit().await.expect("commit");
    assert_eq!(inside.position.get(), 4);
    // The duplicate's position is not above the head; append_in sets nothing.
    assert_eq!(recording.sets(HEAD_POSITION, None), [3.0, 3.0]);
    let last = store
        .append(vec![ev("Counted", &[]), ev("Counted", &[])], None)
        .await
        .expect("append");
    assert_eq!(last.position.get(), 6);
    assert_eq!(recording.sets(HEAD_POSITION, None), [3.0, 3.0, 6.0]);

    let outcome = |o: &str| recording.count(APPENDS_TOTAL, Some(("outcome", o)));
    assert_eq!(outcome("appended"), 3);
    assert_eq!(outcome("duplicate"), 1);
    assert_eq!(outcome("conflict"), 1);
    assert_eq!(outcome("error"), 1);
    assert_eq!(recording.count(APPENDS_TOTAL, None), 6);
    assert_eq!(recording.count(CONFLICTS_TOTAL, None), 1);
    assert_eq!(recording.count(APPENDED_EVENTS_TOTAL, None), 3 + 1 + 2);
    assert_eq!(
        recording.records(APPEND_BATCH_SIZE),
        [3.0, 3.0, 1.0, 1.0, 1.0, 2.0]
    );
    let durations = recording.records(APPEND_DURATION_SECONDS);
    assert_eq!(durations.len(), 6, "{durations:?}");
    assert!(
        durations.iter().all(|d| *d > 0.0 && *d < 60.0),
        "{durations:?}"
    );
}

/// A projection that writes nothing: only its checkpoint moves.
struct Lagging;

impl DurableProjection for Lagging {
    fn name(&self) -> &str {
        "lagging"
    }
    fn query(&self) -> Query {
        Query::item(QueryItem::types(["Lagged"]))
    }
    async fn setup(&self, _: &Transaction<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn reset(&self, _: &Transaction<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn apply(&self, _: &Transaction<'_>, _: &SequencedEvent) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Five events, so that batches of two leave 3, then 1, then 0 behind.
async fn five_aged_events(store: &dcbstore::Store, event_type: &str) {
    let events = (0..5).map(|_| ev(event_type, &[])).collect();
    let _ = store.append(events, None).await.expect("append");
    // An age the lag-in-seconds gauge cannot round to 0.
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// Waits until gauge `name` of `label` has been set to 0.
async fn until_zero(recording: &Recording, name: &str, label: (&str, &str)) {
    for _ in 0..400 {
        if recording.sets(name, Some(label)).contains(&0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{name} never reached 0: {:?}",
        recording.sets(name, Some(label))
    );
}

/// The gauges set after each batch: 3 then 1 behind with an age, then caught
/// up (0 and 0) for good.
fn assert_lag_history(events: &[f64], seconds: &[f64]) {
    assert!(
        events.len() >= 3 && events.len() == seconds.len(),
        "{events:?} {seconds:?}"
    );
    assert_eq!(events[..3], [3.0, 1.0, 0.0], "{events:?}");
    assert!(events[3..].iter().all(|v| *v == 0.0), "{events:?}");
    assert!(
        seconds[..2].iter().all(|s| *s > 0.0 && *s < 60.0),
        "{seconds:?}"
    );
    assert!(seconds[2..].iter().all(|s| *s == 0.0), "{seconds:?}");
}

#[tokio::test]
async fn projection_lag_falls_to_zero_as_the_runner_catches_up() {
    let recording = Recording::default();
    let _local = metrics::set_default_local_recorder(&recording);
    let (store, _db) = store().await;
    five_aged_events(&store, "Lagged").await;
    let config = RunnerConfig {
        batch_size: 2,
        poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    };
    let runner = Runner::start(store.clone(), Lagging, config);
    let label = ("projection", "lagging");
    until_zero(&recording, PROJECTION_LAG_EVENTS, label).await;
    runner.stop().await;
    assert_lag_history(
        &recording.sets(PROJECTION_LAG_EVENTS, Some(label)),
        &recording.sets(PROJECTION_LAG_SECONDS, Some(label)),
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
    until_zero(&recording, SUBSCRIBER_LAG_EVENTS, label).await;
    runner.stop().await;
    assert_eq!(*handled.lock().expect("handled lock"), 5);
    assert_lag_history(
        &recording.sets(SUBSCRIBER_LAG_EVENTS, Some(label)),
        &recording.sets(SUBSCRIBER_LAG_SECONDS, Some(label)),
    );
}
