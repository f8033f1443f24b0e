//! The DCB example scenarios of `dcb-scenarios.md`, written the way an
//! application would with `dcbstore::projection`: each projection is a small
//! `Fold`, each command composes the projections it needs as a tuple and
//! decides from their state (new events or a domain error); `execute` reads,
//! decides and appends on the condition that nothing matching the read changed.
//! In the concurrent variants every client decides from the same state before
//! any appends, then retries with `execute`. Each scenario runs on every
//! store (PostgreSQL, the sqlx path and `MemoryStore`), the races on PostgreSQL (clients
//! on several connections and batches).

use std::future::Future;
use std::sync::Arc;

use dcbstore::memory::MemoryStore;
use dcbstore::projection::{execute, CommandError, DecisionModel, Executed, Fold, Projection};
use dcbstore::{Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencedEvent, Store};
use dcbstore_testing::TestDatabase;
use serde_json::{json, Value};
use tokio::sync::Barrier;

// ---- Commands ----

/// A decision: the new events, or the domain error message.
type Decision = Result<Vec<Event>, String>;

type Outcome = Result<Executed, CommandError<String>>;

/// How a command decides from the state of its projection.
type Decide<S> = Box<dyn Fn(&S) -> Decision + Send + Sync>;

/// A command: the projection it decides from, and how it decides.
struct Command<P: Projection> {
    projection: P,
    decide: Decide<P::State>,
}

fn command<P: Projection>(
    projection: P,
    decide: impl Fn(&P::State) -> Decision + Send + Sync + 'static,
) -> Command<P> {
    let decide = Box::new(decide);
    Command { projection, decide }
}

fn query(types: &[&str], tags: &[String]) -> Query {
    Query::item(QueryItem::types(types.iter().copied()).and_tags(tags.iter().cloned()))
}

/// Whether an event matches `query`.
fn exists(query: Query) -> impl Projection<State = bool> {
    Fold::new(query, false, |_, _| true)
}

/// The number of events matching `query`.
fn count(query: Query) -> impl Projection<State = u64> {
    Fold::new(query, 0, |n, _| n + 1)
}

// ---- Given / when / then ----

/// Appends `events` unconditionally, in one append.
async fn given<S: EventStore>(store: &S, events: Vec<Event>) {
    if !events.is_empty() {
        let n = events.len() as u64;
        assert!(store.append(events, None).await.unwrap().position.get() >= n);
    }
}

async fn log<S: EventStore>(store: &S) -> Vec<SequencedEvent> {
    read_all(store, &Query::all(), ReadOptions::new()).await
}

/// Every event matching `query` in `options`, read to the end.
async fn read_all<S: EventStore>(
    store: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<SequencedEvent> {
    futures::TryStreamExt::try_collect(store.read(query, options))
        .await
        .unwrap()
}

async fn log_events<S: EventStore>(store: &S) -> Vec<Event> {
    log(store).await.into_iter().map(|e| e.event).collect()
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

fn rejection(outcome: &Outcome) -> Option<&str> {
    outcome.as_ref().err()?.rejected().map(String::as_str)
}

/// Given `history` in a fresh store, `command` must decide `then` (one event or
/// a domain error), and the log must afterwards hold exactly `history` plus the
/// event decided.
async fn check<S: EventStore + Sync, P: Projection>(
    store: &S,
    history: Vec<Event>,
    cmd: Command<P>,
    then: Result<Event, &str>,
) {
    given(store, history.clone()).await;
    // One attempt: nothing else writes.
    let outcome = execute(store, &cmd.projection, 1, |state| (cmd.decide)(state)).await;
    let mut expected_log: Vec<Event> = history.into_iter().map(stored).collect();
    match then {
        Ok(expected) => {
            let Ok(Executed::Appended {
                appended,
                events,
                attempts: 1,
            }) = &outcome
            else {
                panic!("expected one append: {outcome:?}");
            };
            assert!(!appended.already_stored, "{outcome:?}");
            let decided_content: Vec<_> = events.iter().map(content).collect();
            assert_eq!(decided_content, [content(&expected)]);
            expected_log.extend(events.iter().cloned().map(stored));
        }
        Err(message) => assert_eq!(rejection(&outcome), Some(message), "{outcome:?}"),
    }
    assert_eq!(log_events(store).await, expected_log);
}

/// One module per scenario, its test on every store (`pg`, `sqlx`, `memory`): given
/// the events of `given` in a fresh store, the command `when` must decide
/// `then` (see [`check`]).
macro_rules! scenarios {
    ($($name:ident: given $given:expr, when $when:expr, then $then:expr;)*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn pg() {
                let (store, _db) = crate::common::store().await;
                check(&store, $given.into_iter().collect(), $when, $then).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlx() {
                let (store, _db) = crate::common::sqlx_store(1000).await;
                check(&store, $given.into_iter().collect(), $when, $then).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                check(&MemoryStore::new(), $given.into_iter().collect(), $when, $then).await;
            }
        }
    )*};
}

/// One client of a race: decides from `model`, waits until every client has
/// decided, appends with the model's condition; on a conflict, falls back to
/// `execute` for at most `retries` attempts. Returns the outcome and whether
/// the first append conflicted.
async fn contend<P: Projection>(
    store: &Store,
    cmd: &Command<P>,
    model: DecisionModel<P::State>,
    barrier: &Barrier,
    retries: u32,
) -> (Outcome, bool) {
    let decision = (cmd.decide)(&model.state);
    barrier.wait().await;
    let events = match decision {
        Ok(events) => events,
        Err(message) => return (Err(CommandError::Rejected(message)), false),
    };
    let (projection, decide) = (&cmd.projection, &cmd.decide);
    match store
        .append(events.clone(), Some(model.append_condition()))
        .await
    {
        Ok(appended) if !appended.already_stored => (
            Ok(Executed::Appended {
                appended,
                events,
                attempts: 1,
            }),
            false,
        ),
        Err(Error::Conflict(_)) => (execute(store, projection, retries, decide).await, true),
        other => panic!("unexpected append result: {other:?}"),
    }
}

/// Runs `clients` clients at once, `client(i, store, barrier)` being the i-th:
/// half of them through `store` (and its batching writer), half through stores
/// of their own (other connections).
async fn race<Fut>(
    store: &Store,
    db: &TestDatabase,
    clients: usize,
    client: impl Fn(usize, Store, Arc<Barrier>) -> Fut,
) -> Vec<(Outcome, bool)>
where
    Fut: Future<Output = (Outcome, bool)> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(clients));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            let builder = Store::builder(db.url()).unwrap().pool_size(2);
            builder.build().await.unwrap()
        };
        tasks.push(tokio::spawn(client(i, store, barrier.clone())));
    }
    let results = futures::future::join_all(tasks).await;
    results.into_iter().map(Result::unwrap).collect()
}

// ---- Course subscriptions ----

fn course_defined(course: &str, capacity: u32) -> Event {
    let data = json!({"courseId": course, "capacity": capacity});
    Event::new("CourseDefined", data).with_tag(format!("course:{course}"))
}

fn course_capacity_changed(course: &str, capacity: u32) -> Event {
    let data = json!({"courseId": course, "newCapacity": capacity});
    Event::new("CourseCapacityChanged", data).with_tag(format!("course:{course}"))
}

fn student_subscribed(student: &str, course: &str) -> Event {
    let data = json!({"studentId": student, "courseId": course});
    Event::new("StudentSubscribedToCourse", data)
        .with_tags([format!("student:{student}"), format!("course:{course}")])
}

fn course_exists(course: &str) -> impl Projection<State = bool> {
    exists(query(&["CourseDefined"], &[format!("course:{course}")]))
}

fn course_capacity(course: &str) -> impl Projection<State = u64> {
    let types = ["CourseDefined", "CourseCapacityChanged"];
    Fold::new(query(&types, &[format!("course:{course}")]), 0, |_, e| {
        let data = &e.event.data;
        let capacity = data.get("capacity").or(data.get("newCapacity"));
        capacity.and_then(Value::as_u64).unwrap()
    })
}

fn subscriptions(tags: &[String]) -> Query {
    query(&["StudentSubscribedToCourse"], tags)
}

fn course_subscriptions(course: &str) -> impl Projection<State = u64> {
    count(subscriptions(&[format!("course:{course}")]))
}

fn student_subscriptions(student: &str) -> impl Projection<State = u64> {
    count(subscriptions(&[format!("student:{student}")]))
}

fn already_subscribed(student: &str, course: &str) -> impl Projection<State = bool> {
    exists(subscriptions(&[
        format!("student:{student}"),
        format!("course:{course}"),
    ]))
}

fn define_course(course: &str, capacity: u32) -> Command<impl Projection<State = bool>> {
    let course = course.to_string();
    command(course_exists(&course), move |&exists| {
        if exists {
            return Err(format!("Course with id \"{course}\" already exists"));
        }
        Ok(vec![course_defined(&course, capacity)])
    })
}

fn change_course_capacity(course: &str, capacity: u32) -> Command<impl Projection<State = bool>> {
    let course = course.to_string();
    command(course_exists(&course), move |&exists| {
        if !exists {
            return Err(format!("Course \"{course}\" does not exist"));
        }
        Ok(vec![course_capacity_changed(&course, capacity)])
    })
}

fn subscribe(
    student: &str,
    course: &str,
) -> Command<impl Projection<State = (bool, u64, u64, u64, bool)>> {
    let (student, course) = (student.to_string(), course.to_string());
    let projection = (
        course_exists(&course),
        course_capacity(&course),
        course_subscriptions(&course),
        student_subscriptions(&student),
        already_subscribed(&student, &course),
    );
    command(projection, move |state| {
        let &(exists, capacity, booked, of_student, already) = state;
        if !exists {
            return Err(format!("Course \"{course}\" does not exist"));
        }
        if booked >= capacity {
            return Err(format!("Course \"{course}\" is already fully booked"));
        }
        if already {
            return Err("Student already subscribed to this course".into());
        }
        if of_student >= 5 {
            return Err("Student already subscribed to 5 courses".into());
        }
        Ok(vec![student_subscribed(&student, &course)])
    })
}

scenarios! {
    define_course_that_already_exists:
        given [course_defined("c1", 10)],
        when define_course("c1", 15),
        then Err("Course with id \"c1\" already exists");
    define_new_course:
        given [],
        when define_course("c1", 15),
        then Ok(course_defined("c1", 15));
    change_capacity_of_missing_course:
        given [],
        when change_course_capacity("c0", 15),
        then Err("Course \"c0\" does not exist");
    change_capacity_of_course:
        given [course_defined("c1", 12)],
        when change_course_capacity("c1", 15),
        then Ok(course_capacity_changed("c1", 15));
    subscribe_to_missing_course:
        given [],
        when subscribe("s1", "c0"),
        then Err("Course \"c0\" does not exist");
    subscribe_to_fully_booked_course:
        given [course_defined("c1", 3)]
            .into_iter()
            .chain(["s1", "s2", "s3"].map(|s| student_subscribed(s, "c1"))),
        when subscribe("s4", "c1"),
        then Err("Course \"c1\" is already fully booked");
    subscribe_twice_to_same_course:
        given [course_defined("c1", 10), student_subscribed("s1", "c1")],
        when subscribe("s1", "c1"),
        then Err("Student already subscribed to this course");
    subscribe_to_a_sixth_course:
        given [course_defined("c6", 10)]
            .into_iter()
            .chain((1..=5).map(|i| student_subscribed("s1", &format!("c{i}")))),
        when subscribe("s1", "c6"),
        then Err("Student already subscribed to 5 courses");
    subscribe_to_course:
        given [course_defined("c1", 10)],
        when subscribe("s1", "c1"),
        then Ok(student_subscribed("s1", "c1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_to_last_seat() {
    let (store, db) = crate::common::store().await;
    given(&store, vec![course_defined("c1", 1)]).await;
    let results = race(&store, &db, 10, |i, store, barrier| async move {
        let cmd = subscribe(&format!("s{}", i + 1), "c1");
        let model = DecisionModel::build(&store, &cmd.projection).await.unwrap();
        // Once the winner's subscription is in, one more attempt must reject.
        contend(&store, &cmd, model, &barrier, 1).await
    })
    .await;

    let winners: Vec<usize> = (0..10).filter(|&i| results[i].0.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (i, (outcome, _)) in results.iter().enumerate() {
        if i != winners[0] {
            let message = Some("Course \"c1\" is already fully booked");
            assert_eq!(rejection(outcome), message, "{outcome:?}");
        }
    }
    // Every client decided on the same state: all but one first appends conflict.
    let first_conflicts = results.iter().filter(|(_, c)| *c).count();
    assert_eq!(first_conflicts, 9, "{results:?}");
    let subscribed: Vec<Value> = log_events(&store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "StudentSubscribedToCourse")
        .map(|e| e.data)
        .collect();
    let winner = format!("s{}", winners[0] + 1);
    assert_eq!(subscribed, [json!({"studentId": winner, "courseId": "c1"})]);
}

// ---- Unique username ----

fn account_registered(username: &str) -> Event {
    Event::new("AccountRegistered", json!({"username": username}))
        .with_tag(format!("username:{username}"))
}

fn account_closed(username: &str) -> Event {
    Event::new("AccountClosed", json!({"username": username}))
        .with_tag(format!("username:{username}"))
}

fn username_changed(old: &str, new: &str) -> Event {
    let data = json!({"oldUsername": old, "newUsername": new});
    Event::new("UsernameChanged", data)
        .with_tags([format!("username:{old}"), format!("username:{new}")])
}

fn username_claimed(username: &str) -> impl Projection<State = bool> {
    let types = ["AccountRegistered", "AccountClosed", "UsernameChanged"];
    let claimed = query(&types, &[format!("username:{username}")]);
    let username = username.to_string();
    Fold::new(claimed, false, move |_, e| {
        match e.event.event_type.as_str() {
            "AccountRegistered" => true,
            "AccountClosed" => false,
            _ => e.event.data["newUsername"] == username.as_str(),
        }
    })
}

fn register(username: &str) -> Command<impl Projection<State = bool>> {
    let username = username.to_string();
    command(username_claimed(&username), move |&claimed| {
        if claimed {
            return Err(format!("Username \"{username}\" is claimed"));
        }
        Ok(vec![account_registered(&username)])
    })
}

scenarios! {
    register_claimed_username:
        given [account_registered("u1")],
        when register("u1"),
        then Err("Username \"u1\" is claimed");
    register_new_username:
        given [],
        when register("u1"),
        then Ok(account_registered("u1"));
    register_username_of_closed_account:
        given [account_registered("u1"), account_closed("u1")],
        when register("u1"),
        then Ok(account_registered("u1"));
    register_username_given_up_by_a_change:
        given [account_registered("u1"), username_changed("u1", "u1changed")],
        when register("u1"),
        then Ok(account_registered("u1"));
    register_username_claimed_by_a_change:
        given [account_registered("u1"), username_changed("u1", "u1changed")],
        when register("u1changed"),
        then Err("Username \"u1changed\" is claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_same_username() {
    let (store, db) = crate::common::store().await;
    // Another name is registered first: it must not get in the way.
    given(&store, vec![account_registered("other")]).await;
    let results = race(&store, &db, 20, |_, store, barrier| async move {
        let cmd = register("u1");
        let model = DecisionModel::build(&store, &cmd.projection).await.unwrap();
        contend(&store, &cmd, model, &barrier, 1).await
    })
    .await;

    let winners = results.iter().filter(|(r, _)| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for (outcome, _) in results.iter().filter(|(r, _)| r.is_err()) {
        assert_eq!(rejection(outcome), Some("Username \"u1\" is claimed"));
    }
    let first_conflicts = results.iter().filter(|(_, c)| *c).count();
    assert_eq!(first_conflicts, 19, "{results:?}");
    let registered: Vec<Value> = log_events(&store)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    let expected = [json!({"username": "other"}), json!({"username": "u1"})];
    assert_eq!(registered, expected);
}

// ---- Invoice numbers ----

fn invoice_created(number: u64, data: &Value) -> Event {
    let data = json!({"invoiceNumber": number, "invoiceData": data});
    Event::new("InvoiceCreated", data).with_tag(format!("invoice:{number}"))
}

fn invoices() -> Query {
    Query::item(QueryItem::types(["InvoiceCreated"]))
}

/// Next number = 1 + number of invoices created.
fn next_invoice_number() -> impl Projection<State = u64> {
    Fold::new(invoices(), 1, |n, _| n + 1)
}

/// The optimisation: the next number from the last invoice only (read
/// backwards, limit 1), whose position becomes `after`.
async fn next_invoice_number_from_last<S: EventStore + Sync>(store: &S) -> DecisionModel<u64> {
    let backwards = ReadOptions::new().backwards().limit(1);
    let last = store.read_boundary(&invoices(), backwards).await.unwrap();
    let number = |e: &SequencedEvent| e.event.data["invoiceNumber"].as_u64().unwrap();
    DecisionModel {
        state: last.events.first().map_or(1, |e| number(e) + 1),
        query: invoices(),
        last_position: last.events.first().map(|e| e.position),
        read_at: last.after,
    }
}

fn create_invoice(data: Value) -> Command<impl Projection<State = u64>> {
    command(next_invoice_number(), move |&next| {
        Ok(vec![invoice_created(next, &data)])
    })
}

/// Both forms create invoice `number` given `history`: `execute`, and one
/// decision from the last invoice only.
async fn check_invoice<S: EventStore + Sync>(stores: [&S; 2], history: Vec<Event>, number: u64) {
    let [store, other] = stores;
    let data = json!({"amount": 10});
    let expected = invoice_created(number, &data);
    let then = Ok(expected.clone());
    check(other, history.clone(), create_invoice(data.clone()), then).await;
    // The optimisation decides the same.
    given(store, history.clone()).await;
    let model = next_invoice_number_from_last(store).await;
    let decided = (create_invoice(data).decide)(&model.state).unwrap();
    assert_eq!(
        decided.iter().map(content).collect::<Vec<_>>(),
        [content(&expected)]
    );
    let condition = Some(model.append_condition());
    let appended = store.append(decided.clone(), condition).await.unwrap();
    assert!(!appended.already_stored);
    let expected_log: Vec<Event> = history.into_iter().chain(decided).map(stored).collect();
    assert_eq!(log_events(store).await, expected_log);
}

async fn create_first_invoice<S: EventStore + Sync>(stores: [&S; 2]) {
    check_invoice(stores, vec![], 1).await;
}

async fn create_second_invoice<S: EventStore + Sync>(stores: [&S; 2]) {
    check_invoice(stores, vec![invoice_created(1, &json!({"amount": 5}))], 2).await;
}

async fn create_invoice_among_other_events<S: EventStore + Sync>(stores: [&S; 2]) {
    // Unrelated events before and after the invoices change nothing.
    let mut given = vec![account_registered("u1")];
    given.extend((1..=3).map(|n| invoice_created(n, &json!({}))));
    given.push(course_defined("c1", 10));
    check_invoice(stores, given, 4).await;
}

async fn stale_invoice_decisions_conflict<S: EventStore + Sync>(stores: [&S; 2]) {
    // Both forms decide on the same log, another invoice is created, then they
    // try to append: both must conflict (the backwards read's `after` is safe).
    for (from_last, store) in [false, true].into_iter().zip(stores) {
        given(store, vec![invoice_created(1, &json!({}))]).await;
        let cmd = create_invoice(json!({}));
        let model = if from_last {
            next_invoice_number_from_last(store).await
        } else {
            DecisionModel::build(store, &cmd.projection).await.unwrap()
        };
        let decided = (cmd.decide)(&model.state).unwrap();
        assert_eq!(decided[0].data["invoiceNumber"], 2);
        let other = execute(store, &cmd.projection, 1, &cmd.decide).await;
        assert!(matches!(other, Ok(Executed::Appended { .. })), "{other:?}");
        let before = log(store).await;
        assert_eq!(before.len(), 2);
        let condition = Some(model.append_condition());
        let err = store.append(decided, condition).await.unwrap_err();
        let conflict = err.conflict().expect("a conflict");
        assert_eq!(conflict.events, before[1..]);
        assert_eq!(log(store).await, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_invoice_numbers_are_gapless() {
    let (store, db) = crate::common::store().await;
    let results = race(&store, &db, 8, |i, store, barrier| async move {
        let cmd = create_invoice(json!({"client": i}));
        let model = if i % 4 < 2 {
            DecisionModel::build(&store, &cmd.projection).await.unwrap()
        } else {
            next_invoice_number_from_last(&store).await
        };
        // A client conflicts at most once per other client's invoice.
        contend(&store, &cmd, model, &barrier, 7).await
    })
    .await;

    assert!(results.iter().all(|(r, _)| r.is_ok()), "{results:?}");
    // All first decisions were "invoice 1": seven of them conflicted.
    let first_conflicts = results.iter().filter(|(_, c)| *c).count();
    assert_eq!(first_conflicts, 7, "{results:?}");
    let log = log(&store).await;
    let field = |e: &SequencedEvent, f: &str| e.event.data.pointer(f).unwrap().as_u64().unwrap();
    let numbers: Vec<u64> = log.iter().map(|e| field(e, "/invoiceNumber")).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    let mut clients: Vec<u64> = log
        .iter()
        .map(|e| field(e, "/invoiceData/client"))
        .collect();
    clients.sort_unstable();
    assert_eq!(clients, (0..8).collect::<Vec<_>>());
    for e in &log {
        let tag = format!("invoice:{}", e.event.data["invoiceNumber"]);
        assert_eq!(e.event.tags, [tag]);
    }
}

// ---- Event-sourced aggregate on DCB ----

/// Loads the course aggregate: every event tagged with the course.
fn course_aggregate(course: &str) -> impl Projection<State = Vec<Event>> {
    let tagged = Query::item(QueryItem::tags([format!("course:{course}")]));
    Fold::new(tagged, Vec::new(), |mut events: Vec<Event>, e| {
        events.push(e.event.clone());
        events
    })
}

async fn aggregate_saves_from_same_version<S: EventStore + Sync>(stores: [&S; 2]) {
    let store = stores[0];
    let c1 = course_defined("c1", 10);
    given(store, vec![c1.clone(), course_defined("c2", 10)]).await;

    // Load: the version is the last position read.
    let loaded = DecisionModel::build(store, &course_aggregate("c1")).await;
    let loaded = loaded.unwrap();
    assert_eq!(loaded.state, [stored(c1)]);
    let version = loaded.last_position.unwrap();

    // Another aggregate changes meanwhile: no conflict for c1.
    given(store, vec![course_capacity_changed("c2", 20)]).await;

    // First save from the loaded version.
    let first = vec![
        course_capacity_changed("c1", 20),
        student_subscribed("s1", "c1"),
    ];
    let condition = Some(loaded.append_condition());
    let saved = store.append(first.clone(), condition).await.unwrap();
    let after_load = ReadOptions::new().after(version);
    let first_stored = read_all(store, &loaded.query, after_load).await;
    let events: Vec<Event> = first_stored.iter().map(|e| e.event.clone()).collect();
    let first: Vec<Event> = first.into_iter().map(stored).collect();
    assert_eq!(events, first);
    assert_eq!(first_stored.last().unwrap().position, saved.position);

    // Second save from the same version: fails, reporting the first's events.
    let second = vec![course_capacity_changed("c1", 30)];
    let condition = Some(loaded.append_condition());
    let err = store.append(second, condition).await.unwrap_err();
    let Error::Conflict(conflict) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(conflict.position, saved.position);
    assert_eq!(conflict.events, first_stored);

    // Nothing of the second save was written.
    let log = log_events(store).await;
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(!log.iter().any(|e| e.data["newCapacity"] == 30), "{log:?}");
}

/// Tests that use two fresh stores of one kind, on both kinds: two
/// PostgreSQL databases (`pg`), two in-memory stores (`memory`).
macro_rules! on_two_fresh_stores {
    ($($name:ident),* $(,)?) => {
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (a, _da) = crate::common::store().await;
                    let (b, _db) = crate::common::store().await;
                    super::$name([&a, &b]).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (a, b) = (super::MemoryStore::new(), super::MemoryStore::new());
                    super::$name([&a, &b]).await;
                }
            )*
        }
    };
}

on_two_fresh_stores! {
    create_first_invoice,
    create_second_invoice,
    create_invoice_among_other_events,
    stale_invoice_decisions_conflict,
    aggregate_saves_from_same_version,
}
