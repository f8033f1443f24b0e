//! The command line: every command, flag and environment variable of the
//! `dcbstore` tool (the contract users script against).

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::input::{
    parse_condition_with, parse_json_object_with, parse_json_with, parse_query_with,
};
use dcbstore::limits::{Limit, Limits};
use dcbstore::{AppendCondition, Query};

// Flags are parsed against the most a store accepts; `Cli::check_limits`
// holds them to the configured limits afterwards.
fn any_query(s: &str) -> Result<Query, String> {
    parse_query_with(s, &Limits::CEILING)
}
fn any_condition(s: &str) -> Result<AppendCondition, String> {
    parse_condition_with(s, &Limits::CEILING)
}
fn any_json(s: &str) -> Result<Value, String> {
    parse_json_with(s, &Limits::CEILING)
}
fn any_json_object(s: &str) -> Result<Map<String, Value>, String> {
    parse_json_object_with(s, &Limits::CEILING)
}

/// The highest position: PostgreSQL's `bigint`.
pub(crate) const MAX_POSITION: u64 = i64::MAX as u64;

/// A position argument: 1..=9223372036854775807.
fn position(s: &str) -> Result<u64, String> {
    parse_position(s, 1)
}

/// An `--after` argument: a position, or 0 ("from the start").
fn after_position(s: &str) -> Result<u64, String> {
    parse_position(s, 0)
}

fn parse_position(s: &str, min: u64) -> Result<u64, String> {
    let range = format!("{min} to {MAX_POSITION}");
    match s.trim().parse::<u64>() {
        Ok(p) if (min..=MAX_POSITION).contains(&p) => Ok(p),
        Ok(p) => Err(format!(
            "position {p} is out of range: positions are {range}"
        )),
        Err(_) => Err(format!(
            "{s:?} is not a position: a whole number from {range}"
        )),
    }
}

/// The line format `append --help` shows.
const APPEND_LINES: &str = r#"Input: one JSON object per line (blank lines are skipped, and counted in messages):
  {"type": "T", "data": JSON, "tags": ["x:1", ...], "metadata": {...}, "id": "UUID"}
  only "type" is required; give "id" to make a retry idempotent.

Example:
  echo '{"type":"CourseDefined","data":{"courseId":"c1"},"tags":["course:c1"]}' \
    | dcbstore append --fail-if '[{"types":["CourseDefined"],"tags":["course:c1"]}]' --after 0
  # {"position":1,"first_position":1,"ids":["..."],"already_stored":false}

A JSON array is not accepted: turn it into lines with `jq -c '.[]' events.json | dcbstore append`."#;

/// Exit status when an append condition fails.
pub(crate) const EXIT_CONFLICT: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "dcbstore", version, about = "DCB event store on PostgreSQL")]
pub(crate) struct Cli {
    /// PostgreSQL connection string (URL or key=value); else DATABASE_URL from ./.env, else the PG* variables and ~/.pgpass as for psql.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub(crate) database_url: Option<String>,

    /// A streaming replica for reads (repeatable; DCBSTORE_REPLICA_URLS: comma-separated). read, export and serve read there when it is healthy and holds what they must see.
    #[arg(
        long = "replica",
        value_name = "URL",
        env = "DCBSTORE_REPLICA_URLS",
        value_delimiter = ',',
        global = true,
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub(crate) replicas: Vec<String>,

    /// Log format on stderr (levels from DCBSTORE_LOG, e.g. "info" or "dcbstore=debug"; default "warn").
    #[arg(
        long,
        value_enum,
        env = "DCBSTORE_LOG_FORMAT",
        global = true,
        default_value = "text",
        help_heading = "Global options"
    )]
    pub(crate) log_format: LogFormat,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The store's limits, from flags or the environment (`DCBSTORE_MAX_*`);
/// each one left out keeps its default.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options: limits (default: the documented limits)")]
pub(crate) struct LimitArgs {
    /// Events in one append [default: 10000].
    #[arg(
        long,
        env = "DCBSTORE_MAX_EVENTS_PER_APPEND",
        global = true,
        value_name = "N"
    )]
    max_events_per_append: Option<usize>,
    /// Bytes of one event's data and metadata, as JSON [default: 1048576].
    #[arg(
        long,
        env = "DCBSTORE_MAX_EVENT_BYTES",
        global = true,
        value_name = "N"
    )]
    max_event_bytes: Option<usize>,
    /// Bytes of one append, as JSON [default: 67108864].
    #[arg(
        long,
        env = "DCBSTORE_MAX_APPEND_BYTES",
        global = true,
        value_name = "N"
    )]
    max_append_bytes: Option<usize>,
    /// Tags on one event [default and most: 100].
    #[arg(
        long,
        env = "DCBSTORE_MAX_TAGS_PER_EVENT",
        global = true,
        value_name = "N"
    )]
    max_tags_per_event: Option<usize>,
    /// Bytes of a type, a tag or a query term [default and most: 256].
    #[arg(long, env = "DCBSTORE_MAX_NAME_BYTES", global = true, value_name = "N")]
    max_name_bytes: Option<usize>,
    /// Nesting of data and metadata [default: 100; most: 127].
    #[arg(long, env = "DCBSTORE_MAX_JSON_DEPTH", global = true, value_name = "N")]
    max_json_depth: Option<usize>,
    /// Items in one query [default: 128].
    #[arg(
        long,
        env = "DCBSTORE_MAX_QUERY_ITEMS",
        global = true,
        value_name = "N"
    )]
    max_query_items: Option<usize>,
    /// Types, or tags, in one query item [default: 100].
    #[arg(long, env = "DCBSTORE_MAX_ITEM_TERMS", global = true, value_name = "N")]
    max_item_terms: Option<usize>,
    /// Guards in one append condition [default: 100].
    #[arg(long, env = "DCBSTORE_MAX_GUARDS", global = true, value_name = "N")]
    max_guards: Option<usize>,
}

impl LimitArgs {
    /// Whether any limit was given (else the store uses the database's).
    pub(crate) fn any_given(&self) -> bool {
        [
            self.max_events_per_append,
            self.max_event_bytes,
            self.max_append_bytes,
            self.max_tags_per_event,
            self.max_name_bytes,
            self.max_json_depth,
            self.max_query_items,
            self.max_item_terms,
            self.max_guards,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// The limits: the defaults, with what was given.
    pub(crate) fn limits(&self) -> Limits {
        let mut limits = Limits::DEFAULT;
        for (limit, value) in [
            (Limit::EventsPerAppend, self.max_events_per_append),
            (Limit::EventBytes, self.max_event_bytes),
            (Limit::AppendBytes, self.max_append_bytes),
            (Limit::TagsPerEvent, self.max_tags_per_event),
            (Limit::NameBytes, self.max_name_bytes),
            (Limit::JsonDepth, self.max_json_depth),
            (Limit::QueryItems, self.max_query_items),
            (Limit::ItemTerms, self.max_item_terms),
            (Limit::Guards, self.max_guards),
        ] {
            if let Some(v) = value {
                limits.set(limit, v);
            }
        }
        limits
    }
}

impl Cli {
    /// Holds the flags' queries, conditions and JSON to the configured
    /// limits (they were parsed against the most a store accepts). A
    /// message for a usage error.
    pub(crate) fn check_limits(&self) -> Result<(), String> {
        let limits = self.limits.limits();
        limits.validate().map_err(|e| e.to_string())?;
        let queries = match &self.command {
            Command::Read { query, .. } => query.iter().collect(),
            Command::Append { fail_if, .. } => fail_if.iter().collect(),
            _ => Vec::new(),
        };
        for q in queries {
            q.validate_with(&limits).map_err(|e| e.to_string())?;
        }
        match &self.command {
            Command::Append {
                condition: Some(c), ..
            } => c.validate_with(&limits).map_err(|e| e.to_string()),
            Command::Redact { data, metadata, .. } => {
                limits
                    .check_data("the data", data)
                    .map_err(|e| e.to_string())?;
                match metadata {
                    Some(m) => limits
                        .check_metadata("the metadata", m)
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// How log records are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per record.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply pending schema migrations (safe to run concurrently; a no-op when up to date).
    Migrate,
    /// Show the schema state: fresh, pending, up to date, or database newer than this build.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 only when up to date: 4 when fresh or pending (run `dcbstore migrate`), 5 when ahead of this build or a checksum does not match.
        #[arg(long)]
        check: bool,
    },
    /// Print the head position, or null when the store is empty.
    Head,
    /// Append the events read as JSON lines from stdin, as one atomic batch.
    #[command(after_help = APPEND_LINES)]
    Append {
        /// Fail if events matching this query exist after --after (QUERY: all, or [{"types": [...], "tags": [...]}, ...]).
        #[arg(long, value_name = "QUERY", value_parser = any_query)]
        fail_if: Option<Query>,
        /// Position the --fail-if query is checked after (0: from the start).
        #[arg(long, value_name = "N", requires = "fail_if", value_parser = after_position)]
        after: Option<u64>,
        /// Several guards: [{"query": QUERY, "after": N}, ...].
        #[arg(long, value_name = "GUARDS", value_parser = any_condition, conflicts_with_all = ["fail_if", "after"])]
        condition: Option<AppendCondition>,
    },
    /// Grant a role an application's rights (append and read) or, with --read-only, read only (run as the schema's owner, after each migrate).
    Grant {
        /// The role (an application's, or with --read-only a console's).
        role: String,
        /// Also allow it to redact events (audited erasure of personal data).
        #[arg(long)]
        redact: bool,
        /// Also allow it to import (`dcbstore import`, which keeps each event's
        /// recorded_at): for a migration or restore role, not an application.
        /// A grant without it takes it back.
        #[arg(long, conflicts_with = "read_only")]
        import: bool,
        /// Read only, for the operations console and reporting tools.
        ///
        /// The role may read events, projections' checkpoints, dead letters
        /// and the schema status, and follow the log; it may not append,
        /// change checkpoints or dead letters, or redact. Takes back whatever
        /// an earlier grant gave beyond that (redact included).
        #[arg(long, conflicts_with = "redact")]
        read_only: bool,
    },
    /// Serve the operations console: web pages of the log, projections, dead letters and schema, and /metrics.
    #[cfg(feature = "console")]
    #[command(
        long_about = "Serve the operations console over HTTP: the overview (head, volume by type, most \
used tags, appends per minute), events by type, tag and window with shareable pages and a live mode, \
projections and subscribers with their lag, dead letters, the schema file, /metrics (Prometheus text \
format), /healthz and /readyz.\n\nIt binds 127.0.0.1:7433 unless --listen says otherwise; any other \
address needs a token of at least 16 characters (--token-file, DCBSTORE_CONSOLE_TOKEN or --token; browsers \
log in once through a form) or --insecure-no-auth. On loopback without a token it makes up a random one and \
prints the URL that carries it once on stderr. It only reads unless --allow-actions is given. Run it with a \
read-only role: `dcbstore grant ROLE --read-only`."
    )]
    Serve {
        /// Address to listen on (host:port).
        #[arg(long, value_name = "ADDR", default_value = dcbstore_console::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Bearer token every page and /metrics require (browsers log in with it once). On the
        /// command line it shows in the process list: prefer --token-file or DCBSTORE_CONSOLE_TOKEN.
        /// Without any, a loopback console makes up a random token and prints its URL once.
        #[arg(
            long,
            value_name = "TOKEN",
            env = "DCBSTORE_CONSOLE_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// Read the token from this file (its first line), instead of --token or DCBSTORE_CONSOLE_TOKEN.
        #[arg(long, value_name = "PATH")]
        token_file: Option<std::path::PathBuf>,
        /// Also answer to this host name (repeatable): the name a proxy or a browser uses. Requests
        /// for names other than localhost, the console's address and these get 421 (DNS rebinding).
        #[arg(long, value_name = "NAME")]
        allowed_host: Vec<String>,
        /// Serve without a token: a non-loopback address, or loopback without the random token it
        /// would make up (only behind an authenticating proxy).
        #[arg(long)]
        insecure_no_auth: bool,
        /// Allow retrying and discarding dead letters (POST forms with a CSRF token).
        #[arg(long)]
        allow_actions: bool,
        /// The application's committed schema file, shown at /schema.
        #[arg(long, value_name = "FILE")]
        schema: Option<std::path::PathBuf>,
    },
    /// Replace an event's data, keeping its position, id, type and tags; audited in dcbstore.redactions.
    Redact {
        /// Position of the event.
        #[arg(long, value_name = "N", value_parser = position)]
        position: u64,
        /// The replacement data (JSON; null erases all of it).
        #[arg(long, value_name = "JSON", value_parser = any_json)]
        data: Value,
        /// Also replace the metadata with this JSON object.
        #[arg(long, value_name = "JSON", value_parser = any_json_object)]
        metadata: Option<Map<String, Value>>,
        /// Why (kept in the audit record).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// List the audit rows of redactions (dcbstore.redactions) as JSON lines, oldest first.
    Redactions {
        /// Only those of the event at position N.
        #[arg(long, value_name = "N", value_parser = position)]
        position: Option<u64>,
    },
    /// Durable projections (their runners live in applications).
    Projections {
        #[command(subcommand)]
        command: ProjectionsAction,
    },
    /// Print matching events as JSON lines (with --follow: then each new one as it commits).
    #[command(
        long_about = "Print the events matching the query within the window, one JSON line each, in \
position order (highest first with --backwards).\n\nWith --follow, keep going: after the history, print \
each matching event as it commits, flushing every line, until --to or --limit is reached, SIGINT or \
SIGTERM (exit 0), or stdout closes (exit 0, quietly). A lost connection is retried with backoff and \
resumed after the last printed position; nothing is skipped or printed twice."
    )]
    Read {
        /// QUERY: all, or [{"types": [...], "tags": [...]}, ...].
        #[arg(long, value_name = "QUERY", value_parser = any_query, conflicts_with_all = ["types", "tags"])]
        query: Option<Query>,
        /// Event type (repeatable; OR'd).
        #[arg(long = "type", value_name = "T")]
        types: Vec<String>,
        /// Tag (repeatable; AND'd).
        #[arg(long = "tag", value_name = "X")]
        tags: Vec<String>,
        /// Only positions greater than N (0: from the start; beyond the head: nothing).
        #[arg(long, value_name = "N", conflicts_with = "from", value_parser = after_position)]
        after: Option<u64>,
        /// Only positions from N on.
        #[arg(long, value_name = "N", value_parser = position)]
        from: Option<u64>,
        /// Only positions up to N.
        #[arg(long, value_name = "N", value_parser = position)]
        to: Option<u64>,
        /// Highest positions first.
        #[arg(long)]
        backwards: bool,
        /// At most N events.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// After the history, print new events as they commit (until --to, --limit, or a signal).
        #[arg(long, short = 'f', conflicts_with = "backwards")]
        follow: bool,
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
        #[arg(long, value_name = "N", value_parser = after_position)]
        after: Option<u64>,
        /// Write to FILE instead of stdout (written as FILE.partial, renamed when complete); an existing FILE is refused unless --force.
        #[arg(long, short, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Overwrite FILE when it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Append events from JSON lines, keeping their ids: idempotent and resumable.
    #[command(
        long_about = "Append events from JSON lines (an export, or lines written for another \
store), keeping their ids. Each line: {\"id\", \"type\", \"data\", \"tags\", \"metadata\"}; id and \
type are required, position is accepted and ignored (the store assigns positions), recorded_at \
is kept (raised where it would go back along positions); a full export imported into an empty \
store is the same log, positions and times included. Lines go in batches: each batch is validated whole, ids stored with the same \
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
pub(crate) enum ProjectionsAction {
    /// Each projection: checkpoint, head, lag, state, last error, last update.
    Status {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Exit 4 when a projection has failed (or lags more than --max-lag events).
        #[arg(long)]
        check: bool,
        /// With --check: the most events a projection may lag behind the head.
        #[arg(long, value_name = "N", requires = "check")]
        max_lag: Option<u64>,
    },
}
