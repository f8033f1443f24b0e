//! The function files this build carries (`sql/functions/`): each function
//! defined once, with `CREATE OR REPLACE`; which of them a database lacks;
//! applying one; and dropping the functions no file defines any more.
//!
//! `dcbstore.schema_functions` records, per file, the checksum applied, the
//! functions it defined (found from the catalog: the functions whose catalog
//! row the file's statements wrote) and the build that applied it.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::GenericClient;

use super::migrations::sha256_hex;
use crate::error::{Error, PgResultExt, Result};

/// A file of `sql/functions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionFile {
    /// The file name (`append.sql`).
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl FunctionFile {
    /// SHA-256 of the SQL, hex.
    #[must_use]
    pub fn checksum(&self) -> String {
        sha256_hex(self.sql)
    }
}

macro_rules! function_files {
    ($($name:literal),+ $(,)?) => {
        &[$(FunctionFile {
            name: $name,
            sql: include_str!(concat!("../../sql/functions/", $name)),
        }),+]
    };
}

/// Every function file of this build, in the order they are applied (a SQL
/// function's body is checked when it is created, so what it calls comes
/// first).
pub const FUNCTIONS: &[FunctionFile] = function_files![
    "locks.sql",
    "epochs.sql",
    "query.sql",
    "validate.sql",
    "conditions.sql",
    "guards.sql",
    "read.sql",
    "pages.sql",
    "insert_events.sql",
    "append_set.sql",
    "append_sequential.sql",
    "append.sql",
    "import.sql",
    "append_only.sql",
    "redact.sql",
    "stats.sql",
    "leases.sql",
];

/// A row of `dcbstore.schema_functions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Applied {
    pub(super) file: String,
    pub(super) checksum: String,
    pub(super) applied_by: String,
}

/// What the database records of function files (nothing when it has no
/// record yet).
pub(super) async fn applied<C: GenericClient>(client: &C) -> Result<Vec<Applied>> {
    if !super::catalog::exists(client, "dcbstore.schema_functions").await? {
        return Ok(Vec::new());
    }
    client
        .query(
            "SELECT file, checksum, applied_by FROM dcbstore.schema_functions ORDER BY file",
            &[],
        )
        .await
        .db()?
        .iter()
        .map(|r| {
            Ok(Applied {
                file: r.try_get(0).db()?,
                checksum: r.try_get(1).db()?,
                applied_by: r.try_get(2).db()?,
            })
        })
        .collect()
}

/// The files of this build whose applied checksum differs (or that were
/// never applied).
pub(super) fn out_of_date(applied: &[Applied]) -> Vec<&'static FunctionFile> {
    FUNCTIONS
        .iter()
        .filter(|f| {
            !applied
                .iter()
                .any(|a| a.file == f.name && a.checksum == f.checksum())
        })
        .collect()
}

/// The bookkeeping table, created by the runner like `schema_migrations`.
pub(super) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS dcbstore.schema_functions (
    file       text PRIMARY KEY,
    checksum   text NOT NULL,
    functions  text[] NOT NULL,
    applied_by text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The functions of the `dcbstore` schema, as `schema.name(arguments)`, with
/// the place of their catalog row: every statement that writes the row
/// (`CREATE OR REPLACE`, `REVOKE`) gives it a new one.
/// Plain functions and procedures only, not an extension's (which its
/// extension owns), and names printed under the migration's fixed
/// `search_path`, so that they read the same in every run.
const FUNCTIONS_SQL: &str = "SELECT format('%I.%I(%s)', n.nspname, p.proname, \
            pg_get_function_identity_arguments(p.oid)), p.ctid::text \
   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
  WHERE n.nspname = 'dcbstore' AND p.prokind IN ('f', 'p') \
    AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                     WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')";

async fn functions<C: GenericClient>(client: &C) -> Result<BTreeMap<String, String>> {
    client
        .query(FUNCTIONS_SQL, &[])
        .await
        .db()?
        .iter()
        .map(|r| Ok((r.try_get(0).db()?, r.try_get(1).db()?)))
        .collect()
}

/// Applies `file` in the migration's transaction `tx` and records it, with
/// the functions it (re)defined.
pub(super) async fn apply<C: GenericClient>(tx: &C, file: &FunctionFile) -> Result<()> {
    let before = functions(tx).await?;
    tx.batch_execute(file.sql).await.db()?;
    // What the file's statements wrote: the functions it defines.
    let defined: Vec<String> = functions(tx)
        .await?
        .into_iter()
        .filter(|(f, row)| before.get(f) != Some(row))
        .map(|(f, _)| f)
        .collect();
    if defined.is_empty() {
        return Err(Error::Config(format!(
            "function file {} defines no function of its own (each function belongs to exactly one file of sql/functions/)",
            file.name
        )));
    }
    tx.execute(
        "INSERT INTO dcbstore.schema_functions (file, checksum, functions, applied_by) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (file) DO UPDATE SET checksum = excluded.checksum, \
             functions = excluded.functions, applied_by = excluded.applied_by, applied_at = now()",
        &[
            &file.name,
            &file.checksum(),
            &defined,
            &env!("CARGO_PKG_VERSION"),
        ],
    )
    .await
    .db()?;
    tracing::info!(
        file = file.name,
        functions = defined.len(),
        "applied function file"
    );
    Ok(())
}

/// Drops every function of the schema that no file of this build defines
/// (a function removed from its file, or renamed, or a signature changed),
/// and forgets files this build no longer has. Returns what was dropped.
pub(super) async fn sweep<C: GenericClient>(tx: &C) -> Result<Vec<String>> {
    let files: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    tx.execute(
        "DELETE FROM dcbstore.schema_functions WHERE NOT (file = ANY ($1))",
        &[&files],
    )
    .await
    .db()?;
    let defined: BTreeSet<String> = tx
        .query(
            "SELECT DISTINCT unnest(functions) FROM dcbstore.schema_functions",
            &[],
        )
        .await
        .db()?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .db()?;
    let mut dropped = Vec::new();
    for function in functions(tx).await?.into_keys() {
        if !defined.contains(&function) {
            tx.batch_execute(&format!("DROP FUNCTION {function}"))
                .await
                .db()?;
            tracing::info!(function, "dropped a function no file defines");
            dropped.push(function);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::MIGRATIONS;

    /// The names of the functions `sql` creates (`dcbstore.name`).
    fn created(sql: &str) -> Vec<String> {
        sql.match_indices("FUNCTION dcbstore.")
            .filter(|(i, _)| {
                sql[..*i].ends_with("CREATE OR REPLACE ") || sql[..*i].ends_with("CREATE ")
            })
            .map(|(i, m)| {
                let rest = &sql[i + m.len()..];
                rest[..rest.find('(').unwrap_or(rest.len())].to_string()
            })
            .collect()
    }

    #[test]
    fn every_function_is_created_by_one_file_with_create_or_replace_and_never_by_a_migration() {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for f in FUNCTIONS {
            let names = created(f.sql);
            assert!(!names.is_empty(), "{} creates no function", f.name);
            assert!(
                !f.sql.contains("CREATE FUNCTION"),
                "{}: use CREATE OR REPLACE FUNCTION, so that migrate can reapply it",
                f.name
            );
            for n in names {
                if let Some((_, other)) = seen.iter().find(|(s, _)| *s == n) {
                    panic!("dcbstore.{n} is created by {other} and {}", f.name);
                }
                seen.push((n, f.name));
            }
        }
        for m in MIGRATIONS {
            assert!(
                created(m.sql).is_empty(),
                "migration {} creates a function: functions belong in sql/functions/",
                m.name
            );
            for need in m.needs {
                assert!(FUNCTIONS.iter().any(|f| f.name == *need), "{need}");
            }
        }
    }
}
