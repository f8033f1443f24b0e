//! The documented limits (`src/limits.rs`), against a real PostgreSQL: for
//! each, exactly at the limit is accepted (and reads back), one over is
//! refused with [`Error::LimitExceeded`] naming the limit and the number, and
//! nothing is written; reads with an over-limit query are refused too. The
//! database's own constraints refuse what the SQL API is given over the
//! limits, and the CLI reports an over-limit event with exit status 1.

use std::io::Write;
use std::process::Stdio;

use crate::common::store;
use dcbstore::limits::MAX_JSON_DEPTH;
use dcbstore::limits::{
    MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND, MAX_EVENT_BYTES, MAX_GUARDS, MAX_ITEM_TERMS,
    MAX_NAME_BYTES, MAX_QUERY_ITEMS, MAX_TAGS_PER_EVENT,
};
use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use serde_json::{json, Map, Value};

// ---- Helpers ----

/// Asserts `result` is [`Error::Invalid`] and its message contains every
/// needle.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: dcbstore::Result<T>, needles: &[&str]) {
    match result {
        Err(Error::Invalid(message) | Error::LimitExceeded { message, .. }) => {
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{needle:?} not in the message: {message}"
                );
            }
        }
        other => panic!("expected Error::Invalid mentioning {needles:?}, got {other:?}"),
    }
}

async fn head(store: &Store) -> Option<u64> {
    store.head().await.expect("head").map(SequencePosition::get)
}

/// Appends `events` expecting a refusal naming `needles`, and that nothing
/// was written.
async fn refused(
    store: &Store,
    events: Vec<Event>,
    condition: Option<AppendCondition>,
    needles: &[&str],
) {
    let before = head(store).await;
    assert_invalid(store.append(events, condition).await, needles);
    assert_eq!(head(store).await, before, "nothing written");
}

/// Appends one event and reads it back (as stored: tags sorted).
async fn round_trip(store: &Store, event: Event) {
    let appended = store
        .append(vec![event.clone()], None)
        .await
        .expect("append");
    let read = store
        .read_all(
            &Query::all(),
            ReadOptions::new()
                .from(appended.position)
                .to(appended.position),
        )
        .await
        .expect("read back");
    assert_eq!(read.len(), 1);
    let mut want = event;
    want.tags.sort_unstable();
    want.tags.dedup();
    assert_eq!(read[0].event, want);
}

/// Reads with `query`, expecting a refusal naming `needles`.
async fn read_refused(store: &Store, query: &Query, needles: &[&str]) {
    assert_invalid(store.read_all(query, ReadOptions::new()).await, needles);
}

/// `n` distinct names.
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// An event whose data and metadata are exactly `bytes` bytes of JSON:
/// data `"xx…"` (the string plus its quotes) and metadata `{}`.
fn event_of_bytes(bytes: usize) -> Event {
    Event::new("Sized", json!("x".repeat(bytes - 4)))
}

/// `depth` nested arrays around `1`.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |v, _| json!([v]))
}

// ---- Events ----

#[tokio::test(flavor = "multi_thread")]
async fn events_per_append() {
    let (store, _db) = store().await;
    let events = |n: usize| (0..n).map(|_| Event::new("E", Value::Null)).collect();
    let appended = store
        .append(events(MAX_EVENTS_PER_APPEND), None)
        .await
        .expect("at the limit");
    assert_eq!(appended.position.get(), 10_000);
    refused(
        &store,
        events(MAX_EVENTS_PER_APPEND + 1),
        None,
        &["10001 events", "limit of 10000"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_per_event() {
    let (store, _db) = store().await;
    round_trip(&store, event_of_bytes(MAX_EVENT_BYTES)).await;
    let head_before = head(&store).await;
    refused(
        &store,
        vec![event_of_bytes(MAX_EVENT_BYTES + 1)],
        None,
        &["1048577 bytes", "the limit is 1048576"],
    )
    .await;
    // Metadata counts too: data at the limit plus a non-empty metadata.
    let mut metadata = Map::new();
    metadata.insert("k".into(), json!(1));
    let over = event_of_bytes(MAX_EVENT_BYTES).with_metadata(metadata);
    refused(&store, vec![over], None, &["1048581 bytes", "1048576"]).await;
    // One over anywhere in the batch refuses the whole append.
    refused(
        &store,
        vec![
            Event::new("Small", json!(1)),
            event_of_bytes(MAX_EVENT_BYTES + 1),
        ],
        None,
        &["event 2", "1048576"],
    )
    .await;
    assert_eq!(head(&store).await, head_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_per_append() {
    let (store, _db) = store().await;
    assert_eq!(MAX_APPEND_BYTES, 64 * MAX_EVENT_BYTES);
    // 64 events of 1 MiB are exactly 64 MiB; one more small one is over.
    // The refusal comes before anything is sent to the database.
    let at_limit: Vec<Event> = (0..64).map(|_| event_of_bytes(MAX_EVENT_BYTES)).collect();
    let mut over = at_limit.clone();
    over.push(Event::new("Small", Value::Null));
    refused(&store, over, None, &["over 67108864 bytes", "by event 65"]).await;
    assert_eq!(head(&store).await, None);
    let appended = store.append(at_limit, None).await.expect("exactly 64 MiB");
    assert_eq!(appended.position.get(), 64);
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_per_event() {
    let (store, _db) = store().await;
    round_trip(
        &store,
        Event::new("Tagged", Value::Null).with_tags(names("t", MAX_TAGS_PER_EVENT)),
    )
    .await;
    refused(
        &store,
        vec![Event::new("Tagged", Value::Null).with_tags(names("t", MAX_TAGS_PER_EVENT + 1))],
        None,
        &["event 1 has 101 tags", "the limit is 100"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_of_a_type_or_a_tag() {
    let (store, _db) = store().await;
    let ascii = "t".repeat(MAX_NAME_BYTES);
    // 256 bytes in 128 two-byte characters: the limit is in bytes.
    let wide = "é".repeat(MAX_NAME_BYTES / 2);
    for name in [&ascii, &wide] {
        round_trip(
            &store,
            Event::new(name.clone(), Value::Null).with_tag(name.clone()),
        )
        .await;
    }
    let over_ascii = "t".repeat(MAX_NAME_BYTES + 1);
    let over_wide = format!("{wide}x");
    for over in [&over_ascii, &over_wide] {
        refused(
            &store,
            vec![Event::new(over.clone(), Value::Null)],
            None,
            &["event 1 type", "257 bytes long", "the limit is 256 bytes"],
        )
        .await;
        refused(
            &store,
            vec![Event::new("A", Value::Null).with_tag(over.clone())],
            None,
            &["event 1 tag", "257 bytes long", "the limit is 256 bytes"],
        )
        .await;
        // In queries: reads and conditions.
        let by_type = Query::item(QueryItem::types([over.clone()]));
        let by_tag = Query::item(QueryItem::tags([over.clone()]));
        read_refused(&store, &by_type, &["query type", "257 bytes", "256"]).await;
        read_refused(&store, &by_tag, &["query tag", "257 bytes", "256"]).await;
        refused(
            &store,
            vec![Event::new("A", Value::Null)],
            Some(AppendCondition::new(by_tag, None)),
            &["query tag", "257 bytes", "256"],
        )
        .await;
    }
    // At the limit in a query: accepted, and it matches.
    let found = store
        .read_all(
            &Query::item(QueryItem::types([ascii.clone()]).and_tags([ascii])),
            ReadOptions::new(),
        )
        .await
        .expect("read at the limit");
    assert_eq!(found.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_nesting() {
    let (store, _db) = store().await;
    round_trip(&store, Event::new("Deep", nested(MAX_JSON_DEPTH))).await;
    // The innermost level empty counts as a level too.
    let empty_innermost = (1..MAX_JSON_DEPTH).fold(json!([]), |v, _| json!([v]));
    round_trip(&store, Event::new("Deep", empty_innermost.clone())).await;
    refused(
        &store,
        vec![Event::new("Deep", nested(MAX_JSON_DEPTH + 1))],
        None,
        &["event 1 data", "nested deeper than 100 levels"],
    )
    .await;
    refused(
        &store,
        vec![Event::new("Deep", json!([empty_innermost]))],
        None,
        &["event 1 data", "nested deeper than 100 levels"],
    )
    .await;
    // Metadata is an object: its values have one level fewer.
    let mut at = Map::new();
    at.insert("m".into(), nested(MAX_JSON_DEPTH - 1));
    round_trip(&store, Event::new("Deep", Value::Null).with_metadata(at)).await;
    let mut over = Map::new();
    over.insert("m".into(), nested(MAX_JSON_DEPTH));
    refused(
        &store,
        vec![Event::new("Deep", Value::Null).with_metadata(over)],
        None,
        &["event 1 metadata", "nested deeper than 100 levels"],
    )
    .await;
}

// ---- Queries and conditions ----

#[tokio::test(flavor = "multi_thread")]
async fn items_per_query() {
    let (store, _db) = store().await;
    let _ = store
        .append(vec![Event::new("T99", Value::Null)], None)
        .await
        .expect("seed");
    let query = |n: usize| Query::items(names("T", n).into_iter().map(|t| QueryItem::types([t])));
    let found = store
        .read_all(&query(MAX_QUERY_ITEMS), ReadOptions::new())
        .await
        .expect("at the limit");
    assert_eq!(found.len(), 1, "the 100th item matches");
    let over = format!("a query has {} items", MAX_QUERY_ITEMS + 1);
    let limit = format!("the limit is {MAX_QUERY_ITEMS}");
    read_refused(&store, &query(MAX_QUERY_ITEMS + 1), &[&over, &limit]).await;
    // As a condition's query, too.
    let c = |n| AppendCondition::new(query(n), Some(SequencePosition::new(1)));
    let _ = store
        .append(vec![Event::new("A", Value::Null)], Some(c(MAX_QUERY_ITEMS)))
        .await
        .expect("a condition at the limit");
    refused(
        &store,
        vec![Event::new("A", Value::Null)],
        Some(c(MAX_QUERY_ITEMS + 1)),
        &[&over, &limit],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn types_or_tags_per_query_item() {
    let (store, _db) = store().await;
    let tags = names("t", MAX_ITEM_TERMS);
    let _ = store
        .append(
            vec![Event::new("T99", Value::Null).with_tags(tags.clone())],
            None,
        )
        .await
        .expect("seed");
    let at = Query::item(QueryItem::types(names("T", MAX_ITEM_TERMS)).and_tags(tags.clone()));
    let found = store
        .read_all(&at, ReadOptions::new())
        .await
        .expect("at the limit");
    assert_eq!(found.len(), 1);
    let over_types = Query::item(QueryItem::types(names("T", MAX_ITEM_TERMS + 1)));
    read_refused(
        &store,
        &over_types,
        &["101 types and 0 tags", "the limit is 100 of each"],
    )
    .await;
    let over_tags = Query::item(QueryItem::tags(names("t", MAX_ITEM_TERMS + 1)));
    read_refused(
        &store,
        &over_tags,
        &["0 types and 101 tags", "the limit is 100 of each"],
    )
    .await;
    refused(
        &store,
        vec![Event::new("A", Value::Null)],
        Some(AppendCondition::new(over_tags, None)),
        &["101 tags", "the limit is 100 of each"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_per_condition() {
    let (store, _db) = store().await;
    let condition = |n: usize| AppendCondition {
        guards: names("t", n)
            .into_iter()
            .map(|t| dcbstore::AppendGuard {
                fail_if_events_match: Query::item(QueryItem::tags([t])),
                after: None,
            })
            .collect(),
    };
    let _ = store
        .append(
            vec![Event::new("A", Value::Null)],
            Some(condition(MAX_GUARDS)),
        )
        .await
        .expect("at the limit");
    refused(
        &store,
        vec![Event::new("A", Value::Null)],
        Some(condition(MAX_GUARDS + 1)),
        &["101 guards", "the limit is 100"],
    )
    .await;
    // The 100th guard is checked: an event it matches makes a conflict.
    let _ = store
        .append(vec![Event::new("B", Value::Null).with_tag("t99")], None)
        .await
        .expect("seed");
    match store
        .append(
            vec![Event::new("A", Value::Null)],
            Some(condition(MAX_GUARDS)),
        )
        .await
    {
        Err(Error::Conflict(c)) => assert_eq!(c.position.get(), 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

// ---- The SQL API: the database's constraints ----

#[tokio::test(flavor = "multi_thread")]
async fn sql_appends_over_the_limits_are_refused_by_the_database() {
    use tokio_postgres::error::SqlState;
    let (store, db) = store().await;
    let client = dcbstore::connection::connect(db.options().expect("options"))
        .await
        .expect("connect");
    let append = |events: Value| sql_append(&client, events);
    let name = "n".repeat(MAX_NAME_BYTES);
    append(json!([{"type": name, "tags": names("t", MAX_TAGS_PER_EVENT)}]))
        .await
        .expect("type and tag count at the limits");
    append(json!([{"type": "A", "tags": [name]}]))
        .await
        .expect("a tag at the limit");
    let before = head(&store).await;
    assert_eq!(before, Some(2));

    let long = "n".repeat(MAX_NAME_BYTES + 1);
    for (events, limit) in [
        (json!([{"type": long}]), "max_name_bytes"),
        (
            json!([{"type": "A", "tags": names("t", MAX_TAGS_PER_EVENT + 1)}]),
            "max_tags_per_event",
        ),
        (json!([{"type": "A", "tags": [long]}]), "max_name_bytes"),
        // One bad event refuses the whole append.
        (
            json!([{"type": "A"}, {"type": "B", "tags": [long]}]),
            "max_name_bytes",
        ),
    ] {
        // Refused by the entry point itself (before the table's constraints),
        // naming the limit of dcbstore.limits.
        let err = append(events.clone()).await.expect_err("refused");
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(
            db_err.code(),
            &SqlState::INVALID_PARAMETER_VALUE,
            "{events}: {err}"
        );
        assert!(db_err.message().contains(limit), "{events}: {err}");
        assert_eq!(head(&store).await, before, "nothing written");
    }
}

async fn sql_append(
    client: &tokio_postgres::Client,
    events: Value,
) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
    client
        .query_one("SELECT dcbstore.append($1::jsonb)", &[&events])
        .await
}

// ---- The CLI ----

/// Runs `dcbstore ARGS` against `url` with `stdin`; (exit code, stdout, stderr).
fn cli(url: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = crate::common::cli::dcbstore()
        .args(args)
        .env("DATABASE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dcbstore");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_owned();
    // The tool may exit before reading everything: ignore EPIPE.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_append_over_a_limit_exits_1_naming_it() {
    let (store, db) = store().await;
    let url = db.url();
    let ok = format!(
        "{}\n",
        json!({"type": "A", "tags": names("t", MAX_TAGS_PER_EVENT)})
    );
    let (code, stdout, stderr) = cli(url, &["append"], &ok);
    assert_eq!(code, 0, "{stderr}");
    let appended: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(appended["position"], 1, "{stdout}");

    let long = "n".repeat(MAX_NAME_BYTES + 1);
    let deep = nested(MAX_JSON_DEPTH + 1);
    for (line, says) in [
        (
            json!({"type": "A", "tags": names("t", MAX_TAGS_PER_EVENT + 1)}),
            "101 tags; the limit is 100",
        ),
        (json!({"type": long}), "the limit is 256 bytes"),
        (
            json!({"type": "A", "tags": [long]}),
            "the limit is 256 bytes",
        ),
        (json!({"type": "A", "data": deep}), "deeper than 100 levels"),
        (
            json!({"type": "A", "data": "x".repeat(MAX_EVENT_BYTES)}),
            "the limit is 1048576",
        ),
    ] {
        // The over-limit event second, after a valid one: nothing is written.
        let input = format!("{}\n{line}\n", json!({"type": "Fine"}));
        let (code, stdout, stderr) = cli(url, &["append"], &input);
        assert_eq!(code, 1, "{says}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.starts_with("dcbstore: "), "{stderr}");
        assert!(stderr.contains(says), "{says:?} not in {stderr}");
        // The CLI names the input line (the event is on line 2).
        assert!(stderr.contains("line 2"), "{stderr}");
    }
    // More events than an append may have.
    let many: String = (0..=MAX_EVENTS_PER_APPEND)
        .map(|_| "{\"type\":\"A\"}\n")
        .collect();
    let (code, _, stderr) = cli(url, &["append"], &many);
    assert_eq!(code, 1, "{stderr}");
    // Refused at the event past the limit, before the rest is read.
    assert!(stderr.contains("line 10001"), "{stderr}");
    assert!(stderr.contains("more than 10000 events"), "{stderr}");
    assert_eq!(head(&store).await, Some(1), "nothing written");

    // Over-limit queries and conditions are usage errors (exit 2).
    let items: Vec<Value> = names("T", MAX_QUERY_ITEMS + 1)
        .into_iter()
        .map(|t| json!({"types": [t]}))
        .collect();
    let query = Value::Array(items).to_string();
    let (code, _, stderr) = cli(url, &["read", "--query", &query], "");
    assert_eq!(code, 2, "{stderr}");
    let says = format!(
        "{} items; the limit is {MAX_QUERY_ITEMS}",
        MAX_QUERY_ITEMS + 1
    );
    assert!(stderr.contains(&says), "{stderr}");
    let guards: Vec<Value> = (0..=MAX_GUARDS).map(|_| json!({"query": "all"})).collect();
    let condition = Value::Array(guards).to_string();
    let (code, _, stderr) = cli(url, &["append", "--condition", &condition], &ok);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("101 guards; the limit is 100"), "{stderr}");
    // --type repeated past the limit: refused by the read.
    let mut args = vec!["read"];
    let types = names("T", MAX_ITEM_TERMS + 1);
    for t in &types {
        args.extend(["--type", t]);
    }
    let (code, _, stderr) = cli(url, &args, "");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("101 types"), "{stderr}");
    assert_eq!(head(&store).await, Some(1), "nothing written");
}

// ---- Limits a store sets ----

/// [`cli`] with extra environment variables.
fn cli_env(url: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = crate::common::cli::dcbstore()
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dcbstore");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_stores_what_its_raised_limits_allow() {
    use dcbstore::limits::Limits;
    let (default, db) = store().await;
    let document = event_of_bytes(2 * 1024 * 1024);
    let refused = default
        .append(vec![document.clone()], None)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::LimitExceeded { .. }), "{refused}");
    let raise = || {
        Store::builder(db.url()).unwrap().limits(Limits {
            max_event_bytes: 4 * 1024 * 1024,
            ..Limits::default()
        })
    };
    // Above the database's limits, a store would send what the database
    // refuses: it is refused at connect, saying how to raise them.
    let err = raise().build().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("UPDATE dcbstore.limits SET max_event_bytes = 4194304"),
        "{err}"
    );
    let owner = dcbstore::connection::connect(db.options().expect("options"))
        .await
        .expect("connect");
    owner
        .batch_execute("UPDATE dcbstore.limits SET max_event_bytes = 4194304")
        .await
        .unwrap();
    let raised = raise().build().await.unwrap();
    assert_eq!(raised.limits().max_event_bytes, 4 * 1024 * 1024);
    // A store without limits of its own takes the database's.
    let follows = Store::connect(db.url()).await.unwrap();
    assert_eq!(follows.limits().max_event_bytes, 4 * 1024 * 1024);
    let a = raised.append(vec![document.clone()], None).await.unwrap();
    let back = raised
        .read_all(&Query::all(), ReadOptions::new().after_opt(None))
        .await
        .unwrap();
    assert_eq!(back.last().map(|e| e.position), Some(a.position));
    assert_eq!(back.last().map(|e| &e.event.data), Some(&document.data));
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_errors_name_the_limit_its_maximum_and_the_value() {
    use dcbstore::limits::Limit;
    let (store, _db) = store().await;
    let err = store
        .append(
            vec![Event::new("A", Value::Null).with_tags(names("t", MAX_TAGS_PER_EVENT + 1))],
            None,
        )
        .await
        .unwrap_err();
    match &err {
        Error::LimitExceeded {
            limit,
            max,
            actual,
            message,
        } => {
            assert_eq!(*limit, Limit::TagsPerEvent);
            assert_eq!(
                (*max, *actual),
                (MAX_TAGS_PER_EVENT, MAX_TAGS_PER_EVENT + 1)
            );
            assert_eq!(message, &err.to_string());
            assert!(
                message.contains("event 1 has 101 tags; the limit is 100"),
                "{message}"
            );
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    let query = Query::items(
        names("T", MAX_QUERY_ITEMS + 1)
            .into_iter()
            .map(|t| QueryItem::types([t])),
    );
    let err = store
        .read_all(&query, ReadOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::QueryItems,
                max: MAX_QUERY_ITEMS,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_outside_what_a_store_accepts_are_refused() {
    use dcbstore::limits::Limits;
    let (_store, db) = store().await;
    for limits in [
        Limits {
            max_tags_per_event: 101,
            ..Limits::default()
        },
        Limits {
            max_name_bytes: 257,
            ..Limits::default()
        },
        Limits {
            max_json_depth: 128,
            ..Limits::default()
        },
        Limits {
            max_events_per_append: 0,
            ..Limits::default()
        },
        Limits {
            max_event_bytes: MAX_APPEND_BYTES + 1,
            ..Limits::default()
        },
    ] {
        let err = Store::builder(db.url())
            .unwrap()
            .limits(limits)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{limits:?}: {err}");
    }
}

/// The DCB conformance suites evaluate queries of 128 items: each item
/// matters, none is dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_of_128_items_is_evaluated_in_full() {
    let (store, _db) = store().await;
    let events: Vec<Event> = (0..128)
        .map(|i| Event::new(format!("T{i}"), Value::Null).with_tag(format!("k{i}")))
        .chain([Event::new("Other", Value::Null).with_tag("k0")])
        .collect();
    let _ = store.append(events, None).await.unwrap();
    // Item i: type T{i} and tag k{i}; the Other event matches none.
    let query = Query::items(
        (0..128).map(|i| QueryItem::types([format!("T{i}")]).and_tags([format!("k{i}")])),
    );
    let found = store.read_all(&query, ReadOptions::new()).await.unwrap();
    assert_eq!(found.len(), 128);
    assert!(found.iter().all(|e| e.event.event_type != "Other"));
    // The same query as a condition: the last item alone conflicts.
    let err = store
        .append(
            vec![Event::new("New", Value::Null)],
            Some(AppendCondition::new(
                query,
                Some(SequencePosition::new(127)),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.conflict().expect("a conflict").position,
        SequencePosition::new(128)
    );
}

/// The CLI reads the limits from the environment: with
/// `DCBSTORE_MAX_EVENT_BYTES=16777216`, an 8 MiB event goes in and comes
/// back whole; without it, it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_8_mib_event_round_trips_through_the_cli_with_a_raised_limit() {
    let (store, db) = store().await;
    let big = "x".repeat(8 * 1024 * 1024);
    let line = format!("{}\n", json!({"type": "Big", "data": {"blob": big}}));
    let (code, _, stderr) = cli(db.url(), &["append"], &line);
    assert_eq!(code, 1, "refused by default: {stderr}");
    // (The line is longer than any event within 1 MiB: refused unread.)
    assert!(stderr.contains("max_event_bytes 1048576"), "{stderr}");
    let raised = [("DCBSTORE_MAX_EVENT_BYTES", "16777216")];
    // Above the database's limit: refused at connect, saying how to raise it.
    let (code, _, stderr) = cli_env(db.url(), &["append"], &line, &raised);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("UPDATE dcbstore.limits"), "{stderr}");
    let owner = dcbstore::connection::connect(db.options().expect("options"))
        .await
        .expect("connect");
    owner
        .batch_execute("UPDATE dcbstore.limits SET max_event_bytes = 16777216")
        .await
        .unwrap();
    let (code, stdout, stderr) = cli_env(db.url(), &["append"], &line, &raised);
    assert_eq!(code, 0, "{stderr}");
    let appended: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(appended["position"], 1, "{stdout}");
    let (code, stdout, stderr) = cli_env(db.url(), &["read"], "", &raised);
    assert_eq!(code, 0, "{stderr}");
    let back: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(back["data"]["blob"].as_str().map(str::len), Some(big.len()));
    assert_eq!(head(&store).await, Some(1));
    // A limit out of range is a usage error.
    let (code, _, stderr) = cli_env(
        db.url(),
        &["head"],
        "",
        &[("DCBSTORE_MAX_TAGS_PER_EVENT", "500")],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("max_tags_per_event"), "{stderr}");
}

/// Sixteen (here twenty) appends of the largest size, sent at once, all
/// succeed: the writer never puts more than one append's worth of bytes in
/// a batch, so a batch never outgrows PostgreSQL's 1 GiB message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maximum_size_appends_sent_together_all_succeed() {
    let (store, _db) = store().await;
    // 64 events of just under 1 MiB: an append at MAX_APPEND_BYTES.
    let per_event = MAX_APPEND_BYTES / 64;
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let events: Vec<Event> = (0..64)
                    .map(|_| {
                        let mut e = event_of_bytes(per_event);
                        e.tags = vec![format!("append:{t}")];
                        e
                    })
                    .collect();
                store.append(events, None).await
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await.unwrap().expect("every append succeeds");
    }
    assert_eq!(head(&store).await, Some(20 * 64));
}

/// Every query the limits admit reads and guards correctly, whatever its
/// width: 128 items of 100 types each (the default limits), and, with the
/// limits raised, 1,000 tagged items of 2 tags and 100 types. Each read
/// returns exactly what `Query::matches` selects; a guard with the query
/// reports its conflict (it is one statement, not a branch per type).
#[tokio::test(flavor = "multi_thread")]
async fn queries_as_wide_as_the_limits_read_and_guard_correctly() {
    use dcbstore::limits::Limits;
    let (store, db) = store().await;
    let owner = dcbstore::connection::connect(db.options().expect("options"))
        .await
        .expect("connect");
    owner
        .batch_execute("UPDATE dcbstore.limits SET max_query_items = 1000")
        .await
        .unwrap();
    let wide_store = Store::builder(db.url())
        .unwrap()
        .limits(Limits {
            max_query_items: 1000,
            ..Limits::default()
        })
        .build()
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..300 {
        let mut e = Event::new(format!("T{}.{}", i % 150, i % 7), json!({"i": i}));
        e.tags = vec![format!("a:{}", i % 40), format!("b:{}", i % 3)];
        events.push(e);
    }
    let _ = store.append(events, None).await.unwrap();
    let all = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();

    let types_only = (0..MAX_QUERY_ITEMS)
        .map(|i| {
            QueryItem::types((0..MAX_ITEM_TERMS).map(move |t| format!("T{}.{}", i + t, t % 7)))
        })
        .collect::<Vec<_>>();
    let tagged = (0..1000)
        .map(|i| {
            QueryItem::tags([format!("a:{}", i % 40), format!("b:{}", i % 5)]).and_types(
                (0..MAX_ITEM_TERMS).map(move |t| format!("T{}.{}", (i + t) % 150, t % 7)),
            )
        })
        .collect::<Vec<_>>();
    for (store, items) in [(&store, types_only), (&wide_store, tagged)] {
        let mut query = Query::item(items[0].clone());
        for item in &items[1..] {
            query = query.or(item.clone());
        }
        let expected: Vec<u64> = all
            .iter()
            .filter(|e| query.matches(&e.event))
            .map(|e| e.position.get())
            .collect();
        assert!(!expected.is_empty() && expected.len() < all.len());
        for backwards in [false, true] {
            let mut options = ReadOptions::new().limit(1000);
            if backwards {
                options = options.backwards();
            }
            let mut got: Vec<u64> = store
                .read_all(&query, options)
                .await
                .unwrap()
                .iter()
                .map(|e| e.position.get())
                .collect();
            if backwards {
                got.reverse();
            }
            assert_eq!(got, expected, "backwards: {backwards}");
        }
        let boundary = store
            .read_boundary(&query, ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(boundary.events.len(), expected.len());
        let err = store
            .append(
                vec![Event::new("New", Value::Null)],
                Some(AppendCondition::new(
                    query.clone(),
                    Some(SequencePosition::new(1)),
                )),
            )
            .await
            .unwrap_err();
        let conflict = err.conflict().expect("a conflict, not an error");
        assert_eq!(conflict.position.get(), *expected.last().unwrap());
        let _ = store
            .append(
                vec![Event::new("New", Value::Null)],
                Some(AppendCondition::new(query, boundary.after)),
            )
            .await
            .unwrap();
    }
}

/// Runs the CLI with `args`, feeding stdin from `chunk` repeated until the
/// process stops reading (or `max` bytes): the exit code, stderr, and how
/// many bytes it took before it stopped.
fn cli_endless(
    url: &str,
    args: &[&str],
    env: &[(&str, &str)],
    chunk: Vec<u8>,
    max: u64,
) -> (i32, String, u64) {
    let mut child = crate::common::cli::dcbstore()
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dcbstore");
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut written = 0u64;
        while written < max {
            if pipe.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
        written
    });
    let out = child.wait_with_output().expect("wait");
    let written = writer.join().expect("stdin writer");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        written,
    )
}

/// The CLI holds no more input than its limits allow: `append` stops at the
/// event past `max_events_per_append`, and `append` and `import` at the
/// first line longer than an event within `max_event_bytes` can be, however
/// much more stdin has, and write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_reads_no_more_input_than_its_limits_allow() {
    let (store, db) = store().await;
    let gib = 1u64 << 30;
    // Endless small events: refused at event 11 of 10.
    let line = format!("{}\n", json!({"type": "Small", "data": {"n": 1}})).into_bytes();
    let (code, stderr, written) = cli_endless(
        db.url(),
        &["append"],
        &[("DCBSTORE_MAX_EVENTS_PER_APPEND", "10")],
        line,
        gib,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("more than 10 events"), "{stderr}");
    assert!(written < 16 << 20, "the input was read on: {written} bytes");
    // One endless line, to append and to import.
    for args in [&["append"][..], &["import"][..]] {
        let (code, stderr, written) = cli_endless(
            db.url(),
            args,
            &[("DCBSTORE_MAX_EVENT_BYTES", "65536")],
            vec![b' '; 1 << 16],
            gib,
        );
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("line 1: longer than"), "{args:?}: {stderr}");
        assert!(
            written < 64 << 20,
            "{args:?}: the line was read on: {written} bytes"
        );
    }
    assert_eq!(head(&store).await, None, "nothing written");
}
