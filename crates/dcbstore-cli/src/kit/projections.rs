//! The `projections` kit: `status`, `rebuild NAME` and `run` of an
//! application's durable projections (projections are the application's
//! code, so the `dcbstore` tool itself can only show their status).
//!
//! Mount [`ProjectionsCommand`] in the application's clap CLI (see
//! [the kits](crate::kit)), or let [`run`] parse the arguments:
//!
//! ```no_run
//! # use dcbstore::projection::durable::ProjectionRegistry;
//! # async fn f(store: dcbstore::Store, registry: ProjectionRegistry) {
//! // myapp projections status | rebuild <name> | run
//! let code = dcbstore_cli::kit::projections::run(&store, &registry, std::env::args().skip(2)).await;
//! std::process::exit(code);
//! # }
//! ```

use std::time::Duration;

use clap::{Parser, Subcommand};

use dcbstore::projection::durable::{
    status, Progress, ProjectionRegistry, ProjectionStatus, Runner, RunnerConfig,
};
use dcbstore::Error;
use dcbstore::Store;

/// The projection commands, as a clap subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ProjectionsCommand {
    /// Each projection: checkpoint, head, lag, state, last error.
    Status {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild one projection from the log (a progress bar on stderr).
    Rebuild {
        /// The projection's name.
        name: String,
    },
    /// Run every registered projection live, until Ctrl-C.
    Run,
}

/// `projections <command>` as a program of its own, for [`run`].
#[derive(Debug, Parser)]
#[command(name = "projections")]
struct Args {
    #[command(subcommand)]
    command: ProjectionsCommand,
}

impl ProjectionsCommand {
    /// Runs the command against `store` and the projections of `registry`.
    pub async fn run(&self, store: &Store, registry: &ProjectionRegistry) -> dcbstore::Result<()> {
        match self {
            ProjectionsCommand::Status { json } => print_status(store, *json).await,
            ProjectionsCommand::Rebuild { name } => rebuild_with_bar(store, registry, name).await,
            ProjectionsCommand::Run => run_all(store, registry).await,
        }
    }
}

/// Parses `args` (`status [--json]`, `rebuild NAME`, `run`) and runs the
/// command. Returns the exit status: 0, 1 on error, 2 on usage.
pub async fn run(
    store: &Store,
    registry: &ProjectionRegistry,
    args: impl IntoIterator<Item = String>,
) -> i32 {
    let args = std::iter::once("projections".to_string()).chain(args);
    let command = match Args::try_parse_from(args) {
        Ok(a) => a.command,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return 0;
            }
            eprintln!(
                "registered: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            );
            return 2;
        }
    };
    match command.run(store, registry).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Prints [`status`] as a table or as JSON lines.
pub async fn print_status(store: &Store, json: bool) -> dcbstore::Result<()> {
    let rows = status(store).await?;
    let mut out = std::io::stdout().lock();
    write_status(&rows, json, &mut out)
}

/// Writes `rows` as JSON lines, or as a table whose columns align whatever
/// the names' lengths: name, checkpoint, head, lag, state, failures, last
/// update, last error.
pub fn write_status(
    rows: &[ProjectionStatus],
    json: bool,
    out: &mut dyn std::io::Write,
) -> dcbstore::Result<()> {
    let io = |e| Error::io("cannot write the projections' status", e);
    if json {
        for r in rows {
            let line = serde_json::to_string(r).map_err(|e| Error::output(e.to_string()))?;
            writeln!(out, "{line}").map_err(io)?;
        }
        return Ok(());
    }
    let header = [
        "name",
        "checkpoint",
        "head",
        "lag",
        "state",
        "failures",
        "last update",
        "last error",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let error = match (&r.last_error, r.error_position) {
                (Some(e), Some(p)) => format!("at position {p}: {e}"),
                (Some(e), None) => e.clone(),
                _ => "-".into(),
            };
            [
                r.name.clone(),
                r.checkpoint.to_string(),
                r.head.to_string(),
                r.lag.to_string(),
                r.state.clone(),
                r.failures.to_string(),
                r.updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                error,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Numbers align right, text left; the last column is not padded.
    let numeric = [false, true, true, true, false, true, false, false];
    let line = |row: &[String]| {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            if i + 1 == row.len() {
                s.push_str(c);
            } else if numeric[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        s
    };
    let head: Vec<String> = header.iter().map(|h| (*h).to_string()).collect();
    writeln!(out, "{}", line(&head)).map_err(io)?;
    for row in &cells {
        writeln!(out, "{}", line(row)).map_err(io)?;
    }
    Ok(())
}

async fn rebuild_with_bar(
    store: &Store,
    registry: &ProjectionRegistry,
    name: &str,
) -> dcbstore::Result<()> {
    if !registry.names().any(|n| n == name) {
        return Err(Error::Invalid(format!(
            "no projection named {name:?}; registered: {}",
            registry.names().collect::<Vec<_>>().join(", ")
        )));
    }
    let bar = super::progress::bar(
        Some(0),
        "{msg} [{bar:40}] {pos}/{len} positions, {per_sec}, eta {eta}",
    );
    bar.set_message(format!("rebuilding {name}"));
    let mut report = |p: Progress| {
        bar.set_length(p.head);
        bar.set_position(p.checkpoint);
    };
    let applied = registry
        .rebuild_by_name(
            name,
            store,
            &RunnerConfig {
                batch_size: 5000,
                ..RunnerConfig::default()
            },
            Duration::from_secs(10),
            &mut report,
        )
        .await
        .unwrap_or(Ok(0));
    bar.finish_and_clear();
    let applied = applied?;
    eprintln!("rebuilt {name}: {applied} events applied");
    Ok(())
}

async fn run_all(store: &Store, registry: &ProjectionRegistry) -> dcbstore::Result<()> {
    let runners = Runner::start_all(store, registry, RunnerConfig::default());
    eprintln!("running {} projection(s); Ctrl-C stops", runners.len());
    let _ = tokio::signal::ctrl_c().await;
    for r in runners {
        r.stop().await;
    }
    Ok(())
}
