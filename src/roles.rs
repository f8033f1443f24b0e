//! Least privilege and audited erasure.
//!
//! A deployment has two roles: the **migration role**, which owns the
//! `dcbstore` schema and runs `dcbstore migrate`, and an **application role**,
//! which may only append and read (and keep durable projections'
//! checkpoints). [`grant_app`] gives an application role exactly that; run it
//! as the migration role after each migrate. The application role writes the
//! log only through the append functions (SECURITY DEFINER: they take the
//! append lock and keep the tag index in step), and cannot call the internal
//! ones. Triggers refuse updates and deletes of events for every role but
//! superusers and the owner, who can disable triggers: an application must
//! never log in as the owner. Personal data is erased with [`redact`], which
//! only roles granted it may call and which is audited in
//! `dcbstore.redactions`: the triggers let through only the change an audit
//! row of the same transaction describes.
//!
//! ```sql
//! -- once, as a superuser
//! CREATE ROLE dcb_owner LOGIN PASSWORD '...';
//! CREATE ROLE app LOGIN PASSWORD '...';
//! GRANT CREATE ON DATABASE mydb TO dcb_owner;
//! ```
//! then `DATABASE_URL=postgres://dcb_owner@.../mydb dcbstore migrate` and
//! `dcbstore grant app`.

use postgres_protocol::escape::escape_identifier;
use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::error::{Error, Result};
use crate::event::SequencePosition;

/// What [`grant_app`] gives besides appending and reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grants {
    /// Also allow [`redact`] (erasing an event's data, audited).
    pub redact: bool,
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
}

/// The functions of the SQL API an application role may call: the append
/// entry points (SECURITY DEFINER: the only way it writes the log), reads,
/// the head and the lock keys. Every other function is internal.
pub const API_FUNCTIONS: &[&str] = &[
    "dcbstore.append",
    "dcbstore.append_batch",
    "dcbstore.append_batch_unchecked",
    "dcbstore.import_batch",
    "dcbstore.read",
    "dcbstore.head",
    "dcbstore.append_lock_key",
    "dcbstore.migrate_lock_key",
];

/// Grants `role` what an application needs, and nothing that changes the
/// schema or writes the log but through the append functions: USAGE on the
/// schema, SELECT on its tables, INSERT and UPDATE on `dcbstore.projections`,
/// INSERT, UPDATE and DELETE on `dcbstore.dead_letters` (durable subscribers),
/// EXECUTE on [`API_FUNCTIONS`] (and `redact` with [`Grants::redact`]). It
/// takes back what it does not give (INSERT on the event tables, EXECUTE on
/// internal functions, from an earlier grant), but never `redact`: without
/// [`Grants::redact`] a role's EXECUTE on it stays as it was (revoke it with
/// SQL). Idempotent; run it as the schema's owner after every migrate.
pub async fn grant_app<C: GenericClient>(client: &C, role: &str, grants: Grants) -> Result<()> {
    if role.is_empty() {
        return Err(Error::invalid("the role name is empty"));
    }
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[&role],
        )
        .await?
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
        .await?
        .map(|row| Ok::<_, Error>((row.try_get(0)?, row.try_get(1)?)))
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
    // Every function of the schema but `redact`, whose grant only
    // `Grants::redact` changes: a grant without it never takes it back.
    let others: Vec<String> = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'dcbstore'::regnamespace AND p.proname <> 'redact'
              ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut sql = format!(
        "GRANT USAGE ON SCHEMA dcbstore TO {r};
         REVOKE ALL ON ALL TABLES IN SCHEMA dcbstore FROM {r};
         GRANT SELECT ON ALL TABLES IN SCHEMA dcbstore TO {r};
         GRANT INSERT, UPDATE ON dcbstore.projections TO {r};
         GRANT INSERT, UPDATE, DELETE ON dcbstore.dead_letters TO {r};"
    );
    if !others.is_empty() {
        sql.push_str(&format!(
            "REVOKE ALL ON FUNCTION {} FROM {r};",
            others.join(", ")
        ));
    }
    sql.push_str(&format!(
        "GRANT EXECUTE ON FUNCTION {} TO {r};",
        API_FUNCTIONS.join(", ")
    ));
    if grants.redact {
        sql.push_str(&format!(
            "GRANT EXECUTE ON FUNCTION dcbstore.redact(bigint, jsonb, text, jsonb) TO {r};"
        ));
    }
    client.batch_execute(&sql).await?;
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
        .await?;
    Ok(row.get(0))
}
