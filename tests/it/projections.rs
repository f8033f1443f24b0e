//! Projections: folds, decision models, replay, and durable projections with
//! checkpoints, against a real PostgreSQL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{ev, store};
use dcbstore::projection::durable::{
    self, DurableProjection, ProjectionRegistry, Runner, RunnerConfig,
};
use dcbstore::projection::{replay, DecisionModel, Fold};
use dcbstore::HandlerError;
use dcbstore::{
    EventStore, Query, QueryItem, ReadOptions, SequencePosition, SequencedEvent, Store,
};
use deadpool_postgres::Transaction;
use futures::future::join_all;

fn tags(t: &[&str]) -> Query {
    Query::item(QueryItem::tags(t.iter().copied()))
}

// ---- folds and decision models ----

#[tokio::test(flavor = "multi_thread")]
async fn composed_projections_build_one_decision_model_with_one_read() {
    let (store, _db) = store().await;
    for (t, tg) in [
        ("Defined", &["course:1"][..]),
        ("Joined", &["course:1", "student:a"]),
        ("Joined", &["course:2", "student:a"]),
        ("Joined", &["course:1", "student:b"]),
        ("Other", &["course:1"]),
    ] {
        let _ = store.append(vec![ev(t, tg)], None).await.unwrap();
    }
    let course_joins = Fold::new(
        Query::item(QueryItem::types(["Joined"]).and_tags(["course:1"])),
        0u32,
        |n, _| n + 1,
    );
    let student_joins = Fold::new(
        Query::item(QueryItem::types(["Joined"]).and_tags(["student:a"])),
        0u32,
        |n, _| n + 1,
    );
    let defined = Fold::new(
        Query::item(QueryItem::types(["Defined"]).and_tags(["course:1"])),
        false,
        |_, _| true,
    );
    let model = DecisionModel::build(&store, &(course_joins, student_joins, defined))
        .await
        .unwrap();
    // Each part counts only its own events, though the read covered all three.
    assert_eq!(model.state, (2, 2, true));
    assert_eq!(model.query.items_slice().len(), 3);
    assert_eq!(model.last_position, Some(SequencePosition::new(4)));
    // The model's condition holds until a relevant event arrives...
    let cond = model.append_condition();
    let _ = store
        .append(vec![ev("Other", &["course:1"])], None)
        .await
        .unwrap();
    let ok = store
        .append(vec![ev("Noted", &[])], Some(cond.clone()))
        .await;
    assert!(
        ok.is_ok(),
        "an irrelevant event does not invalidate the decision"
    );
    let _ = store
        .append(vec![ev("Joined", &["course:9", "student:a"])], None)
        .await
        .unwrap();
    let err = store
        .append(vec![ev("Noted", &[])], Some(cond))
        .await
        .unwrap_err();
    assert!(err.conflict().is_some(), "a relevant event does");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_from_scratch_or_from_a_position_matches_the_log() {
    let (store, _db) = store().await;
    let events: Vec<_> = (0..250)
        .map(|i| ev(if i % 3 == 0 { "A" } else { "B" }, &["x"]))
        .collect();
    let _ = store.append(events, None).await.unwrap();
    let count_a = Fold::new(Query::item(QueryItem::types(["A"])), 0u64, |n, _| n + 1);
    let mut seen = 0;
    let (n, last) = replay(&store, &count_a, 0, None, |p| seen = p.applied)
        .await
        .unwrap();
    assert_eq!(n, 84);
    assert_eq!(seen, 84, "progress reports every event");
    assert_eq!(last, Some(SequencePosition::new(250)));
    // Resume from a snapshot: the state at position 100, then the rest.
    let (at_100, _) = replay(
        &store,
        &Fold::new(
            Query::item(QueryItem::types(["A"])),
            0u64,
            |n, e: &SequencedEvent| {
                if e.position.get() <= 100 {
                    n + 1
                } else {
                    n
                }
            },
        ),
        0,
        None,
        |_| {},
    )
    .await
    .unwrap();
    let (resumed, _) = replay(
        &store,
        &count_a,
        at_100,
        Some(SequencePosition::new(100)),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(resumed, 84);
}

// ---- durable projections ----

/// A read model: one row per applied event. The primary key makes a double
/// apply fail loudly; `applied_by` tells which runner applied it.
#[derive(Clone)]
struct Feed {
    name: String,
    query: Query,
    label: String,
    /// Fail when applying this position (0: never).
    fail_at: Arc<AtomicU64>,
    /// Stall (sleep) after writing this position (0: never), recording the backend pid.
    stall_at: Arc<AtomicU64>,
    stalled_pid: Arc<AtomicU64>,
    /// Wait after writing this position (0: never) until `release`,
    /// telling `held` first.
    hold_at: Arc<AtomicU64>,
    held: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Feed {
    fn new(name: &str, query: Query, label: &str) -> Feed {
        Feed {
            name: name.into(),
            query,
            label: label.into(),
            fail_at: Arc::new(AtomicU64::new(0)),
            stall_at: Arc::new(AtomicU64::new(0)),
            stalled_pid: Arc::new(AtomicU64::new(0)),
            hold_at: Arc::new(AtomicU64::new(0)),
            held: Arc::default(),
            release: Arc::default(),
        }
    }

    fn labelled(&self, label: &str) -> Feed {
        Feed {
            label: label.into(),
            ..self.clone()
        }
    }

    fn table(&self) -> String {
        format!("rm_{}", self.name)
    }
}

impl DurableProjection for Feed {
    fn name(&self) -> &str {
        &self.name
    }

    fn query(&self) -> Query {
        self.query.clone()
    }

    async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY, type text NOT NULL, applied_by text NOT NULL)",
            self.table()
        ))
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute(&format!("TRUNCATE {}", self.table()))
            .await?;
        Ok(())
    }

    async fn apply(&self, tx: &Transaction<'_>, e: &SequencedEvent) -> Result<(), HandlerError> {
        let p = e.position.get();
        if self.fail_at.load(Ordering::SeqCst) == p {
            return Err(format!("boom at {p}").into());
        }
        tx.execute(
            &format!("INSERT INTO {} VALUES ($1, $2, $3)", self.table()),
            &[&(p as i64), &e.event.event_type, &self.label],
        )
        .await?;
        if self.stall_at.load(Ordering::SeqCst) == p {
            let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
            self.stalled_pid.store(pid as u64, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.hold_at.load(Ordering::SeqCst) == p {
            self.held.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
}

fn fast() -> RunnerConfig {
    RunnerConfig {
        batch_size: 7,
        poll_interval: Duration::from_millis(100),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
    }
}

async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn row(store: &Store, name: &str) -> Option<durable::ProjectionStatus> {
    durable::status(store)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
}

async fn caught_up(store: &Store, name: &str) -> bool {
    let head = store.head().await.unwrap().map_or(0, |p| p.get());
    matches!(row(store, name).await, Some(s) if s.checkpoint == head && head > 0)
}

/// The read model's rows: (position, applied_by).
async fn model(store: &Store, feed: &Feed) -> Vec<(i64, String)> {
    let c = store.pool().get().await.unwrap();
    c.query(
        &format!(
            "SELECT position, applied_by FROM {} ORDER BY position",
            feed.table()
        ),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// What the read model must hold: every matching position, once.
async fn expected(store: &Store, feed: &Feed) -> Vec<i64> {
    store
        .read_all(&feed.query, ReadOptions::new())
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.get() as i64)
        .collect()
}

async fn positions(store: &Store, feed: &Feed) -> Vec<i64> {
    model(store, feed).await.into_iter().map(|r| r.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_runner_with_concurrent_writers_equals_a_rebuild() {
    let (store, db) = store().await;
    let feed = Feed::new("live", tags(&["t"]), "live");
    let _ = store
        .append(
            (0..40)
                .map(|i| ev("Early", if i % 2 == 0 { &["t"] } else { &["u"] }))
                .collect(),
            None,
        )
        .await
        .unwrap();
    let runner = Runner::start(store.clone(), feed.clone(), fast());

    // A writer holds its transaction open while others commit.
    let slow = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    let writers = (0..6).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                let t = if (w + i) % 3 == 0 { "u" } else { "t" };
                let _ = store.append(vec![ev("Live", &[t])], None).await.unwrap();
            }
        })
    });
    let held = tokio::spawn(async move {
        slow.batch_execute("BEGIN").await.unwrap();
        slow.query_one(
            "SELECT dcbstore.append('[{\"type\": \"Held\", \"tags\": [\"t\"]}]')",
            &[],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        slow.batch_execute("COMMIT").await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    join_all(writers).await;
    held.await.unwrap();
    wait_for("the runner to catch up", || caught_up(&store, "live")).await;
    let want = expected(&store, &feed).await;
    assert!(want.len() > 60);
    assert_eq!(
        positions(&store, &feed).await,
        want,
        "no gap, no double apply"
    );
    let status = row(&store, "live").await.unwrap();
    assert_eq!(status.state, "running");
    assert_eq!(status.lag, 0);
    runner.stop().await;

    // A fresh rebuild into another table gives the same read model.
    let copy = Feed::new("live_copy", tags(&["t"]), "copy");
    let mut last = None;
    let applied = durable::rebuild(&store, &copy, &fast(), Duration::from_secs(5), |p| {
        last = Some(p)
    })
    .await
    .unwrap();
    assert_eq!(applied as usize, want.len());
    let last = last.expect("progress reported");
    assert_eq!(last.checkpoint, last.head);
    assert_eq!(positions(&store, &copy).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runner_killed_mid_batch_resumes_without_double_apply_or_gap() {
    let (store, _db) = store().await;
    let feed = Feed::new("crashy", Query::all(), "first");
    let _ = store
        .append((0..30).map(|_| ev("E", &[])).collect(), None)
        .await
        .unwrap();

    // Variant 1: the database connection dies mid-batch (after position 10 was
    // written by the handler, before the batch committed).
    feed.stall_at.store(10, Ordering::SeqCst);
    let runner = Runner::start(store.clone(), feed.clone(), fast());
    wait_for("the handler to stall", || async {
        feed.stalled_pid.load(Ordering::SeqCst) != 0
    })
    .await;
    let admin = store.pool().get().await.unwrap();
    let pid = feed.stalled_pid.load(Ordering::SeqCst) as i32;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    runner.abort();
    let s = row(&store, "crashy").await.unwrap();
    assert_eq!(s.checkpoint, 7, "only the first batch (7 events) committed");
    assert_eq!(positions(&store, &feed).await, (1..=7).collect::<Vec<_>>());

    // Variant 2: the process dies mid-batch (the runner task is dropped).
    feed.stalled_pid.store(0, Ordering::SeqCst);
    feed.stall_at.store(20, Ordering::SeqCst);
    let runner = Runner::start(store.clone(), feed.labelled("second"), fast());
    wait_for("the handler to stall again", || async {
        feed.stalled_pid.load(Ordering::SeqCst) != 0
    })
    .await;
    runner.abort();
    wait_for("the aborted batch to roll back", || async {
        positions(&store, &feed).await.last() == Some(&14)
    })
    .await;

    // A new runner resumes from the checkpoint.
    feed.stall_at.store(0, Ordering::SeqCst);
    let runner = Runner::start(store.clone(), feed.labelled("third"), fast());
    let _ = store
        .append((0..5).map(|_| ev("E", &[])).collect(), None)
        .await
        .unwrap();
    wait_for("the new runner to catch up", || caught_up(&store, "crashy")).await;
    runner.stop().await;
    let rows = model(&store, &feed).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=35).collect::<Vec<_>>()
    );
    assert!(rows[..7].iter().all(|r| r.1 == "first"));
    assert!(rows[7..14].iter().all(|r| r.1 == "second"));
    assert!(rows[14..].iter().all(|r| r.1 == "third"));
    // Same as a rebuild.
    let copy = Feed::new("crashy_copy", Query::all(), "copy");
    let _ = durable::rebuild(&store, &copy, &fast(), Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(
        positions(&store, &copy).await,
        positions(&store, &feed).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_only_one_applies_and_the_other_takes_over() {
    let (store, db) = store().await;
    let feed = Feed::new("leased", Query::all(), "a");
    let a = Runner::start(store.clone(), feed.labelled("a"), fast());
    let _ = store.append(vec![ev("E", &[])], None).await.unwrap();
    wait_for("runner a to start", || caught_up(&store, "leased")).await;
    // Runner b is another process: its own pool.
    let other = Store::connect(db.url()).await.unwrap();
    let b = Runner::start(other.clone(), feed.labelled("b"), fast());
    for _ in 0..20 {
        let _ = store.append(vec![ev("E", &[])], None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("catch-up", || caught_up(&store, "leased")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = model(&store, &feed).await;
    assert_eq!(rows.len(), 21);
    assert!(
        rows.iter().all(|r| r.1 == "a"),
        "only the lease holder applies: {rows:?}"
    );

    // a dies; b takes over.
    a.abort();
    for _ in 0..10 {
        let _ = store.append(vec![ev("E", &[])], None).await.unwrap();
    }
    wait_for("runner b to take over", || caught_up(&store, "leased")).await;
    let rows = model(&store, &feed).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=31).collect::<Vec<_>>()
    );
    assert!(rows[21..].iter().all(|r| r.1 == "b"), "{rows:?}");
    let status = row(&store, "leased").await.unwrap();
    assert!(status.owner.is_some());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_that_lost_its_lease_mid_batch_commits_nothing_more() {
    let (store, db) = store().await;
    let _ = store
        .append((0..5).map(|_| ev("E", &[])).collect(), None)
        .await
        .unwrap();
    let feed = Feed::new("fenced", Query::all(), "a");
    feed.hold_at.store(3, Ordering::SeqCst);
    let a = Runner::start(store.clone(), feed.labelled("a"), fast());
    tokio::time::timeout(Duration::from_secs(60), feed.held.notified())
        .await
        .expect("runner a is in the middle of its batch");
    feed.hold_at.store(0, Ordering::SeqCst);

    // Its lease connection is cut (a network failure, pg_terminate_backend):
    // the lease is lost, and runner b, another process, takes it, then
    // waits for a's batch to end.
    let admin = store.pool().get().await.unwrap();
    let holders: Vec<i32> = admin
        .query(
            "SELECT l.pid FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(holders.len(), 1, "the lease's connection holds one lock");
    let gone: bool = admin
        .query_one("SELECT pg_terminate_backend($1, 60000)", &[&holders[0]])
        .await
        .unwrap()
        .get(0);
    assert!(gone);
    let other = Store::connect(db.url()).await.unwrap();
    let b = Runner::start(other.clone(), feed.labelled("b"), fast());
    wait_for("runner b to wait for a's batch", || {
        let admin = &admin;
        async move {
            let waiting: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            waiting > 0
        }
    })
    .await;

    // a's batch goes on and reaches its commit: the lease is b's now, so
    // nothing of it commits, and b applies every event.
    feed.release.notify_one();
    wait_for("catch-up", || caught_up(&store, "fenced")).await;
    a.stop().await;
    b.stop().await;
    let rows = model(&store, &feed).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=5).collect::<Vec<_>>()
    );
    assert!(
        rows.iter().all(|r| r.1 == "b"),
        "only the lease's holder commits: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_handler_is_visible_isolated_and_recovers() {
    let (store, _db) = store().await;
    let bad = Feed::new("bad", Query::all(), "bad");
    let good = Feed::new("good", Query::all(), "good");
    bad.fail_at.store(12, Ordering::SeqCst);
    let runners = Runner::start_all(
        &store,
        &ProjectionRegistry::new()
            .with(bad.clone())
            .with(good.clone()),
        fast(),
    );
    let _ = store
        .append((0..20).map(|_| ev("E", &[])).collect(), None)
        .await
        .unwrap();
    wait_for("the good projection to catch up", || {
        caught_up(&store, "good")
    })
    .await;
    wait_for("the failure to be recorded", || async {
        matches!(row(&store, "bad").await, Some(s) if s.state == "failed" && s.failures >= 2)
    })
    .await;
    let s = row(&store, "bad").await.unwrap();
    assert_eq!(s.error_position, Some(12));
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("boom at 12"),
        "{s:?}"
    );
    assert_eq!(
        s.checkpoint, 7,
        "the failing batch rolled back; earlier ones stay"
    );
    assert_eq!(positions(&store, &bad).await, (1..=7).collect::<Vec<_>>());
    assert_eq!(
        positions(&store, &good).await.len(),
        20,
        "others keep running"
    );

    // The CLI shows it.
    let out = crate::common::cli::dcbstore()
        .args([
            "projections",
            "status",
            "--json",
            "--database-url",
            _db.url(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bad_line = lines
        .iter()
        .find(|l| l["name"] == "bad")
        .expect("bad listed");
    assert_eq!(bad_line["state"], "failed");
    assert_eq!(bad_line["error_position"], 12);
    assert_eq!(bad_line["checkpoint"], 7);
    assert_eq!(bad_line["head"], 20);
    assert_eq!(bad_line["lag"], 13);

    // Fix the fault: it recovers by itself.
    bad.fail_at.store(0, Ordering::SeqCst);
    wait_for("recovery", || caught_up(&store, "bad")).await;
    let s = row(&store, "bad").await.unwrap();
    assert_eq!(
        (s.state.as_str(), s.last_error, s.failures),
        ("running", None, 0)
    );
    assert_eq!(positions(&store, &bad).await, (1..=20).collect::<Vec<_>>());
    for r in runners {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_through_the_runner_and_refused_elsewhere() {
    let (store, _db) = store().await;
    let feed = Feed::new("rebuilt", tags(&["k"]), "runner");
    let _ = store
        .append(
            (0..50)
                .map(|i| ev("E", if i % 5 == 0 { &["k"] } else { &["j"] }))
                .collect(),
            None,
        )
        .await
        .unwrap();
    let runner = Runner::start(store.clone(), feed.clone(), fast());
    wait_for("catch-up", || caught_up(&store, "rebuilt")).await;
    // Corrupt the read model behind the projection's back, then rebuild.
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute("DELETE FROM rm_rebuilt WHERE position > 20")
        .await
        .unwrap();
    // While the runner holds the lease, a rebuild elsewhere is refused.
    let err = durable::rebuild(&store, &feed, &fast(), Duration::from_millis(200), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
    // Writers keep appending during the runner's rebuild.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let _ = store.append(vec![ev("E", &["k"])], None).await.unwrap();
            }
        })
    };
    let applied = runner.rebuild().await.unwrap();
    writer.await.unwrap();
    assert!(applied >= 10);
    wait_for("catch-up after the rebuild", || {
        caught_up(&store, "rebuilt")
    })
    .await;
    assert_eq!(
        positions(&store, &feed).await,
        expected(&store, &feed).await
    );
    runner.stop().await;
    assert_eq!(row(&store, "rebuilt").await.unwrap().state, "idle");
}

/// A checkpoint above the head means the read model holds effects of events
/// the log no longer has (it lost its tail: a failover, a restore). The
/// runner does not wait silently for the log to catch up: it stops, failed,
/// with a message that says to rebuild, until `Runner::rebuild` starts it
/// over.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_above_the_head_stops_its_projection_until_it_is_rebuilt() {
    let (store, _db) = store().await;
    let feed = Feed::new("ahead", Query::all(), "r1");
    let _ = store
        .append(vec![ev("A", &[]), ev("B", &[])], None)
        .await
        .unwrap();
    let runner = Runner::start(store.clone(), feed.clone(), fast());
    wait_for("the runner to catch up", || caught_up(&store, "ahead")).await;
    // As if the log had lost events 3 to 5 after the runner applied them.
    let c = store.pool().get().await.unwrap();
    c.execute(
        "UPDATE dcbstore.projections SET checkpoint = 5 WHERE name = 'ahead'",
        &[],
    )
    .await
    .unwrap();
    let _ = store.append(vec![ev("C", &[])], None).await.unwrap();
    wait_for("the projection to fail", || async {
        matches!(row(&store, "ahead").await, Some(s) if s.state == "failed")
    })
    .await;
    let s = row(&store, "ahead").await.unwrap();
    let message = s.last_error.clone().unwrap_or_default();
    assert!(
        message.contains("checkpoint is at position 5") && message.contains("rebuild"),
        "{message}"
    );
    assert_eq!(s.checkpoint, 5, "nothing applied past the stale checkpoint");
    // It stays failed: no retries that would apply event 3 on top.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(model(&store, &feed).await.len(), 2);
    // Rebuilt, it follows the log again.
    let applied = runner.rebuild().await.unwrap();
    assert_eq!(applied, 3);
    wait_for("the rebuilt runner to run", || async {
        matches!(row(&store, "ahead").await, Some(s) if s.state == "running" && s.checkpoint == 3)
    })
    .await;
    runner.stop().await;
}

/// A durable projection meets an event a reader cannot decode (stored before
/// the database refused such values): it fails at that event's position,
/// saying how to redact it, applies nothing past it, and goes on once the
/// event is redacted. (The decode error was a store error, retried for ever
/// as transient.)
#[tokio::test(flavor = "multi_thread")]
async fn a_projection_fails_at_an_undecodable_event_and_goes_on_once_it_is_redacted() {
    let (store, db) = store().await;
    let feed = Feed::new("undecodable", Query::all(), "u1");
    let _ = store.append(vec![ev("A", &[])], None).await.unwrap();
    let owner = dcbstore::connection::connect(db.options().unwrap())
        .await
        .unwrap();
    owner
        .batch_execute(
            "INSERT INTO dcbstore.events (position, id, type, data, tags)
             VALUES (2, gen_random_uuid(), 'Legacy', '{\"n\": 1e400}', '{}')",
        )
        .await
        .unwrap();
    let _ = store.append(vec![ev("C", &[])], None).await.unwrap();
    let runner = Runner::start(store.clone(), feed.clone(), fast());
    wait_for("the projection to fail at the event", || async {
        matches!(row(&store, "undecodable").await, Some(s) if s.state == "failed")
    })
    .await;
    let s = row(&store, "undecodable").await.unwrap();
    let message = s.last_error.clone().unwrap_or_default();
    assert!(message.contains("dcbstore redact 2"), "{message}");
    assert_eq!(s.error_position, Some(2), "{s:?}");
    assert_eq!(s.checkpoint, 1, "nothing past the event");
    dcbstore::roles::redact(
        &owner,
        SequencePosition::new(2),
        &serde_json::Value::Null,
        "unreadable",
        None,
    )
    .await
    .unwrap();
    wait_for("the projection to go on", || {
        caught_up(&store, "undecodable")
    })
    .await;
    assert_eq!(model(&store, &feed).await.len(), 3);
    runner.stop().await;
}
