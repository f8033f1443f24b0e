//! The `dcbstore` command-line tool. `main.rs` only calls [`main`].
//!
//! Exit status: 0 success, 1 error, 2 usage, 3 append condition failed.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::connection::{connect, ConnectOptions};
use crate::migrate::{self, SchemaState};
use crate::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};

/// Exit status when an append condition fails.
pub const EXIT_CONFLICT: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "dcbstore", version, about = "DCB event store on PostgreSQL")]
struct Cli {
    /// PostgreSQL connection string (URL or key=value).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    /// Log format on stderr (levels from DCBSTORE_LOG, e.g. "info" or "dcbstore=debug"; default "warn").
    #[arg(
        long,
        value_enum,
        env = "DCBSTORE_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// How log records are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per record.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations (safe to run concurrently; a no-op when up to date).
    Migrate,
    /// Show the schema state: fresh, pending, up to date, or database newer than this build.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the head position, or null when the store is empty.
    Head,
    /// Append the events read as JSON lines from stdin, as one atomic batch.
    Append {
        /// Fail if events matching this query exist after --after (QUERY: "all" or [{"types": [...], "tags": [...]}]).
        #[arg(long, value_name = "QUERY", value_parser = parse_query)]
        fail_if: Option<Query>,
        /// Position the --fail-if query is checked after.
        #[arg(long, value_name = "N", requires = "fail_if",
              value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
        after: Option<u64>,
        /// Several guards: [{"query": QUERY, "after": N}, ...].
        #[arg(long, value_name = "GUARDS", value_parser = parse_condition, conflicts_with_all = ["fail_if", "after"])]
        condition: Option<AppendCondition>,
    },
    /// Grant an application role append and read only (run as the schema's owner, after each migrate).
    Grant {
        /// The application role.
        role: String,
        /// Also allow it to redact events (audited erasure of personal data).
        #[arg(long)]
        redact: bool,
    },
    /// Replace an event's data, keeping its position, id, type and tags; audited in dcbstore.redactions.
    Redact {
        /// Position of the event.
        #[arg(long, value_name = "N")]
        position: u64,
        /// The replacement data (JSON; null erases all of it).
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        data: Value,
        /// Also replace the metadata with this JSON object.
        #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
        metadata: Option<Map<String, Value>>,
        /// Why (kept in the audit record).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Durable projections (their runners live in applications).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Print matching events as JSON lines.
    Read {
        /// QUERY: "all" or [{"types": [...], "tags": [...]}, ...].
        #[arg(long, value_name = "QUERY", value_parser = parse_query, conflicts_with_all = ["types", "tags"])]
        query: Option<Query>,
        /// Event type (repeatable; OR'd).
        #[arg(long = "type", value_name = "T")]
        types: Vec<String>,
        /// Tag (repeatable; AND'd).
        #[arg(long = "tag", value_name = "X")]
        tags: Vec<String>,
        /// Only positions greater than N.
        #[arg(long, value_name = "N", conflicts_with = "from")]
        after: Option<u64>,
        /// Only positions from N on.
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// Only positions up to N.
        #[arg(long, value_name = "N")]
        to: Option<u64>,
        /// Highest positions first.
        #[arg(long)]
        backwards: bool,
        /// At most N events.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Write the log as JSON lines (the shape `read` prints), for backups and migrations.
    #[command(
        long_about = "Write the log as JSON lines, one event per line in the shape `read` prints \
(position, id, type, data, tags, metadata, recorded_at), in position order. The export is a \
snapshot: the head when it starts. The log is streamed in pages (bounded memory). Progress \
and a summary go to stderr; stdout carries only the events."
    )]
    Export {
        /// Only events with a position greater than N (a tail, e.g. since the last backup).
        #[arg(long, value_name = "N")]
        after: Option<u64>,
        /// Write to FILE instead of stdout (written as FILE.partial, renamed when complete).
        #[arg(long, short, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Append events from JSON lines, keeping their ids: idempotent and resumable.
    #[command(
        long_about = "Append events from JSON lines (an export, or lines written for another \
store), keeping their ids. Each line: {\"id\", \"type\", \"data\", \"tags\", \"metadata\"}; id and \
type are required, position and recorded_at are accepted and ignored (the store assigns \
positions and records the import time; a full export imported into an empty store gets its \
positions back). Lines go in batches: each batch is validated whole, ids stored with the same \
content are skipped, an id stored with other content is an error, and the rest is appended \
as one atomic append. Running the import again imports nothing new; after an error, fix the \
input and run it again: it resumes where it stopped."
    )]
    Import {
        /// Read from FILE instead of stdin.
        #[arg(long, short, value_name = "FILE")]
        input: Option<std::path::PathBuf>,
        /// Events per batch (each batch is one atomic append).
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch_size: u64,
        /// Also print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each projection: checkpoint, head, lag, state, last error.
    Status {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

/// Structured logs on stderr only (stdout carries command results), with
/// every secret of the connection string masked in each record.
fn init_logging(format: LogFormat, secrets: Vec<String>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DCBSTORE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let writer = move || Redacting {
        secrets: secrets.clone(),
        inner: std::io::stderr(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Masks secrets in each formatted record (the formatter writes a record
/// in one call).
struct Redacting {
    secrets: Vec<String>,
    inner: std::io::Stderr,
}

impl Write for Redacting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = crate::connection::redact(&text, &self.secrets);
        self.inner.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `redact --data`: JSON an appended event's data could hold (no NUL, the
/// nesting limit), so a redaction never stores what an append refuses.
fn parse_json(s: &str) -> Result<Value, String> {
    let v = serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))?;
    crate::append::check_json("the data", &v, 0).map_err(|e| e.to_string())?;
    Ok(v)
}

/// `redact --metadata`: a JSON object, with the checks of [`parse_json`].
fn parse_json_object(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))? {
        Value::Object(m) => {
            crate::append::check_object("the metadata", &m, 1).map_err(|e| e.to_string())?;
            Ok(m)
        }
        _ => Err("metadata must be a JSON object".into()),
    }
}

fn parse_query(s: &str) -> Result<Query, String> {
    Query::from_json(s).map_err(|e| e.to_string())
}

fn parse_condition(s: &str) -> Result<AppendCondition, String> {
    let c: AppendCondition = serde_json::from_str(s).map_err(|e| {
        format!("invalid condition JSON (expected [{{\"query\": QUERY, \"after\": N}}, ...]): {e}")
    })?;
    if c.guards.is_empty() {
        return Err("condition has no guards".into());
    }
    // The store's own check (limits, positions), so a bad guard is a usage
    // error rather than a failed append.
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// One line of `dcbstore append` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    id: Option<Uuid>,
}

enum Outcome {
    Done,
    Conflict,
}

/// Runs the CLI with the process arguments and returns the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let secrets = cli
        .database_url
        .as_deref()
        .map(crate::connection::secrets)
        .unwrap_or_default();
    init_logging(cli.log_format, secrets.clone());
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
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Conflict) => ExitCode::from(EXIT_CONFLICT),
        Err(e) => {
            // Defence in depth: whatever the error says, no password from the
            // connection string is printed.
            eprintln!(
                "dcbstore: {}",
                crate::connection::redact(&e.to_string(), &secrets)
            );
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Error> {
    let url = cli.database_url.filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::Config("no database given: pass --database-url or set DATABASE_URL".into())
    })?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let outcome = match cli.command {
        Command::Migrate => {
            let mut client = connect(&ConnectOptions::parse(&url)?).await?;
            let report = migrate::migrate(&mut client).await?;
            if report.applied.is_empty() {
                writeln!(
                    out,
                    "schema already up to date (version {})",
                    report.status.expected_version
                )
            } else {
                for m in &report.applied {
                    writeln!(out, "applied migration {} ({})", m.version, m.name).map_err(io)?;
                }
                writeln!(out, "schema at version {}", report.status.expected_version)
            }
            .map_err(io)?;
            Outcome::Done
        }
        Command::Status { json } => {
            let client = connect(&ConnectOptions::parse(&url)?).await?;
            let s = migrate::status(&client).await?;
            if json {
                let v = serde_json::to_string(&s).map_err(|e| Error::Io(e.to_string()))?;
                writeln!(out, "{v}").map_err(io)?;
            } else {
                let installed = s.installed_version.map_or("none".into(), |v| v.to_string());
                let pending = if s.pending.is_empty() {
                    "none".to_string()
                } else {
                    s.pending
                        .iter()
                        .map(|m| format!("{} ({})", m.version, m.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let id = s.store_id.map_or("none".into(), |i| i.to_string());
                writeln!(out, "state:             {}", s.state).map_err(io)?;
                writeln!(out, "installed version: {installed}").map_err(io)?;
                writeln!(out, "expected version:  {}", s.expected_version).map_err(io)?;
                writeln!(out, "pending:           {pending}").map_err(io)?;
                writeln!(out, "store id:          {id}").map_err(io)?;
                match s.state {
                    SchemaState::Fresh | SchemaState::Pending => {
                        writeln!(out, "run `dcbstore migrate` to install the schema").map_err(io)?
                    }
                    SchemaState::Ahead => writeln!(
                        out,
                        "this build refuses to use this database: upgrade dcbstore"
                    )
                    .map_err(io)?,
                    SchemaState::UpToDate => {}
                }
            }
            Outcome::Done
        }
        Command::Head => {
            let store = Store::connect(&url).await?;
            match store.head().await? {
                Some(p) => writeln!(out, "{p}"),
                None => writeln!(out, "null"),
            }
            .map_err(io)?;
            Outcome::Done
        }
        Command::Append {
            fail_if,
            after,
            condition,
        } => {
            let events = read_events(std::io::stdin().lock())?;
            let condition = condition.or_else(|| {
                fail_if.map(|q| AppendCondition::new(q, after.map(SequencePosition::new)))
            });
            let store = Store::connect(&url).await?;
            match store.append(events, condition).await {
                Ok(a) => {
                    writeln!(out, "{}", json!({"position": a.position})).map_err(io)?;
                    Outcome::Done
                }
                Err(Error::Conflict(conflict)) => {
                    // A struct, not json!, to keep each event's fields in order.
                    #[derive(serde::Serialize)]
                    struct Out<'a> {
                        conflict: &'a crate::Conflict,
                    }
                    let line = serde_json::to_string(&Out {
                        conflict: &conflict,
                    })
                    .map_err(|e| Error::Io(e.to_string()))?;
                    writeln!(out, "{line}").map_err(io)?;
                    Outcome::Conflict
                }
                Err(e) => return Err(e),
            }
        }
        Command::Grant { role, redact } => {
            let client = connect(&ConnectOptions::parse(&url)?).await?;
            let grants = if redact {
                crate::roles::Grants::app().with_redact()
            } else {
                crate::roles::Grants::app()
            };
            crate::roles::grant_app(&client, &role, grants).await?;
            writeln!(
                out,
                "granted {role:?} append and read{}",
                if redact { " and redact" } else { "" }
            )
            .map_err(io)?;
            Outcome::Done
        }
        Command::Redact {
            position,
            data,
            metadata,
            reason,
        } => {
            let client = connect(&ConnectOptions::parse(&url)?).await?;
            let audit = crate::roles::redact(
                &client,
                SequencePosition::new(position),
                &data,
                &reason,
                metadata.as_ref(),
            )
            .await?;
            writeln!(out, "{}", json!({"position": position, "redaction": audit})).map_err(io)?;
            Outcome::Done
        }
        Command::Export { after, output } => {
            let store = Store::connect(&url).await?;
            crate::transfer::run_export(&store, after, output.as_deref(), &mut out).await?;
            Outcome::Done
        }
        Command::Import {
            input,
            batch_size,
            json,
        } => {
            let store = Store::connect(&url).await?;
            crate::transfer::run_import(&store, input.as_deref(), batch_size, json, &mut out)
                .await?;
            Outcome::Done
        }
        Command::Projections {
            command: ProjectionsCommand::Status { json },
        } => {
            let store = Store::connect(&url).await?;
            drop(out);
            crate::durable::cli::print_status(&store, json).await?;
            return Ok(Outcome::Done);
        }
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
            let query = match query {
                Some(q) => q,
                None if types.is_empty() && tags.is_empty() => Query::all(),
                None => Query::item(QueryItem::types(types).and_tags(tags)),
            };
            let mut options = ReadOptions::new();
            if let Some(a) = after {
                options = options.after(SequencePosition::new(a));
            }
            if let Some(f) = from {
                options = options.from(SequencePosition::new(f));
            }
            if let Some(t) = to {
                options = options.to(SequencePosition::new(t));
            }
            if backwards {
                options = options.backwards();
            }
            if let Some(l) = limit {
                options = options.limit(l);
            }
            let store = Store::connect(&url).await?;
            let mut events = store.read(&query, options);
            while let Some(e) = events.next().await {
                let line = serde_json::to_string(&e?).map_err(|e| Error::Io(e.to_string()))?;
                if let Err(e) = writeln!(out, "{line}") {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(Outcome::Done);
                    }
                    return Err(io(e));
                }
            }
            Outcome::Done
        }
    };
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(io(e)),
        _ => Ok(outcome),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(format!("cannot write output: {e}"))
}

/// Parses `dcbstore append` input: one JSON event per line, blank lines skipped.
fn read_events(input: impl BufRead) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::Io(format!("cannot read stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: EventLine = serde_json::from_str(&line)
            .map_err(|e| Error::invalid(format!("line {}: invalid event JSON: {e}", i + 1)))?;
        events.push(Event {
            id: e.id.unwrap_or_else(Uuid::now_v7),
            event_type: e.event_type,
            data: e.data,
            tags: e.tags,
            metadata: e.metadata,
        });
    }
    if events.is_empty() {
        return Err(Error::invalid(
            "no events on stdin: an append needs at least one event (one JSON object per line)",
        ));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_parse_with_defaults_and_reject_unknown_fields() {
        let input = b"{\"type\":\"A\"}\n\n{\"type\":\"B\",\"tags\":[\"x\"],\"data\":{\"n\":1}}\n";
        let events = read_events(&input[..]).expect("parse");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, Value::Null);
        assert_eq!(events[1].tags, ["x"]);
        let err = read_events(&b"{\"type\":\"A\",\"tag\":[\"x\"]}"[..]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(read_events(&b"\n"[..]).is_err());
        assert!(read_events(&b"{\"type\":\"A\",\"metadata\":[]}"[..]).is_err());
    }

    #[test]
    fn condition_json_parses_guards() {
        let c = parse_condition(r#"[{"query":[{"tags":["a"]}],"after":3},{"query":"all"}]"#)
            .expect("parse");
        assert_eq!(c.guards.len(), 2);
        assert_eq!(c.guards[0].after, Some(SequencePosition::new(3)));
        assert_eq!(c.guards[1].after, None);
        assert!(parse_condition("[]").is_err());
        assert!(parse_condition(r#"[{"query":[{}]}]"#).is_err());
        assert!(parse_condition(r#"[{"query":"all","afterr":1}]"#).is_err());
    }
}

#[cfg(test)]
mod proptests;
