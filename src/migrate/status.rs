//! Where a database stands relative to this build: applied migrations (their
//! checksums checked), pending ones, out-of-date function files, the store id.

use tokio_postgres::GenericClient;

use super::catalog::exists;
use super::functions::{self, Applied};
use super::migrations::{accepts, expected_version, MIGRATIONS};
use super::{ChecksumMismatch, MigrationRef, SchemaState, SchemaStatus};
use crate::error::{Error, PgResultExt, Result};

/// Reads the status; errors with [`Error::ChecksumMismatch`] when an applied
/// migration differs from this build's copy.
pub(super) async fn read<C: GenericClient>(client: &C) -> Result<SchemaStatus> {
    let status = report(client).await?;
    match status.checksum_mismatches.first() {
        Some(m) => Err(Error::ChecksumMismatch {
            version: m.version,
            name: m.name.clone(),
            applied: m.applied.clone(),
            expected: m.expected.clone(),
        }),
        None => Ok(status),
    }
}

/// The status, with the applied migrations whose checksum differs from this
/// build's copy listed rather than an error.
pub(super) async fn report<C: GenericClient>(client: &C) -> Result<SchemaStatus> {
    let applied: Vec<(i32, String, String)> =
        if exists(client, "dcbstore.schema_migrations").await? {
            client
            .query(
                "SELECT version, name, checksum FROM dcbstore.schema_migrations ORDER BY version",
                &[],
            )
            .await.db()?
            .iter()
            .map(|r| Ok((r.try_get(0).db()?, r.try_get(1).db()?, r.try_get(2).db()?)))
            .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
    let mut checksum_mismatches = Vec::new();
    for (version, name, checksum) in &applied {
        if let Some(m) = MIGRATIONS.iter().find(|m| m.version == *version) {
            if !accepts(m, checksum) {
                checksum_mismatches.push(ChecksumMismatch {
                    version: *version,
                    name: name.clone(),
                    applied: checksum.clone(),
                    expected: m.checksum(),
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
    let recorded = functions::applied(client).await?;
    let ahead_build = newer_build(&recorded);
    // A fresh database lacks everything: its pending migrations say so.
    let pending_functions = match installed {
        None => Vec::new(),
        Some(_) => functions::out_of_date(&recorded)
            .iter()
            .map(|f| f.name.to_string())
            .collect(),
    };
    let state = match installed {
        None => SchemaState::Fresh,
        Some(v) if v > expected => SchemaState::Ahead,
        Some(_) if ahead_build.is_some() => SchemaState::Ahead,
        Some(_) if !pending.is_empty() || !pending_functions.is_empty() => SchemaState::Pending,
        Some(_) => SchemaState::UpToDate,
    };
    let store_id = if exists(client, "dcbstore.store").await? {
        client
            .query_opt("SELECT store_id FROM dcbstore.store", &[])
            .await
            .db()?
            .map(|r| r.try_get(0))
            .transpose()
            .db()?
    } else {
        None
    };
    Ok(SchemaStatus {
        state,
        installed_version: installed,
        expected_version: expected,
        pending,
        pending_functions,
        ahead_build,
        store_id,
        checksum_mismatches,
    })
}

/// The newest dcbstore release that applied function files, when it is
/// newer than this build: this build must not replace its functions.
fn newer_build(recorded: &[Applied]) -> Option<String> {
    let this = semver::Version::parse(env!("CARGO_PKG_VERSION")).ok()?;
    recorded
        .iter()
        .filter_map(|a| Some((semver::Version::parse(&a.applied_by).ok()?, &a.applied_by)))
        .filter(|(v, _)| *v > this)
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, s)| s.clone())
}
