//! One function per command; [`run`] picks it.

mod append;
mod export;
mod import;
mod migrate;
mod projections;
mod read;
mod roles;

use std::io::{BufWriter, Write};

use dcbstore::limits::Limits;
use dcbstore::{Error, Store};

use crate::args::{Cli, Command, ProjectionsCommand};

/// How a command ended, for the exit status.
pub(crate) enum Outcome {
    Done,
    Conflict,
}

/// What every command is given: the database, and the store's limits.
pub(crate) struct Ctx {
    pub(crate) url: String,
    pub(crate) limits: Limits,
}

impl Ctx {
    /// A store on the database, with the configured limits.
    pub(crate) async fn store(&self) -> Result<Store, Error> {
        Store::builder(&self.url)?.limits(self.limits).build().await
    }
}

/// Runs the command of `cli`; stdout carries only its results.
pub(crate) async fn run(cli: Cli) -> Result<Outcome, Error> {
    let url = cli.database_url.filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::Config("no database given: pass --database-url or set DATABASE_URL".into())
    })?;
    let ctx = Ctx {
        url,
        limits: cli.limits.limits(),
    };
    let ctx = &ctx;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let out: &mut dyn Write = &mut out;
    let outcome = match cli.command {
        Command::Migrate => migrate::migrate(ctx, out).await?,
        Command::Status { json } => migrate::status(ctx, json, out).await?,
        Command::Head => read::head(ctx, out).await?,
        Command::Append {
            fail_if,
            after,
            condition,
        } => append::append(ctx, fail_if, after, condition, out).await?,
        Command::Grant { role, redact } => roles::grant(ctx, &role, redact, out).await?,
        Command::Redact {
            position,
            data,
            metadata,
            reason,
        } => roles::redact(ctx, position, &data, metadata.as_ref(), &reason, out).await?,
        Command::Export { after, output } => export::export(ctx, after, output, out).await?,
        Command::Import {
            input,
            batch_size,
            json,
        } => import::import(ctx, input, batch_size, json, out).await?,
        Command::Projections {
            command: ProjectionsCommand::Status { json },
        } => projections::status(ctx, json).await?,
        Command::Read {
            query,
            types,
            tags,
            after,
            from,
            to,
            backwards,
            limit,
            follow,
        } => {
            let window = read::Window {
                after,
                from,
                to,
                backwards,
                limit,
            };
            if follow {
                read::follow(ctx, query, types, tags, window, out).await?
            } else {
                read::read(ctx, query, types, tags, window, out).await?
            }
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
