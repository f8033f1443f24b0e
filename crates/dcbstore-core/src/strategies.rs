//! Proptest strategies (feature `proptest`) for property tests of code that
//! parses or stores the model: arbitrary JSON trees, inputs shaped almost
//! like events, queries and conditions, and valid values to round-trip.
//! dcbstore's own parser properties (the CLI's, `transfer`'s) use them.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::{AppendCondition, AppendGuard, Event, Query, QueryItem, SequencePosition};

/// The config of every parser property: few enough cases for CI.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        // No regression files in the source tree: failures are reported in
        // the test output and fixed cases become named unit tests.
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

/// Strings that sit on the edges the parsers and validators care about.
pub fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("all".to_string()),
        Just(" ".to_string()),
        Just("\0".to_string()),
        Just("a\0b".to_string()),
        Just("x".repeat(256)),
        Just("x".repeat(257)),
        // 258 bytes in 129 characters.
        Just("é".repeat(129)),
        Just("\u{feff}\u{10ffff}\u{200b}".to_string()),
        Just("x".repeat(100_000)),
    ]
}

/// Any string, often tricky.
pub fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![3 => any::<String>(), 1 => tricky_string()]
}

/// A finite JSON number of any kind (integer, negative, float).
pub fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

/// Any JSON scalar, strings possibly with NUL bytes.
pub fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        any_string().prop_map(Value::String),
    ]
}

/// Any JSON value tree (a few levels deep).
pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(any_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A string PostgreSQL can store (no NUL).
pub fn storable_string() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\0', ""))
}

/// JSON any event may carry as data: no NUL in strings or keys, shallow.
pub fn storable_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        storable_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(storable_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object of storable values (event metadata).
pub fn storable_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(storable_string(), storable_json(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// A valid type or tag: 1 to 256 bytes, no NUL.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[^\u{0}]{1,64}",
        1 => "[a-z:0-9_-]{1,12}",
        // Exactly at the limit, in one- and in multi-byte characters.
        1 => Just("n".repeat(crate::limits::MAX_NAME_BYTES)),
        1 => Just("é".repeat(crate::limits::MAX_NAME_BYTES / 2)),
    ]
}

/// A valid event, as an append accepts it.
pub fn valid_event() -> impl Strategy<Value = Event> {
    (
        any::<u128>(),
        name(),
        storable_json(),
        vec(name(), 0..6),
        storable_object(),
    )
        .prop_map(|(id, event_type, data, tags, metadata)| Event {
            id: Uuid::from_u128(id),
            event_type,
            data,
            tags,
            metadata,
        })
}

/// A valid query item: at least one type or tag.
pub fn valid_item() -> impl Strategy<Value = QueryItem> {
    (vec(name(), 0..4), vec(name(), 0..4))
        .prop_filter("a type or a tag", |(ty, tg)| {
            !ty.is_empty() || !tg.is_empty()
        })
        .prop_map(|(types, tags)| QueryItem { types, tags })
}

/// A valid query.
pub fn valid_query() -> impl Strategy<Value = Query> {
    prop_oneof![
        1 => Just(Query::All),
        4 => vec(valid_item(), 1..5).prop_map(Query::Items),
    ]
}

/// A valid append condition: 1 to 5 guards, positions a database can hold.
pub fn valid_condition() -> impl Strategy<Value = AppendCondition> {
    vec(
        (valid_query(), proptest::option::of(0..=i64::MAX as u64)),
        1..5,
    )
    .prop_map(|guards| AppendCondition {
        guards: guards
            .into_iter()
            .map(|(q, after)| AppendGuard {
                fail_if_events_match: q,
                after: after.map(SequencePosition::new),
            })
            .collect(),
    })
}

/// An object with some of `fields` (each the right kind of value from
/// `right`, or any JSON) and sometimes a stray key.
fn almost_object(
    fields: &'static [&'static str],
    right: impl Fn(&'static str) -> BoxedStrategy<Value>,
) -> impl Strategy<Value = Value> {
    let per_field: Vec<_> = fields
        .iter()
        .map(|&f| {
            proptest::option::weighted(
                0.7,
                prop_oneof![3 => right(f), 1 => json_value()].prop_map(move |v| (f, v)),
            )
        })
        .collect();
    (
        per_field,
        proptest::option::weighted(0.2, (any_string(), json_value())),
    )
        .prop_map(|(present, stray)| {
            let mut m: Map<String, Value> = present
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if let Some((k, v)) = stray {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

/// Strings of `name()` or any JSON, as a JSON array.
fn names_or_junk() -> BoxedStrategy<Value> {
    vec(
        prop_oneof![3 => name().prop_map(Value::String), 1 => json_leaf()],
        0..4,
    )
    .prop_map(Value::Array)
    .boxed()
}

/// Objects shaped almost like an event line (of `append` or of `import`):
/// the right keys with values of the right or a wrong type, stray keys.
pub fn almost_event() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "type",
        "data",
        "tags",
        "metadata",
        "id",
        "position",
        "recorded_at",
    ];
    almost_object(FIELDS, |f| match f {
        "type" => prop_oneof![name(), any_string()]
            .prop_map(Value::String)
            .boxed(),
        "data" => storable_json().boxed(),
        "tags" => names_or_junk(),
        "metadata" => storable_object().prop_map(Value::Object).boxed(),
        "id" => prop_oneof![
            any::<u128>().prop_map(|n| Value::String(Uuid::from_u128(n).to_string())),
            any_string().prop_map(Value::String),
        ]
        .boxed(),
        "position" => any_number().boxed(),
        _ => any_string().prop_map(Value::String).boxed(),
    })
}

/// A JSON query item, almost right.
fn almost_item() -> impl Strategy<Value = Value> {
    almost_object(&["types", "tags"], |_| names_or_junk())
}

/// JSON shaped almost like a query: `"all"`, other strings, lists of almost
/// items, other values.
pub fn almost_query() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::String("all".into())),
        1 => json_value(),
        4 => vec(almost_item(), 0..4).prop_map(Value::Array),
    ]
}

/// JSON shaped almost like a condition's guards.
pub fn almost_condition() -> impl Strategy<Value = Value> {
    let guard = almost_object(&["query", "after"], |f| match f {
        "query" => almost_query().boxed(),
        _ => any_number().boxed(),
    });
    prop_oneof![
        4 => vec(guard, 0..4).prop_map(Value::Array),
        1 => json_value(),
    ]
}

/// Text derived from `valid`: cut short, with a character inserted or
/// removed, or as is.
pub fn mutated(valid: String) -> impl Strategy<Value = String> {
    let len = valid.len();
    (0..=len, any::<char>(), 0..4u8).prop_map(move |(at, c, how)| {
        let mut at = at;
        while !valid.is_char_boundary(at) {
            at -= 1;
        }
        let mut s = valid.clone();
        match how {
            0 => s.truncate(at),
            1 => s.insert(at, c),
            2 if at < s.len() => {
                s.remove(at);
            }
            _ => {}
        }
        s
    })
}

/// `depth` nested arrays around `1`.
pub fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested arrays, the innermost empty.
pub fn nested_empty_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects `{"a": ...}` around `1`.
pub fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}
