//! The decide loop: reads by per-shape statements agree with the model and
//! with `dcbstore.read`, a boundary's `after` is exactly what its read saw,
//! conflicts carry the head, and `execute` retries from a conflict.

use crate::common::recording;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::{ev, store, store_with};
use dcbstore::projection::{execute_with, DecisionModel, Executed, Fold, Retry};
use dcbstore::{
    AppendCondition, Appended, Boundary, Error, Event, EventStore, Query, QueryItem, ReadOptions,
    SequencePosition, SequencedEvent, Store,
};
use futures::stream::BoxStream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn tag(t: &str) -> Query {
    Query::item(QueryItem::tags([t]))
}

const TYPES: &[&str] = &["A", "B", "C"];
const TAGS: &[&str] = &["x", "y", "z", "w"];

fn random_item(rng: &mut StdRng) -> QueryItem {
    let mut item = QueryItem::default();
    // Duplicates on purpose: the statement reads each term once.
    for _ in 0..rng.gen_range(0..3) {
        item.types.push(TYPES[rng.gen_range(0..TYPES.len())].into());
    }
    for _ in 0..rng.gen_range(0..4) {
        item.tags.push(TAGS[rng.gen_range(0..TAGS.len())].into());
    }
    if item.types.is_empty() && item.tags.is_empty() {
        item.tags.push(TAGS[rng.gen_range(0..TAGS.len())].into());
    }
    item
}

fn random_query(rng: &mut StdRng) -> Query {
    if rng.gen_ratio(1, 10) {
        return Query::all();
    }
    Query::items((0..rng.gen_range(1..4)).map(|_| random_item(rng)))
}

/// A random window: (after, to, backwards, limit), and the options saying it.
fn random_window(
    rng: &mut StdRng,
    head: u64,
) -> (u64, Option<u64>, bool, Option<u64>, ReadOptions) {
    let after = if rng.gen_bool(0.4) {
        rng.gen_range(0..=head + 2)
    } else {
        0
    };
    let to = rng.gen_bool(0.4).then(|| rng.gen_range(0..=head + 2));
    let backwards = rng.gen_bool(0.5);
    let limit = rng.gen_bool(0.5).then(|| rng.gen_range(0..12));
    let mut o = ReadOptions::new().after(SequencePosition::new(after));
    if let Some(t) = to {
        o = o.to(SequencePosition::new(t));
    }
    if backwards {
        o = o.backwards();
    }
    if let Some(n) = limit {
        o = o.limit(n);
    }
    (after, to, backwards, limit, o)
}

/// The positions `store` reads for `q` within `o`.
async fn positions(store: &Store, q: &Query, o: ReadOptions) -> Vec<u64> {
    store
        .read_all(q, o)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.get())
        .collect()
}

/// What a read must return, from the whole log in memory.
fn expected(
    all: &[SequencedEvent],
    q: &Query,
    after: u64,
    to: Option<u64>,
    backwards: bool,
    limit: Option<u64>,
) -> Vec<u64> {
    let mut v: Vec<u64> = all
        .iter()
        .filter(|e| q.matches(&e.event))
        .map(|e| e.position.get())
        .filter(|p| *p > after && to.is_none_or(|t| *p <= t))
        .collect();
    if backwards {
        v.reverse();
    }
    if let Some(n) = limit {
        v.truncate(n as usize);
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_of_random_queries_agree_with_the_model_and_with_the_sql_read() {
    // A small page size makes every read page, and the prefetch run.
    let (store, db) = store_with(|b| b.page_size(3)).await;
    let mut rng = StdRng::seed_from_u64(12);
    for _ in 0..60 {
        let n = rng.gen_range(1..4);
        let events: Vec<Event> = (0..n)
            .map(|_| {
                let t = TYPES[rng.gen_range(0..TYPES.len())];
                let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.gen_bool(0.4)).collect();
                ev(t, &tags)
            })
            .collect();
        let _ = store.append(events, None).await.unwrap();
    }
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    let head = all.last().unwrap().position.get();
    let client =
        dcbstore::connection::connect(&dcbstore::connection::parse_config(db.url()).unwrap())
            .await
            .unwrap();
    for case in 0..300 {
        let q = random_query(&mut rng);
        let (after, to, backwards, limit, o) = random_window(&mut rng, head);
        let want = expected(&all, &q, after, to, backwards, limit);
        let got = positions(&store, &q, o).await;
        assert_eq!(got, want, "case {case}: {q:?} {o:?}");
        let sql: Vec<u64> = client
            .query(
                "SELECT position FROM dcbstore.read($1, $2, $3, $4, $5)",
                &[
                    &q.to_json(),
                    &(after as i64),
                    &to.map(|t| t as i64),
                    &backwards,
                    &limit.map(|l| l as i64),
                ],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect();
        assert_eq!(sql, want, "case {case}, dcbstore.read: {q:?} {o:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_stay_correct_past_the_statement_cache_and_for_large_queries() {
    // One connection: every shape is prepared on it, more than it keeps.
    let (store, _db) = store_with(|b| b.pool_size(1)).await;
    for i in 0..30 {
        let tags: Vec<String> = (0..=(i % 5)).map(|k| format!("t{k}")).collect();
        let _ = store
            .append(
                vec![Event::new(format!("T{}", i % 7), json!({})).with_tags(tags)],
                None,
            )
            .await
            .unwrap();
    }
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    // 600 shapes, each once: the binary digits of n + 1 say how many tags
    // (one or two) each item has; both directions.
    for shape in 0..600usize {
        let (n, backwards) = (shape / 2 + 1, shape % 2 == 1);
        let bits = usize::BITS - n.leading_zeros();
        let q = Query::items((0..bits).map(|k| {
            let tags = 1 + (n >> k) % 2;
            QueryItem::tags((0..tags).map(|j| format!("t{}", (k as usize + j) % 5)))
        }));
        let o = if backwards {
            ReadOptions::new().backwards()
        } else {
            ReadOptions::new()
        };
        let got = positions(&store, &q, o).await;
        let mut want: Vec<u64> = all
            .iter()
            .filter(|e| q.matches(&e.event))
            .map(|e| e.position.get())
            .collect();
        if backwards {
            want.reverse();
        }
        assert_eq!(got, want, "shape {shape}");
    }
    // More parameters than a kept statement takes: sent with its types, planned once.
    let wide =
        Query::items((0..100).map(|k| QueryItem::types([format!("T{}", k % 7), format!("U{k}")])));
    let got = store.read_all(&wide, ReadOptions::new()).await.unwrap();
    assert_eq!(got.len(), all.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boundary_answers_the_head_it_was_read_at() {
    let (store, _db) = store().await;
    let empty = store
        .read_boundary(&tag("x"), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(
        empty,
        Boundary {
            events: vec![],
            after: None
        }
    );
    for t in [&["x"][..], &["y"], &["x"], &["y"]] {
        let _ = store.append(vec![ev("A", t)], None).await.unwrap();
    }
    let seen = store
        .read_boundary(&tag("x"), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(
        seen.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    // The head, not the last event read: events of other boundaries since
    // the last match do not make the next append conflict.
    assert_eq!(seen.after, Some(SequencePosition::new(4)));
    let cond = AppendCondition::new(tag("x"), seen.after);
    let _ = store
        .append(vec![ev("A", &["x"])], Some(cond.clone()))
        .await
        .unwrap();
    let again = store.append(vec![ev("A", &["x"])], Some(cond)).await;
    let conflict = again
        .expect_err("a matching event after the boundary's head")
        .conflict()
        .cloned()
        .unwrap();
    assert_eq!(conflict.position, SequencePosition::new(5));
    assert_eq!(conflict.head, SequencePosition::new(5));
    assert!(conflict.is_complete());
    // A window's upper bound below the head is the position seen through.
    let bounded = store
        .read_boundary(&tag("x"), ReadOptions::new().to(SequencePosition::new(2)))
        .await
        .unwrap();
    assert_eq!(bounded.after, Some(SequencePosition::new(2)));
    assert_eq!(bounded.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwards_boundary_cut_short_by_its_limit_appends_after_its_last_event() {
    let (store, _db) = store().await;
    for _ in 0..5 {
        let _ = store.append(vec![ev("A", &["x"])], None).await.unwrap();
    }
    let first_two = store
        .read_boundary(&tag("x"), ReadOptions::new().limit(2))
        .await
        .unwrap();
    assert_eq!(first_two.after, Some(SequencePosition::new(2)));
    let unseen = store
        .append(
            vec![ev("A", &["x"])],
            Some(AppendCondition::new(tag("x"), first_two.after)),
        )
        .await;
    assert_eq!(
        unseen
            .expect_err("events 3 to 5 were not seen")
            .conflict()
            .unwrap()
            .events
            .len(),
        3
    );
    // Backwards, the read saw everything above where it stopped.
    let latest = store
        .read_boundary(&tag("x"), ReadOptions::new().backwards().limit(1))
        .await
        .unwrap();
    assert_eq!(latest.after, Some(SequencePosition::new(5)));
    let _ = store
        .append(
            vec![ev("A", &["x"])],
            Some(AppendCondition::new(tag("x"), latest.after)),
        )
        .await
        .unwrap();
    let none = store
        .read_boundary(&tag("x"), ReadOptions::new().limit(0))
        .await
        .unwrap();
    assert_eq!(
        none,
        Boundary {
            events: vec![],
            after: None
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boundary_holds_every_matching_event_up_to_its_after_while_writers_append() {
    let (store, _db) = store_with(|b| b.page_size(4)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                // Bounded, so that the boundary (read in pages of 4) stays
                // small however fast appends are.
                let mut n = 0;
                while n < 250 && !stop.load(Ordering::Relaxed) {
                    let tags: &[&str] = if n % 2 == 0 { &["x"] } else { &["y"] };
                    let _ = store
                        .append(vec![ev(&format!("W{w}"), tags)], None)
                        .await
                        .unwrap();
                    n += 1;
                }
            })
        })
        .collect();
    let mut reads = 0;
    while reads < 200 {
        let seen = store
            .read_boundary(&tag("x"), ReadOptions::new())
            .await
            .unwrap();
        reads += 1;
        let Some(after) = seen.after else { continue };
        let later = store
            .read_all(&tag("x"), ReadOptions::new().to(after))
            .await
            .unwrap();
        assert_eq!(
            seen.events.iter().map(|e| e.position).collect::<Vec<_>>(),
            later.iter().map(|e| e.position).collect::<Vec<_>>(),
            "a boundary read at {after} missed or invented an event"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_model_larger_than_a_page_folds_every_event_and_appends_after_the_head() {
    let (store, _db) = store().await;
    for chunk in 0..3 {
        let events: Vec<Event> = (0..1000)
            .map(|i| {
                ev(
                    "A",
                    if (chunk * 1000 + i) % 2 == 0 {
                        &["x"]
                    } else {
                        &["y"]
                    },
                )
            })
            .collect();
        let _ = store.append(events, None).await.unwrap();
    }
    let _ = store.append(vec![ev("B", &["y"])], None).await.unwrap();
    let count = Fold::new(tag("x"), 0u64, |n, _| n + 1);
    let model = DecisionModel::build(&store, &count).await.unwrap();
    assert_eq!(model.state, 1500);
    assert_eq!(model.last_position, Some(SequencePosition::new(2999)));
    assert_eq!(model.read_at, Some(SequencePosition::new(3001)));
    let _ = store
        .append(vec![ev("A", &["x"])], Some(model.append_condition()))
        .await
        .unwrap();
}

/// A store that counts the boundaries read through it (everything else
/// goes straight to the real store).
struct Counting {
    store: Store,
    boundaries: AtomicU64,
}

impl EventStore for Counting {
    async fn append(
        &self,
        events: Vec<Event>,
        condition: Option<AppendCondition>,
    ) -> dcbstore::Result<Appended> {
        self.store.append(events, condition).await
    }

    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> BoxStream<'static, dcbstore::Result<SequencedEvent>> {
        self.store.read(query, options)
    }

    async fn head(&self) -> dcbstore::Result<Option<SequencePosition>> {
        self.store.head().await
    }

    async fn read_boundary(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> dcbstore::Result<Boundary> {
        self.boundaries.fetch_add(1, Ordering::Relaxed);
        self.store.read_boundary(query, options).await
    }
}

/// Runs `execute_with` taking one seat on `course:c1`, while someone else
/// takes `others` seats between its first read and its first append.
/// Returns what it executed, the seat counts it decided on and how many
/// boundaries it read.
async fn take_a_seat_while_others_take(others: usize) -> (Executed, Vec<u64>, u64) {
    let (store, _db) = store().await;
    let counting = Counting {
        store: store.clone(),
        boundaries: AtomicU64::new(0),
    };
    let seats = Fold::new(tag("course:c1"), 0u64, |n, _| n + 1);
    let mut decisions = Vec::new();
    let result = execute_with(&counting, &seats, &Retry::attempts(5).no_delay(), |taken| {
        decisions.push(*taken);
        if decisions.len() == 1 {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let taken: Vec<Event> =
                        (0..others).map(|_| ev("Seat", &["course:c1"])).collect();
                    let _ = store.append(taken, None).await.unwrap();
                })
            });
        }
        Ok::<_, String>(vec![ev("Seat", &["course:c1"])])
    })
    .await
    .unwrap();
    (
        result,
        decisions,
        counting.boundaries.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_retries_from_a_complete_conflict_without_reading_again() {
    let (result, decisions, reads) = take_a_seat_while_others_take(2).await;
    let Executed::Appended {
        attempts, appended, ..
    } = result
    else {
        panic!("appended")
    };
    assert_eq!(attempts, 2);
    assert_eq!(appended.position, SequencePosition::new(3));
    // The second decision saw the two seats from the conflict alone.
    assert_eq!(decisions, [0, 2]);
    assert_eq!(reads, 1, "one read: the model's");
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_reads_what_it_misses_when_a_conflict_is_incomplete() {
    // 150 conflicting events: more than a conflict carries.
    let (result, decisions, reads) = take_a_seat_while_others_take(150).await;
    assert!(matches!(result, Executed::Appended { attempts: 2, .. }));
    assert_eq!(decisions, [0, 150]);
    assert_eq!(reads, 2, "the model's read, then one catch-up");
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_executes_each_decide_on_every_earlier_success() {
    // 16 tasks take numbered tickets on one boundary; each decision is the
    // count it saw, so a lost or doubled ticket shows as a gap or repeat.
    let (store, _db) = store().await;
    let tickets = Fold::new(tag("tickets"), 0u64, |n, _| n + 1);
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (store, tickets) = (store.clone(), tickets.clone());
            tokio::spawn(async move {
                execute_with(&store, &tickets, &Retry::attempts(200), |n| {
                    Ok::<_, String>(vec![
                        Event::new("Ticket", json!({"n": n})).with_tag("tickets")
                    ])
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert!(matches!(h.await.unwrap(), Executed::Appended { .. }));
    }
    let mut numbers: Vec<u64> = store
        .read_all(&tag("tickets"), ReadOptions::new())
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.data["n"].as_u64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..16).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_in_a_batch_carries_the_head_including_earlier_requests() {
    let (store, _db) = store().await;
    let _ = store.append(vec![ev("A", &["x"])], None).await.unwrap();
    let seen = store
        .read_boundary(&tag("x"), ReadOptions::new())
        .await
        .unwrap();
    // Sent together, the two land in one batch: the second conflicts with the first.
    let cond = AppendCondition::new(tag("x"), seen.after);
    let (a, b) = tokio::join!(
        store.append(vec![ev("A", &["x"]), ev("B", &["y"])], Some(cond.clone())),
        store.append(vec![ev("A", &["x"])], Some(cond))
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(Error::Conflict(c))) | (Err(Error::Conflict(c)), Ok(w)) => (w, c),
        other => panic!("one wins, one conflicts: {other:?}"),
    };
    // Checked against the log with the winner in it, in one batch or two.
    assert_eq!(lost.head, won.position);
    assert_eq!(
        lost.events
            .iter()
            .map(|e| e.position.get())
            .collect::<Vec<_>>(),
        [2]
    );
    assert!(lost.is_complete());
}

/// The sequential scans of the log's two tables so far, once every backend
/// that ran a statement has reported (statistics are flushed when a
/// backend's transaction ends, at most once a second, and when it exits).
async fn log_scans(admin: &tokio_postgres::Client) -> i64 {
    settled(
        admin,
        "SELECT coalesce(sum(seq_scan), 0)::bigint FROM pg_stat_user_tables
          WHERE relid IN ('dcbstore.events'::regclass, 'dcbstore.event_tags'::regclass)",
    )
    .await
}

/// A statistics counter (`sql`, one bigint) once the backends' statistics
/// have settled: they are flushed when a backend idles or exits.
async fn settled(admin: &tokio_postgres::Client, sql: &str) -> i64 {
    let mut last = -1;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let now: i64 = admin.query_one(sql, &[]).await.unwrap().get(0);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// From an empty store, the decide loop never scans the log sequentially:
/// every plan a connection makes or keeps (boundary reads, conditional
/// appends and their conflicts, reads, a subscription's pages) is index
/// ranges and probes, whatever the statistics said when it was made, so no
/// plan made while the log was small scans it once it has grown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_decide_loop_never_scans_the_log_from_the_first_event() {
    let db = dcbstore_testing::TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let admin = dcbstore::connection::connect(db.options().unwrap())
        .await
        .unwrap();
    let before = log_scans(&admin).await;
    let store = Store::builder(db.url())
        .unwrap()
        .pool_size(8)
        .build()
        .await
        .unwrap();
    let follower = tokio::spawn({
        let store = store.clone();
        async move {
            use futures::StreamExt;
            let mut events = store.subscribe(&Query::all(), dcbstore::SubscribeOptions::new());
            let mut n = 0;
            while n < 16 * 60 {
                match events.next().await {
                    Some(Ok(_)) => n += 1,
                    other => panic!("the subscription ended: {other:?}"),
                }
            }
        }
    });
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let boundary = tag(&format!("account:{t}"));
                for cycle in 0..60u32 {
                    let seen = store
                        .read_boundary(&boundary, ReadOptions::new())
                        .await
                        .unwrap();
                    let event = ev("Deposited", &[&format!("account:{t}"), "bank"]);
                    let condition = AppendCondition::new(boundary.clone(), seen.after);
                    let _ = store.append(vec![event], Some(condition)).await.unwrap();
                    if cycle % 20 == 19 {
                        // A conflict (its report reads the log), and other reads.
                        let stale =
                            AppendCondition::new(boundary.clone(), Some(SequencePosition::new(1)));
                        let err = store
                            .append(vec![ev("Late", &[&format!("late:{t}")])], Some(stale))
                            .await
                            .unwrap_err();
                        assert!(err.conflict().is_some(), "{err}");
                        let _ = store
                            .read_all(
                                &Query::item(QueryItem::types(["Deposited"]).and_tags(["bank"])),
                                ReadOptions::new().backwards().limit(10),
                            )
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    follower.await.unwrap();
    drop(store);
    let after = log_scans(&admin).await;
    assert_eq!(
        after - before,
        0,
        "the log's tables were scanned sequentially {} times",
        after - before
    );
}

/// Concurrent boundary reads on one store share statements (as concurrent
/// appends share transactions), and each still gets exactly its own
/// boundary: every event of its query up to its `after`, nothing past it,
/// while appends go on; boundaries longer than a page read their further
/// pages up to the shared statement's head.
#[tokio::test]
async fn concurrent_boundary_reads_share_a_statement_and_each_gets_its_own_boundary() {
    let recording = recording::Recording::default();
    let _local = metrics::set_default_local_recorder(&recording);
    let (store, _db) = store_with(|b| b.page_size(2)).await;
    let tags: Vec<String> = (0..40).map(|k| format!("t{k}")).collect();
    for (k, t) in tags.iter().enumerate() {
        let events = (0..=k % 5).map(|_| ev("A", &[t.as_str()])).collect();
        let _ = store.append(events, None).await.unwrap();
    }
    let writer = {
        let store = store.clone();
        let tags = tags.clone();
        tokio::spawn(async move {
            for t in tags.iter().cycle().take(200) {
                let _ = store
                    .append(vec![ev("B", &[t.as_str()])], None)
                    .await
                    .unwrap();
            }
        })
    };
    let queries: Vec<Query> = tags.iter().map(|t| tag(t)).collect();
    let mut reads = 0;
    for _ in 0..10 {
        let boundaries = futures::future::join_all(
            queries
                .iter()
                .map(|q| store.read_boundary(q, ReadOptions::new())),
        )
        .await;
        for (t, b) in tags.iter().zip(boundaries) {
            let b = b.unwrap();
            let after = b.after.expect("the log is not empty");
            let alone = store
                .read_all(&tag(t), ReadOptions::new().to(after))
                .await
                .unwrap();
            assert_eq!(b.events, alone, "the boundary of {t} up to {after:?}");
            assert!(b.events.iter().all(|e| e.event.tags.contains(t)));
            reads += 1;
        }
    }
    writer.await.unwrap();
    let together = recording.records(dcbstore::metrics::BOUNDARY_READS_TOGETHER);
    assert_eq!(together.iter().sum::<f64>(), f64::from(reads));
    assert!(
        together.len() * 4 <= reads as usize,
        "{reads} concurrent boundary reads took {} statements: {together:?}",
        together.len()
    );
}

/// A guard or a read of types only (no tag) probes the (type, position)
/// index for each type: it never reads the window by position and filters
/// it by type, which would cost a decision guarded "no event of type Z ever"
/// the whole log, under the append lock. Measured on the index a position
/// range would read: the primary key's tuples read stay a handful while the
/// log holds thousands of events of other types.
#[tokio::test]
async fn a_types_only_guard_probes_its_types_never_the_window() {
    let db = dcbstore_testing::TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let admin = dcbstore::connection::connect(db.options().unwrap())
        .await
        .unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    for _ in 0..30 {
        let events = (0..100).map(|_| ev("Common", &["bulk"])).collect();
        let _ = store.append(events, None).await.unwrap();
    }
    admin
        .batch_execute("ANALYZE dcbstore.events")
        .await
        .unwrap();
    drop(store);
    let before = pkey_reads(&admin).await;
    let store = Store::connect(db.url()).await.unwrap();
    let rare = Query::item(QueryItem::types(["Rare", "Rarer"]));
    for k in 0..20 {
        // "No Rare event, ever": the whole log is its window.
        let _ = store
            .append(
                vec![ev("Other", &[&format!("k:{k}")])],
                Some(AppendCondition::new(rare.clone(), None)),
            )
            .await
            .unwrap();
        assert!(store
            .read_all(&rare, ReadOptions::new())
            .await
            .unwrap()
            .is_empty());
    }
    // The general path (two requests in one call) and its conflict report.
    for _ in 0..10 {
        let rows = admin
            .query(
                "SELECT outcome FROM dcbstore.append_batch_typed(
                     ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['Other', 'Other'], ARRAY['{}', '{}'],
                     ARRAY['{}', '{}'], ARRAY[0, 0], '{}', ARRAY[1, 2], ARRAY[1, 2], ARRAY[0, 0]::bigint[],
                     ARRAY[1, 2], ARRAY[1, 2], ARRAY['Rare', 'Rarer'], ARRAY[0, 0], '{}')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
    }
    drop(store);
    let read = pkey_reads(&admin).await - before;
    // Each append and read looks up the head (a tuple or two each); a
    // window read by position would be 3,000 tuples each.
    assert!(
        read < 1_000,
        "{read} tuples of the primary key read for 40 types-only guards and 20 reads"
    );
}

/// Tuples read from `dcbstore.events`' primary key, once settled.
async fn pkey_reads(admin: &tokio_postgres::Client) -> i64 {
    settled(
        admin,
        "SELECT coalesce(idx_tup_read, 0)::bigint FROM pg_stat_user_indexes
          WHERE indexrelid = 'dcbstore.events_pkey'::regclass",
    )
    .await
}
