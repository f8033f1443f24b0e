//! Shared test setup: the workspace's test support (a fresh, migrated
//! database per test, the metrics recording, the CLI runner) and this
//! binary's own TCP proxy.

pub mod cli;
pub mod proxy;

pub use dcbstore_test_support::{
    ev, five_aged_events, recording, sqlx_pool, sqlx_store, store, store_with,
};

/// Test functions generic over the store (`async fn name<S: EventStore +
/// Sync>(store: &S)`), each run on every store: `pg::name` on a fresh
/// PostgreSQL database (with `with page_size N`, a store reading pages of
/// N), `sqlx::name` on the sqlx path (`SqlxStore`: each append
/// `dcbstore::sqlx::append_in` in a transaction of an sqlx pool, each read
/// `read_in`/`read_boundary_in`, same page size), `memory::name` on a fresh
/// `MemoryStore`. One suite for all, so that none can drift from the rules.
macro_rules! on_every_store {
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
        mod sqlx {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let (store, _db) =
                        crate::common::sqlx_store(1000 $(.min($page))?).await;
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
pub(crate) use on_every_store;

/// A role that can log in to `db` (name and connection string), dropped by
/// the caller.
pub async fn role(
    admin: &tokio_postgres::Client,
    db: &dcbstore_testing::TestDatabase,
    prefix: &str,
) -> (String, String) {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().simple().to_string();
    admin
        .batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
        .await
        .unwrap();
    let mut config = dcbstore::connection::parse_config(db.url()).unwrap();
    config.user(&name).password(&password);
    (name, dcbstore_testing::to_key_value(&config))
}
