//! Faults survived against a real server: crashes mid-append, lost
//! acknowledgements, terminated backends, a server that stops answering, an
//! exhausted pool, a lock held too long, long transactions elsewhere.

use crate::common::proxy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::ev;
use dcbstore::connection::{connect, parse_config};
use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use dcbstore_testing::{TestCluster, TestDatabase};
use proxy::{Mode, Proxy};
use serde_json::json;

/// A batch of `n` events sharing the tag `batch:{name}`, with fixed ids so
/// that resending it is an idempotent retry.
fn batch(name: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new("Item", json!({"batch": name, "i": i}))
                .with_tag(format!("batch:{name}"))
                .with_tag(format!("i:{i}"))
        })
        .collect()
}

/// `db`'s connection string, through `proxy`.
fn via(db: &TestDatabase, proxy: &Proxy) -> String {
    let port = db.config().unwrap().get_ports()[0];
    let url = db
        .url()
        .replace(&format!("port={port}"), &format!("port={}", proxy.port));
    assert_ne!(url, db.url(), "the connection string names the port");
    url
}

/// A migrated database, a proxy in front of it and a store connected through
/// the proxy, its connection warmed (statements prepared, one event
/// appended) so that the next reply the proxy sees is the next call's.
async fn proxied_store() -> (Store, Proxy, TestDatabase) {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let proxy = Proxy::start(db.config().unwrap().get_ports()[0]).await;
    let store = Store::builder(&via(&db, &proxy))
        .unwrap()
        .pool_size(2)
        .build()
        .await
        .unwrap();
    let _ = store.append(vec![ev("Warm", &["w"])], None).await.unwrap();
    (store, proxy, db)
}

/// Every event's position is unique, they run 1..=head without a gap, and
/// each event has exactly its tags in the tag index.
async fn assert_log_consistent(url: &str) -> u64 {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), coalesce(max(position), 0), count(DISTINCT position),
                    (SELECT count(*) FROM dcbstore.event_tags),
                    coalesce(sum(cardinality(tags)), 0)::bigint
               FROM dcbstore.events",
            &[],
        )
        .await
        .unwrap();
    let (n, max, distinct, tag_rows, tags): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(n, max, "positions run 1..=head without gaps");
    assert_eq!(n, distinct, "positions are unique");
    assert_eq!(tag_rows, tags, "the tag index matches the events");
    n as u64
}

/// Positions of the events tagged `batch:{name}`.
async fn batch_positions(store: &Store, name: &str) -> Vec<u64> {
    store
        .read_all(
            &Query::item(QueryItem::tags([format!("batch:{name}")])),
            ReadOptions::new(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.get())
        .collect()
}

/// PostgreSQL is killed (immediate shutdown, no checkpoint) while several
/// tasks append batches. After recovery every batch is wholly present or
/// wholly absent, positions are unique and gapless, every acknowledged batch
/// is present at the positions it was acknowledged with, the same `Store`
/// works again once the server is back, and resending the batches whose
/// outcome was unknown stores each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_crash_mid_append_loses_no_acknowledged_batch() {
    const TASKS: usize = 6;
    const SIZE: usize = 25;
    let cluster = Arc::new(
        tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let url = cluster.url("postgres");
    let mut client = connect(&parse_config(&url).unwrap()).await.unwrap();
    let _ = dcbstore::migrate(&mut client).await.unwrap();
    drop(client);
    let store = Store::builder(&url)
        .unwrap()
        .pool_size(8)
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .await
        .unwrap();

    let crashed = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, crashed, acked_count) =
                (store.clone(), crashed.clone(), acked_count.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut unknown = Vec::new();
                for i in 0.. {
                    let name = format!("{t}-{i}");
                    let events = batch(&name, SIZE);
                    match store.append(events.clone(), None).await {
                        Ok(a) => {
                            acked.push((name, a.position.get()));
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert!(
                                crashed.load(Ordering::SeqCst),
                                "failed before the crash: {e}"
                            );
                            unknown.push((name, events));
                            break;
                        }
                    }
                }
                (acked, unknown)
            })
        })
        .collect();

    // Crash once appends are flowing.
    while acked_count.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    crashed.store(true, Ordering::SeqCst);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.crash())
        .await
        .unwrap()
        .unwrap();
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    for t in tasks {
        let (a, u) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("appenders fail promptly when the server dies")
            .unwrap();
        acked.extend(a);
        unknown.extend(u);
    }
    assert_eq!(unknown.len(), TASKS, "every task saw the crash");
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .unwrap()
        .unwrap();

    // The same store recovers: broken connections are replaced.
    let mut recovered = false;
    for _ in 0..50 {
        match store.head().await {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(recovered, "the pool reconnects once the server is back");

    let total = assert_log_consistent(&url).await;
    assert_eq!(total as usize % SIZE, 0, "only whole batches: {total}");
    for (name, last) in &acked {
        let positions = batch_positions(&store, name).await;
        assert_eq!(positions.len(), SIZE, "acknowledged batch {name} is whole");
        assert_eq!(
            positions.last(),
            Some(last),
            "at its acknowledged positions"
        );
        assert_eq!(positions[0] + SIZE as u64 - 1, *last, "contiguous");
    }
    let mut present_before_retry = 0;
    for (name, events) in &unknown {
        let before = batch_positions(&store, name).await;
        assert!(
            before.is_empty() || before.len() == SIZE,
            "{name}: all or nothing"
        );
        if !before.is_empty() {
            present_before_retry += 1;
        }
        let retried = store.append(events.clone(), None).await.unwrap();
        let after = batch_positions(&store, name).await;
        assert_eq!(
            after.len(),
            SIZE,
            "{name}: stored exactly once after the retry"
        );
        assert_eq!(after.last().copied(), Some(retried.position.get()));
        assert_eq!(retried.already_stored, !before.is_empty(), "{name}");
    }
    let total = assert_log_consistent(&url).await;
    assert_eq!(
        total as usize,
        (acked.len() + unknown.len()) * SIZE,
        "{} batches committed before the crash without their acknowledgement",
        present_before_retry
    );
}

/// Backends are terminated (`pg_terminate_backend`) at random moments while
/// batches are appended, so some terminations land around the commit. The
/// client gets [`Error::OutcomeUnknown`], resending the same events never
/// duplicates, and the positions a retry reports are the stored ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_backends_around_commit_never_duplicate_on_retry() {
    const BATCHES: usize = 60;
    const SIZE: usize = 5;
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::builder(&format!("{} application_name=dcbstore-victim", db.url()))
        .unwrap()
        .pool_size(4)
        .build()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, admin) = (stop.clone(), db.config().unwrap());
        tokio::spawn(async move {
            let client = connect(&admin).await.unwrap();
            let mut kills = 0u64;
            let mut rng = rand::random::<u64>();
            while !stop.load(Ordering::SeqCst) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                tokio::time::sleep(Duration::from_micros(1000 + rng % 15_000)).await;
                let Ok(row) = client
                    .query_one(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                          WHERE application_name = 'dcbstore-victim' AND datname = current_database()
                            AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                else {
                    break;
                };
                kills += row.get::<_, i64>(0) as u64;
            }
            kills
        })
    };

    let mut reported: HashMap<String, u64> = HashMap::new();
    let (mut unknown_outcomes, mut retries_found_stored) = (0, 0);
    for i in 0..BATCHES {
        let name = format!("b{i}");
        let events = batch(&name, SIZE);
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts < 200, "batch {name} never got through");
            match store.append(events.clone(), None).await {
                Ok(a) => {
                    if attempts > 1 && a.already_stored {
                        retries_found_stored += 1;
                    }
                    reported.insert(name.clone(), a.position.get());
                    break;
                }
                Err(e) if e.is_outcome_unknown() => unknown_outcomes += 1,
                // A connection killed before the append was sent (while
                // connecting or preparing): nothing was written.
                Err(Error::NotWritten(_)) => {}
                Err(e) => panic!("batch {name}: unexpected error {e}"),
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();
    assert!(kills > 0, "backends were terminated");
    assert!(
        unknown_outcomes > 0,
        "some terminations hit an append in flight ({kills} kills)"
    );

    let total = assert_log_consistent(db.url()).await;
    assert_eq!(
        total as usize,
        BATCHES * SIZE,
        "no batch duplicated or lost"
    );
    for (name, last) in &reported {
        let positions = batch_positions(&store, name).await;
        assert_eq!(positions.len(), SIZE, "{name} stored exactly once");
        assert_eq!(
            positions.last(),
            Some(last),
            "{name}: reported positions are the stored ones"
        );
    }
    eprintln!(
        "{kills} backends terminated, {unknown_outcomes} unknown outcomes, {retries_found_stored} retries found their batch already stored"
    );
}

/// The acknowledgement of a committed append is lost on the way back: the
/// client gets [`Error::OutcomeUnknown`], the events are stored, and the
/// retry reports the original positions without writing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_acknowledgement_then_idempotent_retry_reports_original_positions() {
    let (store, proxy, db) = proxied_store().await;

    let events = batch("lost", 3);
    let cond = AppendCondition::new(
        Query::item(QueryItem::tags(["batch:lost"])),
        Some(SequencePosition::new(1)),
    );
    proxy.set(Mode::LoseReplies);
    let err = store
        .append(events.clone(), Some(cond.clone()))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
    assert!(
        err.to_string().contains("same ids"),
        "says what to do: {err}"
    );
    proxy.set(Mode::Forward);

    let direct = Store::connect(db.url()).await.unwrap();
    let stored = batch_positions(&direct, "lost").await;
    assert_eq!(stored, [2, 3, 4], "the append had committed");

    // The retry (through the recovered pool) is an idempotent one.
    let mut retried = None;
    for _ in 0..20 {
        match store.append(events.clone(), Some(cond.clone())).await {
            Ok(a) => {
                retried = Some(a);
                break;
            }
            Err(e) if !matches!(e, Error::Conflict(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let retried = retried.expect("retry succeeds");
    assert!(retried.already_stored);
    assert_eq!(retried.position, SequencePosition::new(4));
    assert_eq!(
        assert_log_consistent(db.url()).await,
        4,
        "nothing written twice"
    );
}

/// `execute` after a lost acknowledgement resends the same decision (same
/// ids, same condition) instead of deciding again: the decision is stored
/// once, and the result says it was found already stored on the second try.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn execute_resends_the_same_decision_after_a_lost_acknowledgement() {
    use dcbstore::projection::{execute, Executed, Fold};
    let (store, proxy, _db) = proxied_store().await;
    let opened = Fold::new(Query::item(QueryItem::tags(["acc:1"])), false, |_, _| true);
    let mut decisions = 0;
    let outcome = execute(&store, &opened, 5, |open: &bool| {
        decisions += 1;
        // The model is read; the append's reply is the next one.
        proxy.set(Mode::LoseNextReply);
        if *open {
            Err("already open")
        } else {
            Ok(vec![ev("Opened", &["acc:1"])])
        }
    })
    .await
    .unwrap();
    let Executed::Appended {
        appended,
        events,
        attempts,
    } = outcome
    else {
        panic!("appended expected: {outcome:?}");
    };
    assert_eq!(decisions, 1, "decided once, resent after the lost reply");
    assert_eq!(attempts, 2);
    assert!(appended.already_stored, "the first send had committed");
    let stored = store
        .read_all(&Query::item(QueryItem::tags(["acc:1"])), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "stored once");
    assert_eq!(stored[0].event.id, events[0].id);
    assert_eq!(stored[0].position, appended.position);
}

/// A server that stops answering: appends and reads fail within the
/// configured timeout (no hung callers), and the store works again once the
/// server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unresponsive_server_times_out_and_the_pool_recovers() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let proxy = Proxy::start(db.config().unwrap().get_ports()[0]).await;
    let store = Store::builder(&format!("{} connect_timeout=1", via(&db, &proxy)))
        .unwrap()
        .pool_size(4)
        .timeout(Some(Duration::from_millis(700)))
        .pool_wait_timeout(Some(Duration::from_secs(2)))
        .build()
        .await
        .unwrap();
    let _ = store
        .append(vec![ev("Before", &["t"])], None)
        .await
        .unwrap();
    let _ = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    // Two open connections: one for the append below, one for the read.
    drop((
        store.pool().get().await.unwrap(),
        store.pool().get().await.unwrap(),
    ));

    proxy.set(Mode::Blackhole);
    let started = Instant::now();
    let append = store
        .append(vec![ev("During", &["t"])], None)
        .await
        .unwrap_err();
    assert!(append.is_outcome_unknown(), "{append}");
    let read = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap_err();
    // The append's connection was closed; a new one cannot complete its
    // handshake either: a timeout of the call or of the connect, never a hang.
    let timed_out = |e: &Error| {
        matches!(e, Error::Timeout { .. })
            || (matches!(e, Error::Pool(_)) && e.to_string().contains("does not answer"))
    };
    assert!(matches!(read, Error::Timeout { .. }), "{read}");
    assert!(read.to_string().contains("timed out after"), "{read}");
    let head = store.head().await.unwrap_err();
    assert!(timed_out(&head), "{head}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "callers are released by their timeouts"
    );

    proxy.set(Mode::Forward);
    let mut ok = false;
    for _ in 0..40 {
        if store.head().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the pool recovers when the server answers again");
    let a = store.append(vec![ev("After", &["t"])], None).await.unwrap();
    assert!(a.position.get() >= 2);
    assert_log_consistent(db.url()).await;
}

/// Every pooled connection busy: the append fails after the pool's wait
/// timeout with an error that says what to do, and works once one is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_exhaustion_is_a_clear_error_and_recovers() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::builder(db.url())
        .unwrap()
        .pool_size(2)
        .pool_wait_timeout(Some(Duration::from_millis(300)))
        .build()
        .await
        .unwrap();
    let held = (
        store.pool().get().await.unwrap(),
        store.pool().get().await.unwrap(),
    );
    let err = store.append(vec![ev("E", &["t"])], None).await.unwrap_err();
    // Not written (it was never sent), because of the pool.
    assert!(
        matches!(&err, Error::NotWritten(cause) if matches!(**cause, Error::Pool(_))),
        "{err}"
    );
    assert!(err.to_string().contains("pool size"), "{err}");
    drop(held);
    let _ = store.append(vec![ev("E", &["t"])], None).await.unwrap();
}

/// A transaction elsewhere holds the append lock too long (it called
/// `dcbstore.append` and stays open): with `lock_timeout` the append fails
/// with a clear error and writes nothing; once it ends, appends flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_lock_held_too_long_is_a_clear_timeout() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::builder(db.url())
        .unwrap()
        .lock_timeout(Some(Duration::from_millis(300)))
        .build()
        .await
        .unwrap();
    let holder = connect(&db.config().unwrap()).await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT dcbstore.append('[{\"type\": \"Held\"}]')", &[])
        .await
        .unwrap();

    let err = store
        .append(vec![ev("Waiting", &["t"])], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("append lock"), "{err}");
    // Reads are not blocked by the lock.
    assert!(store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap()
        .is_empty());

    holder.batch_execute("COMMIT").await.unwrap();
    let a = store
        .append(vec![ev("Waiting", &["t"])], None)
        .await
        .unwrap();
    assert_eq!(a.position, SequencePosition::new(2));
    assert_eq!(assert_log_consistent(db.url()).await, 2);
}

/// Long transactions elsewhere on the server (an idle REPEATABLE READ
/// snapshot, a long-running query, an idle-in-transaction session holding
/// row locks of its own tables) neither stall appends nor hide their events
/// from readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_transactions_elsewhere_do_not_stall_appends_or_reads() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    let config = db.config().unwrap();

    let snapshot = connect(&config).await.unwrap();
    snapshot
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM dcbstore.events;",
        )
        .await
        .unwrap();
    let other = connect(&config).await.unwrap();
    other
        .batch_execute(
            "CREATE TABLE app_rows (id int PRIMARY KEY); INSERT INTO app_rows VALUES (1);
             BEGIN; UPDATE app_rows SET id = 1;",
        )
        .await
        .unwrap();
    let sleeper = {
        let config = config.clone();
        tokio::spawn(async move {
            let c = connect(&config).await.unwrap();
            let _ = c.execute("SELECT pg_sleep(20)", &[]).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let work = async {
        for i in 0..50u64 {
            let tag = format!("acc:{i}");
            let q = Query::item(QueryItem::tags([tag.clone()]));
            let a = store
                .append(
                    vec![ev("Opened", &[&tag])],
                    Some(AppendCondition::new(q.clone(), None)),
                )
                .await
                .unwrap();
            let seen = store.read_all(&q, ReadOptions::new()).await.unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(
                seen[0].position, a.position,
                "visible as soon as acknowledged"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(15), work)
        .await
        .expect("appends and reads are not stalled by other transactions");
    assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(50)));

    // The old snapshot still sees its own past; that is its business.
    let n: i64 = snapshot
        .query_one("SELECT count(*) FROM dcbstore.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    sleeper.abort();
}

/// A throwaway cluster of its own (the test changes its settings or kills
/// it), migrated, with its `postgres` database's URL.
async fn own_cluster() -> (Arc<TestCluster>, String) {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let url = cluster.url("postgres");
    let mut client = connect(&parse_config(&url).unwrap()).await.unwrap();
    let _ = dcbstore::migrate(&mut client).await.unwrap();
    (cluster, url)
}

/// With `synchronous_commit = off` for the database (and the WAL writer
/// asleep for 10 s), an acknowledged append is still there after the server
/// is killed at once: appends never commit with `synchronous_commit = off`.
#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_append_survives_a_crash_with_synchronous_commit_off() {
    let (cluster, url) = own_cluster().await;
    let client = connect(&parse_config(&url).unwrap()).await.unwrap();
    for sql in [
        "ALTER DATABASE postgres SET synchronous_commit = off",
        "ALTER SYSTEM SET wal_writer_delay = '10s'",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(sql).await.unwrap();
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = Store::connect(&url).await.unwrap();
    let on: String = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        on, "off",
        "the store's sessions run with synchronous_commit = off"
    );
    let acked = store
        .append(vec![ev("Acknowledged", &["t"])], None)
        .await
        .unwrap();
    drop(store);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.crash())
        .await
        .unwrap()
        .unwrap();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .unwrap()
        .unwrap();
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.head().await.unwrap(), Some(acked.position));
}

/// An append that times out on the client (its server session waiting for
/// the append lock) is cancelled on the server: once the lock is free it
/// does not commit, and no session of the client is left waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_append_is_cancelled_and_never_commits() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let holder = connect(&parse_config(db.url()).unwrap()).await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .batch_execute(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            dcbstore::locks::APPEND_LOCK_RELATION
        ))
        .await
        .unwrap();
    let store = Store::builder(db.url())
        .unwrap()
        .timeout(Some(Duration::from_millis(300)))
        .build()
        .await
        .unwrap();
    let err = store
        .append(vec![ev("TimedOut", &["t"])], None)
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
    // The cancel request is under way (a loaded machine may take a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = holder
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'relation' AND NOT l.granted
                    AND l.relation = 'dcbstore.append_lock'::regclass
                    AND a.datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a session still waits for the lock: the timed-out append was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.head().await.unwrap(),
        None,
        "the timed-out append never committed"
    );
    let a = store.append(vec![ev("Later", &["t"])], None).await.unwrap();
    assert_eq!(a.position, SequencePosition::new(1));
}

/// Two stores in two databases of one cluster: while an append to the first
/// waits for a synchronous standby that never answers, an append to the
/// second (which does not wait for standbys) completes. Nothing of one
/// store's commit holds up another's.
#[tokio::test(flavor = "multi_thread")]
async fn an_append_waiting_for_a_standby_does_not_hold_up_another_database() {
    let (cluster, url) = own_cluster().await;
    let admin = connect(&parse_config(&url).unwrap()).await.unwrap();
    admin.batch_execute("CREATE DATABASE other").await.unwrap();
    let other_url = cluster.url("other");
    let mut c = connect(&parse_config(&other_url).unwrap()).await.unwrap();
    let _ = dcbstore::migrate(&mut c).await.unwrap();
    drop(c);
    admin
        .batch_execute("ALTER DATABASE other SET synchronous_commit = local")
        .await
        .unwrap();
    let waiting = Store::connect(&url).await.unwrap();
    let free = Store::connect(&other_url).await.unwrap();
    let _ = free.append(vec![ev("Warm", &["t"])], None).await.unwrap();
    let _ = waiting
        .append(vec![ev("Warm", &["t"])], None)
        .await
        .unwrap();
    cluster
        .configure(&[("synchronous_standby_names", "absent_standby")])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stuck = tokio::spawn({
        let waiting = waiting.clone();
        async move { waiting.append(vec![ev("Stuck", &["t"])], None).await }
    });
    // The first store's append has committed locally and waits for the standby.
    let mut in_sync_rep = false;
    for _ in 0..200 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            in_sync_rep = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_sync_rep, "the append waits for the absent standby");
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        free.append(vec![ev("Free", &["t"])], None),
    )
    .await
    .expect("the other database's append is not held up")
    .unwrap();
    assert_eq!(done.position, SequencePosition::new(2));
    assert!(!stuck.is_finished());
    cluster
        .configure(&[("synchronous_standby_names", "")])
        .unwrap();
    let released = tokio::time::timeout(Duration::from_secs(30), stuck)
        .await
        .expect("released once no standby is required")
        .unwrap()
        .unwrap();
    assert_eq!(released.position, SequencePosition::new(2));
}

#[tokio::test]
async fn reads_survive_pooled_connections_whose_backends_were_terminated() {
    // The pool hands a connection out when the client has not yet noticed
    // that its backend is gone: a read goes again on another connection.
    let (store, _db) = crate::common::store_with(|b| b.pool_size(2)).await;
    let _ = store.append(vec![ev("E", &["x"])], None).await.unwrap();
    let config = parse_config(_db.url()).unwrap();
    let admin = connect(&config).await.unwrap();
    for round in 0..20 {
        // Two reads at once: both pooled connections are open, then idle.
        let all = Query::all();
        let (a, b) = tokio::join!(store.head(), store.read_all(&all, ReadOptions::new()));
        a.unwrap();
        b.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let head = store
            .head()
            .await
            .unwrap_or_else(|e| panic!("round {round}: head after the terminations: {e:?}"));
        assert_eq!(head, Some(SequencePosition::new(1)));
        let events = store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap_or_else(|e| panic!("round {round}: read after the terminations: {e:?}"));
        assert_eq!(events.len(), 1);
    }
}

/// An append whose connection is lost before the append is sent (here, the
/// reply to its statement's preparation) is reported as not written, never
/// as a bare database error that leaves the caller in doubt; an append whose
/// reply is lost is reported as of unknown outcome. Resending settles both.
#[tokio::test(flavor = "multi_thread")]
async fn every_append_outcome_is_written_not_written_or_unknown() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let proxy = Proxy::start(db.config().unwrap().get_ports()[0]).await;
    let store = Store::builder(&via(&db, &proxy))
        .unwrap()
        .pool_size(1)
        .build()
        .await
        .unwrap();
    // A round trip first: the statements the build prepared and dropped are
    // closed in the background, and the proxy would lose the reply to such a
    // close (and hang up) instead of the append's. Then nothing of the
    // append is prepared yet: its first reply is the preparation's.
    let _ = store.head().await.unwrap();
    proxy.set(Mode::LoseNextReply);
    let events = vec![ev("Once", &["t"])];
    let err = store.append(events.clone(), None).await.unwrap_err();
    assert!(matches!(err, Error::NotWritten(_)), "{err:?}");
    assert!(!err.is_outcome_unknown());
    assert!(err.to_string().contains("was not written"), "{err}");
    assert!(err.to_string().contains("nothing of it is stored"), "{err}");
    let direct = Store::connect(db.url()).await.unwrap();
    assert_eq!(direct.head().await.unwrap(), None);
    // Warmed, the next reply is the append's own: unknown, and a resend of
    // the same events tells.
    let _ = store.append(vec![ev("Warm", &["w"])], None).await.unwrap();
    proxy.set(Mode::LoseNextReply);
    let err = store.append(events.clone(), None).await.unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    let again = store.append(events, None).await.unwrap();
    assert!(again.already_stored, "it had been written");
    assert_eq!(direct.head().await.unwrap(), Some(again.position));
}
