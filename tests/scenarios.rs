//! The DCB example scenarios of `dcb-scenarios.md`, written the way an
//! application would: each command reads its query, folds the events into the
//! state it needs, decides (new events or a domain error), then appends on the
//! condition that nothing matching the query was appended after the last
//! position it read.

mod common;

use std::sync::Arc;

use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencedEvent, Store,
};
use serde_json::{json, Value};
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------
// Decide then append
// ---------------------------------------------------------------------------

/// A decision: the new events, or the domain error message.
type Decision = Result<Vec<Event>, String>;

/// How a command decides from the events its query read.
type Decide = Box<dyn Fn(&[SequencedEvent]) -> Decision + Send + Sync>;

/// What a command reads, and how it decides from the events read.
struct Command {
    query: Query,
    options: ReadOptions,
    decide: Decide,
}

impl Command {
    fn new(
        query: Query,
        decide: impl Fn(&[SequencedEvent]) -> Decision + Send + Sync + 'static,
    ) -> Self {
        Command {
            query,
            options: ReadOptions::new(),
            decide: Box::new(decide),
        }
    }
}

/// Reads, decides, waits at `barrier` (if any), appends. The outer error is the
/// store's (an append conflict among others); the inner one is the domain's.
async fn attempt(
    store: &Store,
    cmd: &Command,
    barrier: Option<&Barrier>,
) -> dcbstore::Result<Decision> {
    let events = store.read_all(&cmd.query, cmd.options).await?;
    let last_read = events.iter().map(|e| e.position).max();
    let decision = (cmd.decide)(&events);
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
    if let Ok(new_events) = &decision {
        let condition = AppendCondition::new(cmd.query.clone(), last_read);
        let appended = store.append(new_events.clone(), Some(condition)).await?;
        assert!(!appended.already_stored);
    }
    Ok(decision)
}

async fn execute(store: &Store, cmd: &Command) -> dcbstore::Result<Decision> {
    attempt(store, cmd, None).await
}

/// One client of a race: its first attempt decides, waits until every client
/// has decided, then appends; on a conflict it decides again from fresh
/// state. Returns the outcome and how many conflicts it met.
async fn execute_racing(store: &Store, cmd: &Command, barrier: &Barrier) -> (Decision, usize) {
    let mut result = attempt(store, cmd, Some(barrier)).await;
    let mut conflicts = 0;
    while let Err(Error::Conflict(_)) = result {
        conflicts += 1;
        assert!(conflicts < 50, "a client keeps conflicting");
        result = attempt(store, cmd, None).await;
    }
    (result.expect("store error"), conflicts)
}

/// Runs `commands` at once, half of them through `store` (and its
/// batching writer), half through stores of their own (other connections).
async fn race(
    store: &Store,
    db: &dcbstore::testing::TestDatabase,
    commands: Vec<Command>,
) -> Vec<(Decision, usize)> {
    let barrier = Arc::new(Barrier::new(commands.len()));
    let mut tasks = Vec::new();
    for (i, cmd) in commands.into_iter().enumerate() {
        let client = if i % 2 == 0 {
            store.clone()
        } else {
            Store::builder(db.url())
                .unwrap()
                .pool_size(2)
                .build()
                .await
                .unwrap()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            execute_racing(&client, &cmd, &barrier).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("client panicked"));
    }
    results
}

/// Events folded by a projection: those of `events` matching `item`.
fn matching<'a>(
    events: &'a [SequencedEvent],
    item: &'a QueryItem,
) -> impl Iterator<Item = &'a Event> {
    events.iter().map(|e| &e.event).filter(|e| item.matches(e))
}

fn item(types: &[&str], tags: &[&str]) -> QueryItem {
    QueryItem::types(types.iter().copied()).and_tags(tags.iter().copied())
}

// ---------------------------------------------------------------------------
// Given / when / then
// ---------------------------------------------------------------------------

/// Appends `events` unconditionally, in one append.
async fn given(store: &Store, events: Vec<Event>) {
    let n = events.len() as u64;
    let appended = store.append(events, None).await.unwrap();
    assert!(appended.position.get() >= n);
}

async fn log(store: &Store) -> Vec<SequencedEvent> {
    store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap()
}

/// An event as the store returns it: tags sorted and deduplicated.
fn stored(mut e: Event) -> Event {
    e.tags.sort();
    e.tags.dedup();
    e
}

/// Everything but the id.
fn content(e: &Event) -> (String, Value, Vec<String>) {
    let e = stored(e.clone());
    (e.event_type, e.data, e.tags)
}

/// Given `history` in a fresh store, `command` must decide `then` (one event or
/// a domain error), and the log must afterwards hold exactly `history` plus the
/// event decided.
async fn check(history: Vec<Event>, command: Command, then: Result<Event, &str>) {
    let (store, _db) = common::store().await;
    if !history.is_empty() {
        given(&store, history.clone()).await;
    }
    let outcome = execute(&store, &command).await.expect("store error");
    let mut expected_log: Vec<Event> = history.into_iter().map(stored).collect();
    match then {
        Ok(expected) => {
            let decided = outcome.expect("the command was rejected");
            assert_eq!(
                decided.iter().map(content).collect::<Vec<_>>(),
                [content(&expected)]
            );
            expected_log.extend(decided.into_iter().map(stored));
        }
        Err(message) => assert_eq!(outcome, Err(message.to_string())),
    }
    let actual: Vec<Event> = log(&store).await.into_iter().map(|e| e.event).collect();
    assert_eq!(actual, expected_log);
}

// ---------------------------------------------------------------------------
// Course subscriptions
// ---------------------------------------------------------------------------

fn course_defined(course: &str, capacity: u32) -> Event {
    Event::new(
        "CourseDefined",
        json!({"courseId": course, "capacity": capacity}),
    )
    .with_tag(format!("course:{course}"))
}

fn course_capacity_changed(course: &str, capacity: u32) -> Event {
    Event::new(
        "CourseCapacityChanged",
        json!({"courseId": course, "newCapacity": capacity}),
    )
    .with_tag(format!("course:{course}"))
}

fn student_subscribed(student: &str, course: &str) -> Event {
    Event::new(
        "StudentSubscribedToCourse",
        json!({"studentId": student, "courseId": course}),
    )
    .with_tags([format!("student:{student}"), format!("course:{course}")])
}

fn course_exists(course: &str) -> QueryItem {
    item(&["CourseDefined"], &[&format!("course:{course}")])
}

fn course_capacity(course: &str) -> QueryItem {
    item(
        &["CourseDefined", "CourseCapacityChanged"],
        &[&format!("course:{course}")],
    )
}

fn define_course(course: &str, capacity: u32) -> Command {
    let course = course.to_string();
    let exists = course_exists(&course);
    Command::new(Query::item(exists.clone()), move |events| {
        if matching(events, &exists).next().is_some() {
            return Err(format!("Course with id \"{course}\" already exists"));
        }
        Ok(vec![course_defined(&course, capacity)])
    })
}

fn change_course_capacity(course: &str, capacity: u32) -> Command {
    let course = course.to_string();
    let exists = course_exists(&course);
    Command::new(Query::item(exists.clone()), move |events| {
        if matching(events, &exists).next().is_none() {
            return Err(format!("Course \"{course}\" does not exist"));
        }
        Ok(vec![course_capacity_changed(&course, capacity)])
    })
}

fn subscribe(student: &str, course: &str) -> Command {
    let (student, course) = (student.to_string(), course.to_string());
    let (s_tag, c_tag) = (format!("student:{student}"), format!("course:{course}"));
    let exists = course_exists(&course);
    let capacity = course_capacity(&course);
    let course_subscriptions = item(&["StudentSubscribedToCourse"], &[&c_tag]);
    let student_subscriptions = item(&["StudentSubscribedToCourse"], &[&s_tag]);
    let already_subscribed = item(&["StudentSubscribedToCourse"], &[&s_tag, &c_tag]);
    let query = Query::items([
        exists.clone(),
        capacity.clone(),
        course_subscriptions.clone(),
        student_subscriptions.clone(),
        already_subscribed.clone(),
    ]);
    Command::new(query, move |events| {
        let course_exists = matching(events, &exists).next().is_some();
        let capacity = matching(events, &capacity).fold(0, |_, e| {
            let field = if e.event_type == "CourseDefined" {
                "capacity"
            } else {
                "newCapacity"
            };
            e.data[field].as_u64().unwrap()
        });
        let course_subscriptions = matching(events, &course_subscriptions).count() as u64;
        let student_subscriptions = matching(events, &student_subscriptions).count();
        let already_subscribed = matching(events, &already_subscribed).next().is_some();
        if !course_exists {
            return Err(format!("Course \"{course}\" does not exist"));
        }
        if course_subscriptions >= capacity {
            return Err(format!("Course \"{course}\" is already fully booked"));
        }
        if already_subscribed {
            return Err("Student already subscribed to this course".into());
        }
        if student_subscriptions >= 5 {
            return Err("Student already subscribed to 5 courses".into());
        }
        Ok(vec![student_subscribed(&student, &course)])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn define_course_that_already_exists() {
    check(
        vec![course_defined("c1", 10)],
        define_course("c1", 15),
        Err("Course with id \"c1\" already exists"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn define_new_course() {
    check(
        vec![],
        define_course("c1", 15),
        Ok(course_defined("c1", 15)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_capacity_of_missing_course() {
    check(
        vec![],
        change_course_capacity("c0", 15),
        Err("Course \"c0\" does not exist"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_capacity_of_course() {
    check(
        vec![course_defined("c1", 12)],
        change_course_capacity("c1", 15),
        Ok(course_capacity_changed("c1", 15)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribe_to_missing_course() {
    check(
        vec![],
        subscribe("s1", "c0"),
        Err("Course \"c0\" does not exist"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribe_to_fully_booked_course() {
    check(
        vec![
            course_defined("c1", 3),
            student_subscribed("s1", "c1"),
            student_subscribed("s2", "c1"),
            student_subscribed("s3", "c1"),
        ],
        subscribe("s4", "c1"),
        Err("Course \"c1\" is already fully booked"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribe_twice_to_same_course() {
    check(
        vec![course_defined("c1", 10), student_subscribed("s1", "c1")],
        subscribe("s1", "c1"),
        Err("Student already subscribed to this course"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribe_to_a_sixth_course() {
    let mut given = vec![course_defined("c6", 10)];
    given.extend((1..=5).map(|i| student_subscribed("s1", &format!("c{i}"))));
    check(
        given,
        subscribe("s1", "c6"),
        Err("Student already subscribed to 5 courses"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribe_to_course() {
    check(
        vec![course_defined("c1", 10)],
        subscribe("s1", "c1"),
        Ok(student_subscribed("s1", "c1")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_to_last_seat() {
    let (store, db) = common::store().await;
    given(&store, vec![course_defined("c1", 1)]).await;
    let students: Vec<String> = (1..=10).map(|i| format!("s{i}")).collect();
    let results = race(
        &store,
        &db,
        students.iter().map(|s| subscribe(s, "c1")).collect(),
    )
    .await;

    let winners: Vec<&String> = students
        .iter()
        .zip(&results)
        .filter(|(_, (r, _))| r.is_ok())
        .map(|(s, _)| s)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (r, _) in &results {
        if let Err(message) = r {
            assert_eq!(message, "Course \"c1\" is already fully booked");
        }
    }
    // Every client decided on the same state: all but one first attempts conflict.
    let first_conflicts = results.iter().filter(|(_, c)| *c > 0).count();
    assert_eq!(first_conflicts, 9, "{results:?}");
    let subscriptions: Vec<Value> = log(&store)
        .await
        .into_iter()
        .filter(|e| e.event.event_type == "StudentSubscribedToCourse")
        .map(|e| e.event.data)
        .collect();
    assert_eq!(
        subscriptions,
        [json!({"studentId": winners[0], "courseId": "c1"})]
    );
}

// ---------------------------------------------------------------------------
// Unique username
// ---------------------------------------------------------------------------

fn account_registered(username: &str) -> Event {
    Event::new("AccountRegistered", json!({"username": username}))
        .with_tag(format!("username:{username}"))
}

fn account_closed(username: &str) -> Event {
    Event::new("AccountClosed", json!({"username": username}))
        .with_tag(format!("username:{username}"))
}

fn username_changed(old: &str, new: &str) -> Event {
    Event::new(
        "UsernameChanged",
        json!({"oldUsername": old, "newUsername": new}),
    )
    .with_tags([format!("username:{old}"), format!("username:{new}")])
}

fn register(username: &str) -> Command {
    let username = username.to_string();
    let claimed = item(
        &["AccountRegistered", "AccountClosed", "UsernameChanged"],
        &[&format!("username:{username}")],
    );
    Command::new(Query::item(claimed.clone()), move |events| {
        let is_claimed =
            matching(events, &claimed).fold(false, |_, e| match e.event_type.as_str() {
                "AccountRegistered" => true,
                "AccountClosed" => false,
                _ => e.data["newUsername"] == username.as_str(),
            });
        if is_claimed {
            return Err(format!("Username \"{username}\" is claimed"));
        }
        Ok(vec![account_registered(&username)])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_claimed_username() {
    check(
        vec![account_registered("u1")],
        register("u1"),
        Err("Username \"u1\" is claimed"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_new_username() {
    check(vec![], register("u1"), Ok(account_registered("u1"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_username_of_closed_account() {
    check(
        vec![account_registered("u1"), account_closed("u1")],
        register("u1"),
        Ok(account_registered("u1")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_username_given_up_by_a_change() {
    check(
        vec![
            account_registered("u1"),
            username_changed("u1", "u1changed"),
        ],
        register("u1"),
        Ok(account_registered("u1")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_username_claimed_by_a_change() {
    check(
        vec![
            account_registered("u1"),
            username_changed("u1", "u1changed"),
        ],
        register("u1changed"),
        Err("Username \"u1changed\" is claimed"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_same_username() {
    let (store, db) = common::store().await;
    // Another name is registered first: it must not get in the way.
    given(&store, vec![account_registered("other")]).await;
    let results = race(&store, &db, (0..20).map(|_| register("u1")).collect()).await;

    assert_eq!(
        results.iter().filter(|(r, _)| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for (r, _) in &results {
        if let Err(message) = r {
            assert_eq!(message, "Username \"u1\" is claimed");
        }
    }
    assert_eq!(
        results.iter().filter(|(_, c)| *c > 0).count(),
        19,
        "{results:?}"
    );
    let registered: Vec<Value> = log(&store)
        .await
        .into_iter()
        .map(|e| e.event.data)
        .collect();
    assert_eq!(
        registered,
        [json!({"username": "other"}), json!({"username": "u1"})]
    );
}

// ---------------------------------------------------------------------------
// Invoice numbers
// ---------------------------------------------------------------------------

fn invoice_created(number: u64, data: &Value) -> Event {
    Event::new(
        "InvoiceCreated",
        json!({"invoiceNumber": number, "invoiceData": data}),
    )
    .with_tag(format!("invoice:{number}"))
}

fn invoices() -> Query {
    Query::item(QueryItem::types(["InvoiceCreated"]))
}

/// Next number = 1 + number of invoices created.
fn create_invoice(data: Value) -> Command {
    Command::new(invoices(), move |events| {
        Ok(vec![invoice_created(events.len() as u64 + 1, &data)])
    })
}

/// The same decision from the last invoice only (read backwards, limit 1):
/// `after` becomes that invoice's position.
fn create_invoice_from_last(data: Value) -> Command {
    let mut cmd = Command::new(invoices(), move |events| {
        let last = events
            .first()
            .map_or(0, |e| e.event.data["invoiceNumber"].as_u64().unwrap());
        Ok(vec![invoice_created(last + 1, &data)])
    });
    cmd.options = ReadOptions::new().backwards().limit(1);
    cmd
}

fn invoice_commands() -> [Command; 2] {
    [
        create_invoice(json!({"amount": 10})),
        create_invoice_from_last(json!({"amount": 10})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_first_invoice() {
    for cmd in invoice_commands() {
        check(vec![], cmd, Ok(invoice_created(1, &json!({"amount": 10})))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_second_invoice() {
    let first = invoice_created(1, &json!({"amount": 5}));
    for cmd in invoice_commands() {
        check(
            vec![first.clone()],
            cmd,
            Ok(invoice_created(2, &json!({"amount": 10}))),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_invoice_among_other_events() {
    // Unrelated events before and after the invoices change nothing.
    let given = vec![
        account_registered("u1"),
        invoice_created(1, &json!({})),
        invoice_created(2, &json!({})),
        invoice_created(3, &json!({})),
        course_defined("c1", 10),
    ];
    for cmd in invoice_commands() {
        check(
            given.clone(),
            cmd,
            Ok(invoice_created(4, &json!({"amount": 10}))),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_invoice_decisions_conflict() {
    // Both forms decide on the same log, another invoice is created, then they
    // try to append: both must conflict (the backwards read's `after` is safe).
    for cmd in invoice_commands() {
        let (store, _db) = common::store().await;
        given(&store, vec![invoice_created(1, &json!({}))]).await;
        let events = store.read_all(&cmd.query, cmd.options).await.unwrap();
        let last_read = events.iter().map(|e| e.position).max();
        let decided = (cmd.decide)(&events).unwrap();
        assert_eq!(decided[0].data["invoiceNumber"], 2);
        let other = execute(&store, &create_invoice(json!({})))
            .await
            .unwrap()
            .unwrap();
        let err = store
            .append(
                decided,
                Some(AppendCondition::new(cmd.query.clone(), last_read)),
            )
            .await
            .unwrap_err();
        let conflict = err.conflict().expect("a conflict");
        assert_eq!(conflict.events.len(), 1);
        assert_eq!(conflict.events[0].event, stored(other[0].clone()));
        assert_eq!(log(&store).await.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_invoice_numbers_are_gapless() {
    let (store, db) = common::store().await;
    let commands = (0..8)
        .map(|i| {
            let data = json!({"client": i});
            if i % 4 < 2 {
                create_invoice(data)
            } else {
                create_invoice_from_last(data)
            }
        })
        .collect();
    let results = race(&store, &db, commands).await;

    assert!(results.iter().all(|(r, _)| r.is_ok()), "{results:?}");
    // All first decisions were "invoice 1": seven of them conflicted. A client
    // conflicts at most once per other client's invoice.
    assert_eq!(
        results.iter().filter(|(_, c)| *c > 0).count(),
        7,
        "{results:?}"
    );
    assert!(results.iter().all(|(_, c)| *c < 8), "{results:?}");
    let log = log(&store).await;
    let numbers: Vec<u64> = log
        .iter()
        .map(|e| e.event.data["invoiceNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    let mut clients: Vec<u64> = log
        .iter()
        .map(|e| e.event.data["invoiceData"]["client"].as_u64().unwrap())
        .collect();
    clients.sort_unstable();
    assert_eq!(clients, (0..8).collect::<Vec<_>>());
    for e in &log {
        assert_eq!(
            e.event.tags,
            [format!("invoice:{}", e.event.data["invoiceNumber"])]
        );
    }
}

// ---------------------------------------------------------------------------
// Event-sourced aggregate on DCB
// ---------------------------------------------------------------------------

fn course_aggregate(course: &str) -> Query {
    Query::item(QueryItem::tags([format!("course:{course}")]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregate_saves_from_same_version() {
    let (store, _db) = common::store().await;
    given(
        &store,
        vec![course_defined("c1", 10), course_defined("c2", 10)],
    )
    .await;
    let aggregate = course_aggregate("c1");

    // Load.
    let loaded = store
        .read_all(&aggregate, ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(loaded.len(), 1);
    let version = loaded.last().map(|e| e.position);

    // Another aggregate changes meanwhile: no conflict for c1.
    given(&store, vec![course_capacity_changed("c2", 20)]).await;

    // First save from the loaded version.
    let first = vec![
        course_capacity_changed("c1", 20),
        student_subscribed("s1", "c1"),
    ];
    let saved = store
        .append(
            first.clone(),
            Some(AppendCondition::new(aggregate.clone(), version)),
        )
        .await
        .unwrap();
    let first_stored: Vec<SequencedEvent> = store
        .read_all(&aggregate, ReadOptions::new().after(version.unwrap()))
        .await
        .unwrap();
    assert_eq!(
        first_stored
            .iter()
            .map(|e| e.event.clone())
            .collect::<Vec<_>>(),
        first.into_iter().map(stored).collect::<Vec<_>>()
    );
    assert_eq!(first_stored.last().unwrap().position, saved.position);

    // Second save from the same version: fails, reporting the first's events.
    let second = vec![course_capacity_changed("c1", 30)];
    let err = store
        .append(
            second,
            Some(AppendCondition::new(aggregate.clone(), version)),
        )
        .await
        .unwrap_err();
    let Error::Conflict(conflict) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(conflict.position, saved.position);
    assert_eq!(conflict.events, first_stored);

    // Nothing of the second save was written.
    let types: Vec<(String, Value)> = log(&store)
        .await
        .into_iter()
        .map(|e| (e.event.event_type, e.event.data))
        .collect();
    assert_eq!(types.len(), 5, "{types:?}");
    assert!(
        !types.iter().any(|(_, d)| d["newCapacity"] == 30),
        "{types:?}"
    );
}
