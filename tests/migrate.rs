//! Schema ownership: migrate, status, refusal of unmigrated or newer databases,
//! and connection errors that never show a password.

use dcbstore::connection::connect;
use dcbstore::migrate::{expected_version, MIGRATIONS};
use dcbstore::testing::TestDatabase;
use dcbstore::{migrate, status, Error, Event, EventStore, SchemaState, Store};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn fresh_then_migrated_then_no_op() {
    let db = TestDatabase::create().await.unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    let s = status(&client).await.unwrap();
    assert_eq!(s.state, SchemaState::Fresh);
    assert_eq!(s.installed_version, None);
    assert_eq!(s.expected_version, expected_version());
    assert_eq!(s.pending.len(), MIGRATIONS.len());
    assert_eq!(s.store_id, None);

    let report = migrate(&mut client).await.unwrap();
    assert_eq!(report.applied.len(), MIGRATIONS.len());
    assert_eq!(report.status.state, SchemaState::UpToDate);
    let id = report
        .status
        .store_id
        .expect("store id created by the first migrate");

    let again = migrate(&mut client).await.unwrap();
    assert!(again.applied.is_empty(), "second migrate is a no-op");
    assert_eq!(again.status.store_id, Some(id));
    let rows = client
        .query(
            "SELECT version, name, checksum, applied_at FROM dcbstore.schema_migrations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), MIGRATIONS.len());
    let checksum: String = rows[0].get(2);
    assert_eq!(checksum, MIGRATIONS[0].checksum());
    // Nothing of ours in public.
    let public: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(public, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_are_safe() {
    let db = TestDatabase::create().await.unwrap();
    let config = db.config().unwrap();
    let runs = (0..6).map(|_| {
        let config = config.clone();
        tokio::spawn(async move {
            let mut c = connect(&config).await.unwrap();
            migrate(&mut c).await
        })
    });
    let reports: Vec<_> = join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let applied: usize = reports.iter().map(|r| r.applied.len()).sum();
    assert_eq!(
        applied,
        MIGRATIONS.len(),
        "each migration applied exactly once"
    );
    let ids: std::collections::HashSet<_> = reports.iter().map(|r| r.status.store_id).collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unmigrated_database_is_refused_with_advice() {
    let db = TestDatabase::create().await.unwrap();
    let err = Store::connect(db.url()).await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated { .. }), "{err}");
    assert!(err.to_string().contains("dcbstore migrate"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn database_newer_than_this_build_is_refused() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    let _ = store
        .append(vec![Event::new("Kept", json!(1))], None)
        .await
        .unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    client
        .execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES ($1, 'from_the_future', 'x')",
            &[&(expected_version() + 1)],
        )
        .await
        .unwrap();
    let s = status(&client).await.unwrap();
    assert_eq!(s.state, SchemaState::Ahead);
    assert_eq!(s.installed_version, Some(expected_version() + 1));
    assert!(s.store_id.is_some());
    let err = Store::connect(db.url()).await.unwrap_err();
    assert!(matches!(err, Error::DatabaseAhead { .. }), "{err}");
    assert!(err.to_string().contains("newer than this build"), "{err}");
    let err = migrate(&mut client).await.unwrap_err();
    assert!(matches!(err, Error::DatabaseAhead { .. }), "{err}");
    let n: i64 = client
        .query_one("SELECT count(*) FROM dcbstore.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "nothing written or lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_mismatch_is_an_error() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    client
        .execute(
            "UPDATE dcbstore.schema_migrations SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let err = status(&client).await.unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { version: 1, .. }),
        "{err}"
    );
    assert!(migrate(&mut client).await.is_err());
    assert!(Store::connect(db.url()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_errors_are_clear_and_never_show_the_password() {
    let secret = "s3cr3t-Pw-9f2";
    // Nothing listens on port 1.
    let url = format!("postgres://app:{secret}@127.0.0.1:1/app");
    let err = Store::connect(&url).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(
        !msg.contains(secret) && !format!("{err:?}").contains(secret),
        "{msg}"
    );

    // The real server, wrong password.
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let mut config = db.config().unwrap();
    config.password(secret);
    let url = dcbstore::testing::to_key_value(&config);
    let err = Store::connect(&url).await.unwrap_err();
    let msg = err.to_string();
    if std::env::var("DATABASE_URL").is_err() {
        // The throwaway cluster checks passwords (scram-sha-256).
        assert!(matches!(err, Error::Connect { .. }), "{msg}");
        assert!(msg.contains("password"), "says why: {msg}");
    }
    assert!(
        !msg.contains(secret) && !format!("{err:?}").contains(secret),
        "{msg}"
    );

    let err = Store::connect("postgres://u:pw@host:notaport/db")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}
