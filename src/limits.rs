//! Documented limits, checked at the edge with errors that name the limit.
//!
//! | what | limit | checked by |
//! |---|---|---|
//! | events per append | [`MAX_EVENTS_PER_APPEND`] | client |
//! | bytes of one event (data + metadata, as JSON) | [`MAX_EVENT_BYTES`] | client |
//! | bytes of one append (all its events) | [`MAX_APPEND_BYTES`] | client |
//! | tags per event | [`MAX_TAGS_PER_EVENT`] | client and database |
//! | bytes of a type or a tag | [`MAX_NAME_BYTES`] | client and database |
//! | JSON nesting | [`MAX_JSON_DEPTH`](crate::append::MAX_JSON_DEPTH) | client |
//! | items per query | [`MAX_QUERY_ITEMS`] | client |
//! | types or tags per query item | [`MAX_ITEM_TERMS`] | client |
//! | guards per append condition | [`MAX_GUARDS`] | client |
//!
//! The database's own limits are far above these (1 GB per value); these
//! keep one request from monopolising the append lock or the server's memory.

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
