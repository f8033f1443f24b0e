//! Shared test setup: a fresh, migrated database per test.
#![allow(dead_code)]

pub mod cli;
pub mod proxy;
pub mod recording;

use dcbstore::{Event, Store};
use dcbstore_testing::TestDatabase;
use serde_json::json;

/// A migrated database and a store connected to it. Keep the database alive
/// for the test's duration (it is dropped with it).
pub async fn store() -> (Store, TestDatabase) {
    store_with(|b| b).await
}

/// Like [`store`], with `configure` applied to the builder (pool size 32).
pub async fn store_with(
    configure: impl FnOnce(dcbstore::StoreBuilder) -> dcbstore::StoreBuilder,
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
