//! Reads on a real hot standby (streaming replication from the same
//! binaries): routed there when it holds what the read must see, on the
//! primary otherwise, never older than a commit token.

use std::time::{Duration, Instant};

use dcbstore::connection::{connect, ConnectOptions};
use dcbstore::replica::ReplicaOptions;
use dcbstore::{Event, EventStore, Query, ReadOptions, SequencePosition, Store, SubscribeOptions};
use dcbstore_testing::TestCluster;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

struct Pair {
    primary: TestCluster,
    standby: TestCluster,
    url: String,
    standby_url: String,
}

async fn pair() -> Pair {
    let (primary, standby) = tokio::task::spawn_blocking(TestCluster::start_with_standby)
        .await
        .unwrap()
        .unwrap();
    let url = primary.url("postgres");
    let mut admin = connect(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    let _ = dcbstore::migrate(&mut admin).await.unwrap();
    let standby_url = standby.url("postgres");
    let pair = Pair {
        primary,
        standby,
        url,
        standby_url,
    };
    pair.caught_up().await;
    pair
}

impl Pair {
    async fn store(&self, options: ReplicaOptions) -> Store {
        Store::builder(&self.url)
            .unwrap()
            .replica(self.standby_url.clone())
            .replica_options(options.recheck(Duration::from_millis(50)))
            .build()
            .await
            .unwrap()
    }

    async fn on_standby(&self, sql: &str) {
        let c = connect(&ConnectOptions::parse(&self.standby_url).unwrap())
            .await
            .unwrap();
        c.batch_execute(sql).await.unwrap();
    }

    /// Waits until the standby replayed everything the primary wrote.
    async fn caught_up(&self) {
        let p = connect(&ConnectOptions::parse(&self.url).unwrap())
            .await
            .unwrap();
        let s = connect(&ConnectOptions::parse(&self.standby_url).unwrap())
            .await
            .unwrap();
        dcbstore_testing::wait_for_replay(&p, &s, Duration::from_secs(10))
            .await
            .expect("the standby catches up");
    }
}

fn ev(n: u64) -> Event {
    Event::new("Numbered", json!({"n": n})).with_tag("r")
}

async fn positions(store: &Store, options: ReadOptions) -> Vec<u64> {
    store
        .read(&Query::all(), options)
        .map_ok(|e| e.position.get())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_read_waits_for_the_replica_then_falls_back_and_is_never_older_than_its_token()
{
    let p = pair().await;
    let store = p
        .store(ReplicaOptions::new().consistency_timeout(Duration::from_millis(800)))
        .await;
    let first = store.append(vec![ev(1)], None).await.unwrap();
    assert!(
        first.commit_token.is_some(),
        "an append carries its commit token"
    );
    p.caught_up().await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    let second = store.append(vec![ev(2)], None).await.unwrap();
    let token = second.commit_token.unwrap();
    assert!(token > first.commit_token.unwrap());
    // A plain read is the replica's: it has not replayed the second append.
    assert_eq!(positions(&store, ReadOptions::new()).await, vec![1]);
    // A read that must see it waits, then reads on the primary.
    let started = Instant::now();
    assert_eq!(
        positions(&store, ReadOptions::new().consistent_with(token)).await,
        vec![1, 2]
    );
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "it waited first"
    );
    // A window bounded by the head is read where the whole window is.
    assert_eq!(
        positions(&store, ReadOptions::new().to(SequencePosition::new(2))).await,
        vec![1, 2]
    );
    // Served by the replica once it replays: resumed while the read waits.
    let waiting = {
        let store = p
            .store(ReplicaOptions::new().consistency_timeout(Duration::from_secs(30)))
            .await;
        tokio::spawn(async move {
            let started = Instant::now();
            let got = positions(&store, ReadOptions::new().consistent_with(token)).await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.on_standby("SELECT pg_wal_replay_resume()").await;
    let (got, took) = waiting.await.unwrap();
    assert_eq!(got, vec![1, 2]);
    assert!(
        took < Duration::from_secs(10),
        "served after the replay, not after the timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_own_writes_sees_every_append_of_the_store() {
    let p = pair().await;
    let store = p
        .store(
            ReplicaOptions::new()
                .read_your_writes(true)
                .consistency_timeout(Duration::from_millis(300)),
        )
        .await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    for n in 1..=5 {
        let _ = store.append(vec![ev(n)], None).await.unwrap();
        let seen = positions(&store, ReadOptions::new()).await;
        assert_eq!(
            seen.last(),
            Some(&n),
            "the store's own append {n} is read back"
        );
    }
    p.on_standby("SELECT pg_wal_replay_resume()").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_standby_sends_reads_to_the_primary_and_a_lagging_one_is_skipped() {
    let p = pair().await;
    // Lagging: a limit of one byte, replay paused, then more WAL.
    let strict = p.store(ReplicaOptions::new().max_lag_bytes(Some(1))).await;
    let _ = strict.append(vec![ev(1)], None).await.unwrap();
    p.caught_up().await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    let _ = strict.append(vec![ev(2), ev(3)], None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        positions(&strict, ReadOptions::new()).await,
        vec![1, 2, 3],
        "the lagging replica is skipped: the primary answers"
    );
    // Within its limit, the same replica serves (and shows its lag).
    let lenient = p.store(ReplicaOptions::new()).await;
    assert_eq!(positions(&lenient, ReadOptions::new()).await, vec![1]);
    p.on_standby("SELECT pg_wal_replay_resume()").await;
    p.caught_up().await;
    // Stopped: reads fall back to the primary, within the probe's timeout.
    p.standby.stop().unwrap();
    let _ = lenient.append(vec![ev(4)], None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(
        positions(&lenient, ReadOptions::new()).await,
        vec![1, 2, 3, 4]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Back up, it serves again.
    p.standby.restart().unwrap();
    p.caught_up().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        positions(&lenient, ReadOptions::new()).await,
        vec![1, 2, 3, 4]
    );
    let _ = &p.primary;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_the_standby_sees_every_event_in_order_while_writers_race() {
    let p = pair().await;
    let store = p.store(ReplicaOptions::new()).await;
    let writer = Store::connect(&p.url).await.unwrap();
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new().poll_interval(Duration::from_millis(50)),
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let _ = writer
                        .append(vec![ev(w * 100 + i), ev(w * 100 + i + 50)], None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    while got.len() < 200 {
        let e = tokio::time::timeout(Duration::from_secs(30), follower.next())
            .await
            .expect("the follower keeps up")
            .unwrap()
            .unwrap();
        got.push(e.position.get());
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        got,
        (1..=200).collect::<Vec<_>>(),
        "every event once, in order"
    );
    // It reads on the standby: paused there, it waits; resumed, it goes on.
    p.caught_up().await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    let _ = writer.append(vec![ev(1000)], None).await.unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(700), follower.next()).await;
    assert!(stalled.is_err(), "the follower reads the paused standby");
    p.on_standby("SELECT pg_wal_replay_resume()").await;
    let next = tokio::time::timeout(Duration::from_secs(30), follower.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.position.get(), 201);
}

/// A read model that counts what it applies (in memory: a rolled-back
/// batch is applied again, so the count is of the final pass only when no
/// batch fails, as here).
struct Counter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl dcbstore::projection::durable::DurableProjection for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn query(&self) -> Query {
        Query::all()
    }
    async fn setup(
        &self,
        _: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), dcbstore::HandlerError> {
        Ok(())
    }
    async fn reset(
        &self,
        _: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), dcbstore::HandlerError> {
        Ok(())
    }
    async fn apply(
        &self,
        _: &deadpool_postgres::Transaction<'_>,
        _: &dcbstore::SequencedEvent,
    ) -> Result<(), dcbstore::HandlerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_catching_up_on_a_paused_replica_skips_nothing() {
    use dcbstore::projection::durable::{self, Runner, RunnerConfig};
    let p = pair().await;
    let store = p
        .store(ReplicaOptions::new().consistency_timeout(Duration::from_millis(300)))
        .await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    let _ = store
        .append((1..=10).map(ev).collect(), None)
        .await
        .unwrap();
    // The catch-up reads up to the primary's head (10): the paused replica
    // holds none of it, so the read must not be the replica's empty page
    // (which would move the checkpoint to 10 with nothing applied).
    let applied = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let runner = Runner::start(
        store.clone(),
        Counter(applied.clone()),
        RunnerConfig::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = durable::status(&store).await.unwrap();
        if s.iter().any(|s| s.name == "counter" && s.checkpoint == 10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the runner did not catch up: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied.load(std::sync::atomic::Ordering::SeqCst), 10);
    runner.stop().await;
    p.on_standby("SELECT pg_wal_replay_resume()").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_moves_to_the_primary_when_its_standby_stops_without_losing_its_place() {
    let p = pair().await;
    let store = p.store(ReplicaOptions::new()).await;
    let _ = store.append((1..=5).map(ev).collect(), None).await.unwrap();
    let mut follower = store.subscribe(
        &Query::all(),
        SubscribeOptions::new()
            .poll_interval(Duration::from_millis(50))
            .reconnect_attempts(100),
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(30), follower.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(e.position.get());
    }
    p.standby.stop().unwrap();
    let _ = store
        .append((6..=10).map(ev).collect(), None)
        .await
        .unwrap();
    while got.len() < 10 {
        let e = tokio::time::timeout(Duration::from_secs(30), follower.next())
            .await
            .expect("the follower goes on on the primary")
            .unwrap()
            .unwrap();
        got.push(e.position.get());
    }
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_on_the_replicas_it_is_given() {
    let p = pair().await;
    let store = Store::connect(&p.url).await.unwrap();
    let _ = store.append(vec![ev(1)], None).await.unwrap();
    p.caught_up().await;
    p.on_standby("SELECT pg_wal_replay_pause()").await;
    let _ = store.append(vec![ev(2)], None).await.unwrap();
    let read = |args: &[&str], env: Option<&str>| {
        let mut c = crate::common::cli::dcbstore();
        c.args(args).env("DATABASE_URL", &p.url);
        c.env_remove("DCBSTORE_REPLICA_URLS");
        if let Some(urls) = env {
            c.env("DCBSTORE_REPLICA_URLS", urls);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    // The paused standby holds event 1 only: a read there shows one line.
    assert_eq!(read(&["read"], None), 2, "the primary");
    assert_eq!(
        read(&["read", "--replica", &p.standby_url], None),
        1,
        "--replica"
    );
    let both = format!("{},{}", p.standby_url, p.standby_url);
    assert_eq!(read(&["read"], Some(&both)), 1, "DCBSTORE_REPLICA_URLS");
    // A window up to the head is read where all of it is.
    assert_eq!(
        read(&["read", "--to", "2", "--replica", &p.standby_url], None),
        2
    );
    p.on_standby("SELECT pg_wal_replay_resume()").await;
}

/// A replica is read only when its log is a prefix of the primary's. After a
/// failover to a standby that missed the tail, a second standby that still
/// holds that tail (ahead of the new primary, and on the old history) is
/// never read, before and after the new primary appends; neither is a
/// standby of another cluster. Every read returns the primary's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_another_history_is_never_read() {
    let p = pair().await;
    let second = tokio::task::block_in_place(|| p.primary.start_standby()).unwrap();
    let second_url = second.url("postgres");
    let old = Store::connect(&p.url).await.unwrap();
    for n in 1..=3 {
        let _ = old.append(vec![ev(n)], None).await.unwrap();
    }
    let primary_client = connect(&ConnectOptions::parse(&p.url).unwrap())
        .await
        .unwrap();
    for url in [&p.standby_url, &second_url] {
        let s = connect(&ConnectOptions::parse(url).unwrap()).await.unwrap();
        dcbstore_testing::wait_for_replay(&primary_client, &s, Duration::from_secs(20))
            .await
            .unwrap();
    }
    // The first standby stops receiving; the tail 4..6 reaches the second.
    p.on_standby("ALTER SYSTEM SET primary_conninfo = ''").await;
    p.on_standby("SELECT pg_reload_conf()").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 4..=6 {
        let _ = old.append(vec![ev(n)], None).await.unwrap();
    }
    let s2 = connect(&ConnectOptions::parse(&second_url).unwrap())
        .await
        .unwrap();
    dcbstore_testing::wait_for_replay(&primary_client, &s2, Duration::from_secs(20))
        .await
        .unwrap();
    drop((old, primary_client));
    // Failover: the old primary goes, the first standby (without the tail)
    // is promoted; the second still holds 4..6 and stays in recovery.
    tokio::task::block_in_place(|| {
        p.primary.stop().unwrap();
        p.standby.promote().unwrap();
    });
    let store = Store::builder(&p.standby_url)
        .unwrap()
        .replica(second_url.clone())
        .replica_options(ReplicaOptions::new().recheck(Duration::from_millis(20)))
        .build()
        .await
        .unwrap();
    let read = |store: Store| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        positions(&store, ReadOptions::new()).await
    };
    assert_eq!(
        read(store.clone()).await,
        [1, 2, 3],
        "the tail is not in the log"
    );
    // The new primary appends (a new epoch): still never the lost tail.
    let mut appended = Vec::new();
    for n in 7..=40 {
        appended.push(
            store
                .append(vec![ev(n)], None)
                .await
                .unwrap()
                .position
                .get(),
        );
    }
    let mut expected = vec![1, 2, 3];
    expected.extend(&appended);
    assert_eq!(read(store.clone()).await, expected);

    // A standby of another cluster, with a store of its own.
    let (other, other_standby) = tokio::task::spawn_blocking(TestCluster::start_with_standby)
        .await
        .unwrap()
        .unwrap();
    let mut admin = connect(&ConnectOptions::parse(&other.url("postgres")).unwrap())
        .await
        .unwrap();
    let _ = dcbstore::migrate(&mut admin).await.unwrap();
    let foreign = Store::connect(&other.url("postgres")).await.unwrap();
    for n in 1..=50 {
        let _ = foreign.append(vec![ev(n)], None).await.unwrap();
    }
    let s = connect(&ConnectOptions::parse(&other_standby.url("postgres")).unwrap())
        .await
        .unwrap();
    dcbstore_testing::wait_for_replay(&admin, &s, Duration::from_secs(20))
        .await
        .unwrap();
    let mixed = Store::builder(&p.standby_url)
        .unwrap()
        .replica(other_standby.url("postgres"))
        .replica_options(ReplicaOptions::new().recheck(Duration::from_millis(20)))
        .build()
        .await
        .unwrap();
    assert_eq!(read(mixed).await, expected, "never the other cluster's log");
    drop((second, other, other_standby));
}
