//! Property tests of the JSON parsers the CLI exposes: `append`'s event
//! lines ([`read_events`]), `--query`/`--fail-if` ([`parse_query`]),
//! `--condition` ([`parse_condition`]) and `redact`'s `--data`/`--metadata`
//! ([`parse_json`], [`parse_json_object`]).
//!
//! Each parser, on any input (bytes, text, text derived from valid input,
//! JSON trees shaped almost right), returns a value or an error with a
//! message, never panics; what it accepts, the store's validation accepts
//! (or, for event lines, rejects with [`Error::Invalid`]); valid values
//! round-trip through their JSON form.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{parse_condition, parse_json, parse_json_object, parse_query, read_events};
use dcbstore::{append, AppendCondition, Error, Event, Query};
use dcbstore_core::strategies::{
    almost_condition, almost_event, almost_query, any_string, config, json_value, mutated,
    nested_arrays, nested_empty_arrays, nested_objects, storable_json, storable_object,
    valid_condition, valid_event, valid_query,
};

/// `read_events`' result is events or an input error with a message.
fn check_read_events(input: &[u8]) -> Option<Vec<Event>> {
    match read_events(input, &dcbstore::limits::Limits::DEFAULT) {
        Ok(parsed) => {
            assert!(!parsed.events.is_empty(), "accepted no events");
            assert_eq!(
                parsed.events.len(),
                parsed.lines.0.len(),
                "a line per event"
            );
            Some(parsed.events)
        }
        Err(e @ (Error::Invalid(_) | Error::LimitExceeded { .. } | Error::Io { .. })) => {
            assert!(!e.to_string().is_empty(), "empty error message");
            None
        }
        Err(e) => panic!("unexpected kind of error: {e:?}"),
    }
}

/// What `read_events` accepts, the append's validation accepts or rejects
/// with a message; it never panics on it.
fn store_validation_of(events: Vec<Event>) {
    match append::check(&events, None) {
        Ok(_) => {}
        Err(Error::Invalid(m) | Error::LimitExceeded { message: m, .. }) => assert!(!m.is_empty()),
        Err(e) => panic!("unexpected kind of error: {e:?}"),
    }
}

/// A string parser's result: Ok, or an error with a message.
fn check_str<T>(r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(m) => {
            assert!(!m.is_empty(), "empty error message");
            None
        }
    }
}

fn check_query(s: &str) {
    if let Some(q) = check_str(parse_query(s)) {
        q.validate().expect("a parsed query validates");
    }
}

fn check_condition(s: &str) {
    if let Some(c) = check_str(parse_condition(s)) {
        c.validate().expect("a parsed condition validates");
    }
}

fn check_redact(s: &str) {
    check_str(parse_json(s));
    check_str(parse_json_object(s));
}

/// An event as `dcbstore append` takes it (every field given).
fn event_line(e: &Event) -> String {
    serde_json::to_string(e).expect("serialize")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn read_events_never_panics_on_bytes(input in vec(any::<u8>(), 0..512)) {
        if let Some(events) = check_read_events(&input) {
            store_validation_of(events);
        }
    }

    #[test]
    fn read_events_never_panics_on_text(input in any_string()) {
        if let Some(events) = check_read_events(input.as_bytes()) {
            store_validation_of(events);
        }
    }

    #[test]
    fn read_events_never_panics_on_near_valid_lines(
        text in valid_event().prop_flat_map(|e| mutated(event_line(&e))),
        bad_byte in proptest::option::of(any::<u8>()),
    ) {
        let mut bytes = text.into_bytes();
        if let Some(b) = bad_byte {
            bytes.insert(bytes.len() / 2, b);
        }
        if let Some(events) = check_read_events(&bytes) {
            store_validation_of(events);
        }
    }

    #[test]
    fn read_events_never_panics_on_json_values(lines in vec(prop_oneof![json_value(), almost_event()], 1..4)) {
        let input: String = lines.iter().map(|v| format!("{v}\n")).collect();
        if let Some(events) = check_read_events(input.as_bytes()) {
            store_validation_of(events);
        }
    }

    #[test]
    fn valid_events_round_trip_and_validate(
        events in vec(valid_event(), 1..5),
        blank in prop_oneof![Just(""), Just("\n"), Just("  \t\n")],
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let input: String = events.iter().map(|e| format!("{blank}{}{end}", event_line(e))).collect();
        let parsed = read_events(input.as_bytes(), &dcbstore::limits::Limits::DEFAULT).expect("valid lines parse").events;
        prop_assert_eq!(&parsed, &events);
        prop_assert!(append::check(&parsed, None).is_ok());
    }

    #[test]
    fn parse_query_never_panics_on_text(s in any_string()) {
        check_query(&s);
    }

    #[test]
    fn parse_query_never_panics_on_near_valid_text(
        s in valid_query().prop_flat_map(|q| mutated(serde_json::to_string(&q).expect("serialize"))),
    ) {
        check_query(&s);
    }

    #[test]
    fn parse_query_never_panics_on_json_values(v in prop_oneof![json_value(), almost_query()]) {
        check_query(&v.to_string());
    }

    #[test]
    fn valid_queries_round_trip(q in valid_query()) {
        let text = serde_json::to_string(&q).expect("serialize");
        prop_assert_eq!(parse_query(&text).expect("parses"), q.clone());
        // The SQL form (types and tags sorted and deduplicated) means the same.
        let sql = parse_query(&q.to_json().to_string()).expect("SQL form parses");
        prop_assert_eq!(sql.to_json(), q.to_json());
        prop_assert!(sql.validate().is_ok());
    }

    #[test]
    fn parse_condition_never_panics_on_text(s in any_string()) {
        check_condition(&s);
    }

    #[test]
    fn parse_condition_never_panics_on_near_valid_text(
        s in valid_condition().prop_flat_map(|c| mutated(serde_json::to_string(&c).expect("serialize"))),
    ) {
        check_condition(&s);
    }

    #[test]
    fn parse_condition_never_panics_on_json_values(v in prop_oneof![json_value(), almost_condition()]) {
        check_condition(&v.to_string());
    }

    #[test]
    fn valid_conditions_round_trip(c in valid_condition()) {
        let text = serde_json::to_string(&c).expect("serialize");
        prop_assert_eq!(parse_condition(&text).expect("parses"), c);
    }

    #[test]
    fn redact_parsers_never_panic(s in any_string(), v in json_value()) {
        check_redact(&s);
        check_redact(&v.to_string());
    }

    #[test]
    fn redact_values_round_trip(data in storable_json(), metadata in storable_object()) {
        prop_assert_eq!(parse_json(&data.to_string()).expect("data parses"), data.clone());
        let object = Value::Object(metadata.clone()).to_string();
        prop_assert_eq!(parse_json_object(&object).expect("metadata parses"), metadata);
        if !data.is_object() {
            prop_assert!(parse_json_object(&data.to_string()).is_err());
        }
    }
}

// ---- Deep nesting and other edge cases, as plain tests ----

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for deep in [nested_arrays(10_000), nested_objects(10_000)] {
        let line = format!("{{\"type\":\"A\",\"data\":{deep}}}\n");
        let err =
            read_events(line.as_bytes(), &dcbstore::limits::Limits::DEFAULT).expect_err("too deep");
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let line = format!("{{\"type\":\"A\",\"metadata\":{{\"m\":{deep}}}}}\n");
        assert!(read_events(line.as_bytes(), &dcbstore::limits::Limits::DEFAULT).is_err());
        assert!(parse_query(&deep).is_err());
        assert!(parse_query(&format!("[{{\"types\":{deep}}}]")).is_err());
        assert!(parse_condition(&deep).is_err());
        assert!(parse_condition(&format!("[{{\"query\":{deep}}}]")).is_err());
        assert!(parse_json(&deep).unwrap_err().contains("recursion limit"));
        assert!(parse_json_object(&deep).is_err());
    }
    // Unclosed, too.
    let open = "[".repeat(10_000);
    assert!(read_events(
        format!("{{\"type\":\"A\",\"data\":{open}").as_bytes(),
        &dcbstore::limits::Limits::DEFAULT
    )
    .is_err());
    assert!(parse_query(&open).is_err());
    assert!(parse_condition(&open).is_err());
    assert!(parse_json(&open).is_err());
}

/// Regression: 101 nested arrays or objects were accepted when the innermost
/// was empty (`[[...[]...]]`); the limit counts every level.
#[test]
fn regression_nesting_is_checked_against_the_limit_whatever_the_innermost_holds() {
    use dcbstore::limits::MAX_JSON_DEPTH;
    for (at, over) in [
        (
            nested_arrays(MAX_JSON_DEPTH),
            nested_arrays(MAX_JSON_DEPTH + 1),
        ),
        (
            nested_objects(MAX_JSON_DEPTH),
            nested_objects(MAX_JSON_DEPTH + 1),
        ),
        (
            nested_empty_arrays(MAX_JSON_DEPTH),
            nested_empty_arrays(MAX_JSON_DEPTH + 1),
        ),
    ] {
        let line = format!("{{\"type\":\"A\",\"data\":{at}}}");
        let events = read_events(line.as_bytes(), &dcbstore::limits::Limits::DEFAULT)
            .expect("parses")
            .events;
        append::check(&events, None).expect("at the limit");
        parse_json(&at).expect("redact data at the limit");
        let line = format!("{{\"type\":\"A\",\"data\":{over}}}");
        let events = read_events(line.as_bytes(), &dcbstore::limits::Limits::DEFAULT)
            .expect("parses")
            .events;
        let err = append::check(&events, None).expect_err("over the limit");
        assert!(err.to_string().contains("deeper than 100 levels"), "{err}");
        let err = parse_json(&over).expect_err("redact data over the limit");
        assert!(err.contains("deeper than 100 levels"), "{err}");
    }
    // Metadata is an object: one level fewer inside it.
    let at = format!("{{\"m\":{}}}", nested_empty_arrays(MAX_JSON_DEPTH - 1));
    parse_json_object(&at).expect("metadata at the limit");
    let over = format!("{{\"m\":{}}}", nested_empty_arrays(MAX_JSON_DEPTH));
    assert!(parse_json_object(&over)
        .unwrap_err()
        .contains("deeper than 100 levels"));
}

/// Regression: `redact --data`/`--metadata` accepted what no append may
/// store (a NUL, which the database then refused with a database error;
/// nesting over the limit, which it stored).
#[test]
fn regression_redact_values_obey_the_append_rules() {
    let err = parse_json(r#"{"name":"a\u0000b"}"#).unwrap_err();
    assert!(err.contains("NUL"), "{err}");
    let err = parse_json_object(r#"{"k\u0000":1}"#).unwrap_err();
    assert!(err.contains("NUL"), "{err}");
    let deep = nested_arrays(120);
    assert!(parse_json(&deep).is_err());
    assert!(parse_json_object(&format!("{{\"m\":{deep}}}")).is_err());
}

/// serde_json's words for a lone surrogate escape.
fn bad_escape(err: &str) -> bool {
    err.contains("surrogate") || err.contains("hex escape")
}

#[test]
fn nul_escapes_lone_surrogates_and_huge_numbers_are_errors_with_reasons() {
    // NUL: parsed, refused by validation with a reason.
    let events = read_events(
        &b"{\"type\":\"A\\u0000\"}"[..],
        &dcbstore::limits::Limits::DEFAULT,
    )
    .expect("parses")
    .events;
    let err = append::check(&events, None).unwrap_err().to_string();
    assert!(err.contains("NUL"), "{err}");
    let events = read_events(
        &b"{\"type\":\"A\",\"data\":{\"k\\u0000\":1}}"[..],
        &dcbstore::limits::Limits::DEFAULT,
    )
    .expect("parses")
    .events;
    assert!(append::check(&events, None).is_err());
    assert!(parse_query(r#"[{"types":["\u0000"]}]"#)
        .unwrap_err()
        .contains("NUL"));
    // Lone surrogates: not text at all.
    for s in [r#"{"type":"\ud800"}"#, r#"{"type":"A","data":"\udfff"}"#] {
        let err = read_events(s.as_bytes(), &dcbstore::limits::Limits::DEFAULT)
            .unwrap_err()
            .to_string();
        assert!(bad_escape(&err), "{err}");
    }
    assert!(bad_escape(
        &parse_query(r#"[{"tags":["\ud800"]}]"#).unwrap_err()
    ));
    assert!(bad_escape(&parse_json(r#""\ud800x""#).unwrap_err()));
    assert!(bad_escape(
        &parse_condition(r#"[{"query":"\udc00"}]"#).unwrap_err()
    ));
    // Numbers out of range.
    assert!(read_events(
        &b"{\"type\":\"A\",\"data\":1e400}"[..],
        &dcbstore::limits::Limits::DEFAULT
    )
    .is_err());
    for after in ["1e400", "18446744073709551616", "-1", "1.5"] {
        let c = format!(r#"[{{"query":"all","after":{after}}}]"#);
        assert!(parse_condition(&c).is_err(), "{c}");
    }
    // Invalid UTF-8.
    let err = read_events(
        &b"{\"type\":\"\xff\"}"[..],
        &dcbstore::limits::Limits::DEFAULT,
    )
    .unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[test]
fn very_long_strings_are_refused_by_the_limits_not_the_parser() {
    let long = "x".repeat(10 * 1024 * 1024);
    // A line longer than any event within the limits is refused before it
    // is all read; one within the line cap parses, and the store's limits
    // refuse its name.
    let err = read_events(
        json!({"type": long}).to_string().as_bytes(),
        &dcbstore::limits::Limits::DEFAULT,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 1: longer than"), "{err}");
    let name = "x".repeat(1024 * 1024);
    let events = read_events(
        json!({"type": name}).to_string().as_bytes(),
        &dcbstore::limits::Limits::DEFAULT,
    )
    .expect("parses")
    .events;
    let err = append::check(&events, None).unwrap_err().to_string();
    assert!(err.contains("the limit is 256 bytes"), "{err}");
    let err = parse_query(&json!([{"tags": [long]}]).to_string()).unwrap_err();
    assert!(err.contains("the limit is 256 bytes"), "{err}");
    let data = parse_json(&json!(long).to_string()).expect("data parses");
    assert_eq!(data.as_str().map(str::len), Some(long.len()));
}

/// Regression: `--condition` accepted guards the store then refused (a
/// position above `i64::MAX`, more guards than the limit), so the mistake
/// surfaced as a runtime error instead of a usage error.
#[test]
fn regression_condition_parser_applies_the_store_validation() {
    let err = parse_condition(r#"[{"query":"all","after":9223372036854775808}]"#).unwrap_err();
    assert!(err.contains("9223372036854775807"), "{err}");
    parse_condition(r#"[{"query":"all","after":9223372036854775807}]"#).expect("at i64::MAX");
    let guards = |n: usize| {
        serde_json::to_string(&AppendCondition {
            guards: vec![
                dcbstore::AppendGuard {
                    fail_if_events_match: Query::All,
                    after: None,
                };
                n
            ],
        })
        .expect("serialize")
    };
    parse_condition(&guards(dcbstore::limits::MAX_GUARDS)).expect("at the limit");
    let err = parse_condition(&guards(dcbstore::limits::MAX_GUARDS + 1)).unwrap_err();
    assert!(err.contains("101 guards; the limit is 100"), "{err}");
}

/// Regression: a query item with a key twice kept the last value (through
/// `serde_json::Value`), silently narrowing the query; event lines and guards
/// already refused duplicate keys.
#[test]
fn regression_duplicate_keys_are_refused() {
    for line in [
        r#"{"type":"A","type":"B"}"#,
        r#"{"type":"A","data":1,"data":2}"#,
    ] {
        let err = read_events(line.as_bytes(), &dcbstore::limits::Limits::DEFAULT)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field"), "{line}: {err}");
    }
    for q in [
        r#"[{"types":["A"],"types":["B"]}]"#,
        r#"[{"tags":["a"],"types":["A"],"tags":["b"]}]"#,
    ] {
        let err = parse_query(q).unwrap_err();
        assert!(err.contains("duplicate field"), "{q}: {err}");
    }
    let err = parse_condition(r#"[{"query":"all","query":[{"tags":["a"]}]}]"#).unwrap_err();
    assert!(err.contains("duplicate field"), "{err}");
    let err =
        parse_condition(r#"[{"query":[{"tags":["a"],"tags":["b"]}],"after":1}]"#).unwrap_err();
    assert!(err.contains("duplicate field"), "{err}");
}

#[test]
fn redact_metadata_must_be_an_object() {
    for s in ["[]", "null", "1", "\"x\""] {
        assert!(parse_json_object(s)
            .unwrap_err()
            .contains("must be a JSON object"));
    }
    assert_eq!(parse_json_object("{}").expect("object"), Map::new());
}

// ---- What the parser accepts, the store stores (a real database) ----

/// Generated valid events, written as `dcbstore append` lines, parsed by
/// [`read_events`], appended to a real database and read back identical.
#[tokio::test(flavor = "multi_thread")]
async fn generated_events_parse_append_and_read_back_identical() {
    use dcbstore::{EventStore, ReadOptions, Store};
    use futures::TryStreamExt;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let events: Vec<Event> = (0..40)
        .map(|_| {
            valid_event()
                .new_tree(&mut runner)
                .expect("generate")
                .current()
        })
        .collect();
    let input: String = events
        .iter()
        .map(|e| format!("{}\n", event_line(e)))
        .collect();
    let parsed = read_events(input.as_bytes(), &dcbstore::limits::Limits::DEFAULT)
        .expect("parse")
        .events;
    assert_eq!(parsed, events);

    let db = dcbstore_testing::TestDatabase::create()
        .await
        .expect("database");
    db.migrate().await.expect("migrate");
    let store = Store::connect(db.url()).await.expect("connect");
    // In several appends, to cover more than one batch shape.
    for chunk in parsed.chunks(15) {
        let appended = store.append(chunk.to_vec(), None).await.expect("append");
        assert!(!appended.already_stored);
    }
    let read: Vec<_> = store
        .read(&Query::all(), ReadOptions::new())
        .try_collect()
        .await
        .expect("read");
    assert_eq!(read.len(), events.len());
    for (got, want) in read.iter().zip(&events) {
        let mut want = want.clone();
        want.tags.sort_unstable();
        want.tags.dedup();
        assert_eq!(got.event, want, "event read back differs");
    }
}
