//! Event definitions and the committed schema file.
//!
//! An application describes each event it emits with [`EventDefinition`]: a
//! snake_case name, a [`Kind`], a routing [`Level`], and how tags derive from
//! the payload. The payload's fields come from its type (schemars).
//! [`SchemaRegistry`] compiles the definitions; [`dump`] writes them to a
//! [`SchemaFile`]: the committed, byte-stable, versioned contract that the
//! runtime loads.
//!
//! ```
//! use dcbstore_core::schema::{self, EventDefinition, Level, SchemaRegistry};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct CourseDefined {
//!     course_id: String,
//!     capacity: u32,
//!     note: Option<String>,
//! }
//!
//! impl EventDefinition for CourseDefined {
//!     const NAME: &'static str = "course_defined";
//!     const LEVEL: Level = Level::Sourced;
//!     fn tags(&self) -> Vec<String> {
//!         vec![format!("course:{}", self.course_id)]
//!     }
//! }
//!
//! let registry = SchemaRegistry::new().register::<CourseDefined>();
//! let path = std::env::temp_dir().join(format!("dcbstore-doc-{}.json", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//!
//! // `schema dump`: the first dump creates version 1.
//! let file = schema::dump(&registry, &path)?;
//! let v1 = file.latest("course_defined").unwrap();
//! assert_eq!(v1.version, 1);
//! let fields: Vec<_> = v1.fields.iter().map(|f| (f.name.as_str(), f.r#type.as_str(), f.required)).collect();
//! assert_eq!(fields, [("capacity", "integer", true), ("course_id", "string", true), ("note", "string", false)]);
//!
//! // `schema verify` in CI (or `assert_up_to_date` in a test): clean until
//! // the definitions change; then it fails with a diff.
//! schema::verify(&registry, &path)?;
//! schema::assert_up_to_date(&registry, &path);
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), dcbstore_core::schema::SchemaError>(())
//! ```
//!
//! # The schema file
//!
//! ```json
//! {
//!   "format": 1,
//!   "events": [
//!     {
//!       "name": "course_defined",
//!       "version": 1,
//!       "kind": "domain",
//!       "level": 5,
//!       "fingerprint": "<sha-256 hex>",
//!       "fields": [
//!         { "name": "capacity", "type": "integer", "required": true }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! Events are sorted by name then version, fields by name, and the text is
//! pretty JSON with a trailing newline: the same definitions always give the
//! same bytes. The fingerprint is the SHA-256 of the contract's
//! [`canonical_form`] (name, kind, fields with type and requiredness; not the
//! level), so field order and file layout never change it.
//!
//! **Versions** are append-only ([`merge`]): an unchanged contract keeps its
//! version; a changed one gets max + 1, even when it reverts to an older
//! shape; versions are never deleted. A level change updates the latest
//! version in place. [`verify`] fails when `dump` would change the file;
//! [`compat`] lists [`BreakingChange`]s; [`catalog`] lists latest versions.
//! The `schema` kit (`dcbstore_cli::kit::SchemaCommand`) gives an
//! application's command line `schema dump|verify|compat|catalog`.
//!
//! # Field types
//!
//! Derived from the payload's JSON schema, deterministically:
//! `string`, `integer`, `number`, `boolean`, `null`, `any` (e.g. a
//! `serde_json::Value`), `object` (a nested struct), `array<T>`, `map<T>`
//! (string-keyed maps), `tuple<A,B>`, `enum<a|b>` (unit enum variants and
//! string constants, values sorted), `union<A|B>` (other alternatives,
//! sorted), `option<T>` (a nullable element, or a required field that may be
//! null). An `Option<T>` field is not required and has the type of `T`. A
//! nested struct is `object`: its own fields are not part of the contract.
//! Field names are the JSON names, after serde renames; they may not be one
//! of the [`RESERVED_FIELDS`] of the envelope.

mod compile;
mod error;
mod file;
mod ops;
mod registry;

pub use compile::{
    canonical_form, compile, fingerprint, is_snake_case, CompiledEvent, Field, RESERVED_FIELDS,
};
pub use error::SchemaError;
pub use file::{merge, EventVersion, SchemaFile, FORMAT};
pub use ops::{
    assert_up_to_date, catalog, catalog_json, catalog_markdown, compat, compat_between, dump,
    verify, BreakingChange, CatalogFormat,
};
pub use registry::SchemaRegistry;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where an emitted event is routed, from in-process to event sourced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Level {
    /// In-process subscribers, synchronously.
    Sync = 1,
    /// Background jobs.
    Job = 2,
    /// A transactional outbox.
    Outbox = 3,
    /// A message broker.
    Broker = 4,
    /// The event log (dcbstore): event sourcing.
    Sourced = 5,
}

impl From<Level> for u8 {
    fn from(l: Level) -> u8 {
        l as u8
    }
}

impl TryFrom<u8> for Level {
    type Error = String;
    fn try_from(v: u8) -> Result<Level, String> {
        Ok(match v {
            1 => Level::Sync,
            2 => Level::Job,
            3 => Level::Outbox,
            4 => Level::Broker,
            5 => Level::Sourced,
            other => return Err(format!("level must be 1 to 5, got {other}")),
        })
    }
}

/// What an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A fact inside one bounded context.
    Domain,
    /// A fact published to other contexts.
    Integration,
}

/// An event an application emits: implemented on its serde payload type.
///
/// ```
/// use dcbstore_core::schema::{EventDefinition, Kind, Level};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, JsonSchema)]
/// struct CourseDefined {
///     course_id: String,
///     capacity: u32,
/// }
///
/// impl EventDefinition for CourseDefined {
///     const NAME: &'static str = "course_defined";
///     const LEVEL: Level = Level::Sourced;
///     fn tags(&self) -> Vec<String> {
///         vec![format!("course:{}", self.course_id)]
///     }
/// }
/// # let _ = Kind::Domain;
/// ```
pub trait EventDefinition:
    Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static
{
    /// The event's name: snake_case, stable.
    const NAME: &'static str;
    /// Domain (default) or integration.
    const KIND: Kind = Kind::Domain;
    /// Where it is routed.
    const LEVEL: Level;
    /// The version of its shape: 1, plus one for each change of shape. A
    /// store keeps each event's version ([`typed`](crate::typed)); reading
    /// an older one goes through [`upcast`](Self::upcast).
    const VERSION: u32 = 1;
    /// The versions [`upcast`](Self::upcast) reads (default: none).
    /// `schema compat` accepts a breaking change from the committed latest
    /// version when it is among them: the stored events of that version
    /// still read. `#[derive(Event)]` fills it from its upcasters.
    const UPCASTS: &'static [u32] = &[];

    /// The tags of this event, derived from its payload (default: none).
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }

    /// One step of upcasting: the data of version `from` (below
    /// [`VERSION`](Self::VERSION)) as version `from + 1` would hold it, or
    /// why it cannot be; `None` when there is no upcaster from `from`
    /// (default), which makes such events undecodable, and which `schema
    /// compat` refuses for a changed shape. `#[derive(Event)]` writes it
    /// from `#[event(upcast(from = N, with = path))]` (a JSON transform) or
    /// `#[event(upcast(from = N, typed = OldShape))]` (`OldShape:
    /// Deserialize`, and the next shape `From<OldShape>`).
    fn upcast(from: u32, data: serde_json::Value) -> Option<Result<serde_json::Value, String>> {
        let _ = (from, data);
        None
    }
}
