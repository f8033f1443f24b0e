//! Upgrading in place: a database migrated by the pre-release builds (whose
//! migrations held the function bodies; frozen in
//! `tests/fixtures/prerelease_schema/`) becomes this build's schema on its
//! next migrate, with its events, positions, store id, projections and
//! redactions untouched, and a schema equal to a fresh database's.

use std::path::Path;

use dcbstore::connection::connect;
use dcbstore::migrate::{FUNCTIONS, MIGRATIONS};
use dcbstore::{
    migrate, status, AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions,
    SchemaState, Store,
};
use dcbstore_testing::TestDatabase;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// The pre-release migrations, in order: (version, name, file).
const PRERELEASE: &[(i32, &str, &str)] = &[
    (1, "init", "0001_init.sql"),
    (2, "projections", "0002_projections.sql"),
    (3, "throughput", "0003_throughput.sql"),
    (4, "append_only", "0004_append_only.sql"),
    (5, "limits", "0005_limits.sql"),
];

/// Migrates `client`'s database as the pre-release runner did, up to
/// `version`: each file in its own transaction, recorded with its SHA-256.
async fn prerelease_migrate(client: &mut Client, version: i32) {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS dcbstore;
             CREATE TABLE IF NOT EXISTS dcbstore.schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 checksum   text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prerelease_schema");
    for &(v, name, file) in PRERELEASE.iter().filter(|m| m.0 <= version) {
        let sql = std::fs::read_to_string(dir.join(file)).unwrap();
        let checksum: String = Sha256::digest(sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let tx = client.transaction().await.unwrap();
        tx.batch_execute(&sql).await.unwrap();
        tx.execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&v, &name, &checksum],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// The functions of the schema, as migrate names them.
async fn function_names(client: &Client) -> Vec<String> {
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

/// Everything a user keeps in the store, as text, table by table.
async fn contents(client: &Client) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for sql in [
        "SELECT store_id::text || ' ' || created_at::text FROM dcbstore.store",
        "SELECT row(e.*)::text FROM dcbstore.events e ORDER BY position",
        "SELECT row(t.*)::text FROM dcbstore.event_tags t ORDER BY tag, position",
        // The columns every version has (migration 8 adds `kind`).
        "SELECT row(p.name, p.checkpoint, p.state, p.last_error, p.error_position, p.failures, p.owner, p.updated_at)::text
           FROM dcbstore.projections p ORDER BY name",
        "SELECT row(r.redaction, r.position, r.redacted_at, r.redacted_by, r.reason, r.erased_sha256)::text
           FROM dcbstore.redactions r ORDER BY redaction",
    ] {
        let rows = client.query(sql, &[]).await.unwrap();
        all.push(rows.iter().map(|r| r.get::<_, String>(0)).collect());
    }
    all
}

/// The schema's objects, as text: columns, constraints (valid or not),
/// indexes, triggers, functions with their bodies and privileges, tables'
/// privileges, and what the runner recorded of function files.
async fn catalog(client: &Client) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for sql in [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
                || coalesce(column_default, '-')
           FROM information_schema.columns WHERE table_schema = 'dcbstore'
          ORDER BY table_name, ordinal_position",
        "SELECT conrelid::regclass::text || ' ' || conname || ' '
                || replace(pg_get_constraintdef(oid), ' NOT VALID', '')
           FROM pg_constraint WHERE connamespace = 'dcbstore'::regnamespace ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'dcbstore' ORDER BY indexname",
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          WHERE c.relnamespace = 'dcbstore'::regnamespace AND NOT t.tgisinternal ORDER BY 1",
        "SELECT p.oid::regprocedure::text || ' ' || coalesce(p.proacl::text, '-') || ' '
                || pg_get_functiondef(p.oid)
           FROM pg_proc p WHERE p.pronamespace = 'dcbstore'::regnamespace ORDER BY 1",
        "SELECT relname || ' ' || relkind::text || ' ' || coalesce(relacl::text, '-') FROM pg_class
          WHERE relnamespace = 'dcbstore'::regnamespace ORDER BY relname",
        "SELECT file || ' ' || checksum || ' ' || functions::text
           FROM dcbstore.schema_functions ORDER BY file",
    ] {
        let rows = client.query(sql, &[]).await.unwrap();
        all.push(rows.iter().map(|r| r.get::<_, String>(0)).collect());
    }
    all
}

/// A pre-release database at its last version, with events (tagged,
/// conditional, redacted) and a projection's checkpoint, written through the
/// pre-release SQL functions.
async fn prerelease_store() -> (TestDatabase, Client) {
    let db = TestDatabase::create().await.unwrap();
    let mut client = connect(&db.options().unwrap()).await.unwrap();
    prerelease_migrate(&mut client, 5).await;
    client
        .batch_execute(
            r#"SELECT dcbstore.append('[{"type": "CourseDefined", "data": {"capacity": 10}, "tags": ["course:c1"]},
                                         {"type": "StudentRegistered", "data": {"name": "Ada"}, "tags": ["student:s1"]}]');
               SELECT dcbstore.append('[{"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]}]',
                                      '[{"query": [{"tags": ["course:c1"]}], "after": 1}]');
               SELECT dcbstore.redact(2, '{"name": null}', 'erasure request');
               INSERT INTO dcbstore.projections (name, checkpoint, state) VALUES ('roster', 3, 'running');"#,
        )
        .await
        .unwrap();
    (db, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prerelease_database_upgrades_in_place_with_everything_kept() {
    let (db, mut client) = prerelease_store().await;
    let before = contents(&client).await;
    assert_eq!(before[1].len(), 3, "three events: {before:?}");

    // The tables are this build's up to version 5; the functions are not yet.
    let s = status(&client).await.unwrap();
    assert_eq!(s.state, SchemaState::Pending);
    assert_eq!(s.installed_version, Some(5));
    let later: Vec<i32> = MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|&v| v > 5)
        .collect();
    let pending: Vec<i32> = s.pending.iter().map(|m| m.version).collect();
    assert_eq!(pending, later, "{s:?}");
    let all_files: Vec<String> = FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(s.pending_functions, all_files);
    let err = Store::connect(db.url()).await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated { .. }), "{err}");
    assert!(err.to_string().contains("dcbstore migrate"), "{err}");

    let functions_before = function_names(&client).await;
    let report = migrate(&mut client).await.unwrap();
    let applied: Vec<i32> = report.applied.iter().map(|m| m.version).collect();
    assert_eq!(applied, later, "{report:?}");
    let mut functions = report.functions.clone();
    functions.sort();
    let mut all_sorted = all_files.clone();
    all_sorted.sort();
    assert_eq!(functions, all_sorted);
    // Dropped: exactly the pre-release functions no file defines any more.
    let functions_after = function_names(&client).await;
    let gone: Vec<String> = functions_before
        .into_iter()
        .filter(|f| !functions_after.contains(f))
        .collect();
    assert_eq!(report.dropped, gone);
    assert_eq!(report.status.state, SchemaState::UpToDate);
    assert_eq!(report.status.store_id, s.store_id);
    assert_eq!(
        contents(&client).await,
        before,
        "nothing of the store changed"
    );

    // The store goes on from where it was.
    let store = Store::connect(db.url()).await.unwrap();
    assert_eq!(store.store_id(), s.store_id.unwrap());
    assert_eq!(store.head().await.unwrap().map(|p| p.get()), Some(3));
    let course = Query::item(QueryItem::tags(["course:c1"]));
    let seen = store.read_all(&course, ReadOptions::new()).await.unwrap();
    assert_eq!(
        seen.iter().map(|e| e.position.get()).collect::<Vec<_>>(),
        [1, 3]
    );
    let redacted = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(redacted[1].event.data, json!({"name": null}));
    let err = store
        .append(
            vec![Event::new("CourseCapacityChanged", json!(5)).with_tag("course:c1")],
            Some(AppendCondition::new(course.clone(), Some(seen[0].position))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.conflict().expect("a conflict").position.get(),
        3,
        "a guard sees the events stored before the upgrade"
    );
    let appended = store
        .append(
            vec![Event::new("CourseCapacityChanged", json!(5)).with_tag("course:c1")],
            Some(AppendCondition::new(course, Some(seen[1].position))),
        )
        .await
        .unwrap();
    assert_eq!(appended.position.get(), 4);
    let again = migrate(&mut client).await.unwrap();
    assert!(again.applied.is_empty() && again.functions.is_empty() && again.dropped.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_schema_is_the_schema_a_fresh_database_gets() {
    let (_db, mut upgraded) = prerelease_store().await;
    let _ = migrate(&mut upgraded).await.unwrap();
    let fresh_db = TestDatabase::create().await.unwrap();
    let mut fresh = connect(&fresh_db.options().unwrap()).await.unwrap();
    let _ = migrate(&mut fresh).await.unwrap();
    let (a, b) = (catalog(&upgraded).await, catalog(&fresh).await);
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a, b, "catalog query {i} differs");
    }
    assert!(
        !a[4].is_empty() && !a[3].is_empty(),
        "functions and triggers were read"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_at_the_first_prerelease_version_upgrades_and_loses_its_dead_functions() {
    let db = TestDatabase::create().await.unwrap();
    let mut client = connect(&db.options().unwrap()).await.unwrap();
    prerelease_migrate(&mut client, 1).await;
    client
        .batch_execute(r#"SELECT dcbstore.append('[{"type": "A", "tags": ["t"]}]');"#)
        .await
        .unwrap();
    let report = migrate(&mut client).await.unwrap();
    let applied: Vec<i32> = report.applied.iter().map(|m| m.version).collect();
    let later: Vec<i32> = MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|&v| v > 1)
        .collect();
    assert_eq!(applied, later);
    // Version 1's append_set (nine arguments) was replaced by one with eleven
    // in version 3; no file defines it, so it goes.
    assert!(
        report
            .dropped
            .iter()
            .any(|f| f.starts_with("dcbstore.append_set(") && f.ends_with("head bigint)")),
        "{report:?}"
    );
    let left = function_names(&client).await;
    assert!(report.dropped.iter().all(|f| !left.contains(f)));
    assert_eq!(report.status.state, SchemaState::UpToDate);
    assert_eq!(
        report.status.installed_version,
        Some(MIGRATIONS.len() as i32)
    );
    let store = Store::connect(db.url()).await.unwrap();
    let a = store
        .append(vec![Event::new("B", json!(null)).with_tag("t")], None)
        .await
        .unwrap();
    assert_eq!(a.position.get(), 2);
}

/// An application role granted by a pre-release build (which gave INSERT on
/// the event tables and EXECUTE on every function), with a name that needs
/// quoting: the upgrade takes the writes back, keeps its reads (new tables
/// included) and its appends through the API.
#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_takes_back_what_a_prerelease_grant_gave_beyond_the_api() {
    let (db, mut client) = prerelease_store().await;
    let role = format!("Dcb App {}", uuid::Uuid::new_v4().simple());
    let quoted = postgres_protocol::escape::escape_identifier(&role);
    client
        .batch_execute(&format!(
            "CREATE ROLE {quoted} LOGIN PASSWORD 'pw';
             GRANT USAGE ON SCHEMA dcbstore TO {quoted};
             GRANT SELECT ON ALL TABLES IN SCHEMA dcbstore TO {quoted};
             GRANT INSERT ON dcbstore.events, dcbstore.event_tags TO {quoted};
             GRANT INSERT, UPDATE ON dcbstore.projections TO {quoted};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA dcbstore TO {quoted};"
        ))
        .await
        .unwrap();
    let _ = migrate(&mut client).await.unwrap();
    let mut config = db.config().unwrap();
    config.user(&role).password("pw");
    let url = dcbstore_testing::to_key_value(&config);
    let app = connect(&dcbstore::connection::ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    let refused = app
        .execute(
            "INSERT INTO dcbstore.event_tags (tag, position, type) VALUES ('x', 1, 'CourseDefined')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let internal = app
        .execute("SELECT dcbstore.begin_epoch(0)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        internal.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let epochs: i64 = app
        .query_one("SELECT count(*) FROM dcbstore.epochs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epochs, 1, "the first epoch, recorded by the upgrade");
    let store = Store::connect(&url).await.unwrap();
    let a = store
        .append(vec![Event::new("ByTheApp", json!(1))], None)
        .await
        .unwrap();
    assert_eq!(a.position.get(), 4);
    drop((store, app));
    let _ = client
        .batch_execute(&format!("DROP OWNED BY {quoted}; DROP ROLE {quoted}"))
        .await;
}
