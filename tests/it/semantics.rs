//! Every rule of docs/semantics.md: each rule of the store API on both
//! stores, PostgreSQL (`semantics::pg::`) and the in-memory store
//! (`semantics::memory::`), so that neither can drift; the rules only a
//! database has (its store id, server histories, values stored before the
//! database refused them) against a real PostgreSQL.

use crate::common::{ev, store};
use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

fn p(n: u64) -> SequencePosition {
    SequencePosition::new(n)
}

fn tags(q: &[&str]) -> Query {
    Query::item(QueryItem::tags(q.iter().copied()))
}

async fn positions<S: EventStore>(store: &S, q: &Query, o: ReadOptions) -> Vec<u64> {
    read_all(store, q, o)
        .await
        .expect("read")
        .iter()
        .map(|e| e.position.get())
        .collect()
}

/// Every event matching `q` in `o`, read to the end.
async fn read_all<S: EventStore>(
    store: &S,
    q: &Query,
    o: ReadOptions,
) -> dcbstore::Result<Vec<dcbstore::SequencedEvent>> {
    futures::TryStreamExt::try_collect(store.read(q, o)).await
}

async fn seed<S: EventStore>(store: &S) {
    // 1: A[x]  2: B[x,y]  3: C[y]  4: A[x,y,z]  5: B[]  6: C[z]
    for (t, tg) in [
        ("A", &["x"][..]),
        ("B", &["x", "y"]),
        ("C", &["y"]),
        ("A", &["x", "y", "z"]),
        ("B", &[]),
        ("C", &["z"]),
    ] {
        let _ = store.append(vec![ev(t, tg)], None).await.expect("seed");
    }
}

// ---- Events ----

async fn event_fields_round_trip_and_tags_are_a_set<S: EventStore + Sync>(store: &S) {
    let id = Uuid::now_v7();
    let mut meta = serde_json::Map::new();
    meta.insert(
        "causation".into(),
        json!({"user": "u1", "n": [1, 2.5, null]}),
    );
    let datas = [
        json!(null),
        json!(42),
        json!("text with ünïcode and \"quotes\""),
        json!([1, {"a": true}]),
        json!({"nested": {"deep": [1, 2, 3]}, "empty": {}}),
    ];
    let mut events = vec![Event::new("Typed", json!({"k": 1}))
        .with_id(id)
        .with_tags(["b", "a", "b", "a", "c"])
        .with_metadata(meta.clone())];
    events.extend(datas.iter().cloned().map(|d| Event::new("Data", d)));
    let appended = store.append(events, None).await.expect("append");
    assert_eq!(appended.position, p(6));
    assert!(!appended.already_stored);
    let read = read_all(store, &Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(read.len(), 6);
    assert_eq!(read[0].event.id, id);
    assert_eq!(read[0].event.event_type, "Typed");
    assert_eq!(
        read[0].event.tags,
        ["a", "b", "c"],
        "duplicates removed, each tag once"
    );
    assert_eq!(read[0].event.metadata, meta);
    for (e, d) in read[1..].iter().zip(&datas) {
        assert_eq!(&e.event.data, d);
        assert!(e.event.tags.is_empty(), "an event may have no tags");
        assert!(e.event.metadata.is_empty(), "metadata may be empty");
    }
    let age = chrono::Utc::now() - read[0].recorded_at;
    assert!(
        age.num_seconds().abs() < 60,
        "recorded_at is assigned at append: {age}"
    );
}

async fn generated_ids_are_v7_and_unique<S: EventStore + Sync>(store: &S) {
    let events: Vec<Event> = (0..50).map(|_| ev("E", &[])).collect();
    let _ = store.append(events, None).await.unwrap();
    let read = read_all(store, &Query::all(), ReadOptions::new())
        .await
        .unwrap();
    let ids: std::collections::HashSet<Uuid> = read.iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), 50);
    assert!(read.iter().all(|e| e.event.id.get_version_num() == 7));
}

async fn positions_start_at_one_are_consecutive_in_a_batch_and_increase<S: EventStore + Sync>(
    store: &S,
) {
    assert_eq!(store.head().await.unwrap(), None, "empty store has no head");
    let a = store
        .append(
            vec![ev("First", &[]), ev("Second", &[]), ev("Third", &[])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.position, p(3), "returns the position of the last event");
    let b = store.append(vec![ev("Fourth", &[])], None).await.unwrap();
    assert_eq!(b.position, p(4));
    let read = read_all(store, &Query::all(), ReadOptions::new())
        .await
        .unwrap();
    let got: Vec<(u64, &str)> = read
        .iter()
        .map(|e| (e.position.get(), e.event.event_type.as_str()))
        .collect();
    assert_eq!(
        got,
        [(1, "First"), (2, "Second"), (3, "Third"), (4, "Fourth")]
    );
    assert_eq!(store.head().await.unwrap(), Some(p(4)));
}

// ---- Queries ----

async fn query_matching_rules<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let all = ReadOptions::new();
    assert_eq!(
        positions(store, &Query::all(), all).await,
        [1, 2, 3, 4, 5, 6]
    );
    // Types OR'd.
    let q = Query::item(QueryItem::types(["A", "C"]));
    assert_eq!(positions(store, &q, all).await, [1, 3, 4, 6]);
    // Tags AND'd.
    assert_eq!(positions(store, &tags(&["x", "y"]), all).await, [2, 4]);
    assert_eq!(positions(store, &tags(&["x", "y", "z"]), all).await, [4]);
    // Types and tags in one item: both must hold.
    let q = Query::item(QueryItem::types(["A", "B"]).and_tags(["y"]));
    assert_eq!(positions(store, &q, all).await, [2, 4]);
    // Items OR'd, an event matching two items is returned once.
    let q = tags(&["z"]).or(QueryItem::types(["A"]));
    assert_eq!(positions(store, &q, all).await, [1, 4, 6]);
    // Duplicates inside an item are harmless.
    let q = Query::item(QueryItem::types(["C", "C"]).and_tags(["z", "z"]));
    assert_eq!(positions(store, &q, all).await, [6]);
    // No match.
    assert!(positions(store, &tags(&["nope"]), all).await.is_empty());
    assert!(positions(store, &tags(&["x", "nope"]), all)
        .await
        .is_empty());
    // The in-memory matcher agrees with the database.
    let read = read_all(store, &Query::all(), all).await.unwrap();
    for q in [
        tags(&["x", "y"]),
        Query::item(QueryItem::types(["A", "B"]).and_tags(["y"])),
        tags(&["z"]).or(QueryItem::types(["A"])),
    ] {
        let mem: Vec<u64> = read
            .iter()
            .filter(|e| q.matches(&e.event))
            .map(|e| e.position.get())
            .collect();
        assert_eq!(mem, positions(store, &q, all).await);
    }
}

async fn malformed_queries_are_errors_not_match_all_or_nothing<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    for q in [
        Query::items([]),
        Query::item(QueryItem::default()),
        tags(&["x"]).or(QueryItem::default()),
        tags(&[""]),
        Query::item(QueryItem::types([""])),
        tags(&["a\0b"]),
    ] {
        let first = store.read(&q, ReadOptions::new()).next().await;
        match first {
            Some(Err(Error::Invalid(msg))) => {
                if q.items_slice()
                    .iter()
                    .all(|i| i.types.is_empty() && i.tags.is_empty())
                {
                    assert!(msg.contains("Query::all"), "{msg}");
                }
            }
            other => panic!("{q:?}: expected an invalid-query error, got {other:?}"),
        }
        let err = store
            .append(
                vec![ev("X", &[])],
                Some(AppendCondition::new(q.clone(), None)),
            )
            .await
            .expect_err("invalid condition query");
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }
    assert_eq!(store.head().await.unwrap(), Some(p(6)), "nothing written");
}

// ---- Read ----

async fn read_windows_directions_and_limits<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let all = Query::all();
    let o = ReadOptions::new;
    assert_eq!(
        positions(store, &all, o().after(p(2))).await,
        [3, 4, 5, 6],
        "after is exclusive"
    );
    assert_eq!(
        positions(store, &all, o().from(p(2))).await,
        [2, 3, 4, 5, 6],
        "from is inclusive"
    );
    assert_eq!(
        positions(store, &all, o().to(p(4))).await,
        [1, 2, 3, 4],
        "to is inclusive"
    );
    assert_eq!(
        positions(store, &all, o().after(p(1)).to(p(3))).await,
        [2, 3]
    );
    assert_eq!(
        positions(store, &all, o().backwards()).await,
        [6, 5, 4, 3, 2, 1]
    );
    // The window bounds positions the same way backwards.
    assert_eq!(
        positions(store, &all, o().after(p(2)).backwards()).await,
        [6, 5, 4, 3]
    );
    assert_eq!(
        positions(store, &all, o().from(p(2)).to(p(4)).backwards()).await,
        [4, 3, 2]
    );
    // limit counts returned events.
    assert_eq!(positions(store, &all, o().limit(2)).await, [1, 2]);
    assert_eq!(
        positions(store, &all, o().backwards().limit(2)).await,
        [6, 5]
    );
    assert_eq!(
        positions(store, &tags(&["x"]), o().backwards().limit(2)).await,
        [4, 2]
    );
    assert_eq!(
        positions(store, &tags(&["x"]), o().after(p(1)).limit(1)).await,
        [2]
    );
    assert!(
        positions(store, &all, o().limit(0)).await.is_empty(),
        "limit 0 returns nothing"
    );
    assert!(positions(store, &all, o().after(p(6))).await.is_empty());
    assert!(positions(store, &all, o().from(p(5)).to(p(4)))
        .await
        .is_empty());
    assert_eq!(positions(store, &all, o().to(p(100))).await.len(), 6);
}

async fn reads_page_through_large_results_in_order<S: EventStore + Sync>(store: &S) {
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let tag = if i % 3 == 0 { "three" } else { "other" };
            ev(if i % 2 == 0 { "Even" } else { "Odd" }, &[tag, "all"])
        })
        .collect();
    let _ = store.append(events, None).await.unwrap();
    let fwd = positions(store, &Query::all(), ReadOptions::new()).await;
    assert_eq!(fwd, (1..=100).collect::<Vec<_>>());
    let back = positions(store, &Query::all(), ReadOptions::new().backwards()).await;
    assert_eq!(back, (1..=100).rev().collect::<Vec<_>>());
    let threes = positions(store, &tags(&["three"]), ReadOptions::new()).await;
    assert_eq!(
        threes,
        (1..=100).filter(|i| (i - 1) % 3 == 0).collect::<Vec<_>>()
    );
    let q = tags(&["three"]).or(QueryItem::types(["Even"]));
    let expect: Vec<u64> = (1..=100u64)
        .filter(|i| (i - 1) % 3 == 0 || (i - 1) % 2 == 0)
        .collect();
    assert_eq!(positions(store, &q, ReadOptions::new()).await, expect);
    let mut rev = expect.clone();
    rev.reverse();
    assert_eq!(
        positions(store, &q, ReadOptions::new().backwards()).await,
        rev
    );
    assert_eq!(
        positions(store, &q, ReadOptions::new().backwards().limit(20)).await,
        rev[..20]
    );
    assert_eq!(
        positions(store, &q, ReadOptions::new().after(p(50)).limit(15)).await,
        expect
            .iter()
            .copied()
            .filter(|&x| x > 50)
            .take(15)
            .collect::<Vec<_>>()
    );
}

async fn a_read_is_a_snapshot_as_of_its_start<S: EventStore + Sync>(store: &S) {
    for (tag, backwards) in [("fwd", false), ("back", true)] {
        let old = store
            .append((0..5).map(|_| ev("Old", &[tag])).collect(), None)
            .await
            .unwrap()
            .position
            .get();
        let mut expect: Vec<u64> = (old - 4..=old).collect();
        let opts = if backwards {
            expect.reverse();
            ReadOptions::new().backwards()
        } else {
            ReadOptions::new()
        };
        let mut stream = store.read(&tags(&[tag]), opts);
        let first = stream.next().await.unwrap().unwrap();
        // Written while the read is being consumed (pages of 2): never returned.
        let _ = store
            .append((0..5).map(|_| ev("New", &[tag])).collect(), None)
            .await
            .unwrap();
        let mut got = vec![first.position.get()];
        while let Some(e) = stream.next().await {
            got.push(e.unwrap().position.get());
        }
        assert_eq!(got, expect);
        // A new read sees them.
        let now = positions(store, &tags(&[tag]), ReadOptions::new()).await;
        assert_eq!(now.len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn store_id_is_persistent() {
    let (store, db) = store().await;
    let id = store.store_id();
    assert!(!id.is_nil());
    db.migrate().await.unwrap();
    let again = Store::connect(db.url()).await.unwrap();
    assert_eq!(again.store_id(), id, "the same store keeps its id");
    let (other, _db2) = crate::common::store().await;
    assert_ne!(other.store_id(), id, "stores can be told apart");
}

// ---- Append ----

async fn empty_append_is_an_error_before_the_condition_is_checked<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    // The condition would fail (events match), and is even malformed: the
    // empty batch is reported first.
    for cond in [
        AppendCondition::new(Query::all(), None),
        AppendCondition::new(Query::items([]), None),
    ] {
        let err = store.append(vec![], Some(cond)).await.unwrap_err();
        assert!(
            err.to_string().contains("at least one event"),
            "unexpected: {err}"
        );
    }
    assert_eq!(store.head().await.unwrap(), Some(p(6)));
}

async fn condition_fails_only_for_matches_after_the_position<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let x = tags(&["x"]); // x at 1, 2, 4
                          // Matches at 4 > 3: fails, writes nothing, reports the conflict.
    let err = store
        .append(
            vec![ev("N", &["x"])],
            Some(AppendCondition::new(x.clone(), Some(p(3)))),
        )
        .await
        .unwrap_err();
    let c = err.conflict().expect("conflict");
    assert_eq!(c.position, p(4));
    assert_eq!(
        c.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(c.events[0].event.tags, ["x", "y", "z"]);
    assert_eq!(store.head().await.unwrap(), Some(p(6)), "nothing written");
    // No `after`: any match fails; conflicting events in position order.
    let err = store
        .append(
            vec![ev("N", &[])],
            Some(AppendCondition::new(x.clone(), None)),
        )
        .await
        .unwrap_err();
    let c = err.conflict().expect("conflict");
    assert_eq!(c.position, p(4));
    assert_eq!(
        c.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    // Matches only at or before `after`: succeeds.
    let ok = store
        .append(
            vec![ev("N", &["x"])],
            Some(AppendCondition::new(x.clone(), Some(p(4)))),
        )
        .await
        .unwrap();
    assert_eq!(ok.position, p(7));
    // A query nothing matches: succeeds without after.
    let ok = store
        .append(
            vec![ev("N", &[])],
            Some(AppendCondition::new(tags(&["none"]), None)),
        )
        .await
        .unwrap();
    assert_eq!(ok.position, p(8));
    // Types-only and all queries as conditions.
    let err = store
        .append(
            vec![ev("N", &[])],
            Some(AppendCondition::new(
                Query::item(QueryItem::types(["C"])),
                Some(p(5)),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(err.conflict().unwrap().position, p(6));
    let err = store
        .append(
            vec![ev("N", &[])],
            Some(AppendCondition::new(Query::all(), Some(p(7)))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.conflict().unwrap().position, p(8));
    assert!(store
        .append(
            vec![ev("N", &[])],
            Some(AppendCondition::new(Query::all(), Some(p(8))))
        )
        .await
        .is_ok());
}

async fn conflict_reports_earliest_events_capped_and_the_latest_position<S: EventStore + Sync>(
    store: &S,
) {
    let _ = store
        .append((0..150).map(|_| ev("E", &["hot"])).collect(), None)
        .await
        .unwrap();
    let err = store
        .append(
            vec![ev("E", &["hot"])],
            Some(AppendCondition::new(tags(&["hot"]), Some(p(10)))),
        )
        .await
        .unwrap_err();
    let c = err.conflict().unwrap();
    assert_eq!(c.position, p(150), "latest conflicting position");
    assert_eq!(c.events.len(), dcbstore::append::CONFLICT_EVENTS_CAP);
    assert_eq!(
        c.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        (11..=110).collect::<Vec<_>>()
    );
}

async fn several_guards_fail_when_any_fails<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    // Cart decided on three products read at three positions.
    let cond = |a, b, c| {
        AppendCondition::new(tags(&["x"]), Some(p(a)))
            .and(tags(&["y"]), Some(p(b)))
            .and(Query::item(QueryItem::types(["C"])), Some(p(c)))
    };
    let err = store
        .append(vec![ev("N", &[])], Some(cond(4, 4, 5)))
        .await
        .unwrap_err();
    assert_eq!(
        err.conflict().unwrap().position,
        p(6),
        "only the third guard fails"
    );
    let err = store
        .append(vec![ev("N", &[])], Some(cond(3, 1, 6)))
        .await
        .unwrap_err();
    let c = err.conflict().unwrap();
    assert_eq!(c.position, p(4));
    assert_eq!(
        c.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        [2, 3, 4],
        "union of every failing guard's events, in order"
    );
    assert_eq!(store.head().await.unwrap(), Some(p(6)));
    let ok = store
        .append(vec![ev("N", &[])], Some(cond(4, 4, 6)))
        .await
        .unwrap();
    assert_eq!(ok.position, p(7));
}

async fn a_batch_is_never_checked_against_its_own_events<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let ok = store
        .append(
            vec![ev("A", &["x"]), ev("A", &["x"])],
            Some(AppendCondition::new(tags(&["x"]), Some(p(6)))),
        )
        .await
        .unwrap();
    assert_eq!(ok.position, p(8));
}

async fn idempotent_retry_by_id<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let batch = vec![ev("Paid", &["order:1"]), ev("Shipped", &["order:1"])];
    let cond = AppendCondition::new(tags(&["order:1"]), None);
    let first = store
        .append(batch.clone(), Some(cond.clone()))
        .await
        .unwrap();
    assert_eq!(first.position, p(8));
    let _ = store.append(vec![ev("Other", &[])], None).await.unwrap();
    // The retry would now violate its own condition; it is recognised first.
    let again = store.append(batch.clone(), Some(cond)).await.unwrap();
    assert_eq!(again.position, p(8), "reports the original positions");
    assert!(again.already_stored);
    assert_eq!(
        store.head().await.unwrap(),
        Some(p(9)),
        "nothing new written"
    );
    // Tag order and duplicates do not make content different.
    let mut reordered = batch.clone();
    reordered[0].tags = vec!["order:1".into(), "order:1".into()];
    assert!(store.append(reordered, None).await.unwrap().already_stored);

    // Same id, different content: an error naming the id; nothing written.
    let mut changed = batch.clone();
    changed[1].data = json!({"different": true});
    let err = store.append(changed, None).await.unwrap_err();
    match &err {
        Error::IdConflict { id, message } => {
            assert_eq!(*id, batch[1].id);
            assert!(message.contains(&batch[1].id.to_string()), "{message}");
        }
        other => panic!("expected IdConflict, got {other}"),
    }
    assert!(err.to_string().contains(&batch[1].id.to_string()));
    // Partly stored: an error too, not a half append.
    let partial = vec![batch[0].clone(), ev("New", &[])];
    let err = store.append(partial, None).await.unwrap_err();
    assert!(
        matches!(err, Error::IdConflict { id, .. } if id == batch[0].id),
        "{err}"
    );
    // The same id twice in one append.
    let dup = ev("D", &[]);
    let err = store
        .append(vec![dup.clone(), dup], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(store.head().await.unwrap(), Some(p(9)));
}

async fn invalid_events_are_rejected_and_nothing_is_written<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    let good = ev("Good", &["t"]);
    let cases: Vec<(Event, &str)> = vec![
        (ev("", &[]), "type must not be empty"),
        (ev("A", &["ok", ""]), "tag must not be empty"),
        (ev("A\0B", &[]), "NUL"),
        (ev("A", &["t\0"]), "NUL"),
        (Event::new("A", json!({"s": "nul\u{0}here"})), "NUL"),
        (Event::new("A", json!({"k\u{0}": 1})), "NUL"),
        (
            Event::new("A", json!(1))
                .with_metadata(json!({"m": ["x\u{0}"]}).as_object().cloned().unwrap()),
            "NUL",
        ),
    ];
    for (bad, what) in cases {
        let err = store
            .append(vec![good.clone(), bad.clone()], None)
            .await
            .expect_err("must be rejected");
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(
            err.to_string().contains(what),
            "{err} should mention {what}"
        );
        assert!(
            err.to_string().contains("event 2"),
            "names the event: {err}"
        );
    }
    assert_eq!(store.head().await.unwrap(), Some(p(6)), "nothing written");
}

async fn values_that_could_not_be_read_back_are_rejected_up_front<S: EventStore + Sync>(store: &S) {
    seed(store).await;
    // Nesting beyond what JSON decoders read back.
    let mut deep = json!(1);
    for _ in 0..(dcbstore::limits::MAX_JSON_DEPTH + 1) {
        deep = json!([deep]);
    }
    let err = store
        .append(vec![Event::new("Deep", deep)], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nested deeper"), "{err}");
    let mut ok = json!(1);
    for _ in 0..(dcbstore::limits::MAX_JSON_DEPTH - 1) {
        ok = json!([ok]);
    }
    let _ = store
        .append(vec![Event::new("Deep", ok)], None)
        .await
        .unwrap();
    // A position no database can hold.
    let err = store
        .append(
            vec![ev("X", &[])],
            Some(AppendCondition::new(Query::all(), Some(p(u64::MAX)))),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(store.head().await.unwrap(), Some(p(7)));
    let all = read_all(store, &Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 7, "everything stored reads back");
}

/// A guard whose `after` is beyond the head is valid, not an error: nothing
/// exists after it, so it admits the append (the DCB conformance suites
/// require this).
async fn a_guard_after_the_head_admits_the_append<S: EventStore + Sync>(store: &S) {
    let a = store.append(vec![ev("A", &["t"])], None).await.unwrap();
    let beyond = SequencePosition::new(a.position.get() + 1000);
    let guard = AppendCondition::new(Query::item(QueryItem::tags(["t"])), Some(beyond));
    let b = store
        .append(vec![ev("B", &["t"])], Some(guard.clone()))
        .await
        .unwrap();
    assert_eq!(b.position.get(), a.position.get() + 1);
    // Several guards, one beyond the head, one that is not violated.
    let both = guard.and(Query::item(QueryItem::tags(["t"])), Some(b.position));
    let _ = store
        .append(vec![ev("C", &["t"])], Some(both))
        .await
        .unwrap();
}

/// On a new server history (as after a failover or a restore: here a
/// recorded epoch of another timeline), the next position jumps above every
/// position an earlier history could have handed out, and goes on from
/// there; a guard read before the change sees the new events after it.
#[tokio::test(flavor = "multi_thread")]
async fn positions_jump_above_an_earlier_server_history() {
    let (store, db) = store().await;
    let before = store.append(vec![ev("A", &["t"])], None).await.unwrap();
    let admin = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    // The log as a restored copy would have it: its latest epoch is not this
    // server's history.
    admin
        .batch_execute(
            "INSERT INTO dcbstore.epochs (epoch, timeline, system_identifier, base, resumed_after)
             SELECT max(epoch) + 1, -1, 0, max(base), max(base) FROM dcbstore.epochs",
        )
        .await
        .unwrap();
    let stale = SequencePosition::new(before.position.get() + 10);
    let jumped = store.append(vec![ev("B", &["t"])], None).await.unwrap();
    assert!(jumped.position.get() > 1 << 40, "{}", jumped.position);
    let next = store.append(vec![ev("C", &["u"])], None).await.unwrap();
    assert_eq!(next.position.get(), jumped.position.get() + 1);
    let err = store
        .append(
            vec![ev("D", &["t"])],
            Some(AppendCondition::new(
                Query::item(QueryItem::tags(["t"])),
                Some(stale),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.conflict().expect("a conflict").position,
        jumped.position
    );
    let epochs: i64 = admin
        .query_one("SELECT count(*) FROM dcbstore.epochs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        epochs, 3,
        "the first epoch, the foreign one, this server's new one"
    );
}

/// The first append on a new server history may write nothing (a conflict,
/// an idempotent retry): the epoch it began still stands, and the appends
/// after it go on above that epoch's base, never from the old head, whose
/// next positions an earlier history may have handed out. Alone, then with
/// two requests at once.
#[tokio::test(flavor = "multi_thread")]
async fn an_epoch_begun_by_an_append_that_wrote_nothing_still_moves_positions_up() {
    let (store, db) = store().await;
    let first = store.append(vec![ev("A", &["t"])], None).await.unwrap();
    let admin = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    let foreign =
        "INSERT INTO dcbstore.epochs (epoch, timeline, system_identifier, base, resumed_after)
                   SELECT max(epoch) + 1, -1, 0, max(base), max(base) FROM dcbstore.epochs";
    admin.batch_execute(foreign).await.unwrap();
    // Refused by its guard (event A matches): nothing written, the epoch begun.
    let refused = store
        .append(
            vec![ev("B", &["t"])],
            Some(AppendCondition::new(tags(&["t"]), None)),
        )
        .await
        .unwrap_err();
    assert!(refused.conflict().is_some(), "{refused}");
    let next = store.append(vec![ev("C", &["u"])], None).await.unwrap();
    assert!(
        next.position.get() > 1 << 40,
        "after {}, the next append took {}: a position an earlier history may have handed out",
        first.position,
        next.position
    );
    // The same again with two requests at once (one batch when the writer
    // groups them).
    admin.batch_execute(foreign).await.unwrap();
    let (a, b) = futures::join!(
        store.append(
            vec![ev("D", &["t"])],
            Some(AppendCondition::new(tags(&["t"]), None))
        ),
        store.append(
            vec![ev("E", &["u"])],
            Some(AppendCondition::new(tags(&["u"]), None))
        ),
    );
    assert!(a.is_err() && b.is_err(), "both guards match: {a:?} {b:?}");
    let last = store.append(vec![ev("F", &["v"])], None).await.unwrap();
    assert!(
        last.position.get() >= 2 << 40,
        "after {}, the next append took {}",
        next.position,
        last.position
    );
}

/// An event a reader cannot decode (written before the database refused
/// such values: here inserted by the owner, as an older release let any
/// role do) fails only itself: a read yields an error for it that names its
/// position, is not transient and says how to redact it, and goes on with
/// the events after it; `read_raw`, the CLI's `read` and a subscription go
/// on too, and a decision whose boundary holds it is refused with that
/// error.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_a_reader_cannot_decode_fails_only_itself_and_names_its_position() {
    let (store, db) = store().await;
    let owner = dcbstore::connection::connect(db.options().unwrap())
        .await
        .unwrap();
    let _ = store
        .append(vec![ev("Before", &["t"])], None)
        .await
        .unwrap();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (position, data) in [(2i64, r#"{"n": 1e400}"#.to_string()), (3, deep)] {
        owner
            .execute(
                "WITH e AS (INSERT INTO dcbstore.events (position, id, type, data, tags)
                            VALUES ($1, gen_random_uuid(), 'Legacy', $2::text::jsonb, '{t}') RETURNING position)
                 INSERT INTO dcbstore.event_tags (tag, position, type) SELECT 't', position, 'Legacy' FROM e",
                &[&position, &data],
            )
            .await
            .unwrap();
    }
    let _ = store.append(vec![ev("After", &["t"])], None).await.unwrap();

    for query in [Query::all(), Query::item(QueryItem::tags(["t"]))] {
        let items: Vec<_> = store.read(&query, ReadOptions::new()).collect().await;
        assert_eq!(items.len(), 4, "every event has its item");
        assert_eq!(items[0].as_ref().unwrap().position.get(), 1);
        assert_eq!(items[3].as_ref().unwrap().position.get(), 4);
        for (i, p) in [(1, 2), (2, 3)] {
            let err = items[i].as_ref().unwrap_err();
            assert_eq!(err.position(), Some(SequencePosition::new(p)), "{err}");
            assert!(!err.is_transient(), "{err}");
            assert!(
                err.to_string().contains(&format!("dcbstore redact {p}")),
                "{err}"
            );
        }
    }
    // As stored: every event, the number with all its digits.
    let raw: Vec<_> = store
        .read_raw(&Query::all(), ReadOptions::new())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(raw.len(), 4);
    assert_eq!(raw[1].data.get(), format!("{{\"n\":1{}}}", "0".repeat(400)));
    // A subscription yields the error in the event's place and goes on.
    let mut follow = store.subscribe(&Query::all(), dcbstore::SubscribeOptions::new());
    let mut seen = Vec::new();
    for _ in 0..4 {
        let item = tokio::time::timeout(std::time::Duration::from_secs(20), follow.next())
            .await
            .expect("an item")
            .expect("the subscription goes on");
        seen.push(item.map_or_else(
            |e| e.position().map(|p| -(p.get() as i64)),
            |e| Some(e.position.get() as i64),
        ));
    }
    assert_eq!(seen, [Some(1), Some(-2), Some(-3), Some(4)]);
    // A decision cannot be made on a boundary it cannot read.
    let err = store
        .read_boundary(&Query::item(QueryItem::tags(["t"])), ReadOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.position(), Some(SequencePosition::new(2)));
    // The CLI prints every event (as stored), and redacting fixes the read.
    let out = crate::common::cli::dcbstore()
        .args(["--database-url", db.url(), "read"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    for p in [2, 3] {
        let _ = dcbstore::roles::redact(
            &owner,
            SequencePosition::new(p),
            &json!(null),
            "unreadable",
            None,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap()
            .len(),
        4
    );
}

crate::common::on_every_store! {
    event_fields_round_trip_and_tags_are_a_set,
    generated_ids_are_v7_and_unique,
    positions_start_at_one_are_consecutive_in_a_batch_and_increase,
    query_matching_rules,
    malformed_queries_are_errors_not_match_all_or_nothing,
    read_windows_directions_and_limits,
    reads_page_through_large_results_in_order with page_size 7,
    a_read_is_a_snapshot_as_of_its_start with page_size 2,
    empty_append_is_an_error_before_the_condition_is_checked,
    condition_fails_only_for_matches_after_the_position,
    conflict_reports_earliest_events_capped_and_the_latest_position,
    several_guards_fail_when_any_fails,
    a_batch_is_never_checked_against_its_own_events,
    idempotent_retry_by_id,
    invalid_events_are_rejected_and_nothing_is_written,
    values_that_could_not_be_read_back_are_rejected_up_front,
    a_guard_after_the_head_admits_the_append,
}
