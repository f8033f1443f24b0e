//! One function per command; [`run`] picks it.

mod append;
mod export;
mod import;
mod migrate;
mod projections;
mod read;
mod roles;

use std::io::{BufWriter, Write};

use dcbstore::Error;

use crate::args::{Cli, Command, ProjectionsCommand};

/// How a command ended, for the exit status.
pub(crate) enum Outcome {
    Done,
    Conflict,
}

/// Runs the command of `cli`; stdout carries only its results.
pub(crate) async fn run(cli: Cli) -> Result<Outcome, Error> {
    let url = cli.database_url.filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::Config("no database given: pass --database-url or set DATABASE_URL".into())
    })?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let out: &mut dyn Write = &mut out;
    let outcome = match cli.command {
        Command::Migrate => migrate::migrate(&url, out).await?,
        Command::Status { json } => migrate::status(&url, json, out).await?,
        Command::Head => read::head(&url, out).await?,
        Command::Append {
            fail_if,
            after,
            condition,
        } => append::append(&url, fail_if, after, condition, out).await?,
        Command::Grant { role, redact } => roles::grant(&url, &role, redact, out).await?,
        Command::Redact {
            position,
            data,
            metadata,
            reason,
        } => roles::redact(&url, position, &data, metadata.as_ref(), &reason, out).await?,
        Command::Export { after, output } => export::export(&url, after, output, out).await?,
        Command::Import {
            input,
            batch_size,
            json,
        } => import::import(&url, input, batch_size, json, out).await?,
        Command::Projections {
            command: ProjectionsCommand::Status { json },
        } => projections::status(&url, json).await?,
        Command::Read {
            query,
            types,
            tags,
            after,
            from,
            to,
            backwards,
            limit,
        } => {
            let window = read::Window {
                after,
                from,
                to,
                backwards,
                limit,
            };
            read::read(&url, query, types, tags, window, out).await?
        }
    };
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(output_error(e)),
        _ => Ok(outcome),
    }
}

/// An error writing the command's results.
pub(crate) fn output_error(e: std::io::Error) -> Error {
    Error::io("cannot write output", e)
}

/// `value` as one JSON line on `out`.
pub(crate) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), Error> {
    let line = serde_json::to_string(value).map_err(|e| Error::output(e.to_string()))?;
    writeln!(out, "{line}").map_err(output_error)
}
