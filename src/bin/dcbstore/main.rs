//! The `dcbstore` command-line tool: schema, log, roles, export and import.
//!
//! Exit status: 0 success, 1 error, 2 usage, 3 append condition failed.

mod args;
mod commands;
mod input;
mod logging;
#[cfg(test)]
#[path = "../../test_strategies.rs"]
mod test_strategies;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, EXIT_CONFLICT};
use commands::Outcome;

// What the shared property-test strategies name through `crate::`.
#[cfg(test)]
use dcbstore::{limits, AppendCondition, AppendGuard, Event, Query, QueryItem, SequencePosition};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(message) = cli.check_limits() {
        let _ = Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .print();
        return ExitCode::from(2);
    }
    let secrets = cli
        .database_url
        .as_deref()
        .map(dcbstore::connection::secrets)
        .unwrap_or_default();
    logging::init_logging(cli.log_format, secrets.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcbstore: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Conflict) => ExitCode::from(EXIT_CONFLICT),
        Err(e) => {
            // Defence in depth: whatever the error says, no password from the
            // connection string is printed.
            eprintln!(
                "dcbstore: {}",
                dcbstore::connection::redact(&e.to_string(), &secrets)
            );
            ExitCode::from(1)
        }
    }
}
