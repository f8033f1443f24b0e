//! The store's instrumentation reaches a `metrics` recorder: what an
//! operator's exporter (or the operations console) would show.
//!
//! Each test records into its own thread-local [`Recording`] (or
//! `DebuggingRecorder`) on a current-thread runtime, so that tests running in
//! parallel never count each other's appends.

use crate::common::recording;

use std::time::Duration;

use crate::common::{ev, five_aged_events, store};
use dcbstore::append::append_in;
use dcbstore::metrics::*;
use dcbstore::projection::durable::{DurableProjection, Runner, RunnerConfig};
use dcbstore::{
    AppendCondition, Error, EventStore, HandlerError, Query, QueryItem, SequencedEvent,
};
use deadpool_postgres::Transaction;
use metrics_util::debugging::DebuggingRecorder;
use recording::Recording;

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
    recording.until_zero(PROJECTION_LAG_EVENTS, label).await;
    runner.stop().await;
    recording::assert_lag_history(
        &recording.sets(PROJECTION_LAG_EVENTS, Some(label)),
        &recording.sets(PROJECTION_LAG_SECONDS, Some(label)),
    );
}
