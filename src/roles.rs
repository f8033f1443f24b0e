//! Least privilege and audited erasure.
//!
//! A deployment has up to three roles: the **migration role**, which owns the
//! `dcbstore` schema and runs `dcbstore migrate`; an **application role**,
//! which may only append and read (and keep durable projections'
//! checkpoints); and, for an operations console or reporting tools, a
//! **read-only role**, which may read the log, projections' checkpoints,
//! dead letters and the schema's status, follow the log, and change nothing.
//! [`grant_app`] gives an application role exactly its part
//! ([`Grants::app`]) and a read-only role its part ([`Grants::read_only`]);
//! run it as the migration role after each migrate. The application role
//! writes the log only through the append functions (SECURITY DEFINER: they
//! take the append lock and keep the tag index in step), and cannot call the
//! internal ones. Triggers refuse updates and deletes of events for every
//! role but superusers and the owner, who can disable triggers: an
//! application must never log in as the owner. Personal data is erased with
//! [`redact`], which only roles granted it may call and which is audited in
//! `dcbstore.redactions`: the triggers let through only the change an audit
//! row of the same transaction describes.
//!
//! ```sql
//! -- once, as a superuser
//! CREATE ROLE dcb_owner LOGIN PASSWORD '...';
//! CREATE ROLE app LOGIN PASSWORD '...';
//! GRANT CREATE ON DATABASE mydb TO dcb_owner;
//! ```
//! then `DATABASE_URL=postgres://dcb_owner@.../mydb dcbstore migrate`,
//! `dcbstore grant app` and, for a console, `dcbstore grant console --read-only`
//! (after `CREATE ROLE console LOGIN PASSWORD '...'`).

use postgres_protocol::escape::escape_identifier;
use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::error::{Error, PgResultExt, Result};
use crate::event::SequencePosition;

/// What [`grant_app`] gives a role: an application's rights
/// ([`Grants::app`], optionally with [`redact`]) or read-only ones
/// ([`Grants::read_only`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grants {
    /// Also allow [`redact`] (erasing an event's data, audited).
    pub redact: bool,
    /// Also allow imports ([`crate::transfer::import`], `dcbstore import`,
    /// SQL `dcbstore.import_batch`), which keep each event's `recorded_at`
    /// from the input: for a migration or restore role, never an
    /// application's (see [`IMPORT_FUNCTIONS`]).
    pub import: bool,
    /// Read only: no append, no checkpoints, no dead-letter changes, no
    /// [`redact`] (see [`Grants::read_only`]). [`grant_app`] refuses it
    /// together with [`Grants::redact`].
    pub read_only: bool,
}

impl Grants {
    /// Append, read and projection checkpoints only.
    #[must_use]
    pub fn app() -> Self {
        Self::default()
    }

    /// Also allow [`redact`].
    #[must_use]
    pub fn with_redact(mut self) -> Self {
        self.redact = true;
        self
    }

    /// Also allow imports ([`IMPORT_FUNCTIONS`]).
    #[must_use]
    pub fn with_import(mut self) -> Self {
        self.import = true;
        self
    }

    /// Read and follow only, for an operations console or reporting tools:
    /// USAGE on the schema, SELECT on its tables (the log, projections'
    /// checkpoints, dead letters, the schema's status, redaction audits) and
    /// EXECUTE on [`READ_ONLY_FUNCTIONS`] and [`CONSOLE_FUNCTIONS`]. Granting
    /// it takes back everything an earlier grant gave beyond that, [`redact`]
    /// included, so it also downgrades an application role.
    #[must_use]
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }
}

/// The functions of the SQL API an application role may call: the append
/// entry points (SECURITY DEFINER: the only way it writes the log), reads,
/// the head, the migrate lock's key, and the lease functions through which
/// durable projections, subscribers and relays take and check their leases
/// (`dcbstore.leases`, SECURITY DEFINER; never granted to read-only roles,
/// so that only an application role runs, or holds back, a consumer, and
/// only through them). Every other function is internal.
pub const API_FUNCTIONS: &[&str] = &[
    "dcbstore.append",
    "dcbstore.append_batch",
    "dcbstore.append_batch_unchecked",
    "dcbstore.append_batch_typed",
    "dcbstore.read",
    "dcbstore.read_pages",
    "dcbstore.read_page_tagged",
    "dcbstore.head",
    "dcbstore.migrate_lock_key",
    "dcbstore.take_lease",
    "dcbstore.lease_held",
    "dcbstore.lease_current",
];

/// The functions an import role may call beyond [`API_FUNCTIONS`]
/// ([`Grants::import`]): `dcbstore.import_batch`, which keeps each event's
/// `recorded_at` from its input (within the previous event's time and the
/// server's clock plus `dcbstore.limits.max_clock_skew`). Not an
/// application's: `recorded_at` is the store's to set.
pub const IMPORT_FUNCTIONS: &[&str] = &["dcbstore.import_batch"];

/// The functions of the SQL API a read-only role may call ([`Grants::read_only`]):
/// the reads and the head, and the migrate lock's key (a constant, so that a
/// console can name the advisory lock it sees in `pg_locks`). [`crate::Store`]'s
/// connect, reads and subscriptions and the schema status need nothing
/// more: they select from the tables, and following the log is a `LISTEN`.
/// None of these writes anything.
pub const READ_ONLY_FUNCTIONS: &[&str] = &[
    "dcbstore.read",
    "dcbstore.read_pages",
    "dcbstore.read_page_tagged",
    "dcbstore.head",
    "dcbstore.migrate_lock_key",
];

/// Functions beyond reads that the operations console calls, granted to
/// read-only roles together with [`READ_ONLY_FUNCTIONS`] (and to application
/// roles, which may serve a console with actions): `dcbstore.refresh_stats`
/// folds new events into the console's statistics (`dcbstore.stats_*`,
/// derived counts only). Only functions that change no event, checkpoint or
/// dead letter may be added.
pub const CONSOLE_FUNCTIONS: &[&str] = &["dcbstore.refresh_stats"];

/// Grants `role` what [`Grants`] asks for, and nothing that changes the
/// schema or writes the log but through the append functions. Idempotent;
/// run it as the schema's owner after every migrate (a migration's new
/// tables and functions are not granted until then).
///
/// An application role ([`Grants::app`]) gets USAGE on the schema, SELECT on
/// its tables (but the append lock's view, which no role but the owner may
/// lock), INSERT and UPDATE on `dcbstore.projections`, INSERT, UPDATE
/// and DELETE on `dcbstore.dead_letters` (durable subscribers), EXECUTE on
/// [`API_FUNCTIONS`] (and `redact` with [`Grants::redact`], the
/// [`IMPORT_FUNCTIONS`] with [`Grants::import`]; a grant without
/// [`Grants::import`] takes them back). It writes `dcbstore.leases` only
/// through the lease functions. It takes back what it does not give (INSERT on the event tables, EXECUTE on internal
/// functions, from an earlier grant), but never `redact`: without
/// [`Grants::redact`] a role's EXECUTE on it stays as it was (revoke it with
/// SQL, or downgrade the role with [`Grants::read_only`]).
///
/// A read-only role ([`Grants::read_only`]) gets USAGE on the schema, SELECT
/// on its tables and EXECUTE on [`READ_ONLY_FUNCTIONS`] and
/// [`CONSOLE_FUNCTIONS`] only; everything else on the schema's tables and
/// functions is taken back, `redact` included.
pub async fn grant_app<C: GenericClient>(client: &C, role: &str, grants: Grants) -> Result<()> {
    if role.is_empty() {
        return Err(Error::invalid("the role name is empty"));
    }
    if grants.read_only && grants.redact {
        return Err(Error::invalid(
            "a read-only role cannot redact: grant Grants::read_only() alone, or an application role with Grants::app().with_redact()",
        ));
    }
    if grants.read_only && grants.import {
        return Err(Error::invalid(
            "a read-only role cannot import: grant Grants::read_only() alone, or an import role with Grants::app().with_import()",
        ));
    }
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[&role],
        )
        .await
        .db()?
        .get(0);
    if !exists {
        return Err(Error::invalid(format!(
            "role {role:?} does not exist: create it first (CREATE ROLE {} LOGIN)",
            escape_identifier(role)
        )));
    }
    let owner: Option<(String, bool)> = client
        .query_opt(
            "SELECT pg_catalog.pg_get_userbyid(n.nspowner),
                    pg_catalog.pg_has_role(current_user, n.nspowner, 'USAGE')
               FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dcbstore'",
            &[],
        )
        .await
        .db()?
        .map(|row| Ok::<_, Error>((row.try_get(0).db()?, row.try_get(1).db()?)))
        .transpose()?;
    match owner {
        None => {
            return Err(Error::NotMigrated {
                detail: "fresh (no dcbstore schema)".into(),
            })
        }
        // PostgreSQL only warns when a grant by a non-owner gives nothing.
        Some((owner, false)) => {
            return Err(Error::invalid(format!(
                "only the schema's owner ({owner}) can grant: connect as {owner} (the role that ran `dcbstore migrate`) and run the grant again"
            )))
        }
        Some(_) => {}
    }
    let r = escape_identifier(role);
    // Every function of the schema whose EXECUTE this grant decides: all of
    // them for a read-only role (a downgrade takes `redact` back too), all
    // but `redact` for an application, whose grant only `Grants::redact`
    // changes (a grant without it never takes it back).
    let others: Vec<String> = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'dcbstore'::regnamespace AND ($1 OR p.proname <> 'redact')
              ORDER BY 1",
            &[&grants.read_only],
        )
        .await
        .db()?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .db()?;
    // One simple-query batch: one implicit transaction, so that the role
    // never runs with a half-changed set of rights.
    let mut sql = format!(
        "GRANT USAGE ON SCHEMA dcbstore TO {r};
         REVOKE ALL ON ALL TABLES IN SCHEMA dcbstore FROM {r};
         GRANT SELECT ON ALL TABLES IN SCHEMA dcbstore TO {r};
         REVOKE ALL ON {lock} FROM {r};",
        lock = crate::locks::APPEND_LOCK_RELATION
    );
    if !grants.read_only {
        sql.push_str(&format!(
            "GRANT INSERT, UPDATE ON dcbstore.projections TO {r};
             GRANT INSERT, UPDATE, DELETE ON dcbstore.dead_letters TO {r};"
        ));
    }
    if !others.is_empty() {
        sql.push_str(&format!(
            "REVOKE ALL ON FUNCTION {} FROM {r};",
            others.join(", ")
        ));
    }
    let functions: Vec<&str> = if grants.read_only {
        READ_ONLY_FUNCTIONS
            .iter()
            .chain(CONSOLE_FUNCTIONS)
            .copied()
            .collect()
    } else {
        let import: &[&str] = if grants.import { IMPORT_FUNCTIONS } else { &[] };
        API_FUNCTIONS
            .iter()
            .chain(CONSOLE_FUNCTIONS)
            .chain(import)
            .copied()
            .collect()
    };
    sql.push_str(&format!(
        "GRANT EXECUTE ON FUNCTION {} TO {r};",
        functions.join(", ")
    ));
    if grants.redact {
        sql.push_str(&format!(
            "GRANT EXECUTE ON FUNCTION dcbstore.redact(bigint, jsonb, text, jsonb) TO {r};"
        ));
    }
    client.batch_execute(&sql).await.db()?;
    Ok(())
}

/// Replaces the data of the event at `position` (and its metadata, when
/// `metadata` is given), keeping its position, id, type, tags and time, and
/// records who, when, `reason` and a SHA-256 of what was erased in
/// `dcbstore.redactions`. Returns the audit record's number.
///
/// Projections that already applied the event keep what they derived from
/// it: rebuild them. An idempotent retry of the original append is refused
/// afterwards (the stored content differs).
pub async fn redact<C: GenericClient>(
    client: &C,
    position: SequencePosition,
    data: &Value,
    reason: &str,
    metadata: Option<&serde_json::Map<String, Value>>,
) -> Result<i64> {
    let position = i64::try_from(position.get())
        .map_err(|_| Error::invalid(format!("no event at position {position}")))?;
    let metadata = metadata.map(|m| Value::Object(m.clone()));
    let row = client
        .query_one(
            "SELECT dcbstore.redact($1, $2, $3, $4)",
            &[&position, data, &reason, &metadata],
        )
        .await
        .db()?;
    Ok(row.get(0))
}
