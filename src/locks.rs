//! The advisory lock keys dcbstore takes, named once for Rust and SQL.
//!
//! The SQL functions take the same keys from `dcbstore.append_lock_key()` and
//! `dcbstore.migrate_lock_key()` (`sql/functions/locks.sql`); a test checks
//! that both sides agree. Other applications sharing the database must not
//! take these keys. They show in `pg_locks` as `locktype = 'advisory'` with
//! `objid` the low and `classid` the high 32 bits.

/// Held (transaction-scoped) by every append from before it assigns
/// positions until it commits: appends commit one at a time, in position
/// order.
pub const APPEND_LOCK: i64 = 7_235_937_214_386_151_426;

/// Held (session-scoped) by `migrate` while it works: concurrent migrations
/// wait, then find nothing to do.
pub const MIGRATE_LOCK: i64 = 7_235_937_214_386_151_427;
