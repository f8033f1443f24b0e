//! Property tests of the store API on every store (`properties::pg::`,
//! `properties::sqlx::`, `properties::memory::`), from the model crate's proptest strategies:
//! random valid events (tricky strings, numbers at the edges, nested JSON,
//! names at the byte limit) read back exactly as appended, and random valid
//! conditions are decided (appended, or a conflict whose every event is
//! real), never refused as invalid. Deterministic cases (one seed), so that
//! a failure reproduces.

use std::collections::HashSet;

use dcbstore::{AppendCondition, Error, Event, EventStore, Query, ReadOptions, SequencedEvent};
use dcbstore_core::strategies::{valid_condition, valid_event};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::json;

const CASES: usize = 48;

async fn read_after<S: EventStore>(
    store: &S,
    after: Option<dcbstore::SequencePosition>,
) -> Vec<SequencedEvent> {
    futures::TryStreamExt::try_collect(
        store.read(&Query::all(), ReadOptions::new().after_opt(after)),
    )
    .await
    .expect("read")
}

async fn random_valid_events_read_back_as_appended<S: EventStore + Sync>(store: &S) {
    let mut runner = TestRunner::deterministic();
    let batches = proptest::collection::vec(valid_event(), 1..6);
    for case in 0..CASES {
        let events = batches.new_tree(&mut runner).expect("a case").current();
        let ids: HashSet<_> = events.iter().map(|e| e.id).collect();
        if ids.len() < events.len() {
            continue;
        }
        let before = store.head().await.expect("head");
        let appended = store
            .append(events.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("case {case}: a valid append was refused: {e}"));
        let read = read_after(store, before).await;
        assert_eq!(read.len(), events.len(), "case {case}");
        assert_eq!(read.last().map(|e| e.position), Some(appended.position));
        for (got, sent) in read.iter().zip(&events) {
            let mut tags = sent.tags.clone();
            tags.sort();
            tags.dedup();
            assert_eq!(got.event.id, sent.id, "case {case}");
            assert_eq!(got.event.event_type, sent.event_type, "case {case}");
            assert!(
                same_json(&got.event.data, &sent.data),
                "case {case}: {:?} read back as {:?}",
                sent.data,
                got.event.data
            );
            let (got_m, sent_m) = (json!(got.event.metadata), json!(sent.metadata));
            assert!(
                same_json(&got_m, &sent_m),
                "case {case}: {sent_m:?} read back as {got_m:?}"
            );
            assert_eq!(got.event.tags, tags, "case {case}");
        }
    }
}

/// The same JSON value: numbers compared as numbers. PostgreSQL keeps the
/// number exactly, but a float written in exponent form with an integral
/// value (`-3.272328090533785e17`) comes back as the integer text jsonb
/// prints, which `serde_json` reads as an integer `Value`; `MemoryStore`
/// keeps the `Value` it was given (docs/semantics.md, Events).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `event` violates a guard of `condition`.
fn violates(condition: &AppendCondition, event: &SequencedEvent) -> bool {
    condition.guards.iter().any(|g| {
        g.after.is_none_or(|a| event.position > a) && g.fail_if_events_match.matches(&event.event)
    })
}

async fn random_valid_conditions_are_decided_never_refused<S: EventStore + Sync>(store: &S) {
    let mut runner = TestRunner::deterministic();
    let seeds = proptest::collection::vec(valid_event(), 20..21);
    let _ = store
        .append(seeds.new_tree(&mut runner).expect("a log").current(), None)
        .await
        .expect("the log");
    let (mut appended, mut conflicts) = (0, 0);
    for case in 0..CASES {
        let condition = valid_condition()
            .new_tree(&mut runner)
            .expect("a case")
            .current();
        let log = read_after(store, None).await;
        let event = Event::new("Probe", json!({ "case": case }));
        match store.append(vec![event], Some(condition.clone())).await {
            Ok(_) => {
                appended += 1;
                assert!(
                    !log.iter().any(|e| violates(&condition, e)),
                    "case {case}: appended although an event violates {condition:?}"
                );
            }
            Err(Error::Conflict(c)) => {
                conflicts += 1;
                assert!(!c.events.is_empty(), "case {case}");
                for e in &c.events {
                    assert!(violates(&condition, e), "case {case}: {e:?} is no conflict");
                }
                let latest = log.iter().rev().find(|e| violates(&condition, e));
                assert_eq!(latest.map(|e| e.position), Some(c.position), "case {case}");
            }
            Err(e) => panic!("case {case}: a valid condition was refused: {e}"),
        }
    }
    assert!(
        appended > 0 && conflicts > 0,
        "{appended} appended, {conflicts} conflicts"
    );
}

crate::common::on_every_store! {
    random_valid_events_read_back_as_appended,
    random_valid_conditions_are_decided_never_refused,
}
