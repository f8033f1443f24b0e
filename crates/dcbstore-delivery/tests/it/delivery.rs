//! Level 3 against a real server: durable subscribers delivered from the
//! log, at least once, resuming from their checkpoint, retried with
//! backoff, dead-lettered or blocked; one runner at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcbstore::{Event, EventStore, HandlerError, Store};
use dcbstore_delivery::dispatch::Envelope;
use dcbstore_delivery::{
    self, DeliveryConfig, DurableSubscriber, OnFailure, Permanent, Selection, SubscriberConfig,
};
use dcbstore_test_support::store;
use serde_json::json;

/// Records the `n` of every envelope it handles; fails those whose `n` is
/// in `failing` (permanently when `permanent`); sleeps `delay` per event.
#[derive(Clone)]
struct Recorder {
    name: String,
    seen: Arc<Mutex<Vec<(i64, String)>>>,
    failing: Arc<Mutex<HashSet<i64>>>,
    permanent: bool,
    delay: Duration,
}

impl Recorder {
    fn new(name: &str) -> Self {
        Recorder {
            name: name.into(),
            seen: Arc::default(),
            failing: Arc::default(),
            permanent: false,
            delay: Duration::ZERO,
        }
    }

    fn ns(&self) -> Vec<i64> {
        self.seen.lock().unwrap().iter().map(|(n, _)| *n).collect()
    }
}

impl DurableSubscriber for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn events(&self) -> Vec<String> {
        // Appended directly ("Ticket") and emitted by the dispatcher ("ticket").
        vec!["Ticket".into(), "ticket".into()]
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let n = envelope.payload["n"].as_i64().ok_or("no n")?;
        if self.failing.lock().unwrap().contains(&n) {
            let e: HandlerError = format!("ticket {n} refused").into();
            return Err(if self.permanent {
                Box::new(Permanent(e))
            } else {
                e
            });
        }
        self.seen
            .lock()
            .unwrap()
            .push((n, envelope.idempotency_key.clone()));
        Ok(())
    }
}

fn fast(on_failure: OnFailure) -> DeliveryConfig {
    DeliveryConfig {
        batch_size: 10,
        max_attempts: 3,
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
        poll_interval: Duration::from_millis(50),
        on_failure,
    }
}

async fn tickets(store: &Store, range: std::ops::Range<i64>) {
    let events: Vec<Event> = range
        .map(|n| Event::new("Ticket", json!({ "n": n })))
        .collect();
    let _ = store.append(events.clone(), None).await.unwrap();
    // Something no subscriber takes, in between.
    let _ = store
        .append(vec![Event::new("Other", json!({}))], None)
        .await
        .unwrap();
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscriber_gets_its_events_in_order_and_resumes_from_its_checkpoint() {
    let (store, _db) = store().await;
    tickets(&store, 0..25).await;
    let r = Recorder::new("search-index");
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter));
    let runner = sub.start(&store);
    until("the history is delivered", || r.ns().len() == 25).await;
    tickets(&store, 25..30).await;
    until("live events are delivered", || r.ns().len() == 30).await;
    runner.stop().await;
    tickets(&store, 30..40).await;
    let runner = sub.start(&store);
    until("it resumes", || r.ns().len() == 40).await;
    runner.stop().await;
    assert_eq!(r.ns(), (0..40).collect::<Vec<_>>(), "each once, in order");
    let keys: HashSet<String> = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, k)| k.clone())
        .collect();
    assert_eq!(keys.len(), 40, "every envelope has its own idempotency key");
}

/// A durable subscriber meets an event a reader cannot decode (stored before
/// the database refused such values): it delivers the events before it,
/// stops at it with an error that names it and how to redact it, and goes
/// on once it is redacted. (The whole batch failed, and was retried, with
/// nothing of it delivered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_delivers_up_to_an_undecodable_event_and_goes_on_once_it_is_redacted() {
    let (store, db) = store().await;
    tickets(&store, 0..3).await; // positions 1 to 3, and "Other" at 4
    let owner = dcbstore::connection::connect(db.options().unwrap())
        .await
        .unwrap();
    owner
        .batch_execute(
            "INSERT INTO dcbstore.events (position, id, type, data, tags)
             VALUES (5, gen_random_uuid(), 'Ticket', '{\"n\": 1e400}', '{}')",
        )
        .await
        .unwrap();
    tickets(&store, 5..8).await;
    let r = Recorder::new("undecodable");
    let runner = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter)).start(&store);
    until("the events before it are delivered", || r.ns().len() == 3).await;
    let mut error = String::new();
    for _ in 0..400 {
        let row = owner
            .query_opt(
                "SELECT last_error FROM dcbstore.projections WHERE name = 'undecodable'",
                &[],
            )
            .await
            .unwrap();
        error = row
            .and_then(|r| r.get::<_, Option<String>>(0))
            .unwrap_or_default();
        if !error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(error.contains("dcbstore redact 5"), "{error}");
    assert_eq!(r.ns(), vec![0, 1, 2], "nothing past the event");
    dcbstore::roles::redact(
        &owner,
        dcbstore::SequencePosition::new(5),
        &json!({ "n": 99 }),
        "unreadable",
        None,
    )
    .await
    .unwrap();
    until("it goes on", || r.ns().len() == 7).await;
    runner.stop().await;
    assert_eq!(r.ns(), vec![0, 1, 2, 99, 5, 6, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_aborted_mid_batch_loses_nothing_and_resends_with_the_same_keys() {
    let (store, _db) = store().await;
    tickets(&store, 0..60).await;
    let mut r = Recorder::new("mailer");
    r.delay = Duration::from_millis(5);
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter));
    for _ in 0..4 {
        let runner = sub.start(&store);
        tokio::time::sleep(Duration::from_millis(120)).await;
        runner.abort();
    }
    let runner = sub.start(&store);
    until("everything is delivered", || {
        r.ns().iter().collect::<HashSet<_>>().len() == 60
    })
    .await;
    runner.stop().await;
    let seen = r.seen.lock().unwrap().clone();
    let mut key_of: HashMap<i64, String> = HashMap::new();
    for (n, key) in &seen {
        let first = key_of.entry(*n).or_insert_with(|| key.clone());
        assert_eq!(first, key, "a resend carries the same idempotency key");
    }
    // In order, apart from the resends after each abort.
    let mut last = -1;
    for (n, _) in &seen {
        assert!(*n <= last + 1, "nothing skipped: {n} after {last}");
        last = last.max(*n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_retried_then_dead_lettered_and_the_ones_behind_it_go_on() {
    let (store, _db) = store().await;
    tickets(&store, 0..10).await;
    let r = Recorder::new("sync");
    r.failing.lock().unwrap().insert(3);
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter));
    let runner = sub.start(&store);
    until("the rest is delivered", || r.ns().len() == 9).await;
    runner.stop().await;
    assert_eq!(r.ns(), vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
    let letters = dcbstore_delivery::list(&store, Some("sync")).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].position, 4, "ticket 3 is the fourth event");
    assert_eq!(letters[0].attempts, 3, "max_attempts");
    assert!(letters[0].last_error.contains("ticket 3 refused"));
    assert!(letters[0].first_failed_at <= letters[0].last_failed_at);

    // Still failing: the retry counts another attempt and keeps it.
    let report = sub
        .retry_dead_letters(&store, Selection::All)
        .await
        .unwrap();
    assert_eq!((report.tried, report.delivered, report.failed), (1, 0, 1));
    assert_eq!(
        dcbstore_delivery::list(&store, None).await.unwrap()[0].attempts,
        4
    );
    // Fixed: the retry delivers it and the row goes.
    r.failing.lock().unwrap().clear();
    let report = sub
        .retry_dead_letters(&store, Selection::Position(4))
        .await
        .unwrap();
    assert_eq!((report.tried, report.delivered), (1, 1));
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.ns(), vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 3]);
    let missing = sub.retry_dead_letters(&store, Selection::Position(4)).await;
    assert!(missing.is_err(), "no such dead letter any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_dead_lettered_without_retries_and_can_be_discarded() {
    let (store, _db) = store().await;
    tickets(&store, 0..3).await;
    let mut r = Recorder::new("strict");
    r.permanent = true;
    r.failing.lock().unwrap().insert(1);
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter));
    let runner = sub.start(&store);
    until("the rest is delivered", || r.ns().len() == 2).await;
    runner.stop().await;
    let letters = dcbstore_delivery::list(&store, Some("strict"))
        .await
        .unwrap();
    assert_eq!(letters[0].attempts, 1, "no retry for a permanent error");
    assert_eq!(
        dcbstore_delivery::discard(&store, "strict", Selection::All)
            .await
            .unwrap(),
        1
    );
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_block_policy_a_poison_event_holds_back_the_ones_behind_it() {
    let (store, _db) = store().await;
    tickets(&store, 0..6).await;
    let r = Recorder::new("ordered");
    r.failing.lock().unwrap().insert(2);
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::Block));
    let runner = sub.start(&store);
    until("the ones before it are delivered", || r.ns().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.ns(), vec![0, 1], "nothing passes the poison event");
    assert!(
        dcbstore_delivery::list(&store, None)
            .await
            .unwrap()
            .is_empty(),
        "no dead letter"
    );
    let status = dcbstore::projection::durable::status(&store).await.unwrap();
    let row = status.iter().find(|s| s.name == "ordered").unwrap();
    assert_eq!(row.state, "failed");
    assert_eq!(row.error_position, Some(3));
    r.failing.lock().unwrap().clear();
    until("it goes through once it succeeds", || r.ns().len() == 6).await;
    runner.stop().await;
    assert_eq!(r.ns(), (0..6).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_of_one_subscriber_deliver_each_event_once() {
    let (store, db) = store().await;
    let other = Store::connect(db.url()).await.unwrap();
    let r = Recorder::new("once");
    let sub = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter));
    let a = sub.start(&store);
    let b = sub.start(&other);
    for i in 0..10 {
        tickets(&store, i * 10..i * 10 + 10).await;
    }
    until("everything is delivered", || r.ns().len() >= 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(
        r.ns(),
        (0..100).collect::<Vec<_>>(),
        "one runner delivered, each once"
    );
}

mod routes {
    use super::*;
    use dcbstore::schema::{self, EventDefinition, Kind, Level, SchemaRegistry};
    use dcbstore_delivery::dispatch::{DispatchError, Dispatcher, EmitOptions, SourcedHandler};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    struct Ticket {
        n: i64,
    }
    impl EventDefinition for Ticket {
        const NAME: &'static str = "ticket";
        const KIND: Kind = Kind::Integration;
        const LEVEL: Level = Level::Outbox;
    }

    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    struct Published {
        n: i64,
    }
    impl EventDefinition for Published {
        const NAME: &'static str = "published";
        const KIND: Kind = Kind::Integration;
        const LEVEL: Level = Level::Broker;
    }

    fn schema(test: &str) -> schema::SchemaFile {
        let dir =
            std::env::temp_dir().join(format!("dcbstore-delivery-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.schema.json");
        let registry = SchemaRegistry::new()
            .register::<Ticket>()
            .register::<Published>();
        schema::dump(&registry, &path).unwrap();
        schema::SchemaFile::load(&path).unwrap()
    }

    #[tokio::test]
    async fn outbox_and_broker_events_must_be_recorded_and_broker_events_need_a_relay() {
        let (store, _db) = store().await;
        let bare = Dispatcher::new(schema("bare"));
        let err = bare.check().unwrap_err();
        assert!(
            matches!(err, DispatchError::NotRecorded { level: 3, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("SourcedHandler"),
            "says what to do: {err}"
        );
        let err = bare.emit(&Ticket { n: 1 }).await.unwrap_err();
        assert!(
            matches!(err, DispatchError::NotRecorded { .. }),
            "an error at emit too, not a silent drop: {err}"
        );

        let recorded = Dispatcher::new(schema("recorded")).handler(
            Level::Outbox..=Level::Sourced,
            "store",
            SourcedHandler::new(store.clone()),
        );
        let warnings = recorded.check().unwrap();
        assert_eq!(
            warnings.len(),
            1,
            "a warning for the relay-less level 4: {warnings:?}"
        );
        assert!(warnings[0].contains("published"));
        let err = recorded.emit(&Published { n: 1 }).await.unwrap_err();
        assert!(matches!(err, DispatchError::NoTransport { .. }), "{err}");
        assert_eq!(store.head().await.unwrap(), None, "nothing recorded");

        let relayed = recorded.relayed_by("relay:nats");
        assert!(relayed.check().unwrap().is_empty());
        let _ = relayed.emit(&Published { n: 2 }).await.unwrap();
        assert!(store.head().await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outbox_event_reaches_its_durable_subscriber_with_its_envelope() {
        let (store, _db) = store().await;
        let dispatcher = Dispatcher::new(schema("envelope")).handler(
            Level::Outbox..=Level::Sourced,
            "store",
            SourcedHandler::new(store.clone()),
        );
        let r = Recorder::new("index");
        let runner = SubscriberConfig::new(r.clone(), fast(OnFailure::DeadLetter)).start(&store);
        let sent = dispatcher
            .emit_with(
                &Ticket { n: 7 },
                EmitOptions::new().idempotency_key("ticket-7"),
            )
            .await
            .unwrap();
        until("it is delivered", || r.ns() == vec![7]).await;
        runner.stop().await;
        assert_eq!(sent.idempotency_key, "ticket-7");
        assert_eq!(
            r.seen.lock().unwrap()[0].1,
            "ticket-7",
            "the envelope's key"
        );
    }
}

mod jobs {
    use super::*;
    use dcbstore::schema::{self, EventDefinition, Level, SchemaRegistry};
    use dcbstore_delivery::dispatch::Dispatcher;
    use dcbstore_delivery::job::{JobConfig, Jobs};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    struct MailRequested {
        n: u32,
    }
    impl EventDefinition for MailRequested {
        const NAME: &'static str = "mail_requested";
        const LEVEL: Level = Level::Job;
    }

    fn dispatcher(test: &str, jobs: &Jobs) -> Dispatcher {
        let dir = std::env::temp_dir().join(format!("dcbstore-jobs-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.schema.json");
        schema::dump(&SchemaRegistry::new().register::<MailRequested>(), &path).unwrap();
        Dispatcher::from_file(&path)
            .unwrap()
            .handler(Level::Job, "jobs", jobs.clone())
    }

    fn quick(workers: usize, queue: usize) -> JobConfig {
        JobConfig {
            workers,
            queue,
            max_attempts: 3,
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_after_the_emit_with_retries_and_failures_are_counted() {
        let tries = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
        let t = tries.clone();
        let jobs = Jobs::builder(quick(2, 16))
            .on::<MailRequested, _, _>("mailer", move |e, _| {
                let t = t.clone();
                async move {
                    let n = {
                        let mut t = t.lock().unwrap();
                        let c = t.entry(e.n).or_default();
                        *c += 1;
                        *c
                    };
                    // Mail 1 succeeds on its third try, mail 2 never.
                    match (e.n, n) {
                        (0, _) | (1, 3) => Ok(()),
                        _ => Err(format!("smtp refused mail {}", e.n).into()),
                    }
                }
            })
            .start();
        let d = dispatcher("retries", &jobs);
        for n in 0..3 {
            d.emit(&MailRequested { n }).await.unwrap();
        }
        let report = jobs.shutdown(Duration::from_secs(10)).await;
        assert_eq!((report.completed, report.failed, report.dropped), (2, 1, 0));
        let counts = {
            let tries = tries.lock().unwrap();
            (tries[&0], tries[&1], tries[&2])
        };
        assert_eq!(counts, (1, 3, 3), "max_attempts 3");
        assert!(
            d.emit(&MailRequested { n: 9 }).await.is_err(),
            "no job is taken after shutdown"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_pool_shuts_down_without_waiting_for_its_deadline() {
        let jobs = Jobs::builder(quick(3, 8))
            .on::<MailRequested, _, _>("noop", |_, _| async { Ok(()) })
            .start();
        let d = dispatcher("idle", &jobs);
        d.emit(&MailRequested { n: 1 }).await.unwrap();
        while jobs.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Idle workers wait for jobs: the shutdown must wake them, not wait
        // out its 60 s deadline (or hang on the queue they hold).
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            jobs.shutdown(Duration::from_secs(60)),
        )
        .await
        .expect("an idle pool stops at once");
        assert_eq!((report.completed, report.dropped), (1, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_drains_the_queue_or_says_what_it_dropped() {
        let done = Arc::new(AtomicU32::new(0));
        let slow = |done: Arc<AtomicU32>| {
            Jobs::builder(quick(1, 64))
                .on::<MailRequested, _, _>("slow", move |_, _| {
                    let done = done.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        done.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                })
                .start()
        };
        let jobs = slow(done.clone());
        let d = dispatcher("drain", &jobs);
        for n in 0..5 {
            d.emit(&MailRequested { n }).await.unwrap();
        }
        assert!(jobs.pending() > 0, "the emit returned before the jobs ran");
        let report = jobs.shutdown(Duration::from_secs(10)).await;
        assert_eq!((report.completed, report.dropped), (5, 0), "drained");
        assert_eq!(done.load(Ordering::SeqCst), 5);

        let cut = Arc::new(AtomicU32::new(0));
        let jobs = slow(cut.clone());
        let d = dispatcher("cut", &jobs);
        for n in 0..20 {
            d.emit(&MailRequested { n }).await.unwrap();
        }
        let report = jobs.shutdown(Duration::from_millis(120)).await;
        assert!(report.dropped > 0, "{report:?}");
        assert_eq!(
            report.completed + report.dropped,
            20,
            "every job is either done or reported dropped: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letters_kit_lists_retries_and_discards() {
    use dcbstore_cli::kit::dead_letters::run;
    use dcbstore_delivery::Deliveries;

    let (store, _db) = store().await;
    tickets(&store, 0..6).await;
    let a = Recorder::new("feed");
    let b = Recorder::new("index");
    for r in [&a, &b] {
        r.failing.lock().unwrap().extend([1, 4]);
    }
    let deliveries = Deliveries::new()
        .subscription(SubscriberConfig::new(
            a.clone(),
            fast(OnFailure::DeadLetter),
        ))
        .subscription(SubscriberConfig::new(
            b.clone(),
            fast(OnFailure::DeadLetter),
        ));
    let runners = deliveries.start_all(&store);
    until("both delivered the rest", || {
        a.ns().len() == 4 && b.ns().len() == 4
    })
    .await;
    for r in runners {
        r.stop().await;
    }
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut out = Vec::new();
    assert_eq!(
        run(&store, &deliveries, args("list --json"), &mut out).await,
        0
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["subscriber"], "feed");
    assert_eq!(lines[0]["position"], 2);
    let mut table = Vec::new();
    assert_eq!(
        run(
            &store,
            &deliveries,
            args("list --subscriber index"),
            &mut table
        )
        .await,
        0
    );
    let table = String::from_utf8(table).unwrap();
    assert_eq!(table.lines().count(), 3, "a header and two rows: {table}");
    assert!(table.contains("ticket 4 refused"));

    // Fixed for one position only: retrying it delivers it for both.
    for r in [&a, &b] {
        r.failing.lock().unwrap().remove(&1);
    }
    let mut out = Vec::new();
    assert_eq!(run(&store, &deliveries, args("retry 2"), &mut out).await, 0);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (report["tried"].as_u64(), report["delivered"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(a.ns(), vec![0, 2, 3, 5, 1]);
    // The rest still fails; --all tries them and keeps them.
    let mut out = Vec::new();
    assert_eq!(
        run(
            &store,
            &deliveries,
            args("retry --all --subscriber feed"),
            &mut out
        )
        .await,
        0
    );
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (report["tried"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        dcbstore_delivery::list(&store, None).await.unwrap().len(),
        2
    );
    // Usage: neither or both of --all and POSITION; a position with nothing.
    assert_eq!(
        run(&store, &deliveries, args("retry"), &mut Vec::new()).await,
        2
    );
    assert_eq!(
        run(&store, &deliveries, args("retry --all 5"), &mut Vec::new()).await,
        2
    );
    assert_eq!(
        run(&store, &deliveries, args("discard 3"), &mut Vec::new()).await,
        2
    );
    let mut out = Vec::new();
    assert_eq!(
        run(&store, &deliveries, args("discard --all"), &mut out).await,
        0
    );
    assert_eq!(String::from_utf8(out).unwrap().trim(), r#"{"discarded":2}"#);
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
}

/// A subscriber that refuses everything while `refusing`; otherwise its
/// first delivery waits until released, and every delivery is counted.
#[derive(Clone, Default)]
struct Held {
    refusing: Arc<std::sync::atomic::AtomicBool>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl DurableSubscriber for Held {
    fn name(&self) -> &str {
        "held"
    }

    fn events(&self) -> Vec<String> {
        vec!["Ticket".into()]
    }

    async fn handle(&self, _: &Envelope) -> Result<(), HandlerError> {
        use std::sync::atomic::Ordering;
        if self.refusing.load(Ordering::SeqCst) {
            return Err(Box::new(Permanent("not now".into())));
        }
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_dead_letter_retries_beside_the_live_runner_deliver_once() {
    use std::sync::atomic::Ordering;
    let (store, _db) = store().await;
    tickets(&store, 0..1).await;
    let held = Held::default();
    held.refusing.store(true, Ordering::SeqCst);
    let subscription = SubscriberConfig::new(held.clone(), fast(OnFailure::DeadLetter));
    let runner = subscription.start(&store);
    let mut letters = Vec::new();
    for _ in 0..400 {
        letters = dcbstore_delivery::list(&store, Some("held")).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(letters.len(), 1, "the ticket is dead-lettered");
    let position = letters[0].position;
    held.refusing.store(false, Ordering::SeqCst);

    // One operator retries; the delivery is slow. The live runner goes on
    // beside it, and a second operator retries the same letter meanwhile.
    let first = tokio::spawn({
        let (subscription, store) = (subscription.clone(), store.clone());
        async move {
            subscription
                .retry_dead_letters(&store, Selection::All)
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(60), held.entered.notified())
        .await
        .expect("the first retry is delivering");
    let second = subscription
        .retry_dead_letters(&store, Selection::Position(position))
        .await
        .unwrap();
    let third = subscription
        .retry_dead_letters(&store, Selection::All)
        .await
        .unwrap();
    held.release.notify_one();
    let first = first.await.unwrap().unwrap();
    runner.stop().await;

    assert_eq!(held.calls.load(Ordering::SeqCst), 1, "delivered once");
    assert_eq!((first.tried, first.delivered), (1, 1), "{first:?}");
    for r in [second, third] {
        assert_eq!((r.tried, r.delivered, r.skipped), (0, 0, 1), "{r:?}");
    }
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
    // Retried after the delete: nothing left to deliver.
    let after = subscription
        .retry_dead_letters(&store, Selection::All)
        .await
        .unwrap();
    assert_eq!(after.tried, 0);
    assert_eq!(held.calls.load(Ordering::SeqCst), 1);
}
