//! Schema migrations: the `sql/` files embedded in this build, [`migrate`] and
//! [`status`].
//!
//! Versions are tracked in `dcbstore.schema_migrations` (version, name,
//! checksum, applied_at). [`migrate`] holds a session advisory lock while it
//! works, so concurrent runs are safe; each migration commits on its own.

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::{Error, Result};

/// A migration carried by this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version number (1, 2, ...).
    pub version: i32,
    /// Short name, from the file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL, hex.
    #[must_use]
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Every migration of this build, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../sql/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "projections",
        sql: include_str!("../sql/0002_projections.sql"),
    },
    Migration {
        version: 3,
        name: "throughput",
        sql: include_str!("../sql/0003_throughput.sql"),
    },
    Migration {
        version: 4,
        name: "append_only",
        sql: include_str!("../sql/0004_append_only.sql"),
    },
    Migration {
        version: 5,
        name: "limits",
        sql: include_str!("../sql/0005_limits.sql"),
    },
];

/// The schema version this build expects.
#[must_use]
pub fn expected_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const MIGRATE_LOCK: i64 = 7235937214386151427;

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
    /// The store's persistent identity, created by the first migration.
    pub store_id: Option<Uuid>,
}

impl SchemaStatus {
    /// `Ok` when the schema is exactly this build's, else the error telling
    /// the user what to do.
    pub fn require_up_to_date(&self) -> Result<()> {
        match self.state {
            SchemaState::UpToDate => Ok(()),
            SchemaState::Ahead => Err(Error::DatabaseAhead {
                installed: self.installed_version.unwrap_or_default(),
                expected: self.expected_version,
            }),
            SchemaState::Fresh => Err(Error::NotMigrated {
                detail: "not installed".into(),
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
    /// The status afterwards.
    pub status: SchemaStatus,
}

/// Reads the schema status. Errors with [`Error::ChecksumMismatch`] when an
/// applied migration differs from this build's copy.
pub async fn status(client: &Client) -> Result<SchemaStatus> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('dcbstore.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let applied: Vec<(i32, String, String)> = if exists {
        client
            .query(
                "SELECT version, name, checksum FROM dcbstore.schema_migrations ORDER BY version",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    for (version, name, checksum) in &applied {
        if let Some(m) = MIGRATIONS.iter().find(|m| m.version == *version) {
            let expected = m.checksum();
            if &expected != checksum {
                return Err(Error::ChecksumMismatch {
                    version: *version,
                    name: name.clone(),
                    applied: checksum.clone(),
                    expected,
                });
            }
        }
    }
    let installed = applied.iter().map(|a| a.0).max();
    let expected = expected_version();
    let pending: Vec<MigrationRef> = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.0 == m.version))
        .map(|m| MigrationRef {
            version: m.version,
            name: m.name.to_string(),
        })
        .collect();
    let state = match installed {
        None => SchemaState::Fresh,
        Some(v) if v > expected => SchemaState::Ahead,
        Some(_) if !pending.is_empty() => SchemaState::Pending,
        Some(_) => SchemaState::UpToDate,
    };
    let has_store: bool = client
        .query_one("SELECT to_regclass('dcbstore.store') IS NOT NULL", &[])
        .await?
        .get(0);
    let store_id = if has_store {
        client
            .query_opt("SELECT store_id FROM dcbstore.store", &[])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
    } else {
        None
    };
    Ok(SchemaStatus {
        state,
        installed_version: installed,
        expected_version: expected,
        pending,
        store_id,
    })
}

/// Applies pending migrations, each in its own transaction, under an
/// advisory lock (concurrent calls wait, then find nothing to do). Refuses a
/// database newer than this build.
pub async fn migrate(client: &mut Client) -> Result<MigrateReport> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    let result = migrate_locked(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    let report = result?;
    unlock?;
    Ok(report)
}

async fn migrate_locked(client: &mut Client) -> Result<MigrateReport> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS dcbstore;
             CREATE TABLE IF NOT EXISTS dcbstore.schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 checksum   text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;
    let before = status(client).await?;
    if before.state == SchemaState::Ahead {
        return Err(Error::DatabaseAhead {
            installed: before.installed_version.unwrap_or_default(),
            expected: before.expected_version,
        });
    }
    let mut applied = Vec::new();
    for p in &before.pending {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == p.version) else {
            continue;
        };
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(p.clone());
    }
    let status = status(client).await?;
    Ok(MigrateReport { applied, status })
}
