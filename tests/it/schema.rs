//! The schema half of the event core: compiling definitions, the schema
//! file (fingerprints, versions, byte stability), verify, compat, catalog
//! and the `schema` CLI. No database needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dcbstore::schema::{
    self, compile, BreakingChange, CatalogFormat, EventDefinition, Kind, Level, SchemaError,
    SchemaFile, SchemaRegistry,
};
use dcbstore_cli::kit::schema as cli;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dcbstore-schema-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("events.schema.json")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Declares a payload struct and its definition.
macro_rules! event {
    ($ty:ident, $name:literal, $level:expr, { $($field:ident : $fty:ty),* $(,)? }) => {
        #[derive(Serialize, Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct $ty {
            $($field: $fty),*
        }
        impl EventDefinition for $ty {
            const NAME: &'static str = $name;
            const LEVEL: Level = $level;
        }
    };
}

// The shapes of `course_defined` over time.
event!(CourseV1, "course_defined", Level::Sourced, { course_id: String, capacity: u32 });
event!(CourseV1Reordered, "course_defined", Level::Sourced, { capacity: u32, course_id: String });
event!(CourseV1Sync, "course_defined", Level::Sync, { course_id: String, capacity: u32 });
event!(CourseV2, "course_defined", Level::Sourced, { course_id: String, capacity: u32, title: String });
event!(CourseWithNote, "course_defined", Level::Sourced, {
    course_id: String, capacity: u32, note: Option<String>
});
event!(CourseNoteRequired, "course_defined", Level::Sourced, {
    course_id: String, capacity: u32, note: String
});
event!(CourseNoCapacity, "course_defined", Level::Sourced, { course_id: String });
event!(CourseCapacityText, "course_defined", Level::Sourced, { course_id: String, capacity: String });
event!(StudentSubscribed, "student_subscribed", Level::Sourced, { student_id: String, course_id: String });

#[derive(Serialize, Deserialize, JsonSchema)]
struct Announced {
    text: String,
}
impl EventDefinition for Announced {
    const NAME: &'static str = "course_announced";
    const KIND: Kind = Kind::Integration;
    const LEVEL: Level = Level::Broker;
}

fn registry_of<T: EventDefinition>() -> SchemaRegistry {
    SchemaRegistry::new().register::<T>()
}

fn dump<T: EventDefinition>(path: &Path) -> SchemaFile {
    schema::dump(&registry_of::<T>(), path).unwrap()
}

fn versions(file: &SchemaFile, name: &str) -> Vec<(u32, Level)> {
    file.versions(name).map(|v| (v.version, v.level)).collect()
}

// ---------------------------------------------------------------- compiling

#[derive(Serialize, Deserialize, JsonSchema)]
struct Address {
    street: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    OnHold,
    Closed,
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct Everything {
    text: String,
    count: u64,
    delta: i32,
    ratio: f64,
    flag: bool,
    maybe: Option<u32>,
    address: Address,
    maybe_address: Option<Address>,
    list: Vec<String>,
    addresses: Vec<Address>,
    status: Status,
    maybe_status: Option<Status>,
    scores: BTreeMap<String, f32>,
    pair: (i32, String),
    sparse: Vec<Option<String>>,
    raw: Value,
    #[serde(default)]
    defaulted: u8,
    #[serde(rename = "renamedField")]
    renamed: String,
}
impl EventDefinition for Everything {
    const NAME: &'static str = "everything_happened";
    const LEVEL: Level = Level::Job;
}

#[test]
fn fields_and_types_come_from_the_payload_type() {
    let compiled = compile::<Everything>().unwrap();
    assert_eq!(compiled.name, "everything_happened");
    assert_eq!(compiled.kind, Kind::Domain);
    assert_eq!(compiled.level, Level::Job);
    let fields: Vec<(&str, &str, bool)> = compiled
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.r#type.as_str(), f.required))
        .collect();
    assert_eq!(
        fields,
        [
            ("address", "object", true),
            ("addresses", "array<object>", true),
            ("count", "integer", true),
            ("defaulted", "integer", false),
            ("delta", "integer", true),
            ("flag", "boolean", true),
            ("list", "array<string>", true),
            ("maybe", "integer", false),
            ("maybe_address", "object", false),
            ("maybe_status", "enum<closed|on_hold|open>", false),
            ("pair", "tuple<integer,string>", true),
            ("ratio", "number", true),
            ("raw", "any", true),
            ("renamedField", "string", true),
            ("scores", "map<number>", true),
            ("sparse", "array<option<string>>", true),
            ("status", "enum<closed|on_hold|open>", true),
            ("text", "string", true),
        ]
    );
    assert_eq!(compile::<Announced>().unwrap().kind, Kind::Integration);
}

#[test]
fn the_registry_sorts_and_finds_events() {
    let registry = SchemaRegistry::new()
        .register::<StudentSubscribed>()
        .register::<CourseV1>();
    let names: Vec<_> = registry
        .compiled()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["course_defined", "student_subscribed"]);
    assert_eq!(registry.len(), 2);
    assert!(registry.get("student_subscribed").is_some());
    assert!(registry.get("nope").is_none());
}

// ----------------------------------------------------------- names, reserved

event!(BadCamel, "CourseDefined", Level::Sync, { x: u8 });
event!(BadDash, "course-defined", Level::Sync, { x: u8 });
event!(BadDouble, "course__defined", Level::Sync, { x: u8 });
event!(BadLeading, "_course", Level::Sync, { x: u8 });
event!(BadTrailing, "course_", Level::Sync, { x: u8 });
event!(BadDigit, "1course", Level::Sync, { x: u8 });
event!(BadEmpty, "", Level::Sync, { x: u8 });
event!(GoodDigits, "course2_defined_v2", Level::Sync, { x: u8 });

fn assert_invalid_name<T: EventDefinition>() {
    match compile::<T>() {
        Err(e @ SchemaError::InvalidName { .. }) => {
            assert!(e.to_string().contains("snake_case"), "{e}");
        }
        other => panic!("{:?}: expected InvalidName, got {other:?}", T::NAME),
    }
}

#[test]
fn bad_names_are_rejected() {
    assert_invalid_name::<BadCamel>();
    assert_invalid_name::<BadDash>();
    assert_invalid_name::<BadDouble>();
    assert_invalid_name::<BadLeading>();
    assert_invalid_name::<BadTrailing>();
    assert_invalid_name::<BadDigit>();
    assert_invalid_name::<BadEmpty>();
    compile::<GoodDigits>().unwrap();
    for ok in ["a", "a1", "course_defined", "x_1_y"] {
        assert!(schema::is_snake_case(ok), "{ok}");
    }
}

event!(ReservedId, "with_id", Level::Sync, { id: String });
event!(ReservedOccurredAt, "with_occurred_at", Level::Sync, { occurred_at: String, ok: u8 });

#[derive(Serialize, Deserialize, JsonSchema)]
struct RenamedToType {
    #[serde(rename = "type")]
    category: String,
}
impl EventDefinition for RenamedToType {
    const NAME: &'static str = "renamed_to_type";
    const LEVEL: Level = Level::Sync;
}

#[test]
fn reserved_field_names_are_rejected() {
    for (result, field) in [
        (compile::<ReservedId>(), "id"),
        (compile::<ReservedOccurredAt>(), "occurred_at"),
        (compile::<RenamedToType>(), "type"),
    ] {
        match result {
            Err(ref e @ SchemaError::ReservedField { field: ref f, .. }) => {
                assert_eq!(f, field);
                let message = e.to_string();
                assert!(
                    message.contains("reserved") && message.contains("rename"),
                    "{message}"
                );
            }
            other => panic!("expected ReservedField {field}, got {other:?}"),
        }
    }
    assert_eq!(
        schema::RESERVED_FIELDS,
        [
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
            "tags"
        ]
    );
}

#[derive(Serialize, Deserialize, JsonSchema)]
enum NotAStruct {
    A(u8),
    B { x: u8 },
}
impl EventDefinition for NotAStruct {
    const NAME: &'static str = "not_a_struct";
    const LEVEL: Level = Level::Sync;
}

#[test]
fn a_payload_must_be_an_object() {
    assert!(matches!(
        compile::<NotAStruct>(),
        Err(SchemaError::NotAnObject { .. })
    ));
}

#[test]
fn invalid_and_duplicate_registrations_are_reported_and_nothing_is_written() {
    let dir = TempDir::new();
    let registry = SchemaRegistry::new()
        .register::<CourseV1>()
        .register::<CourseV2>();
    match registry.compiled() {
        Err(SchemaError::DuplicateName { name, .. }) => assert_eq!(name, "course_defined"),
        other => panic!("expected DuplicateName, got {other:?}"),
    }
    assert!(schema::dump(&registry, dir.file()).is_err());
    assert!(!dir.file().exists());

    let registry = SchemaRegistry::new()
        .register::<ReservedId>()
        .register::<CourseV1>();
    assert_eq!(registry.errors().len(), 1);
    assert!(matches!(
        schema::verify(&registry, dir.file()),
        Err(SchemaError::ReservedField { .. })
    ));
    assert!(SchemaRegistry::new().try_register::<BadCamel>().is_err());
}

// ------------------------------------------------------------- fingerprints

#[test]
fn the_fingerprint_is_pinned_and_ignores_field_order_and_level() {
    let v1 = compile::<CourseV1>().unwrap();
    // The canonical form and its hash are part of every committed schema
    // file: changing them would version every event of every application.
    assert_eq!(
        schema::canonical_form(&v1.name, v1.kind, &v1.fields),
        r#"{"fields":[{"name":"capacity","required":true,"type":"integer"},{"name":"course_id","required":true,"type":"string"}],"kind":"domain","name":"course_defined"}"#
    );
    assert_eq!(
        v1.fingerprint(),
        "cd77086312bef02f9ff02541a3432803f951d45768946abe779169a99cfbcdca"
    );
    assert_eq!(
        compile::<CourseV1Reordered>().unwrap().fingerprint(),
        v1.fingerprint()
    );
    assert_eq!(
        compile::<CourseV1Sync>().unwrap().fingerprint(),
        v1.fingerprint()
    );
    let mut reversed = v1.fields.clone();
    reversed.reverse();
    assert_eq!(
        schema::fingerprint(&v1.name, v1.kind, &reversed),
        v1.fingerprint()
    );
    // Contract changes do change it: a field, requiredness, a type, the kind.
    for other in [
        compile::<CourseV2>().unwrap().fingerprint(),
        compile::<CourseWithNote>().unwrap().fingerprint(),
        compile::<CourseCapacityText>().unwrap().fingerprint(),
        schema::fingerprint(&v1.name, Kind::Integration, &v1.fields),
    ] {
        assert_ne!(other, v1.fingerprint());
    }
}

#[test]
fn field_order_in_the_struct_does_not_change_the_file() {
    let (a, b) = (TempDir::new(), TempDir::new());
    dump::<CourseV1>(&a.file());
    dump::<CourseV1Reordered>(&b.file());
    assert_eq!(
        std::fs::read(a.file()).unwrap(),
        std::fs::read(b.file()).unwrap()
    );
    schema::verify(&registry_of::<CourseV1Reordered>(), a.file()).unwrap();
}

/// Rewrites JSON with keys sorted alphabetically (not the file's order),
/// compact, and every array of fields and events reversed.
fn relayout(value: &Value) -> Value {
    match value {
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), relayout(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().rev().map(relayout).collect()),
        other => other.clone(),
    }
}

#[test]
fn whitespace_key_order_and_entry_order_of_the_file_do_not_matter() {
    let dir = TempDir::new();
    let registry = SchemaRegistry::new()
        .register::<CourseV1>()
        .register::<StudentSubscribed>();
    dump::<CourseV2>(&dir.file()); // two versions of course_defined
    let written = schema::dump(&registry, dir.file()).unwrap();
    let canonical = std::fs::read_to_string(dir.file()).unwrap();

    let value: Value = serde_json::from_str(&canonical).unwrap();
    let compact = relayout(&value).to_string();
    assert!(
        compact.starts_with(r#"{"events":[{"fields":[{"name":"student_id""#),
        "{compact}"
    );
    let spaced = serde_json::to_string_pretty(&relayout(&value))
        .unwrap()
        .replace("  ", "\t   ");
    for text in [compact, spaced] {
        let parsed = SchemaFile::parse(&text).unwrap();
        assert_eq!(parsed, written);
        std::fs::write(dir.file(), &text).unwrap();
        schema::verify(&registry, dir.file()).unwrap();
        // dump restores the canonical bytes
        schema::dump(&registry, dir.file()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.file()).unwrap(), canonical);
    }
}

#[test]
fn a_hand_edited_entry_is_rejected() {
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    let text = std::fs::read_to_string(dir.file())
        .unwrap()
        .replace("\"integer\"", "\"string\"");
    match SchemaFile::parse(&text) {
        Err(e @ SchemaError::InvalidFile { .. }) => {
            assert!(e.to_string().contains("fingerprint"), "{e}")
        }
        other => panic!("expected InvalidFile, got {other:?}"),
    }
    for bad in [
        r#"{"format": 2, "events": []}"#,
        r#"{"events": []}"#,
        r#"not json"#,
        r#"{"format": 1, "events": [], "extra": true}"#,
    ] {
        assert!(matches!(
            SchemaFile::parse(bad),
            Err(SchemaError::InvalidFile { .. })
        ));
    }
    assert_eq!(
        SchemaFile::parse(r#"{"format":1,"events":[]}"#).unwrap(),
        SchemaFile::new()
    );
    assert!(matches!(
        SchemaFile::load(dir.0.join("missing.json")),
        Err(SchemaError::Io { .. })
    ));
}

// ------------------------------------------------------------------ versions

#[test]
fn version_rules_new_unchanged_changed_revert_and_level_only() {
    let dir = TempDir::new();
    let path = dir.file();

    // A new event is version 1.
    let file = dump::<CourseV1>(&path);
    assert_eq!(versions(&file, "course_defined"), [(1, Level::Sourced)]);
    let v1 = file.latest("course_defined").unwrap().clone();

    // Unchanged: same version, same bytes.
    let before = std::fs::read(&path).unwrap();
    let file = dump::<CourseV1Reordered>(&path);
    assert_eq!(versions(&file, "course_defined"), [(1, Level::Sourced)]);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A change adds version 2; version 1 stays as it was.
    let file = dump::<CourseV2>(&path);
    assert_eq!(
        versions(&file, "course_defined"),
        [(1, Level::Sourced), (2, Level::Sourced)]
    );
    assert_eq!(file.version("course_defined", 1), Some(&v1));
    assert!(file
        .latest("course_defined")
        .unwrap()
        .field("title")
        .is_some());

    // Reverting to the version-1 shape is version 3, with v1's fingerprint.
    let file = dump::<CourseV1>(&path);
    assert_eq!(
        versions(&file, "course_defined"),
        [
            (1, Level::Sourced),
            (2, Level::Sourced),
            (3, Level::Sourced)
        ]
    );
    let v3 = file.latest("course_defined").unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.fingerprint, v1.fingerprint);
    assert_eq!(v3.fields, v1.fields);
    assert_eq!(
        file.find_fingerprint("course_defined", &v1.fingerprint)
            .unwrap()
            .version,
        3
    );

    // A level-only change updates the latest entry in place.
    let file = dump::<CourseV1Sync>(&path);
    assert_eq!(
        versions(&file, "course_defined"),
        [(1, Level::Sourced), (2, Level::Sourced), (3, Level::Sync)]
    );

    // Events no longer registered stay; new ones start at 1.
    let file = dump::<StudentSubscribed>(&path);
    assert_eq!(versions(&file, "course_defined").len(), 3);
    assert_eq!(versions(&file, "student_subscribed"), [(1, Level::Sourced)]);
    let order: Vec<_> = file
        .events
        .iter()
        .map(|e| (e.name.as_str(), e.version))
        .collect();
    assert_eq!(
        order,
        [
            ("course_defined", 1),
            ("course_defined", 2),
            ("course_defined", 3),
            ("student_subscribed", 1)
        ]
    );
    assert_eq!(SchemaFile::load(&path).unwrap(), file);
}

#[test]
fn merge_is_the_pure_version_of_dump() {
    let committed = schema::merge(&[compile::<CourseV1>().unwrap()], &SchemaFile::new());
    let next = schema::merge(&[compile::<CourseV2>().unwrap()], &committed);
    assert_eq!(next.events.len(), 2);
    assert_eq!(
        schema::merge(&[compile::<CourseV2>().unwrap()], &next),
        next
    );
    assert_eq!(schema::merge(&[], &next), next);
}

// ------------------------------------------------------------ byte stability

#[test]
fn dump_is_byte_stable() {
    let dir = TempDir::new();
    let registry = SchemaRegistry::new()
        .register::<StudentSubscribed>()
        .register::<Everything>()
        .register::<CourseV1>()
        .register::<Announced>();
    let file = schema::dump(&registry, dir.file()).unwrap();
    let first = std::fs::read(dir.file()).unwrap();
    schema::dump(&registry, dir.file()).unwrap();
    let second = std::fs::read(dir.file()).unwrap();
    assert_eq!(first, second);
    let text = String::from_utf8(first).unwrap();
    assert_eq!(text, file.to_pretty_json());
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    assert!(text.starts_with("{\n  \"format\": 1,\n  \"events\": [\n    {\n      \"name\": \"course_announced\",\n      \"version\": 1,\n      \"kind\": \"integration\",\n      \"level\": 4,\n      \"fingerprint\": \""), "{text}");
    assert!(text.contains(
        "      \"fields\": [\n        {\n          \"name\": \"capacity\",\n          \"type\": \"integer\",\n          \"required\": true\n        },"
    ), "{text}");
    // A fresh dump from the same definitions in another order: same bytes.
    let other = TempDir::new();
    let reordered = SchemaRegistry::new()
        .register::<Announced>()
        .register::<CourseV1>()
        .register::<Everything>()
        .register::<StudentSubscribed>();
    schema::dump(&reordered, other.file()).unwrap();
    assert_eq!(std::fs::read_to_string(other.file()).unwrap(), text);
}

// -------------------------------------------------------------------- verify

#[test]
fn verify_is_clean_on_a_multi_version_file() {
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    dump::<CourseV2>(&dir.file());
    dump::<CourseV1>(&dir.file());
    let registry = SchemaRegistry::new()
        .register::<CourseV1>()
        .register::<StudentSubscribed>();
    schema::dump(&registry, dir.file()).unwrap();
    assert_eq!(SchemaFile::load(dir.file()).unwrap().events.len(), 4);
    schema::verify(&registry, dir.file()).unwrap();
    schema::assert_up_to_date(&registry, dir.file());
    // A level change of the latest version in the code is drift too.
    assert!(schema::verify(&registry_of::<CourseV1Sync>(), dir.file()).is_err());
}

#[test]
fn verify_fails_with_a_diff_on_drift() {
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    let before = std::fs::read(dir.file()).unwrap();
    let err = schema::verify(&registry_of::<CourseV2>(), dir.file()).unwrap_err();
    let SchemaError::Drift { ref diff, .. } = err else {
        panic!("expected Drift, got {err:?}");
    };
    assert!(
        diff.contains("(committed)") && diff.contains("(after `schema dump`)"),
        "{diff}"
    );
    assert!(diff.contains("@@"), "{diff}");
    assert!(diff.contains("+      \"version\": 2,"), "{diff}");
    assert!(diff.contains("+          \"name\": \"title\","), "{diff}");
    assert!(
        !diff
            .lines()
            .any(|l| l.starts_with('-') && !l.starts_with("---")),
        "{diff}"
    );
    let message = err.to_string();
    assert!(
        message.contains("run `schema dump` and commit"),
        "{message}"
    );
    // verify writes nothing
    assert_eq!(std::fs::read(dir.file()).unwrap(), before);

    // A level change shows as an in-place edit.
    let err = schema::verify(&registry_of::<CourseV1Sync>(), dir.file()).unwrap_err();
    let SchemaError::Drift { diff, .. } = err else {
        panic!("expected Drift");
    };
    assert!(
        diff.contains("-      \"level\": 5,") && diff.contains("+      \"level\": 1,"),
        "{diff}"
    );

    // A missing file is drift as soon as an event is registered.
    let missing = dir.0.join("missing.json");
    assert!(matches!(
        schema::verify(&registry_of::<CourseV1>(), &missing),
        Err(SchemaError::Drift { .. })
    ));
    schema::verify(&SchemaRegistry::new(), &missing).unwrap();
}

#[test]
#[should_panic(expected = "out of date")]
fn assert_up_to_date_panics_on_drift() {
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    schema::assert_up_to_date(&registry_of::<CourseV2>(), dir.file());
}

// -------------------------------------------------------------------- compat

fn compat_after<Committed: EventDefinition>(now: SchemaRegistry) -> Vec<BreakingChange> {
    let dir = TempDir::new();
    dump::<Committed>(&dir.file());
    schema::compat(&now, dir.file()).unwrap()
}

#[test]
fn compat_required_field_removed() {
    let changes = compat_after::<CourseV1>(registry_of::<CourseNoCapacity>());
    assert_eq!(
        changes,
        [BreakingChange::RequiredFieldRemoved {
            event: "course_defined".into(),
            version: 1,
            field: "capacity".into()
        }]
    );
    assert_eq!(
        changes[0].to_string(),
        "course_defined v1: required field `capacity` removed"
    );
}

#[test]
fn compat_optional_became_required() {
    let changes = compat_after::<CourseWithNote>(registry_of::<CourseNoteRequired>());
    assert_eq!(
        changes,
        [BreakingChange::OptionalBecameRequired {
            event: "course_defined".into(),
            version: 1,
            field: "note".into()
        }]
    );
    assert_eq!(
        changes[0].to_string(),
        "course_defined v1: optional field `note` became required"
    );
}

#[test]
fn compat_field_type_changed() {
    let changes = compat_after::<CourseV1>(registry_of::<CourseCapacityText>());
    assert_eq!(
        changes,
        [BreakingChange::FieldTypeChanged {
            event: "course_defined".into(),
            version: 1,
            field: "capacity".into(),
            from: "integer".into(),
            to: "string".into()
        }]
    );
    assert_eq!(
        changes[0].to_string(),
        "course_defined v1: field `capacity` changed type from integer to string"
    );
}

#[test]
fn compat_event_removed() {
    let changes = compat_after::<CourseV1>(registry_of::<StudentSubscribed>());
    assert_eq!(
        changes,
        [BreakingChange::EventRemoved {
            event: "course_defined".into(),
            version: 1
        }]
    );
    assert!(!changes[0].to_string().contains('\n'));
}

#[test]
fn compat_required_field_added() {
    let changes = compat_after::<CourseV1>(registry_of::<CourseV2>());
    assert_eq!(
        changes,
        [BreakingChange::RequiredFieldAdded {
            event: "course_defined".into(),
            version: 1,
            field: "title".into()
        }]
    );
}

#[test]
fn compat_has_no_false_positives() {
    // An optional field added, an optional field removed, a level change,
    // a new event, no change: none is breaking.
    assert!(compat_after::<CourseV1>(registry_of::<CourseWithNote>()).is_empty());
    assert!(compat_after::<CourseWithNote>(registry_of::<CourseV1>()).is_empty());
    assert!(compat_after::<CourseV1>(registry_of::<CourseV1Sync>()).is_empty());
    assert!(compat_after::<CourseV1>(
        SchemaRegistry::new()
            .register::<CourseV1>()
            .register::<StudentSubscribed>()
    )
    .is_empty());
    // compat compares against the latest version only.
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    dump::<CourseCapacityText>(&dir.file());
    assert!(
        schema::compat(&registry_of::<CourseCapacityText>(), dir.file())
            .unwrap()
            .is_empty()
    );
}

// ------------------------------------------------------------------- catalog

#[test]
fn catalog_lists_latest_versions() {
    let dir = TempDir::new();
    dump::<CourseV1>(&dir.file());
    let registry = SchemaRegistry::new()
        .register::<CourseWithNote>()
        .register::<Announced>();
    schema::dump(&registry, dir.file()).unwrap();

    let markdown = schema::catalog(&registry, dir.file(), CatalogFormat::Markdown).unwrap();
    assert_eq!(
        markdown,
        "# Event catalog\n\n\
         | Event | Version | Kind | Level | Fields |\n\
         |---|---|---|---|---|\n\
         | `course_announced` | 1 | integration | 4 (broker) | `text: string` |\n\
         | `course_defined` | 2 | domain | 5 (sourced) | `capacity: integer`, `course_id: string`, `note?: string` |\n"
    );

    let json_text = schema::catalog(&registry, dir.file(), CatalogFormat::Json).unwrap();
    assert!(json_text.ends_with("]\n"));
    let listed: Value = serde_json::from_str(&json_text).unwrap();
    let file = SchemaFile::load(dir.file()).unwrap();
    assert_eq!(
        listed,
        json!([
            file.latest("course_announced").unwrap(),
            file.latest("course_defined").unwrap()
        ])
    );
    assert_eq!(listed[1]["version"], 2);

    // Pipes in enum types are escaped in Markdown.
    let markdown = schema::catalog_markdown(&schema::merge(
        &[compile::<Everything>().unwrap()],
        &SchemaFile::new(),
    ));
    assert!(
        markdown.contains("`status: enum<closed\\|on_hold\\|open>`"),
        "{markdown}"
    );
}

// ------------------------------------------------------------ payload checks

#[test]
fn payloads_are_checked_against_a_version() {
    let file = schema::merge(&[compile::<CourseWithNote>().unwrap()], &SchemaFile::new());
    let v1 = file.latest("course_defined").unwrap();
    v1.check_payload(&json!({"course_id": "c1", "capacity": 10}))
        .unwrap();
    v1.check_payload(&json!({"course_id": "c1", "capacity": 10, "note": null}))
        .unwrap();
    v1.check_payload(&json!({"course_id": "c1", "capacity": 10, "note": "hi"}))
        .unwrap();
    let err = v1
        .check_payload(&json!({"capacity": "ten", "note": 3, "extra": true}))
        .unwrap_err();
    for part in [
        "missing required field `course_id`",
        "field `capacity` should be integer, got a string",
        "field `note` should be string, got an integer",
        "unknown field `extra`",
    ] {
        assert!(err.contains(part), "{err}");
    }
    assert!(v1.check_payload(&json!([1])).is_err());

    let file = schema::merge(&[compile::<Everything>().unwrap()], &SchemaFile::new());
    let everything = file.latest("everything_happened").unwrap();
    let payload = serde_json::to_value(Everything {
        text: "t".into(),
        count: 1,
        delta: -1,
        ratio: 0.5,
        flag: true,
        maybe: None,
        address: Address { street: "s".into() },
        maybe_address: Some(Address { street: "s".into() }),
        list: vec!["a".into()],
        addresses: vec![],
        status: Status::OnHold,
        maybe_status: None,
        scores: BTreeMap::from([("a".into(), 1.5)]),
        pair: (1, "x".into()),
        sparse: vec![None, Some("y".into())],
        raw: json!({"anything": [1]}),
        defaulted: 0,
        renamed: "r".into(),
    })
    .unwrap();
    everything.check_payload(&payload).unwrap();
    let mut wrong = payload.clone();
    wrong["status"] = json!("archived");
    wrong["pair"] = json!([1, 2]);
    wrong["scores"] = json!({"a": "x"});
    let err = everything.check_payload(&wrong).unwrap_err();
    assert!(
        err.contains("`status`") && err.contains("`pair`") && err.contains("`scores`"),
        "{err}"
    );
}

// ----------------------------------------------------------------------- cli

fn run(registry: &SchemaRegistry, path: &Path, args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run_with(
        registry,
        path,
        args.iter().map(|a| a.to_string()),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn the_cli_commands_and_exit_codes() {
    let dir = TempDir::new();
    let path = dir.file();
    let v1 = registry_of::<CourseV1>();

    let (code, out, _) = run(&v1, &path, &["verify"]);
    assert_eq!(code, 1, "{out}");
    let (code, out, err) = run(&v1, &path, &["dump"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("added course_defined v1"), "{out}");
    let (code, out, _) = run(&v1, &path, &["schema", "dump"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("unchanged:"), "{out}");
    let (code, out, _) = run(&v1, &path, &["verify"]);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");

    let v2 = registry_of::<CourseCapacityText>();
    let (code, _, err) = run(&v2, &path, &["verify"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("schema dump") && err.contains("+      \"version\": 2,"),
        "{err}"
    );
    let (code, out, _) = run(&v2, &path, &["compat"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "course_defined v1: field `capacity` changed type from integer to string\n"
    );
    let (code, out, _) = run(&v1, &path, &["compat"]);
    assert_eq!((code, out.as_str()), (0, "no breaking changes\n"));

    let (code, out, _) = run(&v1, &path, &["catalog"]);
    assert_eq!(code, 0);
    assert!(out.contains("| `course_defined` | 1 |"), "{out}");
    let (code, out, _) = run(&v1, &path, &["catalog", "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<Value>(&out).unwrap().is_array());

    for usage in [
        &[][..],
        &["frobnicate"],
        &["dump", "extra"],
        &["catalog", "--xml"],
    ] {
        let (code, out, err) = run(&v1, &path, usage);
        assert_eq!(code, 2, "{usage:?}");
        assert!(out.is_empty() && err.starts_with("usage:"), "{err}");
    }
    let (code, out, _) = run(&v1, &path, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage:"));

    let (code, _, err) = run(&registry_of::<BadCamel>(), &path, &["dump"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ") && err.contains("snake_case"),
        "{err}"
    );
}
