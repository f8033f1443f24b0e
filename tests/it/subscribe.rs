//! Subscriptions against a real server: catch-up then live, with racing
//! writers, a writer that holds its transaction open, terminated backends,
//! a server that stops answering, and the one shared listening connection.

use crate::common::proxy;

use std::time::Duration;

use crate::common::{ev, store, store_with};
use dcbstore::{
    AppendCondition, Error, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    SequencedEvent, Store, SubscribeOptions, Subscription,
};
use dcbstore_testing::TestDatabase;
use futures::{StreamExt, TryStreamExt};
use proxy::{Mode, Proxy};
use serde_json::json;

/// The next event, failing the test if none comes within 20 s.
async fn next(s: &mut Subscription) -> SequencedEvent {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("an event within 20 s")
        .expect("the subscription goes on")
        .expect("no error")
}

/// Collects `n` events.
async fn take(s: &mut Subscription, n: usize) -> Vec<SequencedEvent> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(next(s).await);
    }
    got
}

fn positions(events: &[SequencedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.get()).collect()
}

#[track_caller]
fn assert_strictly_increasing(p: &[u64]) {
    assert!(
        p.windows(2).all(|w| w[0] < w[1]),
        "delivered positions strictly increase: {p:?}"
    );
}

/// Nothing more arrives within `d`.
async fn assert_quiet(s: &mut Subscription, d: Duration) {
    if let Ok(e) = tokio::time::timeout(d, s.next()).await {
        panic!("nothing more was expected, got {e:?}");
    }
}

/// Backends of `db` that are LISTENing (the store's listening connection).
async fn listening_backends(db: &TestDatabase) -> i64 {
    let c = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_racing_writers_receives_exactly_the_committed_matching_events_in_order() {
    let (store, db) = store().await;
    let q = Query::item(QueryItem::types(["Match"]).and_tags(["k"]));
    let _ = store
        .append(vec![ev("Match", &["k"]), ev("Other", &["k"])], None)
        .await
        .unwrap();
    let mut early = store.subscribe(&q, SubscribeOptions::new());
    let first = next(&mut early).await;
    assert_eq!(first.position.get(), 1);

    // Four kinds of writer at once: this store's writer, another store
    // (another pool and writer, as another process), conditional appends
    // racing on one boundary, and SQL appends that notify nobody.
    let other = Store::builder(db.url()).unwrap().build().await.unwrap();
    let sql = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let s = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        writers.push(tokio::spawn(async move {
            for i in 0..60u32 {
                let kind = if (i + w) % 3 == 0 { "Other" } else { "Match" };
                let tags: &[&str] = if i % 4 == 0 { &["x"] } else { &["k", "x"] };
                let _ = s
                    .append(vec![ev(kind, tags), ev("Match", &["k"])], None)
                    .await
                    .unwrap();
            }
        }));
    }
    for _ in 0..4 {
        let s = store.clone();
        let q = q.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..20 {
                let seen = s.read_boundary(&q, ReadOptions::new()).await.unwrap().after;
                let _ = s
                    .append(
                        vec![ev("Match", &["k", "guarded"])],
                        Some(AppendCondition::new(q.clone(), seen)),
                    )
                    .await;
            }
        }));
    }
    writers.push(tokio::spawn(async move {
        for _ in 0..30 {
            sql.execute(
                "SELECT dcbstore.append($1)",
                &[&json!([{"type": "Match", "tags": ["k", "sql"]}])],
            )
            .await
            .unwrap();
        }
    }));
    // A follower that joins half-way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut late = store.subscribe(
        &q,
        SubscribeOptions::new().poll_interval(Duration::from_millis(50)),
    );
    for w in writers {
        w.await.unwrap();
    }

    let expected: Vec<u64> = positions(&store.read_all(&q, ReadOptions::new()).await.unwrap());
    let mut got = vec![first];
    got.extend(take(&mut early, expected.len() - 1).await);
    assert_eq!(
        positions(&got),
        expected,
        "exactly the matching events, in order"
    );
    let late_got = take(&mut late, expected.len()).await;
    assert_eq!(positions(&late_got), expected);
    for e in got.iter().chain(&late_got) {
        assert!(q.matches(&e.event), "only matching events: {e:?}");
    }
    assert_quiet(&mut early, Duration::from_millis(300)).await;
    assert_quiet(&mut late, Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_open_writers_event_is_delivered_before_the_later_ones_it_held_back() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![ev("Before", &["t"])], None)
        .await
        .unwrap();
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new().poll_interval(Duration::from_millis(20)),
    );
    assert_eq!(next(&mut follower).await.position.get(), 1);

    // The slow writer's transaction holds position 2, uncommitted.
    let slow = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    slow.batch_execute("BEGIN").await.unwrap();
    let held: serde_json::Value = slow
        .query_one(
            "SELECT dcbstore.append($1)",
            &[&json!([{"type": "Slow", "tags": ["t"]}])],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held["position"], 2);
    let mut later = Vec::new();
    for _ in 0..5 {
        let s = store.clone();
        later.push(tokio::spawn(async move {
            s.append(vec![ev("Later", &["t"])], None).await
        }));
    }
    // Polling and waking meanwhile delivers nothing past the open transaction.
    assert_quiet(&mut follower, Duration::from_millis(300)).await;
    slow.batch_execute("COMMIT").await.unwrap();
    for l in later {
        let _ = l.await.unwrap().unwrap();
    }
    let got = take(&mut follower, 6).await;
    assert_eq!(got[0].event.event_type, "Slow");
    assert_eq!(positions(&got), vec![2, 3, 4, 5, 6, 7]);
    assert_quiet(&mut follower, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backends_terminated_during_catch_up_and_live_lose_nothing() {
    // Small pages: the catch-up is many reads, so terminations hit it mid-read.
    let (store, db) = store_with(|b| b.page_size(40)).await;
    let history: Vec<_> = (0..2000)
        .map(|i| ev("E", &[if i % 2 == 0 { "a" } else { "b" }]))
        .collect();
    for chunk in history.chunks(500) {
        let _ = store.append(chunk.to_vec(), None).await.unwrap();
    }
    let q = Query::item(QueryItem::tags(["a"]));
    let mut follower = store.subscribe(
        &q,
        SubscribeOptions::new()
            .poll_interval(Duration::from_millis(50))
            .reconnect_delays(Duration::from_millis(5), Duration::from_millis(50))
            .reconnect_attempts(50),
    );
    let killer = {
        let config = db.config().unwrap();
        let name = db.name().to_string();
        tokio::spawn(async move {
            let admin = dcbstore::connection::connect(&config).await.unwrap();
            let mut killed = 0i64;
            for _ in 0..40 {
                let n: i64 = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get(0);
                killed += n;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            killed
        })
    };
    // Slow consumption, so that the catch-up spans the terminations; live
    // appends meanwhile, retried when their connection is the one killed.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut appended = 0;
            while appended < 100 {
                let e = ev("E", &["a"]);
                loop {
                    match store.append(vec![e.clone()], None).await {
                        Ok(_) => break,
                        Err(err) if err.is_outcome_unknown() || err.is_transient() => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(err) => panic!("append: {err}"),
                    }
                }
                appended += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 1000 {
        got.push(next(&mut follower).await);
        if got.len() % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writer.await.unwrap();
    let killed = killer.await.unwrap();
    assert!(killed > 5, "the test killed backends ({killed})");
    let expected = positions(&store.read_all(&q, ReadOptions::new()).await.unwrap());
    assert_eq!(expected.len(), 1100);
    got.extend(take(&mut follower, expected.len() - got.len()).await);
    assert_strictly_increasing(&positions(&got));
    assert_eq!(positions(&got), expected, "nothing lost, nothing repeated");
    assert_quiet(&mut follower, Duration::from_millis(200)).await;
}

/// A store through a proxy that can stop answering, with short timeouts.
async fn proxied() -> (Store, Proxy, TestDatabase) {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let port = db.config().unwrap().get_ports()[0];
    let proxy = Proxy::start(port).await;
    let url = db
        .url()
        .replace(&format!("port={port}"), &format!("port={}", proxy.port));
    assert_ne!(url, db.url());
    let store = Store::builder(&format!("{url} connect_timeout=1"))
        .unwrap()
        .pool_size(4)
        .timeout(Some(Duration::from_millis(300)))
        .pool_wait_timeout(Some(Duration::from_secs(1)))
        .build()
        .await
        .unwrap();
    (store, proxy, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_stops_answering_for_a_while_is_ridden_out() {
    let (store, proxy, db) = proxied().await;
    let direct = Store::builder(db.url()).unwrap().build().await.unwrap();
    let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new()
            .poll_interval(Duration::from_millis(50))
            .reconnect_delays(Duration::from_millis(50), Duration::from_millis(200))
            .reconnect_attempts(30),
    );
    assert_eq!(next(&mut follower).await.position.get(), 1);
    // Consumed in the background the whole time, so that its reads fail.
    let consumer = tokio::spawn(async move { take(&mut follower, 5).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.set(Mode::Blackhole);
    // Appended directly while the follower's server does not answer.
    for _ in 0..5 {
        let _ = direct.append(vec![ev("E", &["t"])], None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !consumer.is_finished(),
        "nothing passes the proxy meanwhile"
    );
    proxy.set(Mode::Forward);
    let got = consumer.await.unwrap();
    assert_eq!(positions(&got), vec![2, 3, 4, 5, 6]);
}

/// How long a follower through a proxy that stops answering takes to yield
/// its error, with `attempts` retries.
async fn time_to_give_up(attempts: u32) -> Duration {
    let (store, proxy, _db) = proxied().await;
    let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new()
            .poll_interval(Duration::from_millis(20))
            .reconnect_delays(Duration::from_millis(10), Duration::from_millis(20))
            .reconnect_attempts(attempts),
    );
    assert_eq!(next(&mut follower).await.position.get(), 1);
    proxy.set(Mode::Blackhole);
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), follower.next())
        .await
        .expect("the subscription gives up within 60 s")
        .expect("it yields the error");
    let took = started.elapsed();
    let err = outcome.expect_err("an error, not an event");
    assert!(err.is_transient(), "the last failure is reported: {err}");
    assert!(follower.next().await.is_none(), "it ends after the error");
    proxy.set(Mode::Forward);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_error_comes_only_after_the_configured_retries_are_used_up() {
    let once = time_to_give_up(0).await;
    let four_times = time_to_give_up(3).await;
    eprintln!("gave up after {once:?} (no retries) and {four_times:?} (three)");
    // Each failed read waits out the 300 ms timeout (and its cancel): four
    // failed reads take about four times one.
    assert!(
        four_times >= once * 5 / 2,
        "three retries before the error: {four_times:?} against {once:?} without"
    );
}

#[tokio::test]
async fn errors_that_cannot_pass_are_yielded_at_once() {
    let (store, _db) = store().await;
    let bad = Query::item(QueryItem::tags([""]));
    let mut s = store.subscribe(&bad, SubscribeOptions::new());
    let first = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Err(Error::Invalid(_))), "{first:?}");
    assert!(s.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listening_connection_serves_every_follower_and_the_last_drop_closes_it() {
    let (store, db) = store().await;
    assert_eq!(listening_backends(&db).await, 0);
    let mut followers: Vec<Subscription> = (0..8)
        .map(|_| {
            store
                .clone()
                .subscribe(&Query::all(), SubscribeOptions::new())
        })
        .collect();
    // A poll starts each (the first opens the listener).
    for f in &mut followers {
        assert!(tokio::time::timeout(Duration::from_millis(50), f.next())
            .await
            .is_err());
    }
    eventually("one backend listens", async || {
        listening_backends(&db).await == 1
    })
    .await;
    assert!(store.is_listening());
    let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
    for f in &mut followers {
        assert_eq!(next(f).await.position.get(), 1);
    }
    assert_eq!(
        listening_backends(&db).await,
        1,
        "still one for eight followers"
    );
    followers.truncate(1);
    assert!(store.is_listening());
    followers.clear();
    assert!(
        !store.is_listening(),
        "dropping the last follower releases the listener"
    );
    eventually("no backend listens", async || {
        listening_backends(&db).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notified_append_wakes_a_follower_long_before_its_poll() {
    let (store, _db) = store().await;
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new().poll_interval(Duration::from_secs(60)),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), follower.next())
            .await
            .is_err()
    );
    for i in 1..=3u64 {
        let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .expect("woken by the notification, not the 60 s poll")
            .unwrap()
            .unwrap();
        assert_eq!(e.position.get(), i);
    }
}

#[tokio::test]
async fn to_and_limit_end_the_subscription_once_the_log_reaches_them() {
    let (store, _db) = store().await;
    let _ = store
        .append(vec![ev("E", &["a"]), ev("E", &["b"])], None)
        .await
        .unwrap();
    let q = Query::item(QueryItem::tags(["a"]));
    let to = store.subscribe(
        &q,
        SubscribeOptions::new()
            .to(SequencePosition::new(4))
            .poll_interval(Duration::from_millis(20)),
    );
    let limited = store.subscribe(
        &Query::all(),
        SubscribeOptions::new()
            .after(SequencePosition::new(1))
            .limit(3)
            .poll_interval(Duration::from_millis(20)),
    );
    let waiting = tokio::spawn(async move {
        let to: Vec<SequencedEvent> = to.try_collect().await.unwrap();
        let limited: Vec<SequencedEvent> = limited.try_collect().await.unwrap();
        (positions(&to), positions(&limited))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "they wait for the log to reach their end"
    );
    // Position 3 is b, 4 is not tagged a, 5 is a (past `to`).
    let _ = store
        .append(
            vec![ev("E", &["b"]), ev("E", &["c"]), ev("E", &["a"])],
            None,
        )
        .await
        .unwrap();
    let (to, limited) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("both end")
        .unwrap();
    assert_eq!(to, vec![1], "up to 4 only; ends when the head passes it");
    assert_eq!(limited, vec![2, 3, 4]);
    let none: Vec<SequencedEvent> = store
        .subscribe(&Query::all(), SubscribeOptions::new().limit(0))
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_runner_shares_the_stores_listening_connection() {
    use dcbstore::projection::durable::{DurableProjection, Runner, RunnerConfig};
    use dcbstore::HandlerError;

    struct Count;
    impl DurableProjection for Count {
        fn name(&self) -> &str {
            "count"
        }
        fn query(&self) -> Query {
            Query::all()
        }
        async fn setup(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), HandlerError> {
            tx.batch_execute("CREATE TABLE IF NOT EXISTS seen (n bigint)")
                .await?;
            Ok(())
        }
        async fn apply(
            &self,
            tx: &deadpool_postgres::Transaction<'_>,
            e: &SequencedEvent,
        ) -> Result<(), HandlerError> {
            tx.execute(
                "INSERT INTO seen VALUES ($1)",
                &[&(e.position.get() as i64)],
            )
            .await?;
            Ok(())
        }
        async fn reset(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), HandlerError> {
            tx.batch_execute("TRUNCATE seen").await?;
            Ok(())
        }
    }

    let (store, db) = store().await;
    let runner = Runner::start(
        store.clone(),
        Count,
        RunnerConfig {
            poll_interval: Duration::from_secs(60),
            ..RunnerConfig::default()
        },
    );
    let mut follower = store.subscribe(&Query::all(), SubscribeOptions::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), follower.next())
            .await
            .is_err()
    );
    eventually("one backend listens", async || {
        listening_backends(&db).await == 1
    })
    .await;
    let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
    assert_eq!(next(&mut follower).await.position.get(), 1);
    let c = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    // Woken by the shared connection's notification, not its 60 s poll.
    eventually("the runner applied the event", async || {
        c.query_one("SELECT count(*) FROM seen", &[])
            .await
            .map(|r| r.get::<_, i64>(0) == 1)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(
        listening_backends(&db).await,
        1,
        "runner and follower share it"
    );
    runner.stop().await;
    drop(follower);
}

#[tokio::test]
async fn a_backwards_window_cannot_be_followed() {
    let (store, _db) = store().await;
    let window = ReadOptions::new().backwards();
    let mut s = store.subscribe(&Query::all(), SubscribeOptions::new().window(window));
    let first = s.next().await.unwrap();
    assert!(
        matches!(&first, Err(Error::Invalid(m)) if m.contains("forwards")),
        "{first:?}"
    );
    assert!(s.next().await.is_none());
}

/// Events appended in an application's own transaction (`append_in`) reach
/// followers as soon as that transaction commits, not at their next poll
/// (an hour here): with `append::wake` inside the transaction (sent by
/// PostgreSQL at commit, and not at all on a rollback), or `Store::wake`
/// after the commit. Each follower is live (it received a marker appended
/// by the store) before the application appends, so that only a wake-up
/// can bring it the event within the test's 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_in_the_apps_transaction_wake_followers_at_commit() {
    use dcbstore::append::{append_in, wake};
    let (store, _db) = store().await;
    let q = Query::item(QueryItem::tags(["app"]));
    let hour = SubscribeOptions::new().poll_interval(Duration::from_secs(3600));
    let mut follower = store.subscribe(&q, hour);
    for (k, inside) in [true, false].into_iter().enumerate() {
        let marker = store
            .append(vec![ev("Marker", &["app"])], None)
            .await
            .unwrap();
        assert_eq!(next(&mut follower).await.position, marker.position);

        // A rolled-back transaction that queued a wake-up sends nothing
        // (and appends nothing).
        let mut client = store.pool().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let _ = append_in(&*tx, vec![ev("RolledBack", &["app"])], None)
            .await
            .unwrap();
        wake(&*tx).await.unwrap();
        tx.rollback().await.unwrap();

        let tx = client.transaction().await.unwrap();
        let appended = append_in(&*tx, vec![ev("InTransaction", &["app"])], None)
            .await
            .unwrap();
        if inside {
            wake(&*tx).await.unwrap();
            tx.commit().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            store.wake().await.unwrap();
        }
        let got = next(&mut follower).await;
        assert_eq!(got.event.event_type, "InTransaction", "round {k}");
        assert_eq!(got.position, appended.position, "round {k}");
    }
    assert_quiet(&mut follower, Duration::from_millis(300)).await;
}

/// Backends of `db` other than this query's and the listening one.
async fn working_backends(db: &TestDatabase) -> i64 {
    dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND query NOT ILIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A migrated database and an application's own deadpool pool of `size`
/// connections on it.
async fn app_pool(size: usize) -> (deadpool_postgres::Pool, TestDatabase) {
    let db = TestDatabase::create().await.expect("a database");
    db.migrate().await.expect("migrated");
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(db.url().to_string());
    cfg.pool = Some(deadpool_postgres::PoolConfig::new(size));
    let pool = cfg
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .expect("the application's pool");
    (pool, db)
}

/// A store built on the application's own pool takes every connection of
/// its appends and reads from that pool (no second pool: the pool's size
/// bounds the store's connections, and they are the pool's), and its
/// subscriptions follow the log through the store's one listening
/// connection; the application's transactions on the same pool append with
/// `append_in` and wake them at commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_on_the_applications_pool_appends_reads_and_follows_through_it() {
    use dcbstore::append::{append_in, wake};
    let (app_pool, db) = app_pool(4).await;
    let store = Store::builder(db.url())
        .unwrap()
        .pool(app_pool.clone())
        .build()
        .await
        .expect("a store on the application's pool");
    let q = Query::item(QueryItem::tags(["pooled"]));
    let hour = SubscribeOptions::new().poll_interval(Duration::from_secs(3600));
    let mut follower = store.subscribe(&q, hour);

    // Many appends and reads at once: never more connections than the
    // application's pool holds, and those are the pool's.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = store
                    .append(vec![ev("Pooled", &["pooled"])], None)
                    .await
                    .unwrap();
                store
                    .read_all(&Query::all(), ReadOptions::new())
                    .await
                    .unwrap()
                    .len()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap() >= 1);
    }
    let status = app_pool.status();
    assert!(status.size >= 1 && status.size <= 4, "{status:?}");
    let own = working_backends(&db).await;
    assert!(
        own <= 4 + 1,
        "the store opened connections beyond the application's pool: {own}"
    );
    let got = take(&mut follower, 32).await;
    assert_eq!(got.len(), 32);

    // The application's own transaction on the same pool.
    let client = app_pool.get().await.unwrap();
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let appended = append_in(&*tx, vec![ev("Mine", &["pooled"])], None)
        .await
        .unwrap();
    wake(&*tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next(&mut follower).await.position, appended.position);
}

/// The single-connection case: a store on an application pool of one
/// connection (deadpool, `max_size` 1) keeps every part working on it:
/// concurrent appends (the batching writer), conditional ones, boundary
/// reads (read together), plain reads, a follower (through the store's one
/// listening connection), and the application's own transactions on the
/// same connection, all taking turns; no other connection is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_on_a_single_connection_appends_reads_decides_and_follows_on_it() {
    use dcbstore::append::{append_in, wake};
    let (one, db) = app_pool(1).await;
    let store = Store::builder(db.url())
        .unwrap()
        .pool(one.clone())
        .build()
        .await
        .expect("a store on one connection");
    let q = Query::item(QueryItem::tags(["one"]));
    let hour = SubscribeOptions::new().poll_interval(Duration::from_secs(3600));
    let mut follower = store.subscribe(&q, hour);

    let work = async {
        let mut tasks = Vec::new();
        for k in 0..24 {
            let (store, one) = (store.clone(), one.clone());
            tasks.push(tokio::spawn(async move {
                let key = format!("key:{k}");
                let event = ev("One", &["one", key.as_str()]);
                match k % 4 {
                    // A decision: its boundary, then a conditional append.
                    0 => {
                        let mine = Query::item(QueryItem::tags([key.as_str()]));
                        let seen = store.read_boundary(&mine, ReadOptions::new()).await?;
                        let condition = AppendCondition::new(mine, seen.after);
                        store.append(vec![event], Some(condition)).await.map(drop)
                    }
                    // The application's own transaction on the one connection.
                    1 => {
                        let mut client = one.get().await.expect("the connection");
                        let tx = client.transaction().await.expect("begin");
                        let _ = append_in(&*tx, vec![event], None).await?;
                        wake(&*tx).await?;
                        tx.commit().await.expect("commit");
                        Ok(())
                    }
                    2 => store.append(vec![event], None).await.map(drop),
                    _ => {
                        let _ = store.append(vec![event], None).await?;
                        store
                            .read_all(&Query::all(), ReadOptions::new())
                            .await
                            .map(drop)
                    }
                }
            }));
        }
        for t in tasks {
            t.await
                .unwrap()
                .expect("every part works on one connection");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("no part waits for ever for the one connection");
    let got = take(&mut follower, 24).await;
    assert_strictly_increasing(&positions(&got));
    assert_eq!(one.status().size, 1);
    let others = working_backends(&db).await;
    assert!(others <= 1, "connections beyond the one: {others}");
}
