//! Schema ownership: migrate, status, refusal of unmigrated or newer databases,
//! and connection errors that never show a password.

use dcbstore::connection::connect;
use dcbstore::migrate::{expected_version, FUNCTIONS, MIGRATIONS};
use dcbstore::{migrate, status, Error, Event, EventStore, SchemaState, Store};
use dcbstore_testing::TestDatabase;
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
    let url = dcbstore_testing::to_key_value(&config);
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

// ---- function files ----

/// Every function of the `dcbstore` schema.
async fn schema_functions(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'dcbstore' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_function_belongs_to_exactly_one_file_and_the_files_cover_the_schema() {
    let db = TestDatabase::create().await.unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    let report = migrate(&mut client).await.unwrap();
    let mut files: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    let mut applied = report.functions.clone();
    files.sort_unstable();
    applied.sort_unstable();
    assert_eq!(applied, files, "a fresh database gets every file once");
    let rows = client
        .query(
            "SELECT file, checksum, functions FROM dcbstore.schema_functions ORDER BY file",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), FUNCTIONS.len());
    let mut seen: Vec<String> = Vec::new();
    for r in &rows {
        let (file, checksum, defined): (String, String, Vec<String>) =
            (r.get(0), r.get(1), r.get(2));
        let f = FUNCTIONS
            .iter()
            .find(|f| f.name == file)
            .expect("a file of this build");
        assert_eq!(checksum, f.checksum());
        assert!(!defined.is_empty(), "{file} defines functions");
        for d in defined {
            assert!(!seen.contains(&d), "{d} is defined by two files");
            seen.push(d);
        }
    }
    seen.sort();
    assert_eq!(seen, schema_functions(&client).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_function_file_is_pending_then_reapplied_and_what_no_file_defines_is_dropped() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    // As if an older read.sql had defined dcbstore.obsolete, and someone had
    // left a function of their own in the schema.
    client
        .batch_execute(
            "CREATE FUNCTION dcbstore.obsolete(integer) RETURNS integer LANGUAGE sql AS 'SELECT 1';
             CREATE FUNCTION dcbstore.stray() RETURNS integer LANGUAGE sql AS 'SELECT 2';
             UPDATE dcbstore.schema_functions
                SET checksum = 'older', functions = functions || 'dcbstore.obsolete(integer)'::text
              WHERE file = 'read.sql';",
        )
        .await
        .unwrap();
    let s = status(&client).await.unwrap();
    assert_eq!(s.state, SchemaState::Pending);
    assert!(s.pending.is_empty());
    assert_eq!(s.pending_functions, ["read.sql"]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["pending_functions"], json!(["read.sql"]));
    let err = Store::connect(db.url()).await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated { .. }), "{err}");
    assert!(
        err.to_string().contains("read.sql") && err.to_string().contains("dcbstore migrate"),
        "{err}"
    );

    let report = migrate(&mut client).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.functions, ["read.sql"]);
    assert_eq!(
        report.dropped,
        ["dcbstore.obsolete(integer)", "dcbstore.stray()"]
    );
    assert_eq!(report.status.state, SchemaState::UpToDate);
    assert!(!schema_functions(&client)
        .await
        .iter()
        .any(|f| f.contains("obsolete") || f.contains("stray")));
    Store::connect(db.url()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_applied_by_a_newer_release_are_refused_and_kept() {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let mut client = connect(&db.config().unwrap()).await.unwrap();
    client
        .batch_execute(
            "UPDATE dcbstore.schema_functions SET checksum = 'newer', applied_by = '999.0.0'
              WHERE file = 'read.sql'",
        )
        .await
        .unwrap();
    let s = status(&client).await.unwrap();
    assert_eq!(s.state, SchemaState::Ahead);
    assert_eq!(s.ahead_build.as_deref(), Some("999.0.0"));
    let err = Store::connect(db.url()).await.unwrap_err();
    assert!(matches!(err, Error::FunctionsAhead { .. }), "{err}");
    assert!(err.to_string().contains("upgrade dcbstore"), "{err}");
    let err = migrate(&mut client).await.unwrap_err();
    assert!(matches!(err, Error::FunctionsAhead { .. }), "{err}");
    let checksum: String = client
        .query_one(
            "SELECT checksum FROM dcbstore.schema_functions WHERE file = 'read.sql'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(checksum, "newer", "a refused migrate changes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_names_of_rust_and_sql_agree_and_appends_take_that_lock() {
    use dcbstore::locks::{APPEND_LOCK_RELATION, MIGRATE_LOCK};
    use tokio_postgres::error::SqlState;

    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let client = connect(&db.config().unwrap()).await.unwrap();
    let row = client
        .query_one(
            "SELECT dcbstore.migrate_lock_key(), to_regclass($1) IS NOT NULL",
            &[&APPEND_LOCK_RELATION],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get(1)), (MIGRATE_LOCK, true));

    // The owner holding the append lock stops every append (lock_timeout
    // says so, with the server's error as its source).
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "LOCK TABLE {APPEND_LOCK_RELATION} IN EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let store = Store::builder(db.url())
        .unwrap()
        .lock_timeout(Some(std::time::Duration::from_millis(200)))
        .build()
        .await
        .unwrap();
    let err = store
        .append(vec![Event::new("Blocked", json!(1))], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.code(), Some(SqlState::LOCK_NOT_AVAILABLE.code()));
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    let _ = store
        .append(vec![Event::new("Free", json!(1))], None)
        .await
        .unwrap();
}
