//! Schema migrations: [`migrate`] and [`status`].
//!
//! Two kinds of SQL are embedded in this build:
//!
//! - **Migrations** (`sql/migrations/NNNN_name.sql`, [`MIGRATIONS`]): tables,
//!   indexes, constraints, triggers, grants and data changes. Immutable and
//!   checksummed; versions are tracked in `dcbstore.schema_migrations`.
//! - **Function files** (`sql/functions/*.sql`, [`FUNCTIONS`]): every function,
//!   defined once with `CREATE OR REPLACE`. Each file's checksum, and the
//!   functions it defined, are tracked in `dcbstore.schema_functions`.
//!
//! [`migrate`] holds a session advisory lock
//! ([`MIGRATE_LOCK`]) while it works, so
//! concurrent runs are safe, and does everything in one transaction: the
//! pending migrations in order (each after the function files it
//! [`needs`](Migration::needs)), then every function file whose checksum
//! changed, then it drops the functions of the `dcbstore` schema that no file
//! defines any more. Keep your own functions out of that schema.
//!
//! A database migrated before functions moved to their files (whose
//! migrations held function bodies) is recognised by those migrations'
//! checksums: its next migrate replaces its functions with the files'.

mod catalog;
mod functions;
mod migrations;
mod run;
mod status;

use serde::Serialize;
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

pub use functions::{FunctionFile, FUNCTIONS};
pub use migrations::{expected_version, Migration, MIGRATIONS};

use crate::error::{Error, PgResultExt, Result};
use crate::locks::MIGRATE_LOCK;

/// Where a database stands relative to this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaState {
    /// No dcbstore schema yet.
    Fresh,
    /// Some migrations of this build are not applied.
    Pending,
    /// Exactly this build's schema.
    UpToDate,
    /// Migrated by a newer build: this build refuses to use it.
    Ahead,
}

impl std::fmt::Display for SchemaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SchemaState::Fresh => "fresh (not migrated)",
            SchemaState::Pending => "pending migrations",
            SchemaState::UpToDate => "up to date",
            SchemaState::Ahead => "database newer than this build",
        })
    }
}

/// A migration named by version and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationRef {
    /// Version number.
    pub version: i32,
    /// Name.
    pub name: String,
}

/// The schema status of a database, as `dcbstore status --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    /// The overall state.
    pub state: SchemaState,
    /// Highest applied version, `None` when fresh.
    pub installed_version: Option<i32>,
    /// The version this build expects.
    pub expected_version: i32,
    /// Migrations of this build not yet applied.
    pub pending: Vec<MigrationRef>,
    /// Function files of this build (`sql/functions/`) whose applied version
    /// differs from this build's, or that were never applied (listed once the
    /// schema exists; present in JSON when there are some).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_functions: Vec<String>,
    /// The newer dcbstore release that applied function files, when there is
    /// one: this build refuses the database (present in JSON only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead_build: Option<String>,
    /// The store's persistent identity, created by the first migration.
    pub store_id: Option<Uuid>,
    /// Applied migrations whose checksum differs from this build's copy
    /// (only [`status_report`] returns a status with some; present in JSON
    /// only then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checksum_mismatches: Vec<ChecksumMismatch>,
}

/// An applied migration whose recorded checksum differs from this build's
/// copy: the schema was changed by hand or by a different build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecksumMismatch {
    /// The migration's version.
    pub version: i32,
    /// Its name.
    pub name: String,
    /// The checksum recorded in the database.
    pub applied: String,
    /// This build's.
    pub expected: String,
}

impl SchemaStatus {
    /// `Ok` when the schema is exactly this build's, else the error telling
    /// the user what to do.
    pub fn require_up_to_date(&self) -> Result<()> {
        match self.state {
            SchemaState::UpToDate => Ok(()),
            SchemaState::Ahead => match &self.ahead_build {
                Some(build) if self.installed_version <= Some(self.expected_version) => {
                    Err(Error::FunctionsAhead {
                        applied_by: build.clone(),
                        build: env!("CARGO_PKG_VERSION").to_string(),
                    })
                }
                _ => Err(Error::DatabaseAhead {
                    installed: self.installed_version.unwrap_or_default(),
                    expected: self.expected_version,
                }),
            },
            SchemaState::Fresh => Err(Error::NotMigrated {
                detail: "not installed".into(),
            }),
            SchemaState::Pending if self.pending.is_empty() => Err(Error::NotMigrated {
                detail: format!(
                    "at version {} but its functions are not this build's (out of date: {})",
                    self.installed_version.unwrap_or_default(),
                    self.pending_functions.join(", ")
                ),
            }),
            SchemaState::Pending => Err(Error::NotMigrated {
                detail: format!(
                    "at version {} but this build expects {}",
                    self.installed_version.unwrap_or_default(),
                    self.expected_version
                ),
            }),
        }
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use]
pub struct MigrateReport {
    /// Migrations applied by this call, in order (empty: nothing to do).
    pub applied: Vec<MigrationRef>,
    /// Function files applied by this call, in order.
    pub functions: Vec<String>,
    /// Functions dropped because no file defines them any more.
    pub dropped: Vec<String>,
    /// The status afterwards.
    pub status: SchemaStatus,
}

/// Reads the schema status. Errors with [`Error::ChecksumMismatch`] when an
/// applied migration differs from this build's copy.
pub async fn status<C: GenericClient>(client: &C) -> Result<SchemaStatus> {
    status::read(client).await
}

/// Like [`status`], but a checksum mismatch is reported in
/// [`SchemaStatus::checksum_mismatches`] instead of an error, so a report
/// can show everything (`dcbstore status`).
pub async fn status_report<C: GenericClient>(client: &C) -> Result<SchemaStatus> {
    status::report(client).await
}

/// The oldest PostgreSQL major version dcbstore supports, which
/// [`migrate`] checks (the SQL needs 13; 14 is the oldest release kept;
/// the tests run on 15 and newer).
pub const MIN_SERVER_VERSION: u32 = 14;

/// Refuses a server older than [`MIN_SERVER_VERSION`], naming its version.
async fn check_server_version(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
            &[],
        )
        .await
        .db()?;
    let num: i32 = row.try_get(0).db()?;
    let version: String = row.try_get(1).db()?;
    supported(num, &version)
}

/// `Ok` when `server_version_num` is at least [`MIN_SERVER_VERSION`].
fn supported(server_version_num: i32, version: &str) -> Result<()> {
    let major = u32::try_from(server_version_num / 10_000).unwrap_or(0);
    if major < MIN_SERVER_VERSION {
        return Err(Error::UnsupportedServer {
            version: version.to_string(),
            minimum: MIN_SERVER_VERSION,
        });
    }
    Ok(())
}

/// Applies pending migrations and out-of-date function files in one
/// transaction, under an advisory lock (concurrent calls wait, then find
/// nothing to do). Refuses a database newer than this build.
pub async fn migrate(client: &mut Client) -> Result<MigrateReport> {
    check_server_version(client).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await
        .db()?;
    let result = run::migrate_locked(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    let report = result?;
    unlock.db()?;
    Ok(report)
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn servers_below_the_minimum_are_refused_with_their_version() {
        let err = supported(130_012, "13.12 (Debian 13.12-1)")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PostgreSQL 13.12") && err.contains("PostgreSQL 14 or newer"),
            "{err}"
        );
        assert!(supported(90_624, "9.6.24").is_err());
        assert!(supported(140_000, "14.0").is_ok());
        assert!(supported(170_002, "17.2").is_ok());
    }
}
