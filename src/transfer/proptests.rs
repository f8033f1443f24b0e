//! Property tests of the import line parser ([`Lines`] and [`parse_line`]).
//!
//! On any input (bytes, text, text derived from valid lines, JSON trees
//! shaped almost like events) it returns an event or an error naming the
//! line, never panics; what it accepts, an append accepts (it validates as
//! an append would); export lines and plain event lines round-trip.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use super::import::Lines;
use super::line::parse_default;
use crate::append::PreparedAppend;
use crate::error::Error;
use crate::event::{Event, SequencePosition, SequencedEvent};
use crate::limits::{MAX_EVENT_BYTES, MAX_TAGS_PER_EVENT};
use dcbstore_core::strategies::{
    almost_event, any_string, config, json_value, mutated, nested_arrays, nested_empty_arrays,
    nested_objects, valid_event,
};

/// Parses line `n`; checks the outcome: an event an append accepts, or an
/// input error naming the line.
fn check_line(n: u64, text: &str) -> Option<Event> {
    match parse_default(n, text) {
        Ok(e) => {
            if let Err(err) =
                PreparedAppend::new(vec![e.clone()], None, &crate::limits::Limits::DEFAULT)
            {
                panic!("the import parser accepted what an append refuses ({err}): {text:?}");
            }
            Some(e)
        }
        Err(Error::Invalid(m) | Error::LimitExceeded { message: m, .. }) => {
            assert!(m.starts_with(&format!("line {n}: ")), "{m}");
            None
        }
        Err(e) => panic!("unexpected kind of error: {e:?}"),
    }
}

/// Reads every line of `input` as the import does.
fn check_input(input: &[u8]) {
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        line: 0,
        bytes: 0,
        cap: 1 << 20,
    };
    loop {
        match lines.next() {
            Ok(Some((n, text))) => {
                let text = text.to_owned();
                check_line(n, &text);
            }
            Ok(None) => {
                assert_eq!(lines.bytes, input.len() as u64, "every byte consumed");
                break;
            }
            Err(Error::Invalid(m) | Error::LimitExceeded { message: m, .. }) => {
                assert!(m.contains("not valid UTF-8"), "{m}");
                break;
            }
            Err(e) => panic!("unexpected kind of error: {e:?}"),
        }
    }
}

/// The event as stored: tags sorted and deduplicated.
fn normalized(mut e: Event) -> Event {
    e.tags.sort_unstable();
    e.tags.dedup();
    e
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_bytes(input in vec(any::<u8>(), 0..512)) {
        check_input(&input);
    }

    #[test]
    fn never_panics_on_text(text in any_string(), n in 1..u64::MAX) {
        check_line(n, &text);
    }

    #[test]
    fn never_panics_on_near_valid_lines(
        text in valid_event().prop_flat_map(|e| mutated(serde_json::to_string(&e).expect("serialize"))),
        bad_byte in proptest::option::of(any::<u8>()),
    ) {
        let mut bytes = text.into_bytes();
        if let Some(b) = bad_byte {
            bytes.insert(bytes.len() / 2, b);
        }
        check_input(&bytes);
    }

    #[test]
    fn never_panics_on_json_values(lines in vec(prop_oneof![json_value(), almost_event()], 1..4)) {
        let input: String = lines.iter().map(|v| format!("{v}\n")).collect();
        check_input(input.as_bytes());
    }

    #[test]
    fn export_lines_round_trip(event in valid_event(), position in 1..=i64::MAX as u64, crlf in any::<bool>()) {
        let exported = SequencedEvent {
            position: SequencePosition::new(position),
            event: event.clone(),
            recorded_at: chrono::Utc::now(),
        };
        let mut text = serde_json::to_string(&exported).expect("serialize");
        text.push_str(if crlf { "\r\n" } else { "\n" });
        let parsed = check_line(7, &text).expect("an export line parses");
        prop_assert_eq!(parsed, normalized(event));
    }

    #[test]
    fn event_lines_round_trip(event in valid_event()) {
        let text = serde_json::to_string(&event).expect("serialize");
        prop_assert_eq!(check_line(1, &text).expect("parses"), normalized(event.clone()));
        // Optional fields may be left out or null.
        let mut v = json!({"id": event.id, "type": event.event_type});
        if !event.tags.is_empty() {
            v["tags"] = json!(event.tags);
        } else {
            v["tags"] = Value::Null;
        }
        let parsed = check_line(1, &v.to_string()).expect("parses");
        prop_assert_eq!(parsed.data, Value::Null);
        prop_assert!(parsed.metadata.is_empty());
    }
}

// ---- Edge cases, as plain tests ----

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let id = Uuid::now_v7();
    for deep in [
        nested_arrays(10_000),
        nested_objects(10_000),
        "[".repeat(10_000),
    ] {
        // Bare, it is not an object (skipped without recursion, not parsed).
        let err = parse_default(3, &deep).unwrap_err().to_string();
        assert!(err.starts_with("line 3: "), "{err}");
        for text in [
            format!(r#"{{"id":"{id}","type":"A","data":{deep}}}"#),
            format!(r#"{{"id":"{id}","type":"A","metadata":{{"m":{deep}}}}}"#),
        ] {
            // Refused, naming the line: past the depth limit (as the
            // database refuses it), or not JSON at all (unclosed).
            let err = parse_default(3, &text).unwrap_err().to_string();
            assert!(err.starts_with("line 3: "), "{err}");
            assert!(
                err.contains("nested deeper than 100 levels") || err.contains("invalid JSON"),
                "{err}"
            );
        }
    }
}

#[test]
fn nul_escapes_lone_surrogates_and_huge_numbers_name_the_line() {
    let id = Uuid::now_v7();
    for (text, says) in [
        (format!(r#"{{"id":"{id}","type":"A\u0000"}}"#), "NUL"),
        (
            format!(r#"{{"id":"{id}","type":"A","tags":["\u0000"]}}"#),
            "NUL",
        ),
        (
            format!(r#"{{"id":"{id}","type":"A","data":{{"\u0000":1}}}}"#),
            "NUL",
        ),
        (format!(r#"{{"id":"{id}","type":"\ud800"}}"#), "escape"),
        (
            format!(r#"{{"id":"{id}","type":"A","data":"\udc00"}}"#),
            "surrogate",
        ),
        (
            format!(r#"{{"id":"{id}","type":"A","data":1e400}}"#),
            "beyond what a double can hold",
        ),
        (
            format!(r#"{{"id":"{id}","type":"A","position":-1}}"#),
            "\"position\"",
        ),
        (
            format!(r#"{{"id":"{id}","type":"A","position":18446744073709551616}}"#),
            "\"position\"",
        ),
    ] {
        let err = parse_default(5, &text).unwrap_err().to_string();
        assert!(err.starts_with("line 5: "), "{err}");
        assert!(err.contains(says), "{text}: {err}");
    }
}

/// Regression: 101 nested arrays (the innermost empty) were accepted.
#[test]
fn regression_nesting_over_the_limit_is_refused() {
    use crate::limits::MAX_JSON_DEPTH;
    let id = Uuid::now_v7();
    for (at, over) in [
        (
            nested_arrays(MAX_JSON_DEPTH),
            nested_arrays(MAX_JSON_DEPTH + 1),
        ),
        (
            nested_empty_arrays(MAX_JSON_DEPTH),
            nested_empty_arrays(MAX_JSON_DEPTH + 1),
        ),
    ] {
        check_line(1, &format!(r#"{{"id":"{id}","type":"A","data":{at}}}"#)).expect("at");
        let err = parse_default(1, &format!(r#"{{"id":"{id}","type":"A","data":{over}}}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("deeper than 100 levels"), "{err}");
    }
}

/// Regression: a line with more tags than an event may have, or more bytes,
/// passed the line check and failed the batch's append, with an error that
/// named the event's place among the batch's new events, not its line.
#[test]
fn regression_tag_count_and_event_size_are_checked_per_line() {
    let id = Uuid::now_v7();
    let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let at = json!({"id": id, "type": "A", "tags": tags(MAX_TAGS_PER_EVENT)});
    check_line(9, &at.to_string()).expect("at the limit");
    let over = json!({"id": id, "type": "A", "tags": tags(MAX_TAGS_PER_EVENT + 1)});
    let err = parse_default(9, &over.to_string()).unwrap_err().to_string();
    assert!(err.starts_with("line 9: "), "{err}");
    assert!(err.contains("101 tags; the limit is 100"), "{err}");

    // data "xxx…" (n + 2 bytes of JSON) and metadata {} (2 bytes).
    let sized = |bytes: usize| json!({"id": id, "type": "A", "data": "x".repeat(bytes - 4)});
    check_line(9, &sized(MAX_EVENT_BYTES).to_string()).expect("at the limit");
    let err = parse_default(9, &sized(MAX_EVENT_BYTES + 1).to_string())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("line 9: "), "{err}");
    assert!(err.contains("1048577 bytes"), "{err}");
    assert!(err.contains("the limit is 1048576"), "{err}");
}

/// Regression: a line with a key twice kept the last value silently (an
/// `append` line with a key twice is refused).
#[test]
fn regression_duplicate_keys_are_refused() {
    let id = Uuid::now_v7();
    let other = Uuid::now_v7();
    for text in [
        format!(r#"{{"id":"{id}","type":"A","type":"B"}}"#),
        format!(r#"{{"id":"{id}","type":"A","id":"{other}"}}"#),
        format!(r#"{{"id":"{id}","type":"A","data":1,"data":null}}"#),
    ] {
        let err = parse_default(2, &text).unwrap_err().to_string();
        assert!(err.starts_with("line 2: "), "{err}");
        assert!(err.contains("duplicate field \""), "{text}: {err}");
    }
    // Inside data, as in jsonb, the last of a key wins.
    let e = parse_default(
        2,
        &format!(r#"{{"id":"{id}","type":"A","data":{{"k":1,"k":2}}}}"#),
    )
    .expect("parses");
    assert_eq!(e.data, json!({"k": 2}));
}

#[test]
fn invalid_utf8_names_the_line() {
    let input = b"\n{\"type\":\"A\"}\n\xff\xfe\n";
    let mut lines = Lines {
        input: &input[..],
        buf: Vec::new(),
        line: 0,
        bytes: 0,
        cap: 1 << 20,
    };
    assert_eq!(lines.next().expect("line 2").map(|(n, _)| n), Some(2));
    let err = lines.next().unwrap_err().to_string();
    assert_eq!(err, "line 3: not valid UTF-8");
}

#[test]
fn a_line_longer_than_the_cap_is_refused_before_the_rest_is_read() {
    // A reader that would hand out gigabytes without a newline: the import
    // holds at most the cap (plus one byte) of it.
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b' ');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut lines = Lines {
        input: std::io::BufReader::new(Endless(0)),
        buf: Vec::new(),
        line: 0,
        bytes: 0,
        cap: 1 << 16,
    };
    let err = lines.next().unwrap_err().to_string();
    assert!(err.starts_with("line 1: longer than 65536 bytes"), "{err}");
    assert!(lines.buf.len() <= (1 << 16) + 1);
    assert!(lines.input.get_ref().0 < 1 << 20, "read far past the cap");
}
