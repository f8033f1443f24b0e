//! Shared test setup: the workspace's test support (a fresh, migrated
//! database per test, the metrics recording, the CLI runner) and this
//! binary's own TCP proxy.

pub mod cli;
pub mod proxy;

pub use dcbstore_test_support::{ev, five_aged_events, recording, store, store_with};

/// Test functions generic over the store (`async fn name<S: EventStore +
/// Sync>(store: &S)`), each run on both stores: `pg::name` on a fresh
/// PostgreSQL database (with `with page_size N`, a store reading pages of
/// N), `memory::name` on a fresh `MemoryStore`. One suite for both, so
/// that neither store can drift from the rules.
macro_rules! on_both_stores {
    ($($name:ident $(with page_size $page:literal)?),* $(,)?) => {
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let (store, _db) =
                        crate::common::store_with(|b| b $(.page_size($page))?).await;
                    super::$name(&store).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(&dcbstore::memory::MemoryStore::new()).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;
