//! What the tool parses: queries, conditions and JSON from flags, and the
//! event lines `append` reads from stdin. Each check is the store's own, so
//! what is accepted here the store accepts.

use std::io::BufRead;

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use dcbstore::limits::Limits;
use dcbstore::{AppendCondition, Error, Event, Query};

// Each parser checks against limits: the flags' value parsers against the
// most a store accepts (the configured limits are known only once every flag
// is parsed; `Cli::check_limits` applies them then), the plain functions
// against the defaults.

/// `redact --data`: JSON an appended event's data could hold (no NUL, the
/// nesting limit), so a redaction never stores what an append refuses.
pub(crate) fn parse_json_with(s: &str, limits: &Limits) -> Result<Value, String> {
    let v = serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))?;
    limits
        .check_data("the data", &v)
        .map_err(|e| e.to_string())?;
    Ok(v)
}

/// `redact --metadata`: a JSON object, with the checks of [`parse_json_with`].
pub(crate) fn parse_json_object_with(
    s: &str,
    limits: &Limits,
) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))? {
        Value::Object(m) => {
            limits
                .check_metadata("the metadata", &m)
                .map_err(|e| e.to_string())?;
            Ok(m)
        }
        _ => Err("metadata must be a JSON object".into()),
    }
}

/// `--query`, `--fail-if`: a query in its JSON form.
pub(crate) fn parse_query_with(s: &str, limits: &Limits) -> Result<Query, String> {
    Query::from_json_with(s, limits).map_err(|e| e.to_string())
}

/// `--condition`: guards in their JSON form.
pub(crate) fn parse_condition_with(s: &str, limits: &Limits) -> Result<AppendCondition, String> {
    let c: AppendCondition = serde_json::from_str(s).map_err(|e| {
        format!("invalid condition JSON (expected [{{\"query\": QUERY, \"after\": N}}, ...]): {e}")
    })?;
    if c.guards.is_empty() {
        return Err("condition has no guards".into());
    }
    // The store's own check (limits, positions), so a bad guard is a usage
    // error rather than a failed append.
    c.validate_with(limits).map_err(|e| e.to_string())?;
    Ok(c)
}

/// [`parse_json_with`] against the default limits.
#[cfg(test)]
pub(crate) fn parse_json(s: &str) -> Result<Value, String> {
    parse_json_with(s, &Limits::DEFAULT)
}

/// [`parse_json_object_with`] against the default limits.
#[cfg(test)]
pub(crate) fn parse_json_object(s: &str) -> Result<Map<String, Value>, String> {
    parse_json_object_with(s, &Limits::DEFAULT)
}

/// [`parse_query_with`] against the default limits.
#[cfg(test)]
pub(crate) fn parse_query(s: &str) -> Result<Query, String> {
    parse_query_with(s, &Limits::DEFAULT)
}

/// [`parse_condition_with`] against the default limits.
#[cfg(test)]
pub(crate) fn parse_condition(s: &str) -> Result<AppendCondition, String> {
    parse_condition_with(s, &Limits::DEFAULT)
}

/// One line of `dcbstore append` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    id: Option<Uuid>,
}

/// Parses `dcbstore append` input: one JSON event per line, blank lines skipped.
pub(crate) fn read_events(input: impl BufRead) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::io("cannot read stdin", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: EventLine = serde_json::from_str(&line)
            .map_err(|e| Error::Invalid(format!("line {}: invalid event JSON: {e}", i + 1)))?;
        events.push(Event {
            id: e.id.unwrap_or_else(Uuid::now_v7),
            event_type: e.event_type,
            data: e.data,
            tags: e.tags,
            metadata: e.metadata,
        });
    }
    if events.is_empty() {
        return Err(Error::Invalid(
            "no events on stdin: an append needs at least one event (one JSON object per line)"
                .into(),
        ));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbstore::SequencePosition;

    #[test]
    fn event_lines_parse_with_defaults_and_reject_unknown_fields() {
        let input = b"{\"type\":\"A\"}\n\n{\"type\":\"B\",\"tags\":[\"x\"],\"data\":{\"n\":1}}\n";
        let events = read_events(&input[..]).expect("parse");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, Value::Null);
        assert_eq!(events[1].tags, ["x"]);
        let err = read_events(&b"{\"type\":\"A\",\"tag\":[\"x\"]}"[..]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(read_events(&b"\n"[..]).is_err());
        assert!(read_events(&b"{\"type\":\"A\",\"metadata\":[]}"[..]).is_err());
    }

    #[test]
    fn condition_json_parses_guards() {
        let c = parse_condition(r#"[{"query":[{"tags":["a"]}],"after":3},{"query":"all"}]"#)
            .expect("parse");
        assert_eq!(c.guards.len(), 2);
        assert_eq!(c.guards[0].after, Some(SequencePosition::new(3)));
        assert_eq!(c.guards[1].after, None);
        assert!(parse_condition("[]").is_err());
        assert!(parse_condition(r#"[{"query":[{}]}]"#).is_err());
        assert!(parse_condition(r#"[{"query":"all","afterr":1}]"#).is_err());
    }
}

#[cfg(test)]
#[path = "proptests.rs"]
mod proptests;
