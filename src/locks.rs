//! The locks dcbstore takes, named once for Rust and SQL.
//!
//! - The append lock is an `EXCLUSIVE` lock on the view
//!   [`APPEND_LOCK_RELATION`], taken (transaction-scoped) by every append from
//!   before it assigns positions until it commits: appends commit one at a
//!   time, in position order. No role but the schema's owner may lock that
//!   view (`LOCK TABLE` needs a privilege on it, and other statements take at
//!   most `ACCESS SHARE`, which does not conflict), so no other role can
//!   stop the appends by holding it, as any role could hold an advisory key.
//!   It shows in `pg_locks` as `locktype = 'relation'`,
//!   `relation = 'dcbstore.append_lock'::regclass`, `mode = 'ExclusiveLock'`.
//! - The migrate lock is a session advisory lock on [`MIGRATE_LOCK`]
//!   (`dcbstore.migrate_lock_key()` in `sql/functions/locks.sql`; a test
//!   checks that both sides agree). Other applications sharing the database
//!   must not take it. It shows in `pg_locks` as `locktype = 'advisory'`
//!   with `objid` the low and `classid` the high 32 bits.

/// The relation whose `EXCLUSIVE` lock is the append lock.
pub const APPEND_LOCK_RELATION: &str = "dcbstore.append_lock";

/// Held (session-scoped) by `migrate` while it works: concurrent migrations
/// wait, then find nothing to do.
pub const MIGRATE_LOCK: i64 = 7_235_937_214_386_151_427;
