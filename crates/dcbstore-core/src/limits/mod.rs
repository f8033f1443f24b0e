//! Limits, with their documented defaults, and the input checks that enforce
//! them at the edge, with errors that name the limit.
//!
//! | what | default | most a store accepts | checked by |
//! |---|---|---|---|
//! | events per append | [`MAX_EVENTS_PER_APPEND`] | 100,000 | client |
//! | bytes of one event (data + metadata, as JSON) | [`MAX_EVENT_BYTES`] | 255 MiB | client |
//! | bytes of one append (all its events) | [`MAX_APPEND_BYTES`] | 256 MiB | client |
//! | tags per event | [`MAX_TAGS_PER_EVENT`] | 100 (the schema's) | client and database |
//! | bytes of a type or a tag | [`MAX_NAME_BYTES`] | 256 (the schema's) | client and database |
//! | JSON nesting | [`MAX_JSON_DEPTH`] | 127 | client |
//! | items per query | [`MAX_QUERY_ITEMS`] | 10,000 | client |
//! | types or tags per query item | [`MAX_ITEM_TERMS`] | 10,000 | client |
//! | guards per append condition | [`MAX_GUARDS`] | 10,000 | client |
//!
//! A store enforces its [`Limits`]
//! (`dcbstore::StoreBuilder::limits`; the CLI reads them
//! from `DCBSTORE_MAX_*`). The most a store accepts is bound by PostgreSQL:
//! a value of at most 255 MiB, a message of at most 1 GiB, JSON decoders that
//! stop at 128 levels, and the schema's constraints on tags and names. Within
//! them, the defaults keep one request from monopolising the append lock or
//! the server's memory.
//!
//! [`Limits::check_name`], [`Limits::check_data`] and
//! [`Limits::check_metadata`] are the checks an append runs on each event,
//! for callers that take input elsewhere (a command line, a file) and want the
//! store's verdict before sending it. A limit exceeded is
//! [`Error::LimitExceeded`]: which [`Limit`],
//! its maximum and the value found.

mod append;
mod checks;

pub use crate::limit::Limit;
pub use append::{check, check_with, checked_bytes};

use serde::Serialize;

use crate::error::{Error, Result};

/// Events in one append (one atomic request), by default.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;
/// Bytes of one event's data plus metadata, serialized as JSON (1 MiB), by default.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Bytes of all events of one append, serialized as JSON (64 MiB), by default.
pub const MAX_APPEND_BYTES: usize = 64 * 1024 * 1024;
/// Tags on one event, by default (and at most: the schema's constraint).
pub const MAX_TAGS_PER_EVENT: usize = 100;
/// Bytes (UTF-8) of an event type or a tag, by default (and at most: the
/// schema's constraint).
pub const MAX_NAME_BYTES: usize = 256;
/// Items in one query, by default: the DCB conformance suites evaluate
/// queries of 128.
pub const MAX_QUERY_ITEMS: usize = 128;
/// Types, or tags, in one query item, by default.
pub const MAX_ITEM_TERMS: usize = 100;
/// Guards in one append condition, by default.
pub const MAX_GUARDS: usize = 100;
/// Deepest JSON nesting accepted by default: deeper values could be stored
/// but not read back (JSON decoders stop at 128 levels).
pub const MAX_JSON_DEPTH: usize = 100;

/// The limits a store enforces. Start from the defaults and change what you
/// need:
///
/// ```
/// use dcbstore_core::limits::Limits;
///
/// let limits = Limits { max_event_bytes: 8 << 20, ..Limits::default() };
/// assert!(limits.validate().is_ok());
/// assert!(Limits { max_tags_per_event: 101, ..Limits::default() }.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Events in one append.
    pub max_events_per_append: usize,
    /// Bytes of one event's data plus metadata, as JSON.
    pub max_event_bytes: usize,
    /// Bytes of all events of one append, as JSON. A batch of appends that
    /// the store's writer sends together stays within it too.
    pub max_append_bytes: usize,
    /// Tags on one event.
    pub max_tags_per_event: usize,
    /// Bytes (UTF-8) of an event type, a tag, or a query term.
    pub max_name_bytes: usize,
    /// Nesting of arrays and objects in data and metadata.
    pub max_json_depth: usize,
    /// Items in one query.
    pub max_query_items: usize,
    /// Types, or tags, in one query item.
    pub max_item_terms: usize,
    /// Guards in one append condition.
    pub max_guards: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

impl Limits {
    /// The documented defaults.
    pub const DEFAULT: Limits = Limits {
        max_events_per_append: MAX_EVENTS_PER_APPEND,
        max_event_bytes: MAX_EVENT_BYTES,
        max_append_bytes: MAX_APPEND_BYTES,
        max_tags_per_event: MAX_TAGS_PER_EVENT,
        max_name_bytes: MAX_NAME_BYTES,
        max_json_depth: MAX_JSON_DEPTH,
        max_query_items: MAX_QUERY_ITEMS,
        max_item_terms: MAX_ITEM_TERMS,
        max_guards: MAX_GUARDS,
    };

    /// The most any store accepts (see the [module](self) table).
    pub const CEILING: Limits = Limits {
        max_events_per_append: 100_000,
        max_event_bytes: 255 * 1024 * 1024,
        max_append_bytes: 256 * 1024 * 1024,
        max_tags_per_event: 100,
        max_name_bytes: 256,
        max_json_depth: 127,
        max_query_items: 10_000,
        max_item_terms: 10_000,
        max_guards: 10_000,
    };

    /// Checks that every limit is at least 1 and at most its
    /// [`CEILING`](Self::CEILING), and that an event fits in an append.
    pub fn validate(&self) -> Result<()> {
        for limit in Limit::ALL {
            let (value, ceiling) = (self.get(limit), Limits::CEILING.get(limit));
            if value == 0 || value > ceiling {
                return Err(Error::Config(format!(
                    "the limit {} is {value}; it must be from 1 to {ceiling}{}",
                    limit.name(),
                    limit.ceiling_reason()
                )));
            }
        }
        // The largest append, with its names and ids, must leave a batch far
        // below PostgreSQL's 1 GiB messages.
        let names = self.max_tags_per_event * self.max_name_bytes + self.max_name_bytes + 16;
        let worst = self.max_append_bytes + self.max_events_per_append * names;
        if worst > 768 * 1024 * 1024 {
            return Err(Error::Config(format!(
                "these limits allow an append of {worst} bytes (max_append_bytes, plus max_events_per_append events of max_tags_per_event tags of max_name_bytes): keep it at most 805306368 (768 MiB), within PostgreSQL's 1 GiB messages"
            )));
        }
        if self.max_event_bytes > self.max_append_bytes {
            return Err(Error::Config(format!(
                "max_event_bytes ({}) is above max_append_bytes ({}): an event must fit in an append",
                self.max_event_bytes, self.max_append_bytes
            )));
        }
        Ok(())
    }

    /// Checks that no limit is above the database's (`database`): the
    /// database would refuse what it let through.
    pub fn within(&self, database: &Limits) -> Result<()> {
        for limit in Limit::ALL {
            let (mine, theirs) = (self.get(limit), database.get(limit));
            if mine > theirs {
                return Err(Error::Config(format!(
                    "the limit {name} is {mine}, above the database's {theirs}, which would refuse what it lets through: raise the database's as the schema's owner (UPDATE dcbstore.limits SET {name} = {mine}), or leave the store's limits unset to use the database's",
                    name = limit.name()
                )));
            }
        }
        Ok(())
    }

    /// The value of one limit.
    #[must_use]
    pub fn get(&self, limit: Limit) -> usize {
        match limit {
            Limit::EventsPerAppend => self.max_events_per_append,
            Limit::EventBytes => self.max_event_bytes,
            Limit::AppendBytes => self.max_append_bytes,
            Limit::TagsPerEvent => self.max_tags_per_event,
            Limit::NameBytes => self.max_name_bytes,
            Limit::JsonDepth => self.max_json_depth,
            Limit::QueryItems => self.max_query_items,
            Limit::ItemTerms => self.max_item_terms,
            Limit::Guards => self.max_guards,
        }
    }

    /// Sets one limit.
    pub fn set(&mut self, limit: Limit, value: usize) {
        *match limit {
            Limit::EventsPerAppend => &mut self.max_events_per_append,
            Limit::EventBytes => &mut self.max_event_bytes,
            Limit::AppendBytes => &mut self.max_append_bytes,
            Limit::TagsPerEvent => &mut self.max_tags_per_event,
            Limit::NameBytes => &mut self.max_name_bytes,
            Limit::JsonDepth => &mut self.max_json_depth,
            Limit::QueryItems => &mut self.max_query_items,
            Limit::ItemTerms => &mut self.max_item_terms,
            Limit::Guards => &mut self.max_guards,
        } = value;
    }

    /// The error for `actual` over this limit, with `message` (which says
    /// what, where, and what to do).
    #[doc(hidden)]
    pub fn exceeded(&self, limit: Limit, actual: usize, message: String) -> Error {
        Error::LimitExceeded {
            limit,
            max: self.get(limit),
            actual,
            message,
        }
    }
}

/// Counts the bytes of a JSON serialization without keeping it.
#[derive(Default)]
#[doc(hidden)]
pub struct ByteCount(pub usize);

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
#[doc(hidden)]
pub fn json_bytes(v: &impl serde::Serialize) -> usize {
    let mut c = ByteCount::default();
    // Writing to a counter cannot fail; a value that cannot serialize fails later.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}
