//! The committed schema file: versions, merge, payload checks.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fingerprint, is_snake_case, CompiledEvent, Field, Kind, Level, SchemaError};

/// The schema file format this version of dcbstore reads and writes.
pub const FORMAT: u32 = 1;

/// One version of an event contract, as committed in the schema file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventVersion {
    /// The event name.
    pub name: String,
    /// The version, from 1, monotonic per name.
    pub version: u32,
    /// Domain or integration.
    pub kind: Kind,
    /// Routing level (updated in place; not part of the contract).
    pub level: Level,
    /// SHA-256 of the contract's [canonical form](super::canonical_form).
    pub fingerprint: String,
    /// The payload fields, sorted by name.
    pub fields: Vec<Field>,
}

impl EventVersion {
    fn from_compiled(compiled: &CompiledEvent, version: u32, fingerprint: String) -> Self {
        let mut fields = compiled.fields.clone();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        EventVersion {
            name: compiled.name.clone(),
            version,
            kind: compiled.kind,
            level: compiled.level,
            fingerprint,
            fields,
        }
    }

    /// The field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks a JSON payload against this version: an object, with every
    /// required field, no field the version does not know, and each value of
    /// its field's type (null is accepted for a field that is not required).
    /// The error lists every problem found.
    pub fn check_payload(&self, payload: &Value) -> Result<(), String> {
        let Some(object) = payload.as_object() else {
            return Err(format!(
                "expected a JSON object, got {}",
                json_kind(payload)
            ));
        };
        let mut problems = Vec::new();
        for field in &self.fields {
            match object.get(&field.name) {
                None if field.required => {
                    problems.push(format!("missing required field `{}`", field.name));
                }
                None => {}
                Some(Value::Null) if !field.required => {}
                Some(value) if !type_matches(&field.r#type, value) => problems.push(format!(
                    "field `{}` should be {}, got {}",
                    field.name,
                    field.r#type,
                    json_kind(value)
                )),
                Some(_) => {}
            }
        }
        for key in object.keys() {
            if self.field(key).is_none() {
                problems.push(format!("unknown field `{key}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits `s` at `sep` outside `<...>`.
#[doc(hidden)]
pub fn split_top(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// Whether `value` is of type `ty` (the type language of the module docs).
/// Unknown type names are accepted, so that a newer file does not reject
/// payloads an older check cannot judge.
fn type_matches(ty: &str, value: &Value) -> bool {
    let (head, inner) = match ty.find('<') {
        Some(i) if ty.ends_with('>') => (&ty[..i], Some(&ty[i + 1..ty.len() - 1])),
        _ => (ty, None),
    };
    match (head, inner) {
        ("any", None) => true,
        ("never", None) => false,
        ("null", None) => value.is_null(),
        ("string", None) => value.is_string(),
        ("boolean", None) => value.is_boolean(),
        ("number", None) => value.is_number(),
        ("integer", None) => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ("object", None) => value.is_object(),
        ("array", Some(t)) => value
            .as_array()
            .is_some_and(|a| a.iter().all(|v| type_matches(t, v))),
        ("map", Some(t)) => value
            .as_object()
            .is_some_and(|o| o.values().all(|v| type_matches(t, v))),
        ("option", Some(t)) => value.is_null() || type_matches(t, value),
        ("tuple", Some(ts)) => value.as_array().is_some_and(|a| {
            let types: Vec<&str> = split_top(ts, ',').collect();
            a.len() == types.len() && a.iter().zip(types).all(|(v, t)| type_matches(t, v))
        }),
        ("enum", Some(values)) => value
            .as_str()
            .is_some_and(|s| values.split('|').any(|v| v == s)),
        ("union", Some(ts)) => split_top(ts, '|').any(|t| type_matches(t, value)),
        _ => true,
    }
}

/// The committed schema file: every version of every event contract.
///
/// Serialized as `{"format": 1, "events": [...]}`, the events sorted by name
/// then version (see [`to_pretty_json`](Self::to_pretty_json)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// The file format, [`FORMAT`].
    pub format: u32,
    /// Every event version.
    pub events: Vec<EventVersion>,
}

impl Default for SchemaFile {
    fn default() -> Self {
        SchemaFile {
            format: FORMAT,
            events: Vec::new(),
        }
    }
}

impl SchemaFile {
    /// An empty file.
    #[must_use]
    pub fn new() -> Self {
        SchemaFile::default()
    }

    /// Parses and validates a schema file's text: format, names, unique
    /// versions, and each fingerprint against its kind and fields. Layout
    /// (whitespace, key order, the order of entries and fields) does not
    /// matter: the result is in canonical order, events by name then
    /// version, fields by name.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        Self::parse_from(text, "<string>")
    }

    fn parse_from(text: &str, origin: &str) -> Result<Self, SchemaError> {
        let invalid = |message: String| SchemaError::InvalidFile {
            origin: origin.to_owned(),
            message,
        };
        let format = serde_json::from_str::<Value>(text)
            .map_err(|e| {
                invalid(format!(
                    "{e}: restore it from version control or delete it and run `schema dump`"
                ))
            })?
            .get("format")
            .and_then(Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(invalid(match format {
                Some(f) => format!(
                    "format {f} is not supported by this version of dcbstore (it reads format {FORMAT})"
                ),
                None => "no \"format\" number: not a dcbstore schema file".to_owned(),
            }));
        }
        let mut file: SchemaFile = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "{e}: restore it from version control or delete it and run `schema dump`"
            ))
        })?;
        let mut seen = BTreeSet::new();
        for e in &file.events {
            if !is_snake_case(&e.name) {
                return Err(invalid(format!(
                    "event name {:?} is not snake_case",
                    e.name
                )));
            }
            if e.version == 0 {
                return Err(invalid(format!(
                    "{} has version 0; versions start at 1",
                    e.name
                )));
            }
            if !seen.insert((e.name.as_str(), e.version)) {
                return Err(invalid(format!("{} v{} appears twice", e.name, e.version)));
            }
            let mut names = BTreeSet::new();
            if let Some(f) = e.fields.iter().find(|f| !names.insert(f.name.as_str())) {
                return Err(invalid(format!(
                    "{} v{} lists field `{}` twice",
                    e.name, e.version, f.name
                )));
            }
            if fingerprint(&e.name, e.kind, &e.fields) != e.fingerprint {
                return Err(invalid(format!(
                    "the fingerprint of {} v{} does not match its kind and fields: the entry was \
                     edited by hand; restore it from version control (versions are never edited, \
                     `schema dump` adds new ones)",
                    e.name, e.version
                )));
            }
        }
        // Layout is not content: entries and fields come back in their
        // canonical order whatever order the text had.
        for e in &mut file.events {
            e.fields.sort_by(|a, b| a.name.cmp(&b.name));
        }
        file.events
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        Ok(file)
    }

    /// Reads and [parses](Self::parse) the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SchemaError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::io(path, e))?;
        Self::parse_from(&text, &path.display().to_string())
    }

    /// [`load`](Self::load), or an empty file when there is none at `path`.
    pub fn load_or_empty(path: impl AsRef<Path>) -> Result<Self, SchemaError> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SchemaFile::new()),
            _ => Self::load(path),
        }
    }

    /// The file's text: pretty JSON with two-space indentation and a
    /// trailing newline. The same file always gives the same bytes.
    #[must_use]
    pub fn to_pretty_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a schema file always serializes to JSON");
        text.push('\n');
        text
    }

    /// Writes [`to_pretty_json`](Self::to_pretty_json) to `path` (through a
    /// temporary file and a rename; unchanged bytes are not rewritten).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SchemaError> {
        let path = path.as_ref();
        let text = self.to_pretty_json();
        if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
            return Ok(());
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".tmp{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                SchemaError::io(path, e)
            })
    }

    /// The versions of the event `name`, oldest first.
    pub fn versions<'a>(
        &'a self,
        name: &str,
    ) -> impl DoubleEndedIterator<Item = &'a EventVersion> + ExactSizeIterator + 'a {
        let mut versions: Vec<&EventVersion> =
            self.events.iter().filter(|e| e.name == name).collect();
        versions.sort_by_key(|e| e.version);
        versions.into_iter()
    }

    /// The latest (highest) version of the event `name`.
    #[must_use]
    pub fn latest(&self, name: &str) -> Option<&EventVersion> {
        self.events
            .iter()
            .filter(|e| e.name == name)
            .max_by_key(|e| e.version)
    }

    /// Version `version` of the event `name`.
    #[must_use]
    pub fn version(&self, name: &str, version: u32) -> Option<&EventVersion> {
        self.events
            .iter()
            .find(|e| e.name == name && e.version == version)
    }

    /// The latest version of every event, sorted by name.
    #[must_use]
    pub fn latest_versions(&self) -> Vec<&EventVersion> {
        let names: BTreeSet<&str> = self.events.iter().map(|e| e.name.as_str()).collect();
        names.into_iter().filter_map(|n| self.latest(n)).collect()
    }

    /// The latest version of `name` whose contract has this fingerprint:
    /// the version a compiled definition emits as.
    #[must_use]
    pub fn find_fingerprint(&self, name: &str, fingerprint: &str) -> Option<&EventVersion> {
        self.versions(name)
            .rev()
            .find(|e| e.fingerprint == fingerprint)
    }
}

/// What `schema dump` writes: `committed` with the compiled definitions
/// applied.
///
/// - A new event gets version 1.
/// - An unchanged fingerprint keeps the latest version (a new level updates
///   that entry in place: routing is not contract).
/// - A changed fingerprint adds version max + 1, even when it equals an
///   older version's (a revert is a new version).
/// - Versions are never deleted; events no longer compiled stay.
///
/// The result is sorted by name, then version.
#[must_use]
pub fn merge(compiled: &[CompiledEvent], committed: &SchemaFile) -> SchemaFile {
    let mut events = committed.events.clone();
    for event in compiled {
        let fingerprint = event.fingerprint();
        let latest = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name == event.name)
            .max_by_key(|(_, e)| e.version)
            .map(|(i, _)| i);
        match latest {
            None => events.push(EventVersion::from_compiled(event, 1, fingerprint)),
            Some(i) if events[i].fingerprint == fingerprint => events[i].level = event.level,
            Some(i) => {
                let next = events[i].version + 1;
                events.push(EventVersion::from_compiled(event, next, fingerprint));
            }
        }
    }
    events.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    SchemaFile {
        format: FORMAT,
        events,
    }
}
