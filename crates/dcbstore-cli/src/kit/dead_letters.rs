//! The `dead-letters` kit: `list`, `retry` and `discard` of the events an
//! application's durable subscribers and relays gave up on (retrying runs
//! the application's own handlers and transports, so it lives in the
//! application's command line).
//!
//! ```no_run
//! # use dcbstore_delivery::Deliveries;
//! # async fn f(store: dcbstore::Store, deliveries: Deliveries) {
//! // myapp dead-letters list [--subscriber S] [--json] | retry (--all | POSITION) | discard (--all | POSITION)
//! let code = dcbstore_cli::kit::dead_letters::run(
//!     &store,
//!     &deliveries,
//!     std::env::args().skip(2),
//!     &mut std::io::stdout(),
//! )
//! .await;
//! std::process::exit(code);
//! # }
//! ```

use std::io::Write;

use clap::{Args as ClapArgs, Parser, Subcommand};

use dcbstore::Store;
use dcbstore::{Error, Result};
use dcbstore_delivery::{self as delivery, DeadLetter, Deliveries, RetryReport, Selection};

/// Which dead letters: all of them, or those at one position.
#[derive(Debug, Clone, PartialEq, Eq, ClapArgs)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Every dead letter (of `--subscriber`, or of all).
    #[arg(long)]
    pub all: bool,
    /// The dead letter at this position (of `--subscriber`, or of each
    /// consumer that has one there).
    #[arg(value_name = "POSITION", value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub position: Option<u64>,
}

/// The dead-letter commands, as a clap subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DeadLettersCommand {
    /// The dead letters: consumer, position, attempts, last error, first and last failure.
    List {
        /// Only this subscriber's (or relay's).
        #[arg(long, value_name = "S")]
        subscriber: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Deliver dead letters again; those that go through leave the table.
    Retry {
        /// `--all` or a position.
        #[command(flatten)]
        which: Which,
        /// Only this subscriber's (or relay's).
        #[arg(long, value_name = "S")]
        subscriber: Option<String>,
    },
    /// Remove dead letters without delivering them.
    Discard {
        /// `--all` or a position.
        #[command(flatten)]
        which: Which,
        /// Only this subscriber's (or relay's).
        #[arg(long, value_name = "S")]
        subscriber: Option<String>,
    },
}

#[derive(Debug, Parser)]
#[command(name = "dead-letters")]
struct Args {
    #[command(subcommand)]
    command: DeadLettersCommand,
}

impl DeadLettersCommand {
    /// Runs the command against `store` and the consumers of `deliveries`,
    /// writing its results to `out`.
    pub async fn run(
        &self,
        store: &Store,
        deliveries: &Deliveries,
        out: &mut dyn Write,
    ) -> Result<()> {
        match self {
            DeadLettersCommand::List { subscriber, json } => {
                let letters = delivery::list(store, subscriber.as_deref()).await?;
                write_list(&letters, *json, out)
            }
            DeadLettersCommand::Retry { which, subscriber } => {
                let mut total = RetryReport::default();
                for (name, selection) in targets(store, which, subscriber.as_deref()).await? {
                    let r = deliveries.retry(store, &name, selection).await?;
                    total.tried += r.tried;
                    total.delivered += r.delivered;
                    total.failed += r.failed;
                    total.skipped += r.skipped;
                }
                write_json(out, &total)
            }
            DeadLettersCommand::Discard { which, subscriber } => {
                let mut discarded = 0;
                for (name, selection) in targets(store, which, subscriber.as_deref()).await? {
                    discarded += delivery::discard(store, &name, selection).await?;
                }
                write_json(out, &serde_json::json!({ "discarded": discarded }))
            }
        }
    }
}

/// The consumers and selections a retry or discard covers.
async fn targets(
    store: &Store,
    which: &Which,
    subscriber: Option<&str>,
) -> Result<Vec<(String, Selection)>> {
    let letters = delivery::list(store, subscriber).await?;
    let mut names: Vec<String> = letters
        .iter()
        .filter(|l| which.all || which.position == Some(l.position))
        .map(|l| l.subscriber.clone())
        .collect();
    names.dedup();
    if let (Some(p), true) = (which.position, names.is_empty()) {
        return Err(Error::invalid(format!(
            "no dead letter at position {p}{}: see `dead-letters list`",
            subscriber.map(|s| format!(" for {s}")).unwrap_or_default()
        )));
    }
    let selection = match which.position {
        Some(p) if !which.all => Selection::Position(p),
        _ => Selection::All,
    };
    Ok(names.into_iter().map(|n| (n, selection)).collect())
}

fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    let line = serde_json::to_string(value).map_err(|e| Error::output(e.to_string()))?;
    writeln!(out, "{line}").map_err(|e| Error::io("cannot write the result", e))
}

/// Writes dead letters as JSON lines, or as an aligned table.
pub fn write_list(letters: &[DeadLetter], json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        for l in letters {
            write_json(out, l)?;
        }
        return Ok(());
    }
    let io = |e| Error::io("cannot write the dead letters", e);
    let mut rows = vec![[
        "SUBSCRIBER".to_string(),
        "POSITION".into(),
        "ATTEMPTS".into(),
        "FIRST FAILURE".into(),
        "LAST FAILURE".into(),
        "LAST ERROR".into(),
    ]];
    for l in letters {
        rows.push([
            l.subscriber.clone(),
            l.position.to_string(),
            l.attempts.to_string(),
            l.first_failed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            l.last_failed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            l.last_error.replace('\n', " "),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 5 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end()).map_err(io)?;
    }
    if letters.is_empty() {
        writeln!(out, "(no dead letters)").map_err(io)?;
    }
    Ok(())
}

/// Parses `args` (`list …`, `retry …`, `discard …`) and runs the command.
/// Returns the exit status: 0, 1 on error, 2 on usage.
pub async fn run(
    store: &Store,
    deliveries: &Deliveries,
    args: impl IntoIterator<Item = String>,
    out: &mut dyn Write,
) -> i32 {
    let args = std::iter::once("dead-letters".to_string()).chain(args);
    let command = match Args::try_parse_from(args) {
        Ok(a) => a.command,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match command.run(store, deliveries, out).await {
        Ok(()) => 0,
        Err(e @ Error::Invalid(_)) => {
            eprintln!("error: {e}");
            2
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
