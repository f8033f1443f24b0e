//! The error type of the schema tooling.

use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong when compiling event definitions or handling the
/// schema file. Every message says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// An event name is not snake_case.
    #[error(
        "event name {name:?} (on {type_name}) is not snake_case: use lowercase ASCII letters \
         and digits in words joined by single underscores, starting with a letter \
         (e.g. \"course_defined\")"
    )]
    InvalidName {
        /// The offending name.
        name: String,
        /// The Rust type that declared it.
        type_name: String,
    },

    /// Two registered definitions use the same event name.
    #[error(
        "event name {name:?} is registered twice (by {first} and {second}): event names must be \
         unique, rename one of them or register the type once"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// The type registered first.
        first: String,
        /// The type registered second.
        second: String,
    },

    /// A payload field uses a name the envelope reserves.
    #[error(
        "payload field {field:?} of event {event:?} ({type_name}) uses a reserved envelope name \
         (reserved: {reserved}): rename the field in the payload type, with a more specific name \
         (e.g. \"course_id\" rather than \"id\") or #[serde(rename = \"...\")]",
        reserved = super::RESERVED_FIELDS.join(", ")
    )]
    ReservedField {
        /// The event's name.
        event: String,
        /// The reserved field name.
        field: String,
        /// The payload's Rust type.
        type_name: String,
    },

    /// The payload type does not serialize to a JSON object.
    #[error(
        "the payload of event {event:?} ({type_name}) is not a JSON object: an event payload \
         must be a struct with named fields"
    )]
    NotAnObject {
        /// The event's name.
        event: String,
        /// The payload's Rust type.
        type_name: String,
    },

    /// The schema file could not be read or written.
    #[error("cannot access the schema file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The schema file is not a valid schema file.
    #[error("the schema file {origin} is not valid: {message}")]
    InvalidFile {
        /// The file's path, or `<string>` for [`SchemaFile::parse`](super::SchemaFile::parse).
        origin: String,
        /// What is wrong, and what to do.
        message: String,
    },

    /// The committed schema file no longer matches the registered definitions.
    #[error(
        "the schema file {} is out of date with the registered event definitions: run \
         `schema dump` and commit the file\n{diff}",
        path.display()
    )]
    Drift {
        /// The committed file.
        path: PathBuf,
        /// A unified diff from the committed file to what `schema dump` would write.
        diff: String,
    },
}

impl SchemaError {
    #[doc(hidden)]
    pub fn io(path: &std::path::Path, source: std::io::Error) -> SchemaError {
        SchemaError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}
