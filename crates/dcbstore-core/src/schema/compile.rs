//! Compiling event definitions: names, fields and types from schemars, the
//! fingerprint, and the registry.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{EventDefinition, Kind, Level, SchemaError};

/// Envelope names that a payload field may not use.
pub const RESERVED_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "kind",
    "version",
    "level",
    "payload",
    "metadata",
    "occurred_at",
    "idempotency_key",
    "tags",
];

/// One payload field of an event contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field's name in the JSON payload (after serde renames).
    pub name: String,
    /// The field's type, in the type language described in the [module
    /// documentation](super).
    #[serde(rename = "type")]
    pub r#type: String,
    /// Whether the field must be present (an `Option` field, or one with
    /// `#[serde(default)]`, is not required).
    pub required: bool,
}

/// One event definition, compiled: its contract and its routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledEvent {
    /// The event name (snake_case).
    pub name: String,
    /// Domain or integration.
    pub kind: Kind,
    /// Routing level (not part of the contract).
    pub level: Level,
    /// The payload fields, sorted by name.
    pub fields: Vec<Field>,
    /// The versions whose stored events this build upcasts
    /// ([`EventDefinition::UPCASTS`]): a breaking change from one of them is
    /// one that stored events survive.
    pub upcasts: Vec<u32>,
}

impl CompiledEvent {
    /// The SHA-256 fingerprint of this event's contract: see [`fingerprint`].
    #[must_use]
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.name, self.kind, &self.fields)
    }
}

/// Whether `name` is snake_case: `^[a-z][a-z0-9]*(_[a-z0-9]+)*$`.
#[must_use]
pub fn is_snake_case(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    if !first.is_ascii_lowercase() || bytes.last() == Some(&b'_') {
        return false;
    }
    let mut previous_underscore = false;
    for &b in bytes {
        match b {
            b'_' if previous_underscore => return false,
            b'_' => previous_underscore = true,
            b'a'..=b'z' | b'0'..=b'9' => previous_underscore = false,
            _ => return false,
        }
    }
    true
}

/// The canonical form of a contract, the input of its fingerprint: compact
/// JSON with sorted keys and the fields sorted by name,
/// `{"fields":[{"name":..,"required":..,"type":..},..],"kind":..,"name":..}`.
/// The level is routing, not contract, and is not part of it.
#[must_use]
pub fn canonical_form(name: &str, kind: Kind, fields: &[Field]) -> String {
    let mut sorted: Vec<&Field> = fields.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let string = |s: &str| Value::String(s.to_owned()).to_string();
    let fields: Vec<String> = sorted
        .iter()
        .map(|f| {
            format!(
                r#"{{"name":{},"required":{},"type":{}}}"#,
                string(&f.name),
                f.required,
                string(&f.r#type)
            )
        })
        .collect();
    let kind = match kind {
        Kind::Domain => "domain",
        Kind::Integration => "integration",
    };
    format!(
        r#"{{"fields":[{}],"kind":{},"name":{}}}"#,
        fields.join(","),
        string(kind),
        string(name)
    )
}

/// The fingerprint of a contract: the lowercase hex SHA-256 of its
/// [`canonical_form`]. Field order, and the layout of the schema file, do
/// not change it.
#[must_use]
pub fn fingerprint(name: &str, kind: Kind, fields: &[Field]) -> String {
    let digest = Sha256::digest(canonical_form(name, kind, fields).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles one event definition: validates its name and fields, and derives
/// the fields from the payload's JSON schema (schemars).
pub fn compile<T: EventDefinition>() -> Result<CompiledEvent, SchemaError> {
    let type_name = std::any::type_name::<T>();
    if !is_snake_case(T::NAME) {
        return Err(SchemaError::InvalidName {
            name: T::NAME.to_owned(),
            type_name: type_name.to_owned(),
        });
    }
    let schema = schemars::schema_for!(T);
    let fields = fields_of(schema.as_value()).ok_or_else(|| SchemaError::NotAnObject {
        event: T::NAME.to_owned(),
        type_name: type_name.to_owned(),
    })?;
    if let Some(field) = fields
        .iter()
        .find(|f| RESERVED_FIELDS.contains(&f.name.as_str()))
    {
        return Err(SchemaError::ReservedField {
            event: T::NAME.to_owned(),
            field: field.name.clone(),
            type_name: type_name.to_owned(),
        });
    }
    Ok(CompiledEvent {
        name: T::NAME.to_owned(),
        kind: T::KIND,
        level: T::LEVEL,
        fields,
        upcasts: T::UPCASTS.to_vec(),
    })
}

/// The fields of a root schema, sorted by name; `None` when it is not an object.
fn fields_of(root: &Value) -> Option<Vec<Field>> {
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .or_else(|| root.get("definitions"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut properties = Map::new();
    let mut required = BTreeSet::new();
    if !collect_object(root, defs, &mut properties, &mut required, 0) {
        return None;
    }
    let mut fields: Vec<Field> = properties
        .iter()
        .map(|(name, schema)| {
            let is_required = required.contains(name.as_str());
            let (ty, nullable) = render(schema, defs, 0);
            Field {
                name: name.clone(),
                // Option<T> is "not required + T"; a required field that may
                // be null says so in its type.
                r#type: if nullable && is_required {
                    format!("option<{ty}>")
                } else {
                    ty
                },
                required: is_required,
            }
        })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    Some(fields)
}

/// Gathers the properties of an object schema (following `$ref` and merging
/// `allOf`, which is how `#[serde(flatten)]` comes out). False when the
/// schema is not an object.
fn collect_object<'a>(
    schema: &'a Value,
    defs: &'a Map<String, Value>,
    properties: &mut Map<String, Value>,
    required: &mut BTreeSet<&'a str>,
    depth: usize,
) -> bool {
    if depth > 32 {
        return false;
    }
    let Some(obj) = schema.as_object() else {
        return false;
    };
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        return match resolve(target, defs) {
            Some(t) => collect_object(t, defs, properties, required, depth + 1),
            None => false,
        };
    }
    let is_object =
        obj.get("type").and_then(Value::as_str) == Some("object") || obj.contains_key("properties");
    let mut any = is_object;
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (k, v) in props {
            properties.insert(k.clone(), v.clone());
        }
    }
    if let Some(Value::Array(req)) = obj.get("required") {
        required.extend(req.iter().filter_map(Value::as_str));
    }
    if let Some(Value::Array(parts)) = obj.get("allOf") {
        for part in parts {
            if !collect_object(part, defs, properties, required, depth + 1) {
                return false;
            }
            any = true;
        }
    }
    any && !obj.contains_key("oneOf") && !obj.contains_key("anyOf")
}

fn resolve<'a>(reference: &str, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    defs.get(&name.replace("~1", "/").replace("~0", "~"))
}

/// The type of a schema in the type language, and whether it admits null.
fn render(schema: &Value, defs: &Map<String, Value>, depth: usize) -> (String, bool) {
    let any = || ("any".to_owned(), false);
    if depth > 64 {
        return any();
    }
    let obj = match schema {
        Value::Object(obj) => obj,
        Value::Bool(false) => return ("never".to_owned(), false),
        _ => return any(),
    };
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        return match resolve(target, defs) {
            Some(t) => render(t, defs, depth + 1),
            None => any(),
        };
    }
    if let Some(value) = obj.get("const") {
        return from_values(std::slice::from_ref(value));
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        return from_values(values);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alternatives)) = obj.get(key) {
            let mut types = Vec::new();
            let mut nullable = false;
            for alt in alternatives {
                let (t, n) = render(alt, defs, depth + 1);
                nullable |= n;
                types.push(t);
            }
            return combine(types, nullable);
        }
    }
    if let Some(Value::Array(parts)) = obj.get("allOf") {
        return match parts.as_slice() {
            [single] => render(single, defs, depth + 1),
            _ => ("object".to_owned(), false),
        };
    }
    let declared: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
            vec!["object"]
        }
        _ if obj.contains_key("items") || obj.contains_key("prefixItems") => vec!["array"],
        _ => return any(),
    };
    let mut types = Vec::new();
    let mut nullable = false;
    for t in declared {
        match t {
            "null" => nullable = true,
            "array" => types.push(render_array(obj, defs, depth)),
            "object" => types.push(render_object(obj, defs, depth)),
            other => types.push(other.to_owned()),
        }
    }
    combine(types, nullable)
}

/// The type of an element inside a container: nullability is part of it.
fn element(schema: &Value, defs: &Map<String, Value>, depth: usize) -> String {
    match render(schema, defs, depth + 1) {
        (t, true) => format!("option<{t}>"),
        (t, false) => t,
    }
}

fn render_array(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: usize) -> String {
    if let Some(Value::Array(items)) = obj.get("prefixItems") {
        let parts: Vec<String> = items.iter().map(|i| element(i, defs, depth)).collect();
        return format!("tuple<{}>", parts.join(","));
    }
    match obj.get("items") {
        Some(items) => format!("array<{}>", element(items, defs, depth)),
        None => "array<any>".to_owned(),
    }
}

fn render_object(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: usize) -> String {
    let has_properties = obj
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    match obj.get("additionalProperties") {
        Some(values @ Value::Object(_)) if !has_properties => {
            format!("map<{}>", element(values, defs, depth))
        }
        _ => "object".to_owned(),
    }
}

/// The type of a set of literal values (`const`, `enum`).
fn from_values(values: &[Value]) -> (String, bool) {
    let mut strings = BTreeSet::new();
    let mut types = Vec::new();
    let mut nullable = false;
    for v in values {
        match v {
            Value::Null => nullable = true,
            Value::String(s) => {
                strings.insert(s.as_str());
            }
            Value::Bool(_) => types.push("boolean".to_owned()),
            Value::Number(n) if n.is_f64() => types.push("number".to_owned()),
            Value::Number(_) => types.push("integer".to_owned()),
            Value::Array(_) => types.push("array<any>".to_owned()),
            Value::Object(_) => types.push("object".to_owned()),
        }
    }
    if !strings.is_empty() {
        types.push(format!(
            "enum<{}>",
            strings.into_iter().collect::<Vec<_>>().join("|")
        ));
    }
    combine(types, nullable)
}

/// One type from alternatives: enums merged, duplicates removed, sorted.
fn combine(types: Vec<String>, mut nullable: bool) -> (String, bool) {
    let mut set = BTreeSet::new();
    let mut enum_values = BTreeSet::new();
    for t in types {
        if t == "null" {
            nullable = true;
        } else if let Some(values) = t.strip_prefix("enum<").and_then(|r| r.strip_suffix('>')) {
            enum_values.extend(values.split('|').map(str::to_owned));
        } else if let Some(members) = t.strip_prefix("union<").and_then(|r| r.strip_suffix('>')) {
            set.extend(super::file::split_top(members, '|').map(str::to_owned));
        } else {
            set.insert(t);
        }
    }
    if !enum_values.is_empty() {
        set.insert(format!(
            "enum<{}>",
            enum_values.into_iter().collect::<Vec<_>>().join("|")
        ));
    }
    if set.contains("any") {
        return ("any".to_owned(), nullable);
    }
    match set.len() {
        0 if nullable => ("null".to_owned(), false),
        0 => ("never".to_owned(), false),
        1 => (set.into_iter().next().unwrap_or_default(), nullable),
        _ => (
            format!("union<{}>", set.into_iter().collect::<Vec<_>>().join("|")),
            nullable,
        ),
    }
}
