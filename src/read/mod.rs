//! Reads: [`ReadOptions`] (window, direction, limit), the paging stream
//! behind [`EventStore::read`](crate::EventStore::read), and [`Boundary`],
//! a read together with the position its decision appends after.
//!
//! Each query shape is read by one static statement, prepared once per
//! connection; the first page and the head it was read at come
//! from one statement, one snapshot.

mod boundary;
mod decode;
mod prefix;
mod sql;
mod stream;
mod together;
mod window;

pub use dcbstore_core::read::{seen_through, Boundary, ReadOptions};

pub(crate) use boundary::read_boundary;
pub(crate) use decode::compact;
pub use decode::Decode;
pub use prefix::read_decodable_prefix;
pub(crate) use stream::read_stream;
pub(crate) use together::Readers;
#[cfg(feature = "sqlx")]
pub(crate) use {
    decode::{metadata_object, undecodable},
    sql::{PageCall, ReadSql, READ_PAGES_SQL, READ_TAGGED_SQL},
    window::{in_read_order, split_head, Window},
};
