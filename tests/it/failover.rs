//! Failover: a standby promoted after it missed the tail of the log hands out
//! positions above every position the old primary could have handed out, so
//! a stale `after` or a checkpoint still sees every new event as after it.

use std::time::Duration;

use dcbstore::connection::{connect, ConnectOptions};
use dcbstore::projection::durable::{self, DurableProjection, Runner, RunnerConfig};
use dcbstore::{
    AppendCondition, Event, EventStore, HandlerError, Query, QueryItem, ReadOptions,
    SequencedEvent, Store, SubscribeOptions,
};
use dcbstore_testing::TestCluster;
use deadpool_postgres::Transaction;
use futures::StreamExt;
use serde_json::json;

async fn wait_until_caught_up(primary: &tokio_postgres::Client, standby: &tokio_postgres::Client) {
    dcbstore_testing::wait_for_replay(primary, standby, Duration::from_secs(10))
        .await
        .expect("the standby replays the primary's WAL");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_standby_that_missed_the_tail_never_hands_a_position_out_twice() {
    let primary = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .unwrap()
        .unwrap();
    let url = primary.url("postgres");
    let mut admin = connect(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    let _ = dcbstore::migrate(&mut admin).await.unwrap();
    let store = Store::connect(&url).await.unwrap();
    let tagged = |n: u64| Event::new("Deposited", json!({"n": n})).with_tag("account:1");
    for n in 1..=3 {
        let _ = store.append(vec![tagged(n)], None).await.unwrap();
    }

    // A standby with events 1 to 3; stopped, it misses 4 and 5.
    let standby = {
        let primary = &primary;
        std::thread::scope(|s| s.spawn(|| primary.start_standby()).join().unwrap()).unwrap()
    };
    let standby_url = standby.url("postgres");
    let replica = connect(&ConnectOptions::parse(&standby_url).unwrap())
        .await
        .unwrap();
    wait_until_caught_up(&admin, &replica).await;
    drop(replica);
    standby.stop().unwrap();
    let a4 = store.append(vec![tagged(4)], None).await.unwrap();
    let a5 = store.append(vec![tagged(5)], None).await.unwrap();
    assert_eq!((a4.position.get(), a5.position.get()), (4, 5));
    // What a client remembers from the old primary: the boundary, read to 5.
    let account = Query::item(QueryItem::tags(["account:1"]));
    let stale_after = a5.position;
    drop(store);
    primary.crash().unwrap();

    // The standby takes over, on a new timeline, without 4 and 5.
    standby.restart().unwrap();
    standby.promote().unwrap();
    let promoted = Store::connect(&standby_url).await.unwrap();
    assert_eq!(promoted.head().await.unwrap().map(|p| p.get()), Some(3));
    let fresh = promoted.append(vec![tagged(6)], None).await.unwrap();
    assert!(
        fresh.position > stale_after,
        "position {} was handed out before the failover",
        fresh.position
    );
    // The client's decision from before the failover must not pass: an
    // event of its boundary was appended after the position it read.
    let err = promoted
        .append(
            vec![tagged(7)],
            Some(AppendCondition::new(account.clone(), Some(stale_after))),
        )
        .await
        .unwrap_err();
    let conflict = err.conflict().expect("a conflict");
    assert_eq!(conflict.position, fresh.position, "{err}");
    let after: Vec<u64> = promoted
        .read_all(&account, ReadOptions::new().after(stale_after))
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.get())
        .collect();
    assert_eq!(after, [fresh.position.get()]);
    // A follower that had delivered up to 5 on the old primary resumes
    // after 5 on the new one: the new timeline's events are all after it.
    let mut follower = promoted.subscribe(&account, SubscribeOptions::new().after(stale_after));
    let resumed = tokio::time::timeout(Duration::from_secs(30), follower.next())
        .await
        .expect("the follower resumes")
        .unwrap()
        .unwrap();
    assert_eq!(resumed.position, fresh.position, "nothing skipped");
    drop(follower);
    // Positions go on from there on the new timeline.
    let next = promoted.append(vec![tagged(8)], None).await.unwrap();
    assert_eq!(next.position.get(), fresh.position.get() + 1);

    // A read model checkpointed at 5 on the old primary (its tables live
    // elsewhere, say) holds effects of events the log lost: its runner stops,
    // failed, and says to rebuild.
    let client = promoted.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO dcbstore.projections (name, checkpoint) VALUES ('feed', $1)",
            &[&(stale_after.get() as i64)],
        )
        .await
        .unwrap();
    let runner = Runner::start(promoted.clone(), Feed, RunnerConfig::default());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never reported the stale checkpoint"
        );
        let s = durable::status(&promoted).await.unwrap();
        if let Some(s) = s
            .into_iter()
            .find(|s| s.name == "feed" && s.state == "failed")
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = status.last_error.unwrap_or_default();
    assert!(message.contains("rebuild"), "{message}");
    assert_eq!(status.checkpoint, stale_after.get(), "nothing was applied");
    // Rebuilt, it follows the log again.
    let applied = runner.rebuild().await.unwrap();
    assert_eq!(
        applied, 5,
        "events 1 to 3, then the two of the new timeline"
    );
    runner.stop().await;
}

/// A read model that only counts.
struct Feed;

impl DurableProjection for Feed {
    fn name(&self) -> &str {
        "feed"
    }
    fn query(&self) -> Query {
        Query::item(QueryItem::tags(["account:1"]))
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
