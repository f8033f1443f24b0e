//! The line format: what an import line may hold, its checks (those of an
//! append, naming the line), and when two lines are the same event.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::{Limit, Limits};
use crate::read::compact;

/// An import line: the event (its data and metadata parsed, for the checks
/// and for comparing lines), its data and metadata as the line's JSON text
/// (compact), which is what is stored, so that numbers keep every digit,
/// and its `recorded_at`.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub(super) event: Event,
    pub(super) data: String,
    pub(super) metadata: String,
    pub(super) recorded_at: Option<DateTime<Utc>>,
}

impl Line {
    /// Bytes of JSON (data and metadata) as stored and as the limits count them.
    pub(super) fn bytes(&self) -> usize {
        self.data.len() + self.metadata.len()
    }
}

/// The fields an import line may have.
const FIELDS: &str = "id, type, data, tags, metadata, position, recorded_at";

/// Parses and fully validates line `n`, as an append would (against
/// `limits`), with errors that name the line and the field.
pub(super) fn parse_line(n: u64, text: &str, limits: &Limits) -> Result<Line> {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut line = match serde_json::from_str(text) {
        Ok(LineJson::Object(m)) => m,
        Ok(LineJson::Other) => {
            return Err(Error::invalid(format!(
                "line {n}: an event must be a JSON object"
            )))
        }
        Err(e) => {
            let message = e.to_string();
            let location = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&location).unwrap_or(&message);
            return Err(Error::invalid(format!(
                "line {n}: invalid JSON at column {}: {message}",
                e.column()
            )));
        }
    };
    let id: Option<Uuid> = field(n, &mut line, "id", "a UUID string")?;
    let event_type: Option<String> = field(n, &mut line, "type", "a string")?;
    let data_raw = line.remove("data");
    let tags: Option<Vec<String>> = field(n, &mut line, "tags", "an array of strings")?;
    let metadata_raw = line.remove("metadata").filter(|m| m.get() != "null");
    // The target store assigns positions (accepted and ignored); an event
    // keeps its recorded_at.
    let _: Option<u64> = field(n, &mut line, "position", "a non-negative integer")?;
    let recorded_at: Option<DateTime<Utc>> = field(
        n,
        &mut line,
        "recorded_at",
        "an RFC 3339 timestamp (as export writes it)",
    )?;
    if let Some(at) = recorded_at {
        let ahead = at - Utc::now();
        if ahead > chrono::Duration::minutes(5) {
            return Err(Error::invalid(format!(
                "line {n}: recorded_at {} is {} s ahead of this machine's clock: an import cannot stamp the log in the future (the store refuses times more than its max_clock_skew, 5 minutes by default, ahead of its own clock); check the clocks, or leave recorded_at out to stamp the event with the time of the import",
                at.to_rfc3339(),
                ahead.num_seconds()
            )));
        }
    }
    if let Some(unknown) = line.keys().next() {
        return Err(Error::invalid(format!(
            "line {n}: unknown field {unknown:?} (an event has {FIELDS})"
        )));
    }
    let Some(id) = id else {
        return Err(Error::invalid(format!(
            "line {n}: the event has no \"id\": an import needs every event's id, so that running it again skips what is already stored instead of appending duplicates; give each line a stable UUID (from another store, derive it from that store's event id)"
        )));
    };
    let Some(event_type) = event_type else {
        return Err(Error::invalid(format!(
            "line {n}: the event has no \"type\""
        )));
    };
    let data_text = data_raw
        .as_deref()
        .map_or_else(|| "null".to_owned(), |r| compact(r.get()));
    let metadata_text = metadata_raw
        .as_deref()
        .map_or_else(|| "{}".to_owned(), |r| compact(r.get()));
    let data: Value = json_value(n, "data", &data_text, limits)?;
    let metadata = match json_value(n, "metadata", &metadata_text, limits)? {
        Value::Object(m) => m,
        other => {
            let got = match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(Error::invalid(format!(
                "line {n}: \"metadata\" must be a JSON object, got {got}"
            )));
        }
    };
    let mut tags = tags.unwrap_or_default();
    limits.check_name(&format!("line {n}: event type"), &event_type)?;
    // The limits an append checks, here so that the error names the line.
    if tags.len() > limits.max_tags_per_event {
        return Err(limits.exceeded(
            Limit::TagsPerEvent,
            tags.len(),
            format!(
                "line {n}: the event has {} tags; the limit is {}",
                tags.len(),
                limits.max_tags_per_event
            ),
        ));
    }
    let bytes = data_text.len() + metadata_text.len();
    if bytes > limits.max_event_bytes {
        return Err(limits.exceeded(
            Limit::EventBytes,
            bytes,
            format!(
                "line {n}: the event is {bytes} bytes of JSON (data and metadata); the limit is {}",
                limits.max_event_bytes
            ),
        ));
    }
    for t in &tags {
        limits.check_name(&format!("line {n}: tag"), t)?;
    }
    limits.check_data(&format!("line {n}: event data"), &data)?;
    limits.check_metadata(&format!("line {n}: event metadata"), &metadata)?;
    tags.sort_unstable();
    tags.dedup();
    Ok(Line {
        event: Event {
            id,
            event_type,
            data,
            tags,
            metadata,
        },
        data: data_text,
        metadata: metadata_text,
        recorded_at,
    })
}

/// A line's `data` or `metadata` as a value, for the checks: a number no
/// double can hold, or nesting beyond what a reader decodes, is refused as
/// the database refuses it.
fn json_value(n: u64, key: &str, text: &str, limits: &Limits) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        if message.contains("number out of range") {
            Error::invalid(format!(
                "line {n}: \"{key}\" holds a number beyond what a double can hold (about ±1.8e308), which readers could not decode: store it as a string"
            ))
        } else if message.contains("recursion limit") {
            limits.exceeded(
                Limit::JsonDepth,
                limits.max_json_depth + 1,
                format!(
                    "line {n}: event {key} is nested deeper than {} levels",
                    limits.max_json_depth
                ),
            )
        } else {
            Error::invalid(format!("line {n}: \"{key}\" is not valid JSON ({e})"))
        }
    })
}

/// A line's JSON: an object, its keys unique (a key given twice is an error,
/// as in an `append` line, rather than the last one silently winning), or
/// anything else.
enum LineJson {
    Object(BTreeMap<String, Box<RawValue>>),
    Other,
}

impl<'de> serde::Deserialize<'de> for LineJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = LineJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<LineJson, A::Error> {
                let mut line = BTreeMap::new();
                while let Some(key) = m.next_key::<String>()? {
                    if line.contains_key(&key) {
                        return Err(A::Error::custom(format_args!("duplicate field {key:?}")));
                    }
                    let value: Box<RawValue> = m.next_value()?;
                    line.insert(key, value);
                }
                Ok(LineJson::Object(line))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<LineJson, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LineJson::Other)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_unit<E>(self) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
        }
        d.deserialize_any(LineVisitor)
    }
}

/// Takes field `key` out of `line`: `None` when absent or null.
fn field<T: serde::de::DeserializeOwned>(
    n: u64,
    line: &mut BTreeMap<String, Box<RawValue>>,
    key: &str,
    expected: &str,
) -> Result<Option<T>> {
    match line.remove(key) {
        None => Ok(None),
        Some(v) if v.get() == "null" => Ok(None),
        Some(v) => serde_json::from_str(v.get()).map(Some).map_err(|e| {
            // The value's own text, not the line's: no location.
            let message = e.to_string();
            let location = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&location).unwrap_or(&message);
            Error::invalid(format!(
                "line {n}: \"{key}\" must be {expected} ({message})"
            ))
        }),
    }
}

/// Which parts of two events with one id differ (their tags sorted and
/// deduplicated, as stored).
pub(super) fn differences(a: &Event, b: &Event) -> Vec<&'static str> {
    let mut differ = Vec::new();
    if a.event_type != b.event_type {
        differ.push("type");
    }
    if !json_eq(&a.data, &b.data) {
        differ.push("data");
    }
    if a.tags != b.tags {
        differ.push("tags");
    }
    if !object_eq(&a.metadata, &b.metadata) {
        differ.push("metadata");
    }
    differ
}

/// "data differs", "type, tags differ".
pub(super) fn describe(differ: &[&str]) -> String {
    let verb = if differ.len() == 1 {
        "differs"
    } else {
        "differ"
    };
    format!("{} {verb}", differ.join(", "))
}

/// JSON equality as PostgreSQL's `jsonb` has it: numbers by value (`1e2`
/// equals `100`), objects regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || ((x.is_f64() || y.is_f64())
                    && matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => object_eq(x, y),
        _ => a == b,
    }
}

fn object_eq(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
}

/// [`parse_line`] with the default limits, for the tests.
#[cfg(test)]
pub(super) fn parse_default(n: u64, text: &str) -> Result<Event> {
    parse_line(n, text, &Limits::DEFAULT).map(|l| l.event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_parse_with_defaults_ignore_position_and_keep_recorded_at() {
        let id = Uuid::now_v7();
        let e = parse_default(
            3,
            &json!({"position": 7, "id": id, "type": "A", "tags": ["b", "a", "b"],
                    "recorded_at": "2024-01-01T00:00:00Z"})
            .to_string(),
        )
        .expect("parse");
        assert_eq!(e.id, id);
        assert_eq!(e.data, Value::Null);
        assert_eq!(e.tags, ["a", "b"]);
        assert!(e.metadata.is_empty());
        let line =
            json!({"id": id, "type": "A", "recorded_at": "2024-01-01T00:00:00.5Z"}).to_string();
        let at = parse_line(1, &line, &Limits::DEFAULT)
            .expect("parse")
            .recorded_at;
        assert_eq!(
            at.map(|t| t.to_rfc3339()),
            Some("2024-01-01T00:00:00.500+00:00".into())
        );
        let line = json!({"id": id, "type": "A", "recorded_at": "yesterday"}).to_string();
        let err = parse_line(1, &line, &Limits::DEFAULT)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"recorded_at\" must be an RFC 3339 timestamp"),
            "{err}"
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_the_reason() {
        let id = Uuid::now_v7();
        let cases = [
            (json!({"type": "A"}).to_string(), "no \"id\""),
            (json!({"id": id}).to_string(), "no \"type\""),
            (
                json!({"id": id, "type": "A", "tag": []}).to_string(),
                "unknown field \"tag\"",
            ),
            (
                json!({"id": id, "type": "A", "metadata": []}).to_string(),
                "\"metadata\" must be a JSON object",
            ),
            (
                json!({"id": id, "type": "A", "position": "x"}).to_string(),
                "\"position\" must be",
            ),
            (
                json!({"id": "nope", "type": "A"}).to_string(),
                "\"id\" must be a UUID",
            ),
            (
                json!({"id": id, "type": "A", "tags": [1]}).to_string(),
                "\"tags\" must be an array of strings",
            ),
            (
                json!({"id": id, "type": ""}).to_string(),
                "must not be empty",
            ),
            (
                json!({"id": id, "type": "A", "data": "a\u{0}"}).to_string(),
                "NUL",
            ),
            ("[1]".to_string(), "must be a JSON object"),
            ("{\"id\":\n".to_string(), "invalid JSON at column 6: EOF"),
        ];
        for (text, needle) in cases {
            let err = parse_default(42, &text).expect_err(&text).to_string();
            assert!(err.starts_with("line 42: "), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("at line 1"), "{err}");
        }
    }

    #[test]
    fn json_equality_is_jsonb_equality() {
        assert!(json_eq(
            &json!({"a": 100, "b": [1.5]}),
            &json!({"b": [1.5], "a": 1e2})
        ));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }
}
