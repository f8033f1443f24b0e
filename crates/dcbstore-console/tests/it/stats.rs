//! The console's statistics (`dcbstore.refresh_stats`, migration 8): every
//! event counted exactly once, whatever races it.

use std::collections::HashMap;
use std::time::Duration;

use dcbstore::{Event, EventStore};
use dcbstore_console::refresh_until;
use dcbstore_test_support::store;
use serde_json::json;

async fn owner(db: &dcbstore_testing::TestDatabase) -> tokio_postgres::Client {
    dcbstore::connection::connect(&db.options().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_counted_exactly_once_while_writers_and_refreshers_race() {
    let (store, db) = store().await;
    // Four writers append batches while four refreshers (separate
    // connections, small batches) fold them in.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..25 {
                    let events: Vec<Event> = (0..8)
                        .map(|i| {
                            Event::new(format!("T{}", (w + i) % 3), json!({"w": w, "r": round}))
                                .with_tags([format!("w:{w}"), format!("i:{i}")])
                        })
                        .collect();
                    let _ = store.append(events, None).await.unwrap();
                }
            })
        })
        .collect();
    let mut refreshers = Vec::new();
    for _ in 0..4 {
        let client = owner(&db).await;
        refreshers.push(tokio::spawn(async move {
            for _ in 0..60 {
                let _: i64 = client
                    .query_one("SELECT dcbstore.refresh_stats(7)", &[])
                    .await
                    .unwrap()
                    .get(0);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for r in refreshers {
        r.await.unwrap();
    }
    let head = store.head().await.unwrap().unwrap().get();
    assert_eq!(head, 800);
    assert_eq!(
        refresh_until(&store, head, Duration::from_secs(30))
            .await
            .unwrap(),
        head
    );
    let c = owner(&db).await;
    let counted = |sql: &'static str| {
        let c = &c;
        async move {
            c.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect::<HashMap<_, _>>()
        }
    };
    let types = counted("SELECT type, events FROM dcbstore.stats_types").await;
    let truth = counted("SELECT type, count(*) FROM dcbstore.events GROUP BY type").await;
    assert_eq!(types, truth);
    let tags = counted("SELECT tag, events FROM dcbstore.stats_tags").await;
    let truth = counted("SELECT tag, count(*) FROM dcbstore.event_tags GROUP BY tag").await;
    assert_eq!(tags, truth);
    let minutes: i64 = c
        .query_one(
            "SELECT sum(events)::bigint FROM dcbstore.stats_minutes",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(minutes, 800);
    // Nothing new: a refresh changes nothing.
    assert_eq!(
        refresh_until(&store, head, Duration::from_secs(5))
            .await
            .unwrap(),
        head
    );
    let again = counted("SELECT type, events FROM dcbstore.stats_types").await;
    assert_eq!(again, types);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_positions_is_stepped_over() {
    let (store, db) = store().await;
    let _ = store
        .append(
            vec![Event::new("A", json!(1)), Event::new("A", json!(2))],
            None,
        )
        .await
        .unwrap();
    // Positions jump (as at the start of a new epoch after a failover).
    let c = owner(&db).await;
    c.batch_execute(
        "INSERT INTO dcbstore.events (position, id, type, data, tags)
           VALUES (1000000, gen_random_uuid(), 'B', '{}', '{x}');
         INSERT INTO dcbstore.event_tags VALUES ('x', 1000000, 'B');",
    )
    .await
    .unwrap();
    let cursor = refresh_until(&store, 1_000_000, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(cursor, 1_000_000);
    let b: i64 = c
        .query_one(
            "SELECT events FROM dcbstore.stats_types WHERE type = 'B'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(b, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_size_is_refused_with_a_clear_error() {
    let (_store, db) = store().await;
    let e = owner(&db)
        .await
        .query_one("SELECT dcbstore.refresh_stats(0)", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("the function's own error");
    assert!(db.message().contains("at least 1"), "{db:?}");
    assert_eq!(
        db.code(),
        &tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE
    );
}
