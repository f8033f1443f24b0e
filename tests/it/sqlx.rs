//! The store inside an application's sqlx transaction (`dcbstore::sqlx`):
//! the application's rows and its events commit together or not at all, a
//! conflict rolls back nothing of the application's, appends through sqlx
//! and through the store's writer race under one lock, followers are woken
//! at commit, and errors say what they say on the native path. The shared
//! suites (semantics, scenarios, properties, typed, batch model) run on this
//! path as well: their `sqlx::` tests.

use std::sync::Arc;
use std::time::Duration;

use dcbstore::sqlx::{append_in, read_boundary_in, read_in, wake, SqlxErrorExt};
use dcbstore::subscribe::SubscribeOptions;
use dcbstore::{AppendCondition, Error, EventStore, Query, QueryItem, ReadOptions};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Barrier;

use crate::common::{ev, sqlx_pool, store};

async fn app_table(pool: &PgPool) {
    sqlx::query("CREATE TABLE enrolments (student text PRIMARY KEY, course text NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

async fn enrolments(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT student FROM enrolments ORDER BY student")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn log_types(pool: &PgPool) -> Vec<String> {
    let mut conn = pool.acquire().await.unwrap();
    read_in(&mut conn, &Query::all(), ReadOptions::default())
        .map_ok(|e| e.event.event_type)
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_rows_and_its_events_commit_together_or_not_at_all() {
    let (_store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    app_table(&pool).await;

    for commit in [false, true] {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO enrolments VALUES ('ann', 'c1')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let appended = append_in(&mut tx, vec![ev("Enrolled", &["course:c1"])], None)
            .await
            .unwrap();
        // Inside the transaction, its own append is readable.
        let seen = read_boundary_in(
            &mut tx,
            &Query::item(QueryItem::tags(["course:c1"])),
            ReadOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(seen.events.len(), 1);
        assert_eq!(seen.after, Some(appended.position));
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
            assert!(enrolments(&pool).await.is_empty(), "rolled back: no row");
            assert!(log_types(&pool).await.is_empty(), "rolled back: no event");
        }
    }
    assert_eq!(enrolments(&pool).await, ["ann"]);
    assert_eq!(log_types(&pool).await, ["Enrolled"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_in_the_apps_transaction_rolls_back_nothing_of_the_apps() {
    let (store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    app_table(&pool).await;
    let query = Query::item(QueryItem::tags(["course:c1"]));

    let mut tx = pool.begin().await.unwrap();
    let boundary = read_boundary_in(&mut tx, &query, ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(boundary.after, None);
    // Someone else enrols meanwhile, through the store's writer.
    let theirs = store
        .append(vec![ev("Enrolled", &["course:c1"])], None)
        .await
        .unwrap();
    sqlx::query("INSERT INTO enrolments VALUES ('bob', 'c1')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let condition = AppendCondition::new(query.clone(), boundary.after);
    let err = append_in(
        &mut tx,
        vec![ev("Enrolled", &["course:c1"])],
        Some(&condition),
    )
    .await
    .unwrap_err();
    let Error::Conflict(conflict) = &err else {
        panic!("a conflict, got {err:?}");
    };
    assert_eq!(
        conflict
            .events
            .iter()
            .map(|e| e.position)
            .collect::<Vec<_>>(),
        [theirs.position]
    );
    // The transaction goes on: the application's row is still there, and
    // it decides what to keep.
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM enrolments")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(mine, 1);
    tx.commit().await.unwrap();
    assert_eq!(enrolments(&pool).await, ["bob"]);
    assert_eq!(log_types(&pool).await, ["Enrolled"], "only theirs");
}

/// Decisions on one boundary, half in sqlx transactions and half through
/// the store's batching writer, all deciding from the same (empty) state:
/// exactly one is written, every other one is a conflict naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_in_sqlx_transactions_and_through_the_store_race_and_one_wins_per_boundary() {
    let (store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    for round in 0..5 {
        let tag = format!("seat:{round}");
        let query = Query::item(QueryItem::tags([tag.as_str()]));
        let after = store.head().await.unwrap();
        let condition = AppendCondition::new(query.clone(), after);
        let barrier = Arc::new(Barrier::new(16));
        let mut tasks = Vec::new();
        for k in 0..16 {
            let (store, pool, barrier) = (store.clone(), pool.clone(), barrier.clone());
            let (condition, tag) = (condition.clone(), tag.clone());
            tasks.push(tokio::spawn(async move {
                let event = ev("SeatTaken", &[tag.as_str()]);
                if k % 2 == 0 {
                    let mut tx = pool.begin().await.unwrap();
                    barrier.wait().await;
                    let r = append_in(&mut tx, vec![event], Some(&condition)).await;
                    tx.commit().await.unwrap();
                    r
                } else {
                    barrier.wait().await;
                    store.append(vec![event], Some(condition)).await
                }
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(a) => won.push(a.position),
                Err(Error::Conflict(c)) => assert_eq!(c.events.len(), 1, "{c:?}"),
                Err(e) => panic!("a write or a conflict, got {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: one decision wins");
        let seats = store
            .read_boundary(&query, ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(seats.events.len(), 1);
        assert_eq!(seats.events[0].position, won[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sqlx_append_wakes_the_stores_followers_at_commit_and_never_on_rollback() {
    let (store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    let q = Query::item(QueryItem::tags(["app"]));
    let hour = SubscribeOptions::new().poll_interval(Duration::from_secs(3600));
    let mut follower = store.subscribe(&q, hour);
    async fn next(f: &mut dcbstore::subscribe::Subscription) -> dcbstore::SequencedEvent {
        tokio::time::timeout(Duration::from_secs(20), f.next())
            .await
            .expect("an event within 20 s (followers poll hourly: only a wake-up brings it)")
            .expect("the subscription goes on")
            .expect("no error")
    }
    let marker = store
        .append(vec![ev("Marker", &["app"])], None)
        .await
        .unwrap();
    assert_eq!(next(&mut follower).await.position, marker.position);

    let mut tx = pool.begin().await.unwrap();
    let _ = append_in(&mut tx, vec![ev("RolledBack", &["app"])], None)
        .await
        .unwrap();
    wake(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let appended = append_in(&mut tx, vec![ev("InTransaction", &["app"])], None)
        .await
        .unwrap();
    wake(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let got = next(&mut follower).await;
    assert_eq!(got.event.event_type, "InTransaction");
    assert_eq!(got.position, appended.position);
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(300), follower.next()).await {
        panic!("nothing more was expected, got {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_on_the_sqlx_path_are_the_native_paths() {
    let (native_store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    let mut conn = pool.acquire().await.unwrap();

    // Refused at the edge: nothing sent.
    let err = append_in(&mut conn, vec![], None).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let deep = (0..200).fold(json!(1), |v, _| json!([v]));
    let err = append_in(
        &mut conn,
        vec![dcbstore::Event::new("Deep", deep.clone())],
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");

    // Refused by the database (a limit lowered there): its SQLSTATE and
    // sqlx's own error behind it, nothing written.
    sqlx::query("UPDATE dcbstore.limits SET max_json_depth = 3")
        .execute(&mut *conn)
        .await
        .unwrap();
    let nested = dcbstore::Event::new("Nested", json!({"a": {"b": {"c": {"d": 1}}}}));
    let err = append_in(&mut conn, vec![nested], None).await.unwrap_err();
    assert_eq!(err.code(), Some("22023"), "{err:?}");
    let db_error = err
        .as_sqlx_error()
        .and_then(|e| e.as_database_error())
        .expect("sqlx's database error behind it");
    assert!(db_error.message().contains("depth"), "{db_error}");
    assert!(!err.is_outcome_unknown() && !err.is_transient());
    // Through the store API, as the native store reports it: not written.
    let nested = dcbstore::Event::new("Nested", json!({"a": {"b": {"c": {"d": 1}}}}));
    let through_store = dcbstore::sqlx::SqlxStore::new(pool.clone())
        .append(vec![nested.clone()], None)
        .await
        .unwrap_err();
    let native = native_store.append(vec![nested], None).await.unwrap_err();
    for err in [&through_store, &native] {
        assert!(matches!(err, Error::NotWritten(_)), "{err:?}");
        assert_eq!(err.code(), Some("22023"), "{err:?}");
    }
    assert!(log_types(&pool).await.is_empty());

    // An id stored with other content.
    let first = ev("Once", &["x"]);
    let mut other = first.clone();
    other.event_type = "Other".into();
    let _ = append_in(&mut conn, vec![first.clone()], None)
        .await
        .unwrap();
    let again = append_in(&mut conn, vec![first], None).await.unwrap();
    assert!(again.already_stored);
    let err = append_in(&mut conn, vec![other], None).await.unwrap_err();
    assert!(matches!(err, Error::IdConflict { .. }), "{err:?}");

    // A query the limits refuse is refused before it is sent.
    let err = read_boundary_in(
        &mut conn,
        &Query::item(QueryItem::tags(Vec::<String>::new())),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

/// A connection that goes away while its append waits for the lock: the
/// caller is told the outcome is unknown (or that nothing was written), and
/// resending the same events settles it, as on the native path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_whose_connection_dies_is_outcome_unknown_and_a_resend_settles_it() {
    let (store, db) = store().await;
    let pool = sqlx_pool(&db).await;
    // Hold the append lock in a transaction of the store's pool.
    let mut holder = store.pool().get().await.unwrap();
    let holding = holder.transaction().await.unwrap();
    let _ = dcbstore::append::append_in(&*holding, vec![ev("Holder", &[])], None)
        .await
        .unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let event = ev("Waiting", &[]);
    let sent = event.clone();
    let waiting = tokio::spawn(async move {
        let r = append_in(&mut conn, vec![sent], None).await;
        drop(conn);
        r
    });
    // Until it waits for the lock, then end its backend.
    let admin = sqlx_pool(&db).await;
    loop {
        let waits: bool = sqlx::query_scalar(
            "SELECT wait_event_type IS NOT DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_one(&admin)
        .await
        .unwrap();
        if waits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(ended);
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        err.is_outcome_unknown() || matches!(err, Error::NotWritten(_)),
        "unknown or not written, never a bare failure: {err:?}"
    );
    holding.commit().await.unwrap();
    // The resend settles it: here, it was not written.
    let mut conn = pool.acquire().await.unwrap();
    let resent = append_in(&mut conn, vec![event], None).await.unwrap();
    assert!(!resent.already_stored);
    assert_eq!(log_types(&pool).await, ["Holder", "Waiting"]);
}

// ---------------------------------------------------------------------------
// The example service (examples/enrolment_service.rs), as a process

/// The example service running on `db`, killed when dropped.
struct Service {
    child: std::process::Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts the example built beside this test binary (`cargo test` at
    /// the workspace root builds the examples) on `db`, on a free port.
    fn start(db: &dcbstore_testing::TestDatabase) -> Service {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(std::path::Path::parent).unwrap();
        let bin = dir
            .join("examples")
            .join(format!("enrolment_service{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo test` at the workspace root, or `cargo build --example enrolment_service` first",
            bin.display()
        );
        let mut child = std::process::Command::new(bin)
            .arg("--serve")
            .env("DATABASE_URL", db.url())
            .env("PORT", "0")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the service's first line names its address: {line:?}"))
            .to_string();
        Service { child, base }
    }

    async fn post(&self, path: &str, body: Option<&str>) -> (u16, String) {
        let http = reqwest::Client::new();
        let mut request = http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// The course's enrolments as the log, the seat count and the roster have
/// them.
async fn three_views(pool: &PgPool, course: &str) -> (Vec<String>, i32, Vec<String>) {
    let mut conn = pool.acquire().await.unwrap();
    let mut logged: Vec<String> = read_in(
        &mut conn,
        &Query::item(QueryItem::types(["student_enrolled"]).and_tags([format!("course:{course}")])),
        ReadOptions::default(),
    )
    .map_ok(|e| e.event.data["student_id"].as_str().unwrap().to_string())
    .try_collect()
    .await
    .unwrap();
    logged.sort();
    let taken: i32 = sqlx::query_scalar("SELECT taken FROM course_seats WHERE course_id = $1")
        .bind(course)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let roster: Vec<String> = sqlx::query_scalar(
        "SELECT student_id FROM course_roster WHERE course_id = $1 ORDER BY student_id",
    )
    .bind(course)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (logged, taken, roster)
}

/// The service's handler appends the enrolment, then updates its own
/// tables, in one transaction. Its connection is killed exactly between
/// the two writes (the seat row is held by another transaction, so the
/// handler waits there, holding the append lock its append took): neither
/// the event nor the rows are committed, and the client is told to retry;
/// the retry commits both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_killed_between_its_append_and_its_own_rows_commits_neither() {
    let (_store, db) = store().await;
    let service = Service::start(&db);
    let pool = sqlx_pool(&db).await;
    assert_eq!(
        service
            .post("/courses/c1", Some(r#"{"capacity": 10}"#))
            .await
            .0,
        201
    );

    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM course_seats WHERE course_id = 'c1' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let enrolling = {
        let base = service.base.clone();
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(format!("{base}/courses/c1/students/ann"))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        })
    };
    // The handler's backend: appended (it holds the append lock), waiting
    // for the seat row.
    let pid: i32 = loop {
        let between: Option<i32> = sqlx::query_scalar(
            "SELECT a.pid FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND a.application_name = 'enrolment_service' \
               AND a.wait_event_type = 'Lock' AND a.query LIKE 'UPDATE course_seats%' \
               AND EXISTS (SELECT 1 FROM pg_locks l \
                           WHERE l.pid = a.pid AND l.granted \
                             AND l.relation = 'dcbstore.append_lock'::regclass)",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(pid) = between {
            break pid;
        }
        assert!(
            !enrolling.is_finished(),
            "the request ended before its handler was caught between its writes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    blocker.rollback().await.unwrap();
    assert_eq!(enrolling.await.unwrap(), 503, "not done: retry");
    assert_eq!(
        three_views(&pool, "c1").await,
        (vec![], 0, vec![]),
        "neither the event nor the rows"
    );

    assert_eq!(service.post("/courses/c1/students/ann", None).await.0, 201);
    let ann = vec!["ann".to_string()];
    assert_eq!(three_views(&pool, "c1").await, (ann.clone(), 1, ann));
}

/// Many clients enrol while the service's connections are killed at random
/// moments (before, between, during and after its writes): whatever each
/// client was told, the log, the seat count and the roster agree, each
/// student is enrolled at most once, and every client told "created" is in
/// all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_random_connection_kills_the_log_and_the_services_rows_always_agree() {
    let (_store, db) = store().await;
    let service = Arc::new(Service::start(&db));
    let pool = sqlx_pool(&db).await;
    assert_eq!(
        service
            .post("/courses/c2", Some(r#"{"capacity": 1000}"#))
            .await
            .0,
        201
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut kills = 0u32;
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                k += 1;
                tokio::time::sleep(Duration::from_millis(10 + (k * 7919) % 37)).await;
                // One busy backend of the service at a time, at random.
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ( \
                       SELECT pid FROM pg_stat_activity \
                       WHERE datname = current_database() AND application_name = 'enrolment_service' \
                         AND state <> 'idle' ORDER BY random() LIMIT 1) busy",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                kills += u32::try_from(n).unwrap();
            }
            kills
        })
    };
    let mut clients = Vec::new();
    for c in 0..8 {
        let service = service.clone();
        clients.push(tokio::spawn(async move {
            let mut created = Vec::new();
            for s in 0..12 {
                let student = format!("s{c}-{s}");
                for _attempt in 0..50 {
                    let (status, body) = service
                        .post(&format!("/courses/c2/students/{student}"), None)
                        .await;
                    match status {
                        201 => {
                            created.push(student.clone());
                            break;
                        }
                        // Committed by an attempt whose answer was lost.
                        409 if body.contains("already enrolled") => break,
                        503 => continue,
                        other => panic!("{other} {body}"),
                    }
                }
            }
            created
        }));
    }
    let mut created = Vec::new();
    for c in clients {
        created.extend(c.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let kills = killer.await.unwrap();
    assert!(kills > 0, "the test killed connections");

    let (logged, taken, roster) = three_views(&pool, "c2").await;
    assert_eq!(logged, roster, "the log and the roster agree");
    assert_eq!(
        usize::try_from(taken).unwrap(),
        roster.len(),
        "the seat count agrees"
    );
    let unique: std::collections::BTreeSet<_> = logged.iter().collect();
    assert_eq!(unique.len(), logged.len(), "each student at most once");
    for student in &created {
        assert!(logged.contains(student), "{student} was told created");
    }
    assert!(
        logged.len() >= created.len() && !created.is_empty(),
        "{} created, {} logged, {kills} connections killed",
        created.len(),
        logged.len()
    );
}

/// The sqlx path as the least-privilege roles `dcbstore grant` makes: an
/// application role appends, reads and decides through sqlx; a read-only
/// role reads, and its append is refused for its privileges (not reported
/// as an unknown outcome), nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn through_sqlx_an_app_role_appends_and_a_read_only_role_only_reads() {
    use dcbstore::roles::{grant_app, Grants};
    let (store, db) = store().await;
    let admin = store.pool().get().await.unwrap();
    let mut pools = Vec::new();
    let mut names = Vec::new();
    for (prefix, grants) in [
        ("sqlx_app", Grants::app()),
        ("sqlx_reader", Grants::read_only()),
    ] {
        let (name, url) = crate::common::role(&admin, &db, prefix).await;
        grant_app(&**admin, &name, grants).await.unwrap();
        pools.push(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_with(dcbstore::sqlx::connect_options(&url).unwrap())
                .await
                .unwrap(),
        );
        names.push(name);
    }
    let (app, reader) = (&pools[0], &pools[1]);
    let query = Query::item(QueryItem::tags(["acc:1"]));

    let mut tx = app.begin().await.unwrap();
    let seen = read_boundary_in(&mut tx, &query, ReadOptions::default())
        .await
        .unwrap();
    let condition = AppendCondition::new(query.clone(), seen.after);
    let opened = append_in(&mut tx, vec![ev("Opened", &["acc:1"])], Some(&condition))
        .await
        .unwrap();
    wake(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut conn = reader.acquire().await.unwrap();
    let read: Vec<_> = read_in(&mut conn, &query, ReadOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].position, opened.position);
    let err = append_in(&mut conn, vec![ev("Forged", &["acc:1"])], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42501"), "{err:?}");
    assert!(!err.is_outcome_unknown(), "{err:?}");
    assert_eq!(log_types(app).await, ["Opened"]);

    drop(conn);
    for (pool, name) in pools.into_iter().zip(names) {
        pool.close().await;
        admin
            .batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}"))
            .await
            .unwrap();
    }
}
