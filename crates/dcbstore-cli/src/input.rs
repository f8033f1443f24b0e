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

/// `--query`, `--fail-if`: `all` (bare, as typed in a shell), or a query in
/// its JSON form (`"all"` or a list of items).
pub(crate) fn parse_query_with(s: &str, limits: &Limits) -> Result<Query, String> {
    if s.trim() == "all" {
        return Ok(Query::all());
    }
    Query::from_json_with(s, limits).map_err(|e| cli_wording(&e.to_string()))
}

/// A message of the library as a CLI user reads it: CLI syntax, not the
/// Rust names (`Query::all`).
pub(crate) fn cli_wording(message: &str) -> String {
    message.replace(
        "use Query::all (\"all\" in JSON)",
        "use all (--query all, --fail-if all, or \"all\" inside JSON)",
    )
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
    c.validate_with(limits)
        .map_err(|e| cli_wording(&e.to_string()))?;
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

/// `dcbstore append` input: the events, and the line each came from.
#[derive(Debug)]
pub(crate) struct EventLines {
    pub(crate) events: Vec<Event>,
    pub(crate) lines: LineMap,
}

/// `self.0[i]` is the input line (1-based, blank lines counted) of event `i`.
#[derive(Debug)]
pub(crate) struct LineMap(pub(crate) Vec<usize>);

impl LineMap {
    /// `e` with its "event N" (the store counts events, 1-based) said as
    /// the input line, so every message counts lines the same way.
    pub(crate) fn locate(&self, e: Error) -> Error {
        match e {
            Error::Invalid(m) => Error::Invalid(self.in_lines(&m)),
            Error::LimitExceeded {
                limit,
                max,
                actual,
                message,
            } => Error::LimitExceeded {
                limit,
                max,
                actual,
                message: self.in_lines(&message),
            },
            other => other,
        }
    }

    fn in_lines(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(i) = rest.find("event ") {
            out.push_str(&rest[..i]);
            let after = &rest[i + "event ".len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let line = after[..digits]
                .parse::<usize>()
                .ok()
                .and_then(|n| self.0.get(n.checked_sub(1)?));
            match line {
                Some(l) => out.push_str(&format!("line {l}")),
                None => out.push_str(&rest[i..i + "event ".len() + digits]),
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }
}

/// Parses `dcbstore append` input: one JSON event per line, blank lines
/// skipped but counted (every message names the input line). Memory stays
/// within the limits, whatever the input: reading stops at the first line
/// longer than an event within `max_event_bytes` can be, and at event
/// `max_events_per_append + 1`, before the rest is read.
pub(crate) fn read_events(mut input: impl BufRead, limits: &Limits) -> Result<EventLines, Error> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let cap = dcbstore::transfer::line_cap(limits);
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
        let read = std::io::Read::take(&mut input, limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(format_args!("cannot read line {} of stdin", n + 1), e))?;
        if read == 0 {
            break;
        }
        n += 1;
        if buf.len() > cap && buf.last() != Some(&b'\n') {
            return Err(Error::Invalid(format!(
                "line {n}: longer than {cap} bytes, more than an event within the limits can take (max_event_bytes {}); nothing was written",
                limits.max_event_bytes
            )));
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| Error::Invalid(format!("line {n}: not valid UTF-8")))?;
        let line = line.trim_end_matches(['\n', '\r']);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text.starts_with('[') {
            return Err(Error::Invalid(format!(
                "line {n}: expected one JSON object per line, got an array: to append the elements of a JSON array, pipe it through `jq -c '.[]'`"
            )));
        }
        if events.len() == limits.max_events_per_append {
            return Err(Error::Invalid(format!(
                "line {n}: more than {} events on stdin, the most one append takes (max_events_per_append): split the input into several appends (each is atomic on its own); nothing was written",
                limits.max_events_per_append
            )));
        }
        let e: EventLine = serde_json::from_str(line).map_err(|e| {
            let hint = if e.is_eof() {
                " (one JSON object per line: compact pretty-printed JSON with `jq -c .`)"
            } else {
                ""
            };
            Error::Invalid(format!("line {n}: invalid event JSON: {e}{hint}"))
        })?;
        events.push(Event {
            id: e.id.unwrap_or_else(Uuid::now_v7),
            event_type: e.event_type,
            data: e.data,
            tags: e.tags,
            metadata: e.metadata,
        });
        lines.push(n);
    }
    if events.is_empty() {
        return Err(Error::Invalid(
            "no events on stdin: an append needs at least one event (one JSON object per line)"
                .into(),
        ));
    }
    Ok(EventLines {
        events,
        lines: LineMap(lines),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbstore::SequencePosition;

    #[test]
    fn event_lines_parse_with_defaults_and_reject_unknown_fields() {
        let input = b"{\"type\":\"A\"}\n\n{\"type\":\"B\",\"tags\":[\"x\"],\"data\":{\"n\":1}}\n";
        let parsed = read_events(&input[..], &Limits::DEFAULT).expect("parse");
        assert_eq!(parsed.lines.0, [1, 3], "blank lines are counted");
        let events = parsed.events;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, Value::Null);
        assert_eq!(events[1].tags, ["x"]);
        let err =
            read_events(&b"{\"type\":\"A\",\"tag\":[\"x\"]}"[..], &Limits::DEFAULT).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(read_events(&b"\n"[..], &Limits::DEFAULT).is_err());
        assert!(read_events(&b"{\"type\":\"A\",\"metadata\":[]}"[..], &Limits::DEFAULT).is_err());
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
