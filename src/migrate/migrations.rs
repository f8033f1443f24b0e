//! The migrations this build carries: `sql/migrations/`, immutable and
//! checksummed, with the checksums of the pre-release copies that the move of
//! every function to `sql/functions/` replaced.

use sha2::{Digest, Sha256};

/// A migration carried by this build: tables, indexes, constraints,
/// triggers, grants and data changes (functions live in `sql/functions/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version number (1, 2, ...).
    pub version: i32,
    /// Short name, from the file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
    /// Function files (of `sql/functions/`) the migration's objects call,
    /// applied before it (a trigger needs its function).
    pub needs: &'static [&'static str],
}

impl Migration {
    /// SHA-256 of the SQL, hex.
    #[must_use]
    pub fn checksum(&self) -> String {
        sha256_hex(self.sql)
    }
}

/// SHA-256 of `text`, hex.
pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every migration of this build, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../sql/migrations/0001_init.sql"),
        needs: &[],
    },
    Migration {
        version: 2,
        name: "projections",
        sql: include_str!("../../sql/migrations/0002_projections.sql"),
        needs: &[],
    },
    Migration {
        version: 3,
        name: "throughput",
        sql: include_str!("../../sql/migrations/0003_throughput.sql"),
        needs: &[],
    },
    Migration {
        version: 4,
        name: "append_only",
        sql: include_str!("../../sql/migrations/0004_append_only.sql"),
        needs: &["append_only.sql"],
    },
    Migration {
        version: 5,
        name: "limits",
        sql: include_str!("../../sql/migrations/0005_limits.sql"),
        needs: &[],
    },
    Migration {
        version: 6,
        name: "hardening",
        sql: include_str!("../../sql/migrations/0006_hardening.sql"),
        needs: &["append_only.sql", "epochs.sql"],
    },
    Migration {
        version: 7,
        name: "delivery",
        sql: include_str!("../../sql/migrations/0007_delivery.sql"),
        needs: &[],
    },
    Migration {
        version: 8,
        name: "stats",
        sql: include_str!("../../sql/migrations/0008_stats.sql"),
        needs: &[],
    },
    Migration {
        version: 9,
        name: "guards",
        sql: include_str!("../../sql/migrations/0009_guards.sql"),
        needs: &[],
    },
    Migration {
        version: 10,
        name: "leases",
        sql: include_str!("../../sql/migrations/0010_leases.sql"),
        needs: &["leases.sql"],
    },
    Migration {
        version: 11,
        name: "row_checks",
        sql: include_str!("../../sql/migrations/0011_row_checks.sql"),
        needs: &[],
    },
];

/// The schema version this build expects.
#[must_use]
pub fn expected_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Checksums of the pre-release migrations, which held functions as well:
/// their tables, indexes, constraints and triggers are exactly those of this
/// build's migration of the same version, and their functions are replaced by
/// `sql/functions/` on the next migrate, so a database migrated by them is
/// upgraded in place. (The files are kept as a test fixture.)
const PRERELEASE_CHECKSUMS: &[(i32, &str)] = &[
    (
        1,
        "b60905087cef577a1e72cd9d79eca472f8c0ab531c24c7efd5565241df6510ba",
    ),
    (
        3,
        "d32d34a826117ebba8b743ecef111dfff844dfa47fb62f46cd2c19ae8b8b7141",
    ),
    (
        4,
        "fffe6e23ab58d5dc7ee242e3eabc09508e31a298c42a5214f452b72a164c808b",
    ),
];

/// Whether `checksum`, recorded for migration `m`, is `m` as applied: this
/// build's copy, or the pre-release copy it replaced.
pub(super) fn accepts(m: &Migration, checksum: &str) -> bool {
    checksum == m.checksum()
        || PRERELEASE_CHECKSUMS
            .iter()
            .any(|&(v, c)| v == m.version && c == checksum)
}
