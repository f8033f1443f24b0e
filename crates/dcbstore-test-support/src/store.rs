//! A fresh, migrated database and a store on it, per test.

use std::time::Duration;

use dcbstore::{Event, EventStore, Store, StoreBuilder};
use dcbstore_testing::TestDatabase;
use serde_json::json;

/// A migrated database and a store connected to it. Keep the database alive
/// for the test's duration (it is dropped with it).
pub async fn store() -> (Store, TestDatabase) {
    store_with(|b| b).await
}

/// Like [`store`], with `configure` applied to the builder (pool size 32).
pub async fn store_with(
    configure: impl FnOnce(StoreBuilder) -> StoreBuilder,
) -> (Store, TestDatabase) {
    let db = TestDatabase::create().await.expect("create test database");
    db.migrate().await.expect("migrate");
    let store = configure(Store::builder(db.url()).expect("url").pool_size(32))
        .build()
        .await
        .expect("connect");
    (store, db)
}

/// An event of `event_type` with `tags` and small data.
pub fn ev(event_type: &str, tags: &[&str]) -> Event {
    Event::new(event_type, json!({"t": event_type})).with_tags(tags.iter().copied())
}

/// Five events of `event_type`, aged a little: a consumer reading them in
/// batches of two leaves 3, then 1, then 0 behind, with an age its
/// lag-in-seconds gauge cannot round to 0.
pub async fn five_aged_events(store: &Store, event_type: &str) {
    let events = (0..5).map(|_| ev(event_type, &[])).collect();
    let _ = store.append(events, None).await.expect("append");
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// An sqlx pool (up to 32 connections) on `db`: the application's pool of
/// the sqlx path's tests.
pub async fn sqlx_pool(db: &TestDatabase) -> sqlx::PgPool {
    let options = dcbstore::sqlx::connect_options(db.url()).expect("sqlx options");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .connect_with(options)
        .await
        .expect("sqlx pool")
}

/// A migrated database and the store API on an sqlx pool on it
/// ([`SqlxStore`](dcbstore::sqlx::SqlxStore)), reading pages of
/// `page_size`.
pub async fn sqlx_store(page_size: u64) -> (dcbstore::sqlx::SqlxStore, TestDatabase) {
    let db = TestDatabase::create().await.expect("create test database");
    db.migrate().await.expect("migrate");
    let store = dcbstore::sqlx::SqlxStore::new(sqlx_pool(&db).await).page_size(page_size);
    (store, db)
}
