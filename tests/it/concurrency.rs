//! Concurrency and visibility, proven by racing real connections.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{ev, store};
use dcbstore::{
    AppendCondition, Error, EventStore, Query, QueryItem, ReadOptions, SequencePosition, Store,
};
use dcbstore_testing::TestDatabase;
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

fn tags(q: &[&str]) -> Query {
    Query::item(QueryItem::tags(q.iter().copied()))
}

async fn connect(db: &TestDatabase) -> Store {
    Store::builder(db.url())
        .unwrap()
        .pool_size(4)
        .build()
        .await
        .unwrap()
}

/// A writer in its own transaction that has called `dcbstore.append(events)`
/// and stays open, holding the append lock; and what the append returned.
async fn open_writer(
    db: &TestDatabase,
    events: serde_json::Value,
) -> (tokio_postgres::Client, serde_json::Value) {
    let slow = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    slow.batch_execute("BEGIN").await.unwrap();
    let result = slow
        .query_one("SELECT dcbstore.append($1)", &[&events])
        .await
        .unwrap()
        .get(0);
    (slow, result)
}

async fn last_position(store: &Store, q: &Query) -> Option<SequencePosition> {
    store
        .read_all(q, ReadOptions::new().backwards().limit(1))
        .await
        .unwrap()
        .first()
        .map(|e| e.position)
}

/// Writers that all decided from the same state race on one boundary:
/// exactly one wins each round, whether they share a process's batching
/// writer or come through separate pools (as separate processes would).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_on_one_boundary_exactly_one_wins_each_round() {
    let (shared, db) = store().await;
    const WRITERS: usize = 8;
    const ROUNDS: usize = 25;
    let mut stores = Vec::new();
    for i in 0..WRITERS {
        // Half share one Store (one batching writer), half have their own.
        stores.push(if i % 2 == 0 {
            shared.clone()
        } else {
            connect(&db).await
        });
    }
    let boundary = tags(&["account:1"]);
    for round in 0..ROUNDS {
        let after = last_position(&shared, &boundary).await;
        let barrier = Arc::new(Barrier::new(WRITERS));
        let tasks = stores.iter().enumerate().map(|(w, s)| {
            let (s, barrier, q) = (s.clone(), barrier.clone(), boundary.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                s.append(
                    vec![ev("Withdrawn", &["account:1"]).with_tag(format!("writer:{w}"))],
                    Some(AppendCondition::new(q, after)),
                )
                .await
            })
        });
        let results: Vec<_> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                let c = e.conflict().unwrap_or_else(|| panic!("round {round}: {e}"));
                assert_eq!(c.events.len(), 1, "the winner's event is the conflict");
            }
        }
    }
    let all = shared
        .read_all(&boundary, ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), ROUNDS);
}

/// A writer's transaction is held open (it holds the append lock) while other
/// writers try to commit: they wait, and no reader, read(after) loop or head()
/// ever sees a position above an uncommitted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_open_writer_is_never_skipped() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![ev("Before", &["t"])], None)
        .await
        .unwrap();

    // The slow writer: a raw transaction calling the SQL API, not committed.
    let (slow, slow_pos) =
        open_writer(&db, serde_json::json!([{"type": "Slow", "tags": ["t"]}])).await;
    assert_eq!(slow_pos["position"], 2);

    // A follower reading with read(after) in a loop the whole time.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut after = SequencePosition::new(0);
            let mut seen = Vec::new();
            while seen.len() < 8 {
                let page = store
                    .read_all(&Query::all(), ReadOptions::new().after(after))
                    .await
                    .unwrap();
                for e in page {
                    seen.push(e.position.get());
                    after = e.position;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };

    // Later writers, from this process and from another pool.
    let other = connect(&db).await;
    let mut later = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        later.push(tokio::spawn(async move {
            s.append(vec![ev("Later", &["t"])], None).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(1)));
        let visible = store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(
            visible.len(),
            1,
            "nothing past the open transaction is visible"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        later.iter().all(|t| !t.is_finished()),
        "later writers wait for the open one"
    );

    slow.batch_execute("COMMIT").await.unwrap();
    let mut positions: Vec<u64> = join_all(later)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().position.get())
        .collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        [3, 4, 5, 6, 7, 8],
        "later writers come after the slow one"
    );
    let seen = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("follower finishes")
        .unwrap();
    assert_eq!(
        seen,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "the follower skipped nothing"
    );
}

/// An append checks the log before it queues for the append lock, and under
/// the lock only what was committed meanwhile. A conflicting event committed
/// while the append waits for the lock is caught (for tag, type, multi-tag
/// and "all" queries, through the hash-joined window and through the
/// per-guard fallback for a large window), and a non-matching one is not a
/// false conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflict_committed_while_waiting_for_the_lock_is_caught() {
    let cases: Vec<(&str, Query, usize, bool)> = vec![
        ("tag", tags(&["acc:1"]), 1, true),
        ("two tags", tags(&["acc:1", "region:eu"]), 1, true),
        (
            "two tags, one absent",
            tags(&["acc:1", "region:us"]),
            1,
            false,
        ),
        ("type", Query::item(QueryItem::types(["Slow"])), 1, true),
        (
            "type and tag",
            Query::item(QueryItem::types(["Other"]).and_tags(["acc:1"])),
            1,
            false,
        ),
        ("all", Query::all(), 1, true),
        ("unrelated tag", tags(&["acc:2"]), 1, false),
        ("tag, large window", tags(&["acc:1"]), 10_050, true),
        (
            "unrelated tag, large window",
            tags(&["acc:2"]),
            10_050,
            false,
        ),
    ];
    for (name, query, slow_events, conflicts) in cases {
        let (store, db) = store().await;
        // The large windows take one append of more events than the
        // default limit allows.
        dcbstore::connection::connect(&db.config().unwrap())
            .await
            .unwrap()
            .batch_execute("UPDATE dcbstore.limits SET max_events_per_append = 20000")
            .await
            .unwrap();
        let first = store
            .append(vec![ev("Before", &["x"])], None)
            .await
            .unwrap();

        // The slow writer holds the append lock with its events uncommitted;
        // the last of them matches the case's query when it should.
        let events: Vec<serde_json::Value> = (0..slow_events)
            .map(|i| {
                if i + 1 == slow_events {
                    serde_json::json!({"type": "Slow", "tags": ["acc:1", "region:eu"]})
                } else {
                    serde_json::json!({"type": "Filler", "tags": ["filler"]})
                }
            })
            .collect();
        let (slow, _) = open_writer(&db, serde_json::Value::Array(events)).await;

        let waiting = {
            let (store, query) = (store.clone(), query.clone());
            tokio::spawn(async move {
                store
                    .append(
                        vec![ev("Decided", &["acc:1"])],
                        Some(AppendCondition::new(query, Some(first.position))),
                    )
                    .await
            })
        };
        // Until the append waits for the lock (its pre-check already done).
        let watcher = dcbstore::connection::connect(&db.config().unwrap())
            .await
            .unwrap();
        let mut waited = false;
        for _ in 0..500 {
            let n: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'relation' AND l.relation = 'dcbstore.append_lock'::regclass
                        AND NOT l.granted AND a.datname = current_database()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                waited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(waited, "{name}: the append waits for the lock");
        slow.batch_execute("COMMIT").await.unwrap();

        let result = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the append finishes once the lock is released")
            .unwrap();
        let slow_last = 1 + slow_events as u64;
        if conflicts {
            let err = result.expect_err(name);
            let c = err
                .conflict()
                .unwrap_or_else(|| panic!("{name}: not a conflict: {err}"));
            assert_eq!(c.position.get(), slow_last, "{name}");
        } else {
            let appended = result.unwrap_or_else(|e| panic!("{name}: false conflict: {e}"));
            assert_eq!(appended.position.get(), slow_last + 1, "{name}");
        }
    }
}

/// Same, for a transaction that is rolled back: the position it took is
/// reused or skipped, never half-seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolled_back_writer_leaves_no_trace() {
    let (store, db) = store().await;
    let (slow, _) = open_writer(&db, serde_json::json!([{"type": "Doomed"}])).await;
    let waiting = {
        let s = store.clone();
        tokio::spawn(async move { s.append(vec![ev("Kept", &[])], None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.head().await.unwrap(), None);
    slow.batch_execute("ROLLBACK").await.unwrap();
    let kept = waiting.await.unwrap().unwrap();
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].event.event_type, "Kept");
    assert_eq!(all[0].position, kept.position);
}

#[derive(Debug, Clone)]
struct Decision {
    query: Query,
    after: Option<SequencePosition>,
    position: SequencePosition,
}

/// Random conditional appends from many tasks on overlapping boundaries;
/// afterwards the log itself proves each success's condition held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_conditional_appends_are_linearizable() {
    let (store, db) = store().await;
    let other = connect(&db).await;
    const TASKS: usize = 12;
    const OPS: usize = 25;
    let tag_pool = ["a", "b", "c", "d", "e"];
    let type_pool = ["X", "Y"];
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks = (0..TASKS).map(|t| {
        let s = if t % 3 == 0 {
            other.clone()
        } else {
            store.clone()
        };
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
            let mut decisions = Vec::new();
            let mut conflicts = 0;
            barrier.wait().await;
            for _ in 0..OPS {
                let pick =
                    |rng: &mut rand::rngs::StdRng| tag_pool[rng.gen_range(0..tag_pool.len())];
                let query = match rng.gen_range(0..4) {
                    0 => Query::item(
                        QueryItem::types([type_pool[rng.gen_range(0..2)]])
                            .and_tags([pick(&mut rng)]),
                    ),
                    1 => tags(&[pick(&mut rng)]).or(QueryItem::tags([pick(&mut rng)])),
                    2 => Query::item(QueryItem::types([type_pool[rng.gen_range(0..2)]])),
                    _ => tags(&[pick(&mut rng), pick(&mut rng)]),
                };
                let after = last_position(&s, &query).await;
                if rng.gen_bool(0.5) {
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..5))).await;
                }
                let event = ev(
                    type_pool[rng.gen_range(0..2)],
                    &[pick(&mut rng), pick(&mut rng)],
                );
                match s
                    .append(
                        vec![event],
                        Some(AppendCondition::new(query.clone(), after)),
                    )
                    .await
                {
                    Ok(a) => decisions.push(Decision {
                        query,
                        after,
                        position: a.position,
                    }),
                    Err(Error::Conflict(c)) => {
                        conflicts += 1;
                        // A reported conflict is real: it matches and is after `after`.
                        for e in &c.events {
                            assert!(query.matches(&e.event));
                            assert!(Some(e.position) > after);
                        }
                        assert_eq!(Some(c.position), c.events.iter().map(|e| e.position).max());
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (decisions, conflicts)
        })
    });
    let mut decisions = Vec::new();
    let mut conflicts = 0;
    for r in join_all(tasks).await {
        let (d, c) = r.unwrap();
        decisions.extend(d);
        conflicts += c;
    }
    let log = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(
        log.len(),
        decisions.len(),
        "exactly the successes are in the log"
    );
    for d in &decisions {
        let violating: Vec<u64> = log
            .iter()
            .filter(|e| Some(e.position) > d.after && e.position < d.position)
            .filter(|e| d.query.matches(&e.event))
            .map(|e| e.position.get())
            .collect();
        assert!(
            violating.is_empty(),
            "{d:?} succeeded although {violating:?} matched"
        );
    }
    assert!(
        conflicts > 0 && !decisions.is_empty(),
        "the workload must contend: {conflicts} conflicts, {} successes",
        decisions.len()
    );
}

/// Appends whose queries cannot match each other's events never fail because
/// of each other, however many race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_disjoint_boundaries_never_conflict() {
    let (store, db) = store().await;
    let other = connect(&db).await;
    const WRITERS: usize = 48;
    const EACH: usize = 10;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks = (0..WRITERS).map(|w| {
        let s = if w % 4 == 0 {
            other.clone()
        } else {
            store.clone()
        };
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let tag = format!("cart:{w}");
            let q = tags(&[&tag]);
            let mut after = None;
            barrier.wait().await;
            let mut failures = 0;
            for _ in 0..EACH {
                match s
                    .append(
                        vec![ev("ItemAdded", &[&tag])],
                        Some(AppendCondition::new(q.clone(), after)),
                    )
                    .await
                {
                    Ok(a) => after = Some(a.position),
                    Err(e) => {
                        failures += 1;
                        eprintln!("{tag}: {e}");
                    }
                }
            }
            failures
        })
    });
    let failures: usize = join_all(tasks).await.into_iter().map(|r| r.unwrap()).sum();
    assert_eq!(failures, 0);
    assert_eq!(
        store.head().await.unwrap(),
        Some(SequencePosition::new((WRITERS * EACH) as u64))
    );
}

/// Concurrent appends of one process share transactions, but each request
/// keeps its own outcome: a conflicting one does not fail the others, and
/// requests of one batch see each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_requests_keep_their_own_outcomes() {
    let (store, _db) = store().await;
    let _ = store
        .append(vec![ev("Taken", &["taken"])], None)
        .await
        .unwrap();
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(40));
        let tasks = (0..40).map(|i| {
            let (s, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let cond = match i % 4 {
                    // Always fails: "taken" exists after 0.
                    0 => Some(AppendCondition::new(tags(&["taken"]), None)),
                    // Each of these races its twin on a fresh boundary.
                    1 | 2 => Some(AppendCondition::new(
                        tags(&[&format!("r{round}-pair{}", i / 4)]),
                        None,
                    )),
                    _ => None,
                };
                (
                    i % 4,
                    s.append(vec![ev("E", &[&format!("r{round}-pair{}", i / 4)])], cond)
                        .await,
                )
            })
        });
        let results: Vec<_> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        for (kind, r) in &results {
            match kind {
                0 => assert!(r.as_ref().unwrap_err().conflict().is_some()),
                3 => assert!(r.is_ok(), "{r:?}"),
                _ => {}
            }
        }
        // Each pair: one of kinds 1 and 2 may win; the unconditional kind 3
        // writes the same tag, so at most one guarded twin wins per pair.
        for pair in 0..10 {
            let guarded_wins = results
                .iter()
                .enumerate()
                .filter(|(i, (k, r))| i / 4 == pair && (*k == 1 || *k == 2) && r.is_ok())
                .count();
            assert!(
                guarded_wins <= 1,
                "round {round} pair {pair}: {guarded_wins} guarded wins"
            );
        }
    }
}

/// `recorded_at` is taken under the append lock, so it never goes back along
/// positions: a transaction that began earlier but appended later records a
/// later time, and many writers racing leave it non-decreasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recorded_at_never_goes_back_along_positions() {
    let (store, db) = store().await;
    // Deterministic: A's transaction starts first, B appends and commits,
    // then A appends (after B in position order).
    let a = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    let b = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    a.batch_execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    b.query_one("SELECT dcbstore.append('[{\"type\": \"B\"}]')", &[])
        .await
        .unwrap();
    a.query_one("SELECT dcbstore.append('[{\"type\": \"A\"}]')", &[])
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    // Racing writers: several stores, each with its own writer.
    let stores: Vec<Store> = futures::future::join_all(
        (0..4).map(|_| async { Store::builder(db.url()).unwrap().build().await.unwrap() }),
    )
    .await;
    let tasks: Vec<_> = stores
        .into_iter()
        .flat_map(|s| (0..8).map(move |t| (s.clone(), t)))
        .map(|(s, t)| {
            tokio::spawn(async move {
                for i in 0..10 {
                    let _ = s
                        .append(vec![ev("Raced", &[&format!("w{t}-{i}")])], None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let events = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(events.len(), 2 + 4 * 8 * 10);
    for pair in events.windows(2) {
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "recorded_at goes back from position {} ({}) to {} ({})",
            pair[0].position,
            pair[0].recorded_at,
            pair[1].position,
            pair[1].recorded_at
        );
    }
}

/// A batch the database refuses as a whole is sent again request by
/// request: only the request at fault fails, its neighbours are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_fails_alone_when_the_database_refuses_its_batch() {
    let (store, db) = store().await;
    let admin = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    // A rule of the database that the client does not know about.
    admin
        .batch_execute(
            "CREATE FUNCTION public.no_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.type = 'Poison' THEN RAISE EXCEPTION 'poison is refused'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER no_poison BEFORE INSERT ON dcbstore.events
                 FOR EACH ROW EXECUTE FUNCTION public.no_poison();",
        )
        .await
        .unwrap();
    // Hold the append lock so that the appends queue up and go as one batch.
    let (holder, _) = open_writer(&db, serde_json::json!([{"type": "First"}])).await;
    let blocked = tokio::spawn({
        let store = store.clone();
        async move { store.append(vec![ev("Blocked", &[])], None).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let queued: Vec<_> = ["Good", "Good", "Poison", "Good", "Good"]
        .into_iter()
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move { (t, store.append(vec![ev(t, &[])], None).await) })
        })
        .collect();
    // Long enough for every append to be queued behind the blocked one (a
    // mutation run showed the test fails when the batch is not resent).
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let _ = blocked.await.unwrap().unwrap();
    for q in queued {
        let (t, result) = q.await.unwrap();
        match (t, result) {
            ("Poison", Err(e)) => assert!(e.to_string().contains("poison"), "{e}"),
            ("Poison", Ok(a)) => panic!("poison stored at {}", a.position),
            (_, r) => {
                let _ = r.unwrap();
            }
        }
    }
    let types: Vec<String> = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.event_type)
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "Good").count(),
        4,
        "{types:?}"
    );
    assert!(!types.iter().any(|t| t == "Poison"));
}

/// Several writers and a byte cap that holds one append per batch: a
/// request carried over to the next batch is sent even while another writer
/// waits, idle, on the queue, and no append arrives after it.
#[tokio::test]
async fn with_several_writers_no_carried_append_waits_for_another() {
    use dcbstore::limits::Limits;
    let (_, db) = store().await;
    let store = Store::builder(db.url())
        .unwrap()
        .pool_size(16)
        .writers(4)
        .limits(Limits {
            max_append_bytes: 64 * 1024,
            max_event_bytes: 64 * 1024,
            ..Limits::default()
        })
        .build()
        .await
        .unwrap();
    let big = |i: usize| {
        vec![
            dcbstore::Event::new("Big", serde_json::json!("x".repeat(40 * 1024)))
                .with_tag(format!("t{i}")),
        ]
    };
    // One writer busy with an append that waits for the lock.
    let (holder, _) = open_writer(&db, serde_json::json!([{"type": "First"}])).await;
    let blocked = tokio::spawn({
        let store = store.clone();
        async move { store.append(vec![ev("Blocked", &[])], None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Two big appends queued at once (this runtime has one thread: both are
    // in the queue before a writer runs): the writer that takes the first
    // carries the second, while another writer waits on the empty queue.
    let pair = {
        let store = store.clone();
        async move { tokio::join!(store.append(big(1), None), store.append(big(2), None)) }
    };
    let pair = tokio::spawn(pair);
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let _ = blocked.await.unwrap().unwrap();
    let (a, b) = tokio::time::timeout(Duration::from_secs(20), pair)
        .await
        .expect("the carried append is sent without a later append to wake a writer")
        .unwrap();
    let _ = (a.unwrap(), b.unwrap());
}
