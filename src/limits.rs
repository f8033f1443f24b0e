//! Documented limits, and the input checks that enforce them at the edge
//! with errors that name the limit.
//!
//! | what | limit | checked by |
//! |---|---|---|
//! | events per append | [`MAX_EVENTS_PER_APPEND`] | client |
//! | bytes of one event (data + metadata, as JSON) | [`MAX_EVENT_BYTES`] | client |
//! | bytes of one append (all its events) | [`MAX_APPEND_BYTES`] | client |
//! | tags per event | [`MAX_TAGS_PER_EVENT`] | client and database |
//! | bytes of a type or a tag | [`MAX_NAME_BYTES`] | client and database |
//! | JSON nesting | [`MAX_JSON_DEPTH`] | client |
//! | items per query | [`MAX_QUERY_ITEMS`] | client |
//! | types or tags per query item | [`MAX_ITEM_TERMS`] | client |
//! | guards per append condition | [`MAX_GUARDS`] | client |
//!
//! The database's own limits are far above these (1 GB per value); these
//! keep one request from monopolising the append lock or the server's memory.
//!
//! [`check_name`], [`check_data`] and [`check_metadata`] are the checks an
//! append runs on each event, for callers that take input elsewhere (a
//! command line, a file) and want the store's verdict before sending it.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Events in one append (one atomic request).
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;
/// Bytes of one event's data plus metadata, serialized as JSON (1 MiB).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Bytes of all events of one append, serialized as JSON (64 MiB).
pub const MAX_APPEND_BYTES: usize = 64 * 1024 * 1024;
/// Tags on one event.
pub const MAX_TAGS_PER_EVENT: usize = 100;
/// Bytes (UTF-8) of an event type or a tag.
pub const MAX_NAME_BYTES: usize = 256;
/// Items in one query.
pub const MAX_QUERY_ITEMS: usize = 100;
/// Types, or tags, in one query item.
pub const MAX_ITEM_TERMS: usize = 100;
/// Guards in one append condition.
pub const MAX_GUARDS: usize = 100;
/// Deepest JSON nesting accepted: deeper values could be stored but not
/// read back (JSON decoders stop at 128 levels).
pub const MAX_JSON_DEPTH: usize = 100;

/// Checks an event type, a tag or a query term: not empty, no NUL byte
/// (PostgreSQL text cannot hold NUL), at most [`MAX_NAME_BYTES`]. `what`
/// names it in the error ("event 2 tag").
pub fn check_name(what: &str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if s.len() > MAX_NAME_BYTES {
        let head: String = s.chars().take(40).collect();
        return Err(Error::invalid(format!(
            "{what} \"{head}...\" is {} bytes long; the limit is {MAX_NAME_BYTES} bytes",
            s.len()
        )));
    }
    if s.contains('\0') {
        return Err(Error::invalid(format!(
            "{what} {s:?} contains a NUL byte, which PostgreSQL cannot store"
        )));
    }
    Ok(())
}

/// Checks an event's data: at most [`MAX_JSON_DEPTH`] levels of arrays and
/// objects, no NUL in a string or a key.
pub fn check_data(what: &str, data: &Value) -> Result<()> {
    check_json(what, data, 0)
}

/// Checks an event's metadata as [`check_data`] does (the object itself is
/// the first level).
pub fn check_metadata(what: &str, metadata: &Map<String, Value>) -> Result<()> {
    check_object(what, metadata, 1)
}

/// Checks `v`, which has `depth` arrays or objects around it: at most
/// [`MAX_JSON_DEPTH`] of them nest, whatever the innermost holds (an empty
/// one counts too), and no string or key holds a NUL.
fn check_json(what: &str, v: &Value, depth: usize) -> Result<()> {
    match v {
        Value::String(s) if s.contains('\0') => Err(Error::invalid(format!(
            "{what} contains a string with a NUL byte (\\u0000), which PostgreSQL cannot store"
        ))),
        Value::Array(_) | Value::Object(_) if depth >= MAX_JSON_DEPTH => Err(Error::invalid(
            format!("{what} is nested deeper than {MAX_JSON_DEPTH} levels"),
        )),
        Value::Array(a) => a.iter().try_for_each(|x| check_json(what, x, depth + 1)),
        Value::Object(m) => check_object(what, m, depth + 1),
        _ => Ok(()),
    }
}

fn check_object(what: &str, m: &Map<String, Value>, depth: usize) -> Result<()> {
    for (k, x) in m {
        if k.contains('\0') {
            return Err(Error::invalid(format!(
                "{what} has a key with a NUL byte (\\u0000), which PostgreSQL cannot store"
            )));
        }
        check_json(what, x, depth)?;
    }
    Ok(())
}

/// Counts the bytes of a JSON serialization without keeping it.
#[derive(Default)]
pub(crate) struct ByteCount(pub(crate) usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serialized JSON size of `v`.
pub(crate) fn json_bytes(v: &impl serde::Serialize) -> usize {
    let mut c = ByteCount::default();
    // Writing to a counter cannot fail; a value that cannot serialize fails later.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}
