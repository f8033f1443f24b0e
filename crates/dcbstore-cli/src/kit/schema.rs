//! The `schema` kit: `dump`, `verify`, `compat` and `catalog` of an
//! application's event definitions against its committed schema file.
//!
//! Mount [`SchemaCommand`] in the application's clap CLI (see
//! [the kits](crate::kit)), or let [`run`] parse the arguments:
//!
//! ```no_run
//! use dcbstore::schema::SchemaRegistry;
//! use std::path::Path;
//!
//! fn main() {
//!     let registry = SchemaRegistry::new(); // .register::<YourEvent>() ...
//!     // `myapp schema verify`: pass the arguments after the program name.
//!     let code = dcbstore_cli::kit::schema::run(
//!         &registry,
//!         Path::new("events.schema.json"),
//!         std::env::args().skip(1),
//!     );
//!     std::process::exit(code);
//! }
//! ```

use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};

use dcbstore::schema::{
    catalog, compat, dump, verify, CatalogFormat, SchemaError, SchemaFile, SchemaRegistry,
};

/// The usage text.
pub const USAGE: &str = "\
usage: schema <command>

commands:
  dump              write the schema file from the registered event definitions
  verify            fail (with a diff) when the schema file is out of date
  compat            list breaking changes against the latest committed versions
  catalog [--json]  print every event's latest version (Markdown, or JSON)
";

/// The schema commands, as a clap subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SchemaCommand {
    /// Write the schema file from the registered event definitions.
    Dump,
    /// Fail (with a diff) when the schema file is out of date.
    Verify,
    /// List breaking changes against the latest committed versions.
    Compat,
    /// Print every event's latest version (Markdown, or JSON).
    Catalog {
        /// Print JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print Markdown (the default).
        #[arg(long)]
        markdown: bool,
    },
}

/// `schema <command>` as a program of its own, for [`run_with`].
#[derive(Debug, Parser)]
#[command(name = "schema", disable_help_subcommand = true)]
struct Args {
    #[command(subcommand)]
    command: SchemaCommand,
}

impl SchemaCommand {
    /// Runs the command against `registry` and the schema file at `path`,
    /// printing to `out` and errors to `err`; returns the process exit code:
    /// 0 on success, 1 on failure (drift, breaking changes, an invalid
    /// definition or file).
    pub fn run(
        &self,
        registry: &SchemaRegistry,
        path: &Path,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> i32 {
        let result = match self {
            SchemaCommand::Dump => run_dump(registry, path, out),
            SchemaCommand::Verify => verify(registry, path).and_then(|()| {
                let n = SchemaFile::load_or_empty(path)?.events.len();
                let _ = writeln!(out, "{} is up to date ({n} event versions)", path.display());
                Ok(0)
            }),
            SchemaCommand::Compat => compat(registry, path).map(|changes| {
                if changes.is_empty() {
                    let _ = writeln!(out, "no breaking changes");
                    return 0;
                }
                for change in &changes {
                    let _ = writeln!(out, "{change}");
                }
                1
            }),
            SchemaCommand::Catalog { json: true, .. } => {
                print_catalog(registry, path, CatalogFormat::Json, out)
            }
            SchemaCommand::Catalog { .. } => {
                print_catalog(registry, path, CatalogFormat::Markdown, out)
            }
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                1
            }
        }
    }
}

/// Runs a schema command, printing to stdout and errors to stderr, and
/// returns the process exit code: 0 on success, 1 on failure (drift,
/// breaking changes, an invalid definition or file), 2 on a usage error.
///
/// `args` are the command and its options (`["verify"]`,
/// `["catalog", "--json"]`); a leading `"schema"` is skipped, so the
/// arguments after the program name of `myapp schema verify` work as they are.
pub fn run(registry: &SchemaRegistry, path: &Path, args: impl IntoIterator<Item = String>) -> i32 {
    run_with(
        registry,
        path,
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// [`run`] with its output and error streams given.
pub fn run_with(
    registry: &SchemaRegistry,
    path: &Path,
    args: impl IntoIterator<Item = String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut args: Vec<String> = args.into_iter().collect();
    if args.first().is_some_and(|a| a == "schema") {
        args.remove(0);
    }
    if matches!(args.as_slice(), [help] if help == "help") {
        let _ = write!(out, "{USAGE}");
        return 0;
    }
    let parsed = Args::try_parse_from(std::iter::once("schema".to_string()).chain(args));
    match parsed {
        Ok(a) => a.command.run(registry, path, out, err),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = write!(out, "{USAGE}");
            0
        }
        Err(_) => {
            let _ = write!(err, "{USAGE}");
            2
        }
    }
}

fn print_catalog(
    registry: &SchemaRegistry,
    path: &Path,
    format: CatalogFormat,
    out: &mut dyn Write,
) -> Result<i32, SchemaError> {
    let text = catalog(registry, path, format)?;
    let _ = write!(out, "{text}");
    Ok(0)
}

fn run_dump(
    registry: &SchemaRegistry,
    path: &Path,
    out: &mut dyn Write,
) -> Result<i32, SchemaError> {
    let before = SchemaFile::load_or_empty(path)?;
    let after = dump(registry, path)?;
    let mut changed = false;
    for e in &after.events {
        match before.version(&e.name, e.version) {
            None => {
                changed = true;
                let _ = writeln!(out, "added {} v{}", e.name, e.version);
            }
            Some(old) if old.level != e.level => {
                changed = true;
                let _ = writeln!(
                    out,
                    "{} v{}: level {} -> {}",
                    e.name, e.version, old.level as u8, e.level as u8
                );
            }
            Some(_) => {}
        }
    }
    let _ = writeln!(
        out,
        "{} {} ({} event versions)",
        if changed { "wrote" } else { "unchanged:" },
        path.display(),
        after.events.len()
    );
    Ok(0)
}
