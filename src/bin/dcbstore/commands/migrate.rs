//! `dcbstore migrate` and `dcbstore status`: the schema.

use std::io::Write;

use dcbstore::connection::{connect, ConnectOptions};
use dcbstore::migrate::{self, SchemaState};
use dcbstore::Error;

use super::{output_error, write_json, Ctx, Outcome};

/// Applies pending migrations and function files; says what it did.
pub(crate) async fn migrate(ctx: &Ctx, out: &mut dyn Write) -> Result<Outcome, Error> {
    let mut client = connect(&ConnectOptions::parse(&ctx.url)?).await?;
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

/// Prints where the database stands relative to this build.
pub(crate) async fn status(ctx: &Ctx, json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let client = connect(&ConnectOptions::parse(&ctx.url)?).await?;
    let s = migrate::status(&client).await?;
    if json {
        write_json(out, &s)?;
        return Ok(Outcome::Done);
    }
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
    let mut lines = vec![
        format!("state:             {}", s.state),
        format!("installed version: {installed}"),
        format!("expected version:  {}", s.expected_version),
        format!("pending:           {pending}"),
        format!("pending functions: {functions}"),
        format!("store id:          {id}"),
    ];
    match s.state {
        SchemaState::Fresh | SchemaState::Pending => {
            lines.push("run `dcbstore migrate` to install the schema".into());
        }
        SchemaState::Ahead => {
            lines.push("this build refuses to use this database: upgrade dcbstore".into());
        }
        SchemaState::UpToDate => {}
    }
    for line in lines {
        writeln!(out, "{line}").map_err(output_error)?;
    }
    Ok(Outcome::Done)
}
