//! The schema operations: dump, verify, compat, catalog.

use std::fmt;
use std::path::Path;

use super::{
    merge, CompiledEvent, EventVersion, Kind, Level, SchemaError, SchemaFile, SchemaRegistry,
};

/// Writes what the registry's definitions make of the schema file at `path`
/// ([`merge`] of the compiled events into the file, or into an empty file
/// when there is none) and returns it. Nothing is written when a definition
/// is invalid.
pub fn dump(registry: &SchemaRegistry, path: impl AsRef<Path>) -> Result<SchemaFile, SchemaError> {
    let path = path.as_ref();
    let compiled = registry.compiled()?;
    let merged = merge(compiled, &SchemaFile::load_or_empty(path)?);
    merged.save(path)?;
    Ok(merged)
}

/// The drift check for CI: succeeds when `schema dump` would not change the
/// committed file at `path` (`merge(compiled, committed) == committed`),
/// and otherwise fails with [`SchemaError::Drift`], which carries a unified
/// diff from the committed file to what `schema dump` would write. A missing
/// file is an empty one. The comparison is of content: a file whose layout
/// differs (whitespace, key order) but whose versions match verifies clean.
/// A file with several versions of an event verifies clean as long as the
/// latest one matches its definition.
pub fn verify(registry: &SchemaRegistry, path: impl AsRef<Path>) -> Result<(), SchemaError> {
    let path = path.as_ref();
    let compiled = registry.compiled()?;
    let committed = SchemaFile::load_or_empty(path)?;
    let merged = merge(compiled, &committed);
    if merged == committed {
        return Ok(());
    }
    let old = if committed.events.is_empty() && !path.exists() {
        String::new()
    } else {
        committed.to_pretty_json()
    };
    let shown = path.display();
    let new = merged.to_pretty_json();
    let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str())
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{shown} (committed)"),
            &format!("{shown} (after `schema dump`)"),
        )
        .to_string();
    Err(SchemaError::Drift {
        path: path.to_path_buf(),
        diff,
    })
}

/// Panics, with the diff, when the schema file at `path` is out of date
/// with `registry`: one line in an application's `cargo test`.
///
/// ```no_run
/// # use dcbstore_core::schema::SchemaRegistry;
/// # fn registry() -> SchemaRegistry { SchemaRegistry::new() }
/// #[test]
/// fn schema_file_is_up_to_date() {
///     dcbstore_core::schema::assert_up_to_date(&registry(), "events.schema.json");
/// }
/// ```
#[track_caller]
pub fn assert_up_to_date(registry: &SchemaRegistry, path: impl AsRef<Path>) {
    if let Err(e) = verify(registry, path) {
        panic!("{e}");
    }
}

/// A change between an event's latest committed version and its compiled
/// definition that breaks readers of the stored events or their consumers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakingChange {
    /// The event is in the schema file but no longer registered.
    EventRemoved {
        /// The event.
        event: String,
        /// Its latest committed version.
        version: u32,
    },
    /// A required field is gone.
    RequiredFieldRemoved {
        /// The event.
        event: String,
        /// Its latest committed version.
        version: u32,
        /// The field.
        field: String,
    },
    /// An optional field became required: stored events may lack it.
    OptionalBecameRequired {
        /// The event.
        event: String,
        /// Its latest committed version.
        version: u32,
        /// The field.
        field: String,
    },
    /// A field's type changed.
    FieldTypeChanged {
        /// The event.
        event: String,
        /// Its latest committed version.
        version: u32,
        /// The field.
        field: String,
        /// The committed type.
        from: String,
        /// The compiled type.
        to: String,
    },
    /// A new field is required: stored events do not have it.
    RequiredFieldAdded {
        /// The event.
        event: String,
        /// Its latest committed version.
        version: u32,
        /// The field.
        field: String,
    },
}

impl fmt::Display for BreakingChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakingChange::EventRemoved { event, version } => write!(
                f,
                "{event} v{version}: event removed (in the schema file, no longer registered)"
            ),
            BreakingChange::RequiredFieldRemoved {
                event,
                version,
                field,
            } => {
                write!(f, "{event} v{version}: required field `{field}` removed")
            }
            BreakingChange::OptionalBecameRequired {
                event,
                version,
                field,
            } => {
                write!(
                    f,
                    "{event} v{version}: optional field `{field}` became required"
                )
            }
            BreakingChange::FieldTypeChanged {
                event,
                version,
                field,
                from,
                to,
            } => write!(
                f,
                "{event} v{version}: field `{field}` changed type from {from} to {to}"
            ),
            BreakingChange::RequiredFieldAdded {
                event,
                version,
                field,
            } => write!(
                f,
                "{event} v{version}: required field `{field}` added (stored events lack it)"
            ),
        }
    }
}

/// [`compat_between`] the registry's definitions and the schema file at
/// `path` (a missing file is an empty one).
pub fn compat(
    registry: &SchemaRegistry,
    path: impl AsRef<Path>,
) -> Result<Vec<BreakingChange>, SchemaError> {
    let compiled = registry.compiled()?;
    Ok(compat_between(compiled, &SchemaFile::load_or_empty(path)?))
}

/// The breaking changes between each event's latest committed version and
/// its compiled definition, by event name then field name. Adding an
/// optional field, removing an optional one, a new event and a level change
/// are not breaking; nor is any change to an event whose definition has an
/// upcaster from that version ([`EventDefinition::UPCASTS`](super::EventDefinition::UPCASTS)).
#[must_use]
pub fn compat_between(compiled: &[CompiledEvent], committed: &SchemaFile) -> Vec<BreakingChange> {
    let mut changes = Vec::new();
    for latest in committed.latest_versions() {
        let (event, version) = (latest.name.clone(), latest.version);
        let Some(now) = compiled.iter().find(|c| c.name == latest.name) else {
            changes.push(BreakingChange::EventRemoved { event, version });
            continue;
        };
        // Stored events of that version are upcast on read: whatever the
        // new shape, they still decode.
        if now.upcasts.contains(&version) {
            continue;
        }
        let mut fields: Vec<_> = latest.fields.iter().collect();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        for old in fields {
            let field = old.name.clone();
            let Some(new) = now.fields.iter().find(|f| f.name == old.name) else {
                if old.required {
                    changes.push(BreakingChange::RequiredFieldRemoved {
                        event: event.clone(),
                        version,
                        field,
                    });
                }
                continue;
            };
            if new.r#type != old.r#type {
                changes.push(BreakingChange::FieldTypeChanged {
                    event: event.clone(),
                    version,
                    field: field.clone(),
                    from: old.r#type.clone(),
                    to: new.r#type.clone(),
                });
            }
            if new.required && !old.required {
                changes.push(BreakingChange::OptionalBecameRequired {
                    event: event.clone(),
                    version,
                    field,
                });
            }
        }
        for new in &now.fields {
            if new.required && latest.field(&new.name).is_none() {
                changes.push(BreakingChange::RequiredFieldAdded {
                    event: event.clone(),
                    version,
                    field: new.name.clone(),
                });
            }
        }
    }
    changes
}

/// The formats of [`catalog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    /// A Markdown table.
    Markdown,
    /// A JSON array of event versions.
    Json,
}

/// The catalog of every event's latest version in what `schema dump` would
/// write (the committed file itself when it verifies clean).
pub fn catalog(
    registry: &SchemaRegistry,
    path: impl AsRef<Path>,
    format: CatalogFormat,
) -> Result<String, SchemaError> {
    let compiled = registry.compiled()?;
    let file = merge(compiled, &SchemaFile::load_or_empty(path)?);
    Ok(match format {
        CatalogFormat::Markdown => catalog_markdown(&file),
        CatalogFormat::Json => catalog_json(&file),
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Sync => "sync",
        Level::Job => "job",
        Level::Outbox => "outbox",
        Level::Broker => "broker",
        Level::Sourced => "sourced",
    }
}

/// A Markdown table of every event's latest version in `file`: name,
/// version, kind, level and fields (`name: type`, `name?: type` when not
/// required).
#[must_use]
pub fn catalog_markdown(file: &SchemaFile) -> String {
    let mut out = String::from(
        "# Event catalog\n\n\
         | Event | Version | Kind | Level | Fields |\n\
         |---|---|---|---|---|\n",
    );
    for e in file.latest_versions() {
        let fields = if e.fields.is_empty() {
            "(none)".to_owned()
        } else {
            e.fields
                .iter()
                .map(|f| {
                    let optional = if f.required { "" } else { "?" };
                    format!("`{}{optional}: {}`", f.name, f.r#type).replace('|', "\\|")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kind = match e.kind {
            Kind::Domain => "domain",
            Kind::Integration => "integration",
        };
        out.push_str(&format!(
            "| `{}` | {} | {kind} | {} ({}) | {fields} |\n",
            e.name,
            e.version,
            e.level as u8,
            level_name(e.level)
        ));
    }
    out
}

/// A JSON array (pretty, with a trailing newline) of every event's latest
/// version in `file`, sorted by name, each as in the schema file.
#[must_use]
pub fn catalog_json(file: &SchemaFile) -> String {
    let latest: Vec<&EventVersion> = file.latest_versions();
    let mut text =
        serde_json::to_string_pretty(&latest).expect("event versions always serialize to JSON");
    text.push('\n');
    text
}
