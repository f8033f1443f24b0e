//! `dcbstore migrate` and `dcbstore status`: the schema.

use std::io::Write;

use dcbstore::migrate::{self, SchemaState, SchemaStatus};
use dcbstore::Error;

use super::{output_error, write_json, Ctx, Outcome};

/// Applies pending migrations and function files; says what it did.
pub(crate) async fn migrate(ctx: &Ctx, out: &mut dyn Write) -> Result<Outcome, Error> {
    let mut client = ctx.connect().await?;
    let report = migrate::migrate(&mut client).await?;
    for m in &report.applied {
        writeln!(out, "applied migration {} ({})", m.version, m.name).map_err(output_error)?;
    }
    for f in &report.functions {
        writeln!(out, "applied functions {f}").map_err(output_error)?;
    }
    for f in &report.dropped {
        writeln!(out, "dropped function {f}").map_err(output_error)?;
    }
    if report.applied.is_empty() && report.functions.is_empty() && report.dropped.is_empty() {
        writeln!(
            out,
            "schema already up to date (version {})",
            report.status.expected_version
        )
    } else {
        writeln!(out, "schema at version {}", report.status.expected_version)
    }
    .map_err(output_error)?;
    Ok(Outcome::Done)
}

/// Exit status of `status --check` when the database needs `dcbstore
/// migrate` (fresh or pending).
pub(crate) const EXIT_NEEDS_MIGRATE: u8 = 4;
/// Exit status of a `--check` that found something wrong: the database is
/// ahead of this build, or a migration's checksum does not match.
pub(crate) const EXIT_WRONG: u8 = 5;

/// Prints where the database stands relative to this build (every part of
/// it, even when a checksum does not match). With `check`, the exit status
/// says it: 0 up to date, 4 fresh or pending, 5 ahead or a checksum
/// mismatch. Without it, a mismatch is an error (exit 1) after the report.
pub(crate) async fn status(
    ctx: &Ctx,
    json: bool,
    check: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = ctx.connect().await?;
    let s = migrate::status_report(&client).await?;
    if json {
        write_json(out, &s)?;
    } else {
        for line in report(&s) {
            writeln!(out, "{line}").map_err(output_error)?;
        }
    }
    let mismatch = s.checksum_mismatches.first();
    if check {
        let code = match s.state {
            _ if mismatch.is_some() => EXIT_WRONG,
            SchemaState::UpToDate => return Ok(Outcome::Done),
            SchemaState::Fresh | SchemaState::Pending => EXIT_NEEDS_MIGRATE,
            SchemaState::Ahead => EXIT_WRONG,
        };
        return Ok(Outcome::Check(code));
    }
    match mismatch {
        Some(m) => Err(Error::ChecksumMismatch {
            version: m.version,
            name: m.name.clone(),
            applied: m.applied.clone(),
            expected: m.expected.clone(),
        }),
        None => Ok(Outcome::Done),
    }
}

/// The text report: aligned `key: value` lines, then what to do.
fn report(s: &SchemaStatus) -> Vec<String> {
    let none_or = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let installed = s.installed_version.map_or("none".into(), |v| v.to_string());
    let pending = none_or(
        s.pending
            .iter()
            .map(|m| format!("{} ({})", m.version, m.name))
            .collect(),
    );
    let functions = none_or(s.pending_functions.clone());
    let id = s.store_id.map_or("none".into(), |i| i.to_string());
    let state = if s.checksum_mismatches.is_empty() {
        s.state.to_string()
    } else {
        "checksum mismatch".to_string()
    };
    let mut lines = vec![
        format!("state:             {state}"),
        format!("installed version: {installed}"),
        format!("expected version:  {}", s.expected_version),
        format!("pending:           {pending}"),
        format!("pending functions: {functions}"),
        format!("store id:          {id}"),
    ];
    for m in &s.checksum_mismatches {
        lines.push(format!(
            "mismatch:          migration {} ({}) has checksum {} in the database, this build's copy has {}",
            m.version, m.name, m.applied, m.expected
        ));
    }
    if let Some(m) = s.checksum_mismatches.first() {
        lines.push(format!(
            "migration {} ({}) was changed by hand or applied by a different build: run the dcbstore build that migrated this database, or restore the database from a backup; this build refuses it until the checksums match",
            m.version, m.name
        ));
        return lines;
    }
    match s.state {
        SchemaState::Fresh | SchemaState::Pending => {
            lines.push("run `dcbstore migrate` to install the schema".into());
        }
        SchemaState::Ahead => {
            lines.push("this build refuses to use this database: upgrade dcbstore".into());
        }
        SchemaState::UpToDate => {}
    }
    lines
}
