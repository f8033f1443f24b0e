//! Append-only log, audited redaction and least-privilege roles, against a
//! real server.

use crate::common::{ev, role, store};
use dcbstore::connection::{connect, parse_config};
use dcbstore::roles::{grant_app, redact, Grants, CONSOLE_FUNCTIONS, READ_ONLY_FUNCTIONS};
use dcbstore::{
    Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition, Store,
    SubscribeOptions,
};
use dcbstore_testing::TestDatabase;
use futures::StreamExt;
use serde_json::json;
use tokio_postgres::Client;

/// The SQLSTATE of a database error, or a panic naming the error.
fn sqlstate(result: Result<u64, tokio_postgres::Error>) -> String {
    match result {
        Ok(n) => panic!("statement succeeded ({n} rows)"),
        Err(e) => e
            .as_db_error()
            .unwrap_or_else(|| panic!("not a database error: {e}"))
            .code()
            .code()
            .to_string(),
    }
}

async fn refused(client: &Client, sql: &str) -> String {
    let e = client
        .execute(sql, &[])
        .await
        .expect_err(&format!("{sql} must be refused"));
    let db = e.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "42501", "{sql}: {db}");
    db.message().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_is_append_only_even_for_its_owner() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![ev("Registered", &["user:1"])], None)
        .await
        .unwrap();
    let owner = connect(&db.config().unwrap()).await.unwrap();
    for sql in [
        "UPDATE dcbstore.events SET data = '{}'",
        "UPDATE dcbstore.events SET tags = '{}'",
        "DELETE FROM dcbstore.events",
        "TRUNCATE dcbstore.events CASCADE",
        "UPDATE dcbstore.event_tags SET tag = 'x'",
        "DELETE FROM dcbstore.event_tags",
        "TRUNCATE dcbstore.event_tags",
        "DELETE FROM dcbstore.redactions",
        "TRUNCATE dcbstore.redactions",
    ] {
        let msg = refused(&owner, sql).await;
        assert!(msg.contains("append-only"), "{sql}: {msg}");
    }
    // Setting the redaction marker by hand does not open other columns.
    owner
        .batch_execute("SET dcbstore.redacting = '1'")
        .await
        .unwrap();
    refused(&owner, "UPDATE dcbstore.events SET type = 'Other'").await;
    refused(&owner, "UPDATE dcbstore.events SET tags = '{x}'").await;

    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].event.tags, ["user:1"]);
    assert_eq!(all[0].event.data, json!({"t": "Registered"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn redact_replaces_data_keeps_the_rest_and_is_audited() {
    let (store, db) = store().await;
    let original = Event::new(
        "UserRegistered",
        json!({"userId": "u1", "email": "ada@example.com"}),
    )
    .with_tag("user:u1");
    let mut meta = serde_json::Map::new();
    meta.insert("ip".into(), json!("10.0.0.1"));
    let original = original.with_metadata(meta);
    let other = ev("Other", &["user:u2"]);
    let appended = store
        .append(vec![original.clone(), other], None)
        .await
        .unwrap();
    let position = SequencePosition::new(appended.position.get() - 1);
    let client = connect(&db.config().unwrap()).await.unwrap();

    let audit = redact(
        &client,
        position,
        &json!({"userId": "u1", "email": null}),
        "GDPR erasure request #42",
        Some(&serde_json::Map::new()),
    )
    .await
    .unwrap();
    assert!(audit > 0);

    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    let e = &all[0];
    assert_eq!(e.position, position);
    assert_eq!(e.event.id, original.id);
    assert_eq!(e.event.event_type, "UserRegistered");
    assert_eq!(e.event.tags, ["user:u1"]);
    assert_eq!(e.event.data, json!({"userId": "u1", "email": null}));
    assert!(e.event.metadata.is_empty(), "metadata replaced");
    assert_eq!(all[1].event.data, json!({"t": "Other"}), "others untouched");
    // Still found by its tag, so conditions still see it.
    let by_tag = store
        .read_all(
            &Query::item(QueryItem::tags(["user:u1"])),
            ReadOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(by_tag.len(), 1);

    let row = client
        .query_one(
            "SELECT position, reason, redacted_by = session_user, erased_sha256,
                    encode(sha256(convert_to($1::jsonb::text || $2::jsonb::text, 'UTF8')), 'hex')
               FROM dcbstore.redactions",
            &[
                &json!({"userId": "u1", "email": "ada@example.com"}),
                &json!({"ip": "10.0.0.1"}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0) as u64, position.get());
    assert_eq!(row.get::<_, String>(1), "GDPR erasure request #42");
    assert!(row.get::<_, bool>(2));
    assert_eq!(
        row.get::<_, String>(3),
        row.get::<_, String>(4),
        "digest of the erased content"
    );

    // The original append can no longer be replayed as an idempotent retry.
    let retry = store.append(vec![original], None).await.unwrap_err();
    assert!(matches!(retry, Error::IdConflict { .. }), "{retry}");

    // Bad requests change nothing.
    for (pos, reason) in [(999u64, "x"), (position.get(), " ")] {
        let e = redact(
            &client,
            SequencePosition::new(pos),
            &json!(null),
            reason,
            None,
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("no event at position") || e.to_string().contains("reason"),
            "{e}"
        );
    }
    let n: i64 = client
        .query_one("SELECT count(*) FROM dcbstore.redactions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn least_privilege_app_role_can_only_append_and_read() {
    let db = TestDatabase::create().await.unwrap();
    let admin = connect(&db.config().unwrap()).await.unwrap();
    let (owner, owner_url) = role(&admin, &db, "dcb_owner").await;
    let (app, app_url) = role(&admin, &db, "dcb_app").await;
    let (eraser, eraser_url) = role(&admin, &db, "dcb_eraser").await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {owner}",
            db.name()
        ))
        .await
        .unwrap();

    // Only the migration role can create the schema.
    let mut as_app = connect(&parse_config(&app_url).unwrap()).await.unwrap();
    let e = dcbstore::migrate(&mut as_app).await.unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");

    let mut as_owner = connect(&parse_config(&owner_url).unwrap()).await.unwrap();
    let _ = dcbstore::migrate(&mut as_owner).await.unwrap();
    grant_app(&as_owner, &app, Grants::app()).await.unwrap();
    grant_app(&as_owner, &eraser, Grants::app().with_redact())
        .await
        .unwrap();
    grant_app(&as_owner, &app, Grants::app())
        .await
        .expect("idempotent");
    let missing = grant_app(&as_owner, "no_such_role", Grants::app())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("CREATE ROLE"), "{missing}");

    // The application appends, reads, checks status and keeps checkpoints.
    let store = Store::connect(&app_url).await.unwrap();
    let a = store
        .append(vec![ev("Opened", &["acc:1"])], None)
        .await
        .unwrap();
    let cond =
        dcbstore::AppendCondition::new(Query::item(QueryItem::tags(["acc:1"])), Some(a.position));
    let _ = store
        .append(vec![ev("Deposited", &["acc:1"])], Some(cond))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(2)));
    assert_eq!(
        store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap()
            .len(),
        2
    );
    let s = dcbstore::status(&as_app).await.unwrap();
    assert_eq!(s.state, dcbstore::SchemaState::UpToDate);
    as_app
        .execute("INSERT INTO dcbstore.projections (name) VALUES ('p1')", &[])
        .await
        .unwrap();
    as_app
        .execute(
            "UPDATE dcbstore.projections SET checkpoint = 2 WHERE name = 'p1'",
            &[],
        )
        .await
        .unwrap();

    // ...and nothing else.
    for sql in [
        "UPDATE dcbstore.events SET data = '{}'",
        "DELETE FROM dcbstore.events",
        "TRUNCATE dcbstore.events",
        "DELETE FROM dcbstore.event_tags",
        "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')",
        "UPDATE dcbstore.store SET store_id = gen_random_uuid()",
        "DELETE FROM dcbstore.projections",
        "CREATE TABLE dcbstore.sneaky (x int)",
        "ALTER TABLE dcbstore.events ADD COLUMN x int",
        "DROP TABLE dcbstore.events",
        "DROP FUNCTION dcbstore.append_batch_unchecked",
        "SELECT dcbstore.redact(1, 'null', 'no right to do this')",
    ] {
        let code = sqlstate(as_app.execute(sql, &[]).await);
        assert_eq!(code, "42501", "{sql} must be refused for the app role");
    }

    // The granted eraser can redact; the change is audited under its name.
    let as_eraser = connect(&parse_config(&eraser_url).unwrap()).await.unwrap();
    redact(
        &as_eraser,
        SequencePosition::new(1),
        &json!(null),
        "erasure request",
        None,
    )
    .await
    .unwrap();
    let by: String = admin
        .query_one("SELECT redacted_by FROM dcbstore.redactions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(by, eraser);

    let cluster_admin = {
        let mut c = db.config().unwrap();
        c.dbname("postgres");
        c
    };
    drop((store, as_app, as_owner, as_eraser));
    drop(db);
    if let Ok(c) = connect(&cluster_admin).await {
        for r in [&owner, &app, &eraser] {
            let _ = c
                .batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE IF EXISTS {r}"))
                .await;
        }
    }
}

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    crate::common::cli::dcbstore()
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run dcbstore")
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_grant_and_redact() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![ev("Registered", &["user:1"])], None)
        .await
        .unwrap();
    let url = db.url().to_string();

    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            cli(
                &url,
                &[
                    "redact",
                    "--position",
                    "1",
                    "--data",
                    r#"{"name": null}"#,
                    "--reason",
                    "erasure request",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["position"], 1);
    assert!(v["redaction"].as_i64().unwrap() > 0);
    let e = &store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap()[0];
    assert_eq!(e.event.data, json!({"name": null}));

    let failures = tokio::task::spawn_blocking(move || {
        (
            cli(
                &url,
                &[
                    "redact",
                    "--position",
                    "9",
                    "--data",
                    "null",
                    "--reason",
                    "x",
                ],
            ),
            cli(
                &url,
                &[
                    "redact",
                    "--position",
                    "1",
                    "--data",
                    "{bad",
                    "--reason",
                    "x",
                ],
            ),
            cli(&url, &["grant", "no_such_role_here"]),
        )
    })
    .await
    .unwrap();
    let (missing, bad_json, no_role) = failures;
    // A missing event is a usage error (exit 2; it was 1).
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no event at position 9"));
    assert_eq!(bad_json.status.code(), Some(2), "{bad_json:?}");
    assert_eq!(no_role.status.code(), Some(1), "{no_role:?}");
    assert!(String::from_utf8_lossy(&no_role.stderr).contains("does not exist"));
    assert!(missing.stdout.is_empty() && no_role.stdout.is_empty());
}

/// With every log level on, in both formats, stdout carries only the
/// command's result and no record on stderr shows the password, whether
/// the connection works or fails.
#[tokio::test(flavor = "multi_thread")]
async fn logs_go_to_stderr_and_never_show_the_password() {
    let (_store, db) = store().await;
    let url = db.url().to_string();
    let password = db
        .config()
        .unwrap()
        .get_password()
        .map(|p| String::from_utf8_lossy(p).to_string())
        .expect("the test cluster uses a password");
    let wrong = url.replace(&password, "not-the-password-123");
    assert_ne!(wrong, url);
    let (ok, failed) = tokio::task::spawn_blocking(move || {
        let run = |url: &str, format: &str| {
            use std::io::Write;
            let mut child = crate::common::cli::dcbstore()
                .args(["append", "--log-format", format])
                .env("DATABASE_URL", url)
                .env("DCBSTORE_LOG", "trace")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"type\": \"Logged\", \"tags\": [\"t\"]}\n")
                .unwrap();
            child.wait_with_output().unwrap()
        };
        (
            [run(&url, "json"), run(&url, "text")],
            [run(&wrong, "json"), run(&wrong, "text")],
        )
    })
    .await
    .unwrap();
    for (i, out) in ok.iter().enumerate() {
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["position"], i as u64 + 1, "stdout is the result only");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("append batch"),
            "debug records on stderr: {stderr}"
        );
        assert!(stderr.contains("store connected"), "{stderr}");
        assert!(
            !stderr.contains(&password),
            "password in the logs: {stderr}"
        );
    }
    let json_records: Vec<serde_json::Value> = String::from_utf8_lossy(&ok[0].stderr)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per record"))
        .collect();
    assert!(json_records
        .iter()
        .any(|r| r["fields"]["message"] == "append batch" && r["fields"]["events"] == 1));
    for out in &failed {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("password authentication failed"),
            "{stderr}"
        );
        assert!(!stderr.contains("not-the-password-123"), "{stderr}");
        assert!(!stderr.contains(&password), "{stderr}");
    }
}

/// Debug output (what a panic or a `{:?}` log shows) of the store, its
/// builder, connection options and connection errors never has the password.
#[tokio::test(flavor = "multi_thread")]
async fn debug_output_never_shows_the_password() {
    let (_store, db) = store().await;
    let password = db
        .config()
        .unwrap()
        .get_password()
        .map(|p| String::from_utf8_lossy(p).to_string())
        .unwrap();
    let builder = Store::builder(db.url()).unwrap();
    let store = builder.clone().build().await.unwrap();
    let options = dcbstore::connection::ConnectOptions::parse(db.url()).unwrap();
    let wrong = db.url().replace(&password, "hunter2-wrong");
    let err = Store::connect(&wrong).await.unwrap_err();
    for shown in [
        format!("{builder:?}"),
        format!("{store:?}"),
        format!("{options:?}"),
        format!("{err:?}"),
        err.to_string(),
        format!("{:?}", db.config().unwrap()),
    ] {
        assert!(!shown.contains(&password), "{shown}");
        assert!(!shown.contains("hunter2-wrong"), "{shown}");
    }
}

/// A database migrated by a non-superuser owner role, an application role
/// granted by `grant_app`, and their connection strings.
struct Roles {
    db: TestDatabase,
    admin: Client,
    owner: String,
    owner_url: String,
    app: String,
    app_url: String,
    /// Roles a test made with [`Roles::login`], dropped with the others.
    others: Vec<String>,
}

impl Roles {
    async fn new() -> Roles {
        let db = TestDatabase::create().await.unwrap();
        let admin = connect(&db.config().unwrap()).await.unwrap();
        let (owner, owner_url) = role(&admin, &db, "dcb_owner").await;
        let (app, app_url) = role(&admin, &db, "dcb_app").await;
        admin
            .batch_execute(&format!(
                "GRANT CREATE ON DATABASE {} TO {owner}",
                db.name()
            ))
            .await
            .unwrap();
        let mut as_owner = connect(&parse_config(&owner_url).unwrap()).await.unwrap();
        let _ = dcbstore::migrate(&mut as_owner).await.unwrap();
        grant_app(&as_owner, &app, Grants::app()).await.unwrap();
        Roles {
            db,
            admin,
            owner,
            owner_url,
            app,
            app_url,
            others: Vec::new(),
        }
    }

    /// One more login role (no privileges yet) and its connection string.
    async fn login(&mut self, prefix: &str) -> (String, String) {
        let (name, url) = role(&self.admin, &self.db, prefix).await;
        self.others.push(name.clone());
        (name, url)
    }

    async fn drop_roles(self) {
        let mut c = self.db.config().unwrap();
        c.dbname("postgres");
        let mut all = self.others;
        all.extend([self.owner, self.app]);
        drop(self.admin);
        drop(self.db);
        if let Ok(c) = connect(&c).await {
            for r in &all {
                let _ = c
                    .batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE IF EXISTS {r}"))
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_role_writes_the_log_only_through_the_append_functions() {
    let roles = Roles::new().await;
    let as_app = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let store = Store::connect(&roles.app_url).await.unwrap();
    let _ = store
        .append(vec![ev("Opened", &["acc:1"])], None)
        .await
        .unwrap();
    // Each way past the append lock and the tag index is refused.
    for sql in [
        // An event without its event_tags rows, or with a position that
        // would end the log.
        "INSERT INTO dcbstore.events (position, id, type, data, tags)
         VALUES (9223372036854775807, gen_random_uuid(), 'Forged', '{}', '{acc:1}')",
        // A stray tag row.
        "INSERT INTO dcbstore.event_tags (tag, position, type) VALUES ('acc:2', 1, 'Opened')",
        // The internal functions, which take no lock.
        "SELECT dcbstore.insert_events(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'::jsonb],
                ARRAY['{}'::jsonb], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[1], 1, now())",
        "SELECT * FROM dcbstore.append_set(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'::jsonb],
                ARRAY['{}'::jsonb], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[0], '{}'::bigint[], '{}'::int[],
                '{}'::int[], '{}'::text[], '{}'::int[], '{}'::text[], 1, 1, '{}', now())",
        "SELECT * FROM dcbstore.guards_matching(ARRAY[1], ARRAY[0::bigint], ARRAY[0], '{}'::int[], '{}'::text[],
                '{}'::int[], '{}'::text[], 0, 1)",
        "SELECT * FROM dcbstore.append_sequential(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'::jsonb],
                ARRAY['{}'::jsonb], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb], 1, now())",
        "SELECT dcbstore.begin_epoch(1)",
        "SELECT dcbstore.batch_error(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'::jsonb],
                ARRAY['{}'::jsonb], ARRAY[2::bigint], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb])",
        // Imports set recorded_at: an import role's, not an application's.
        "SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'],
                ARRAY['{}'], ARRAY[0], '{}'::text[], ARRAY['infinity'::timestamptz])",
        "SELECT dcbstore.query_sql('\"all\"', false)",
        "SELECT dcbstore.condition_conflict('[]', 1)",
        // The bookkeeping behind positions and redactions.
        "INSERT INTO dcbstore.epochs (epoch, timeline, system_identifier, base, resumed_after)
         VALUES (99, 99, 0, 0, 0)",
        "INSERT INTO dcbstore.redactions (position, reason, erased_sha256) VALUES (1, 'x', 'x')",
    ] {
        let code = sqlstate(as_app.execute(sql, &[]).await);
        assert_eq!(code, "42501", "{sql} must be refused for the app role");
    }

    // What the application may do still works: appends through the store,
    // reads, the status, and appends in its own transaction, which hold the
    // append lock until that transaction commits.
    let mut own = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let tx = own.transaction().await.unwrap();
    let mine = dcbstore::append::append_in(&tx, vec![ev("Deposited", &["acc:1"])], None)
        .await
        .unwrap();
    let other = tokio::spawn({
        let store = store.clone();
        async move { store.append(vec![ev("Withdrawn", &["acc:1"])], None).await }
    });
    wait_for_lock_waiter(&roles.admin).await;
    assert!(!other.is_finished(), "the other append waits for the lock");
    tx.commit().await.unwrap();
    let theirs = other.await.unwrap().unwrap();
    assert!(theirs.position > mine.position);
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let s = dcbstore::status(&as_app).await.unwrap();
    assert_eq!(s.state, dcbstore::SchemaState::UpToDate);
    // The owner, not the app, wrote the rows.
    let owner_of: String = roles
        .admin
        .query_one(
            "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'dcbstore.append_batch_unchecked'::regproc",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner_of, roles.owner);
    drop((store, as_app, own));
    roles.drop_roles().await;
}

/// Waits until a backend of the database waits for an advisory lock.
async fn wait_for_lock_waiter(admin: &Client) {
    for _ in 0..200 {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'relation' AND l.relation = 'dcbstore.append_lock'::regclass
                    AND NOT l.granted AND a.datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no append waited for the lock");
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_projections_run_as_the_app_role() {
    use dcbstore::projection::durable::{self, DurableProjection, Runner, RunnerConfig};
    use dcbstore::{HandlerError, SequencedEvent};
    use deadpool_postgres::Transaction;

    struct Count;
    impl DurableProjection for Count {
        fn name(&self) -> &str {
            "count"
        }
        fn query(&self) -> Query {
            Query::all()
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

    let roles = Roles::new().await;
    let store = Store::connect(&roles.app_url).await.unwrap();
    let a = store
        .append(vec![ev("A", &[]), ev("B", &[])], None)
        .await
        .unwrap();
    let runner = Runner::start(store.clone(), Count, RunnerConfig::default());
    for _ in 0..200 {
        let s = durable::status(&store).await.unwrap();
        if s.iter()
            .any(|s| s.name == "count" && s.checkpoint == a.position.get())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let s = durable::status(&store).await.unwrap();
    assert_eq!(s[0].checkpoint, a.position.get(), "{s:?}");
    runner.stop().await;
    drop(store);
    roles.drop_roles().await;
}

/// The SQLSTATE of a failed library call, or a panic naming the outcome.
fn library_sqlstate<T: std::fmt::Debug>(result: dcbstore::Result<T>) -> String {
    match result {
        Ok(v) => panic!("call succeeded: {v:?}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a database error: {e}"))
            .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_role_reads_and_follows_but_cannot_write_anything() {
    let mut roles = Roles::new().await;
    let (reader, reader_url) = roles.login("dcb_reader").await;
    let (downgraded, downgraded_url) = roles.login("dcb_downgraded").await;
    let as_owner = connect(&parse_config(&roles.owner_url).unwrap())
        .await
        .unwrap();

    // A read-only grant with redact is a contradiction, refused before
    // anything changes.
    let e = grant_app(&as_owner, &reader, Grants::read_only().with_redact())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Grants::read_only()"), "{e}");

    // The application writes what the readers read: events, a checkpoint
    // and a dead letter.
    let app = Store::connect(&roles.app_url).await.unwrap();
    let _ = app
        .append(
            vec![ev("Opened", &["acc:1"]), ev("Opened", &["acc:2"])],
            None,
        )
        .await
        .unwrap();
    let as_app = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    as_app
        .batch_execute(
            "INSERT INTO dcbstore.projections (name) VALUES ('balances');
             INSERT INTO dcbstore.dead_letters
                    (subscriber, position, attempts, last_error, first_failed_at, last_failed_at)
             VALUES ('mailer', 1, 3, 'smtp down', now(), now())",
        )
        .await
        .unwrap();

    // `downgraded` first holds everything an application can have, and uses
    // it, so that the downgrade below provably takes it back.
    grant_app(&as_owner, &downgraded, Grants::app().with_redact())
        .await
        .unwrap();
    let before = Store::connect(&downgraded_url).await.unwrap();
    let _ = before
        .append(vec![ev("Deposited", &["acc:1"])], None)
        .await
        .unwrap();
    let as_downgraded = connect(&parse_config(&downgraded_url).unwrap())
        .await
        .unwrap();
    redact(
        &as_downgraded,
        SequencePosition::new(3),
        &json!(null),
        "before the downgrade",
        None,
    )
    .await
    .unwrap();
    drop((before, as_downgraded));
    grant_app(&as_owner, &reader, Grants::read_only())
        .await
        .unwrap();
    grant_app(&as_owner, &downgraded, Grants::read_only())
        .await
        .unwrap();
    grant_app(&as_owner, &reader, Grants::read_only())
        .await
        .expect("idempotent");

    let granted: Vec<&str> = READ_ONLY_FUNCTIONS
        .iter()
        .chain(CONSOLE_FUNCTIONS)
        .map(|f| f.strip_prefix("dcbstore.").unwrap())
        .collect();
    // With the log's length: each reader follows one more event.
    for (events, (name, url)) in (3..).zip([(&reader, &reader_url), (&downgraded, &downgraded_url)])
    {
        // Exactly the read-only functions and no table write, whatever came
        // before: the catalog, not only the statements tried below.
        let mut executable: Vec<String> = roles
            .admin
            .query(
                "SELECT DISTINCT p.proname::text FROM pg_proc p
                  WHERE p.pronamespace = 'dcbstore'::regnamespace
                    AND has_function_privilege($1, p.oid, 'EXECUTE') ORDER BY 1",
                &[name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        executable.sort();
        let mut expected: Vec<String> = granted.iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(executable, expected, "{name} executes");
        let writable: Vec<String> = roles
            .admin
            .query(
                "SELECT c.relname::text FROM pg_class c
                  WHERE c.relnamespace = 'dcbstore'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                    AND has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
                &[name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(writable.is_empty(), "{name} may write {writable:?}");

        // It connects (the schema check), reads, reads by tag, sees the head,
        // the schema status, checkpoints, dead letters and redactions.
        let store = Store::connect(url).await.unwrap();
        let all = store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(all.len(), events, "{name}");
        let acc1 = store
            .read_all(&Query::item(QueryItem::tags(["acc:1"])), ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(
            acc1.iter().map(|e| e.position.get()).collect::<Vec<_>>(),
            [1, 3],
            "{name}"
        );
        assert_eq!(
            store.head().await.unwrap(),
            Some(SequencePosition::new(events as u64))
        );
        let client = connect(&parse_config(url).unwrap()).await.unwrap();
        let s = dcbstore::status(&client).await.unwrap();
        assert_eq!(s.state, dcbstore::SchemaState::UpToDate);
        for (sql, rows) in [
            ("SELECT * FROM dcbstore.read('\"all\"')", events),
            ("SELECT name FROM dcbstore.projections", 1),
            ("SELECT subscriber FROM dcbstore.dead_letters", 1),
            ("SELECT position FROM dcbstore.redactions", 1),
            ("SELECT dcbstore.migrate_lock_key()", 1),
        ] {
            let n = client.query(sql, &[]).await.unwrap().len();
            assert_eq!(n, rows, "{name}: {sql}");
        }

        // It follows the log: an event the application appends arrives.
        let head = store.head().await.unwrap().unwrap();
        let mut follower = store.subscribe(
            &Query::item(QueryItem::tags(["acc:2"])),
            SubscribeOptions::new().after(head),
        );
        let appended = app
            .append(vec![ev("Deposited", &["acc:2"])], None)
            .await
            .unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), follower.next())
            .await
            .expect("the followed event within 20 s")
            .expect("the subscription goes on")
            .unwrap();
        assert_eq!(got.position, appended.position, "{name}");
        drop(follower);

        // ...and writes nothing, by any way.
        let code = library_sqlstate(store.append(vec![ev("Forged", &["acc:1"])], None).await);
        assert_eq!(code, "42501", "{name}: append through the library");
        let code = library_sqlstate(
            redact(
                &client,
                SequencePosition::new(1),
                &json!(null),
                "no right to do this",
                None,
            )
            .await,
        );
        assert_eq!(code, "42501", "{name}: redact through the library");
        for sql in [
            "SELECT dcbstore.append('[{\"type\": \"Forged\", \"tags\": [\"acc:1\"]}]')",
            "SELECT * FROM dcbstore.append_batch(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'::jsonb],
                    ARRAY['{}'::jsonb], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb])",
            "SELECT * FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'],
                    ARRAY['{}'], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb])",
            "SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{}'],
                    ARRAY['{}'], ARRAY[0], '{}'::text[], ARRAY[now()])",
            "SELECT dcbstore.redact(1, 'null', 'no right to do this')",
            "INSERT INTO dcbstore.events (position, id, type, data, tags)
             VALUES (100, gen_random_uuid(), 'Forged', '{}', '{acc:1}')",
            "INSERT INTO dcbstore.event_tags (tag, position, type) VALUES ('acc:9', 1, 'Opened')",
            "INSERT INTO dcbstore.projections (name) VALUES ('forged')",
            "UPDATE dcbstore.projections SET checkpoint = 99 WHERE name = 'balances'",
            "DELETE FROM dcbstore.projections",
            "INSERT INTO dcbstore.dead_letters
                    (subscriber, position, attempts, last_error, first_failed_at, last_failed_at)
             VALUES ('forged', 1, 1, 'x', now(), now())",
            "UPDATE dcbstore.dead_letters SET attempts = 99",
            "DELETE FROM dcbstore.dead_letters WHERE subscriber = 'mailer'",
            "INSERT INTO dcbstore.redactions (position, reason, erased_sha256) VALUES (1, 'x', 'x')",
            "UPDATE dcbstore.store SET store_id = gen_random_uuid()",
            "CREATE TABLE dcbstore.sneaky (x int)",
        ] {
            let code = sqlstate(client.execute(sql, &[]).await);
            assert_eq!(code, "42501", "{sql} must be refused for {name}");
        }
        drop((store, client));
    }

    // Nothing the readers tried changed anything.
    let all = app
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "the three events and the app's two");
    let row = roles
        .admin
        .query_one(
            "SELECT (SELECT checkpoint FROM dcbstore.projections WHERE name = 'balances'),
                    (SELECT count(*) FROM dcbstore.dead_letters WHERE attempts = 3),
                    (SELECT count(*) FROM dcbstore.redactions)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, i64>(2), 1);
    drop((app, as_app, as_owner));
    roles.drop_roles().await;
}

// ---- What another role can do to the writers (attacks) ----

/// No role but the schema's owner can take the append lock: a read-only
/// role and an application role are refused `LOCK TABLE` on its view, and
/// the advisory key that was the append lock before version 9 (which any
/// role can take) holds up nothing. Appends go on while they try.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_role_but_the_owner_can_hold_the_append_lock() {
    let mut roles = Roles::new().await;
    let (reader, reader_url) = roles.login("dcb_reader").await;
    let as_owner = connect(&parse_config(&roles.owner_url).unwrap())
        .await
        .unwrap();
    grant_app(&as_owner, &reader, Grants::read_only())
        .await
        .unwrap();
    let app = Store::connect(&roles.app_url).await.unwrap();
    for url in [&reader_url, &roles.app_url] {
        let attacker = connect(&parse_config(url).unwrap()).await.unwrap();
        for mode in ["ACCESS SHARE", "ROW SHARE", "EXCLUSIVE", "ACCESS EXCLUSIVE"] {
            attacker.batch_execute("BEGIN").await.unwrap();
            let code = sqlstate(
                attacker
                    .execute(
                        &format!("LOCK TABLE dcbstore.append_lock IN {mode} MODE"),
                        &[],
                    )
                    .await,
            );
            assert_eq!(code, "42501", "{url}: LOCK ... IN {mode} MODE");
            attacker.batch_execute("ROLLBACK").await.unwrap();
        }
        // The old advisory key, held for the session, and a transaction left
        // open after reading the lock's view (refused) and the log.
        attacker
            .execute("SELECT pg_advisory_lock(7235937214386151426)", &[])
            .await
            .unwrap();
        attacker.batch_execute("BEGIN").await.unwrap();
        let _ = attacker
            .execute("SELECT * FROM dcbstore.events", &[])
            .await
            .unwrap();
        let appended = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            app.append(vec![ev("GoesOn", &["acc:1"])], None),
        )
        .await
        .expect("the append is not held up")
        .expect("the append succeeds");
        assert!(appended.position.get() > 0);
        drop(attacker);
    }
    assert_eq!(app.head().await.unwrap(), Some(SequencePosition::new(2)));
    drop((app, as_owner));
    roles.drop_roles().await;
}

/// A transaction that appended and never ends (an application's own, legal)
/// holds the append lock: every other append then fails after a bounded
/// wait, with a timeout that says nothing was written, not a hang, even
/// when nobody set a `lock_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_append_lock_is_a_clear_timeout_without_any_lock_timeout_set() {
    let roles = Roles::new().await;
    let mut stuck = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let tx = stuck.transaction().await.unwrap();
    let _ = dcbstore::append::append_in(&tx, vec![ev("Held", &["acc:1"])], None)
        .await
        .unwrap();
    let store = Store::connect(&roles.app_url).await.unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        store.append(vec![ev("Waiting", &["acc:2"])], None),
    )
    .await
    .expect("an answer, not a hang")
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    // Through the SQL API too.
    let other = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let code = sqlstate(
        other
            .execute("SELECT dcbstore.append('[{\"type\": \"Waiting\"}]')", &[])
            .await,
    );
    assert_eq!(code, "55P03", "lock_not_available");
    tx.rollback().await.unwrap();
    let _ = store
        .append(vec![ev("Free", &["acc:2"])], None)
        .await
        .unwrap();
    drop((store, other));
    roles.drop_roles().await;
}

/// Through every SQL entry point an application role may call, JSON that a
/// reader could not decode (a number beyond a double, nesting past the
/// limit) is refused with SQLSTATE 22023 and the reason; nothing is
/// written, and the log stays readable by the library, the CLI and export.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_role_cannot_store_json_that_a_reader_cannot_decode() {
    let roles = Roles::new().await;
    let app = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let store = Store::connect(&roles.app_url).await.unwrap();
    let _ = store
        .append(vec![Event::new("Ok", json!({"n": 1}))], None)
        .await
        .unwrap();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        ("SELECT dcbstore.append('[{\"type\": \"P\", \"data\": {\"n\": 1e400}}]')".to_string(), "beyond what a double can hold"),
        (format!("SELECT dcbstore.append('[{{\"type\": \"P\", \"data\": {deep}}}]')"), "nested deeper than 100 levels"),
        ("SELECT dcbstore.append('[{\"type\": \"P\", \"metadata\": {\"n\": -2e308}}]')".to_string(), "beyond what a double can hold"),
        ("SELECT * FROM dcbstore.append_batch(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['{\"n\": 1e400}'::jsonb], ARRAY['{}'::jsonb], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb])".to_string(), "beyond what a double can hold"),
        (format!("SELECT * FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['{deep}'], ARRAY['{{}}'], ARRAY[0], '{{}}'::text[], ARRAY[1], ARRAY[NULL::jsonb])"), "nested deeper"),
        ("SELECT * FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['1'], ARRAY['{\"n\": 1e999}'], ARRAY[0], '{}'::text[], ARRAY[1], ARRAY[NULL::jsonb])".to_string(), "beyond what a double can hold"),
        (format!("SELECT * FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['\"{}\"'], ARRAY['{{}}'], ARRAY[0], '{{}}'::text[], ARRAY[1], ARRAY[NULL::jsonb])", "x".repeat(2 << 20)), "max_event_bytes"),
    ];
    for (sql, reason) in &cases {
        let err = app.execute(sql.as_str(), &[]).await.expect_err("refused");
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "22023", "{}: {db}", &sql[..60]);
        assert!(db.message().contains(reason), "{}: {db}", &sql[..60]);
    }
    // Nothing written, and every reader reads the whole log.
    assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(1)));
    assert_eq!(
        store
            .read_all(&Query::all(), ReadOptions::new())
            .await
            .unwrap()
            .len(),
        1
    );
    let mut out = Vec::new();
    let exported = dcbstore::transfer::export(
        &store,
        &dcbstore::transfer::ExportOptions::new(),
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(exported.exported, 1);
    drop((store, app));
    roles.drop_roles().await;
}

/// The Rust client's entry point takes conditions as typed arrays: an app
/// role that sends arrays not of one shape (a guard outside every request's
/// range, an item without terms, an empty term) is refused with SQLSTATE
/// 22023, never appended under a narrower condition than it sent; well-formed
/// guards conflict exactly as the JSON form does, and its data is checked as
/// every entry point checks it.
#[tokio::test(flavor = "multi_thread")]
async fn typed_guards_not_of_one_shape_are_refused_never_read_as_a_narrower_condition() {
    let roles = Roles::new().await;
    let app = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let store = Store::connect(&roles.app_url).await.unwrap();
    let _ = store
        .append(
            vec![Event::new("Opened", json!({})).with_tags(["account:1"])],
            None,
        )
        .await
        .unwrap();
    // One event of type Opened tagged account:1, under the given guards
    // (guard_ends, afters, item_ends, type_ends, types, tag_ends, tags).
    let typed = |data: &str, guards: &str| {
        format!(
            "SELECT outcome FROM dcbstore.append_batch_typed(ARRAY[gen_random_uuid()], ARRAY['Opened'], ARRAY['{data}'],
                    ARRAY['{{}}'], ARRAY[1], ARRAY['account:1'], ARRAY[1], {guards})"
        )
    };
    let account_guard = "'{1}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{1}', '{account:1}'";
    let refused = [
        // The guard is there, but no request owns it.
        (
            typed(
                "{}",
                "'{0}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{1}', '{account:1}'",
            ),
            "guard_ends",
        ),
        // The item's terms lie beyond its end.
        (
            typed(
                "{}",
                "'{1}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{0}', '{account:1}'",
            ),
            "item_type_ends and item_tag_ends",
        ),
        // An item without terms (it would match nothing).
        (
            typed(
                "{}",
                "'{1}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{0}', '{}'::text[]",
            ),
            "neither types nor tags",
        ),
        // An empty or NULL tag.
        (
            typed(
                "{}",
                "'{1}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{1}', '{\"\"}'",
            ),
            "empty type or tag",
        ),
        (
            typed(
                "{}",
                "'{1}', '{0}'::bigint[], '{1}', '{0}', '{}'::text[], '{1}', '{NULL}'",
            ),
            "empty type or tag",
        ),
        // A negative "after".
        (
            typed(
                "{}",
                "'{1}', '{-1}'::bigint[], '{1}', '{0}', '{}'::text[], '{1}', '{account:1}'",
            ),
            "\"after\"",
        ),
        // Data no reader decodes, under a well-formed guard.
        (
            typed("{\"n\": 1e400}", account_guard),
            "beyond what a double can hold",
        ),
    ];
    for (sql, reason) in &refused {
        let err = app.execute(sql.as_str(), &[]).await.expect_err(sql);
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "22023", "{sql}: {db}");
        assert!(db.message().contains(reason), "{sql}: {db}");
    }
    assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(1)));
    // Well formed, the guard conflicts with the event it matches.
    let row = app
        .query_one(typed("{}", account_guard).as_str(), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "conflict");
    assert_eq!(store.head().await.unwrap(), Some(SequencePosition::new(1)));
    drop((store, app));
    roles.drop_roles().await;
}

/// `import_batch` sets `recorded_at`, so it is an import role's
/// (`grant --import`), not an application's; and even an import role cannot
/// stamp the log outside [the previous event's time, the server's clock +
/// `max_clock_skew`] (an infinite or far-future time would be inherited by
/// every later append and fail every later read).
#[tokio::test(flavor = "multi_thread")]
async fn imports_are_an_import_roles_and_never_stamp_the_log_outside_its_clock() {
    let mut roles = Roles::new().await;
    let (importer, importer_url) = roles.login("dcb_importer").await;
    let as_owner = connect(&parse_config(&roles.owner_url).unwrap())
        .await
        .unwrap();
    let app = connect(&parse_config(&roles.app_url).unwrap())
        .await
        .unwrap();
    let forged = |at: &str| {
        format!(
            "SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['Forged'], ARRAY['{{}}'],
                    ARRAY['{{}}'], ARRAY[0], '{{}}'::text[], ARRAY['{at}'::timestamptz])"
        )
    };
    assert_eq!(
        sqlstate(app.execute(forged("infinity").as_str(), &[]).await),
        "42501",
        "an application role may not import"
    );
    let store = Store::connect(&roles.app_url).await.unwrap();
    let line = |at: &str| {
        format!(
            "{}\n",
            json!({"id": uuid::Uuid::now_v7(), "type": "Imported", "recorded_at": at})
        )
    };
    let refused = dcbstore::transfer::import(
        &store,
        line("2030-01-01T00:00:00Z").as_bytes(),
        &dcbstore::transfer::ImportOptions::new(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("line 1"), "{refused}");

    grant_app(&as_owner, &importer, Grants::app().with_import())
        .await
        .unwrap();
    let import_role = connect(&parse_config(&importer_url).unwrap())
        .await
        .unwrap();
    let importing = Store::connect(&importer_url).await.unwrap();
    let _ = importing
        .append(vec![ev("Now", &["t"])], None)
        .await
        .unwrap();
    for at in ["infinity", "-infinity", "9999-01-01", "2000-01-01"] {
        let err = import_role
            .execute(forged(at).as_str(), &[])
            .await
            .expect_err(at);
        assert_eq!(
            err.as_db_error().map(|d| d.code().code()),
            Some("22023"),
            "{at}: {err}"
        );
    }
    for at in ["9999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"] {
        let err = dcbstore::transfer::import(
            &importing,
            line(at).as_bytes(),
            &dcbstore::transfer::ImportOptions::new(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("line 1: "), "{at}: {err}");
    }
    // A time now is taken; later appends and reads are unharmed.
    let now = chrono::Utc::now().to_rfc3339();
    let _ = dcbstore::transfer::import(
        &importing,
        line(&now).as_bytes(),
        &dcbstore::transfer::ImportOptions::new(),
        |_| {},
    )
    .await
    .unwrap();
    let a = store.append(vec![ev("After", &["t"])], None).await.unwrap();
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let last = all.last().unwrap();
    assert_eq!(last.position, a.position);
    assert!(last.recorded_at <= chrono::Utc::now() + chrono::Duration::minutes(5));
    // A plain application grant takes import back.
    grant_app(&as_owner, &importer, Grants::app())
        .await
        .unwrap();
    assert_eq!(
        sqlstate(import_role.execute(forged(&now).as_str(), &[]).await),
        "42501"
    );
    drop((store, importing, app, import_role, as_owner));
    roles.drop_roles().await;
}

/// `dcbstore append` never reports "failed" for a write that happened: an
/// idempotent retry that finds its events stored succeeds (exit 0, with
/// their positions) even when the lookup of its first position fails (here:
/// a role that may append but not read the log).
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_retry_that_finds_its_events_stored_never_exits_as_failed() {
    let roles = Roles::new().await;
    let as_owner = connect(&parse_config(&roles.owner_url).unwrap())
        .await
        .unwrap();
    as_owner
        .batch_execute(&format!(
            "REVOKE SELECT ON dcbstore.events FROM {}",
            roles.app
        ))
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7();
    let line = format!("{}\n", json!({"id": id, "type": "Once", "tags": ["t"]}));
    let run = || {
        use std::io::Write;
        let mut child = crate::common::cli::dcbstore()
            .args(["append"])
            .env("DATABASE_URL", &roles.app_url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let retry = run();
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&retry.stdout).unwrap();
    assert_eq!(out["already_stored"], true, "{out}");
    assert_eq!(out["position"], 1, "{out}");
    assert_eq!(out["first_position"], 1, "{out}");
    drop(as_owner);
    roles.drop_roles().await;
}

/// A relay transport that records the keys it publishes.
struct Probe(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl dcbstore_delivery::Transport for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    async fn publish(
        &self,
        batch: &[dcbstore_delivery::dispatch::Envelope],
    ) -> Result<(), dcbstore_delivery::PublishError> {
        let mut log = self.0.lock().unwrap();
        log.extend(batch.iter().map(|e| e.idempotency_key.clone()));
        Ok(())
    }
}

/// The checkpoint of `name`, as the owner sees it (0 before its row).
async fn checkpoint_of(admin: &Client, name: &str) -> i64 {
    admin
        .query_opt(
            "SELECT checkpoint FROM dcbstore.projections WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map_or(0, |r| r.get(0))
}

/// Waits (a liveness bound, not a timing) until the projection `count` and
/// the relay `relay:probe` have both reached the head.
async fn both_caught_up(admin: &Client, store: &Store, what: &str) {
    let head = store.head().await.unwrap().unwrap().get() as i64;
    for _ in 0..1200 {
        if checkpoint_of(admin, "count").await == head
            && checkpoint_of(admin, "relay:probe").await == head
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never caught up: {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_role_cannot_stop_a_projection_or_a_relay() {
    use dcbstore::projection::durable::{DurableProjection, Runner, RunnerConfig};
    use dcbstore::{HandlerError, SequencedEvent};
    use dcbstore_delivery::dispatch::to_store_event;
    use dcbstore_delivery::{DeliveryConfig, Relay};
    use deadpool_postgres::Transaction;
    use std::time::Duration;

    struct Count;
    impl DurableProjection for Count {
        fn name(&self) -> &str {
            "count"
        }
        fn query(&self) -> Query {
            Query::all()
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
    let runner_config = RunnerConfig {
        poll_interval: Duration::from_millis(50),
        ..RunnerConfig::default()
    };
    let relay_config = DeliveryConfig {
        poll_interval: Duration::from_millis(50),
        ..DeliveryConfig::default()
    };
    let envelope = |n: u32| {
        to_store_event(&dcbstore_delivery::dispatch::Envelope {
            id: uuid::Uuid::now_v7(),
            name: "Shipped".into(),
            kind: dcbstore::schema::Kind::Integration,
            version: 1,
            level: dcbstore::schema::Level::Broker,
            payload: json!({ "n": n }),
            metadata: serde_json::Map::new(),
            occurred_at: chrono::Utc::now(),
            idempotency_key: format!("shipped-{n}"),
            tags: vec![],
        })
    };

    let mut roles = Roles::new().await;
    let (intruder, intruder_url) = roles.login("dcb_intruder").await;
    let as_owner = connect(&parse_config(&roles.owner_url).unwrap())
        .await
        .unwrap();
    grant_app(&as_owner, &intruder, Grants::read_only())
        .await
        .unwrap();
    let intruder_client = || async {
        connect(&parse_config(&intruder_url).unwrap())
            .await
            .unwrap()
    };
    let by_intruder = intruder_client().await;
    // The advisory keys earlier versions derived from the names, taken
    // before any runner starts.
    for name in ["count", "relay:probe"] {
        by_intruder
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&format!("dcbstore.projection:{name}")],
            )
            .await
            .unwrap();
    }

    let app = Store::connect(&roles.app_url).await.unwrap();
    let _ = app
        .append(vec![envelope(1), envelope(2)], None)
        .await
        .unwrap();
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let relay = Relay::for_events(
        Probe(published.clone()),
        vec!["Shipped".into()],
        relay_config,
    );
    let projection = Runner::start(app.clone(), Count, runner_config);
    let relaying = relay.start(&app);
    both_caught_up(&roles.admin, &app, "despite the old keys").await;

    // Every advisory lock the intruder can see (the runners' keys among
    // them): it queues for each, each on a connection of its own, so that
    // it holds them the moment the runners let go.
    let keys: Vec<i64> = by_intruder
        .query(
            "SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        keys.len() >= 2,
        "the intruder sees the runners' locks: {keys:?}"
    );
    let mut queued = Vec::new();
    for key in keys {
        let c = intruder_client().await;
        queued.push(tokio::spawn(async move {
            c.execute("SELECT pg_advisory_lock($1)", &[&key])
                .await
                .unwrap();
            c
        }));
    }
    // The runners die, as a crash would: their connections close, and the
    // intruder's sessions get their keys.
    projection.abort();
    relaying.abort();
    let mut holding = Vec::new();
    for q in queued {
        holding.push(q.await.unwrap());
    }

    // New runners take over all the same.
    let projection = Runner::start(app.clone(), Count, runner_config);
    let relaying = relay.start(&app);
    let _ = app
        .append(vec![envelope(3), envelope(4)], None)
        .await
        .unwrap();
    both_caught_up(&roles.admin, &app, "despite the keys the intruder holds").await;
    projection.stop().await;
    relaying.stop().await;
    let keys = published.lock().unwrap().clone();
    assert!(keys.contains(&"shipped-4".to_string()), "{keys:?}");

    // Nor can it take or forge a lease through the table or the functions.
    for sql in [
        "SELECT dcbstore.take_lease('count', 'intruder')",
        "SELECT dcbstore.lease_held('count', 1)",
        "SELECT dcbstore.lease_current('count', 1)",
        "UPDATE dcbstore.leases SET holder_pid = pg_backend_pid()",
        "DELETE FROM dcbstore.leases",
        "INSERT INTO dcbstore.leases (name) VALUES ('forged')",
    ] {
        let code = sqlstate(by_intruder.execute(sql, &[]).await);
        assert_eq!(code, "42501", "{sql} must be refused for {intruder}");
    }
    drop((app, by_intruder, holding, as_owner));
    roles.drop_roles().await;
}
