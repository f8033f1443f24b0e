//! One function per command; [`run`] picks it.

mod append;
mod export;
mod import;
mod migrate;
mod projections;
mod read;
mod redactions;
mod roles;
#[cfg(feature = "console")]
mod serve;

use std::io::{BufWriter, Write};

use dcbstore::connection::{ConnectOptions, LIBPQ_VARIABLES};
use dcbstore::limits::Limits;
use dcbstore::{Error, PgErrorExt, Store, StoreBuilder};

use crate::args::{Cli, Command, ProjectionsAction};
use crate::input::cli_wording;

/// How a command ended, for the exit status.
pub(crate) enum Outcome {
    Done,
    Conflict,
    /// A `--check` that found something to do (exit 4) or something wrong
    /// (exit 5); the report is printed.
    Check(u8),
}

/// Why a command failed: a usage error (exit 2: the arguments name
/// something that is not there) or any other error (exit 1).
#[derive(Debug)]
pub(crate) enum Failure {
    Usage(String),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) => f.write_str(m),
            Failure::Error(e) => write!(f, "{e}"),
        }
    }
}

/// What every command is given: the database, and the store's limits.
pub(crate) struct Ctx {
    pub(crate) options: ConnectOptions,
    pub(crate) limits: Limits,
    /// Whether `DCBSTORE_MAX_*` gave limits (else the store takes the
    /// database's, `dcbstore.limits`).
    pub(crate) limits_given: bool,
    /// Replica connection strings (`--replica`, `DCBSTORE_REPLICA_URLS`).
    pub(crate) replicas: Vec<String>,
}

impl Ctx {
    /// A store on the database, with the configured limits.
    pub(crate) async fn store(&self) -> Result<Store, Error> {
        self.builder().build().await
    }

    /// The builder of [`store`](Self::store), for a command that sets more.
    pub(crate) fn builder(&self) -> StoreBuilder {
        let mut builder =
            StoreBuilder::new(self.options.config.clone()).tls(self.options.tls.clone());
        if self.limits_given {
            builder = builder.limits(self.limits);
        }
        for url in self.replicas.iter().filter(|u| !u.trim().is_empty()) {
            builder = builder.replica(url.trim());
        }
        builder
    }

    /// One connection (migrate, status, grant, redact).
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, Error> {
        dcbstore::connection::connect(&self.options).await
    }
}

/// The connection, as psql and sqlx-cli users expect it, first to last:
/// `--database-url`, `DATABASE_URL`, `DATABASE_URL` in a `.env` file of the
/// current directory; for what that string leaves out (all of it when there
/// is none), the `PG*` variables, then the password file
/// ([`ConnectOptions::resolve`]).
pub(crate) fn connect_options(flag_or_env: Option<String>) -> Result<ConnectOptions, Error> {
    let url = match flag_or_env.filter(|u| !u.is_empty()) {
        Some(u) => u,
        None => match dotenv_database_url()? {
            Some(u) => u,
            None if LIBPQ_VARIABLES
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty())) =>
            {
                String::new()
            }
            None => {
                return Err(Error::Config(
                    "no database given: pass --database-url, set DATABASE_URL (in the environment or in a .env file here), or set PGHOST, PGDATABASE and the other PG* variables as for psql".into(),
                ))
            }
        },
    };
    ConnectOptions::resolve(&url)
}

/// `DATABASE_URL` of `./.env`, if the file exists and sets it. Its errors
/// name the line, never its content (it may hold a password).
fn dotenv_database_url() -> Result<Option<String>, Error> {
    let items = match dotenvy::from_path_iter(".env") {
        Ok(items) => items,
        Err(e) if e.not_found() => return Ok(None),
        Err(dotenvy::Error::Io(e)) => return Err(Error::io("cannot read .env", e)),
        Err(_) => return Err(Error::Config("cannot read .env".into())),
    };
    let mut found = None;
    for item in items {
        match item {
            Ok((key, value)) if key == "DATABASE_URL" => found = Some(value),
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(_, index)) => {
                return Err(Error::Config(format!(
                    "cannot read .env: a line is not KEY=VALUE (at character {index} of that line; the line is not shown, it may hold a password)"
                )))
            }
            Err(dotenvy::Error::Io(e)) => return Err(Error::io("cannot read .env", e)),
            Err(_) => return Err(Error::Config("cannot read .env".into())),
        }
    }
    Ok(found.filter(|u| !u.is_empty()))
}

/// Runs the command of `cli`; stdout carries only its results.
pub(crate) async fn run(cli: Cli, options: ConnectOptions) -> Result<Outcome, Failure> {
    let ctx = Ctx {
        options,
        limits: cli.limits.limits(),
        limits_given: cli.limits.any_given(),
        replicas: cli.replicas.clone(),
    };
    let ctx = &ctx;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let out: &mut dyn Write = &mut out;
    let outcome = match cli.command {
        Command::Migrate => migrate::migrate(ctx, out).await?,
        Command::Status { json, check } => migrate::status(ctx, json, check, out).await?,
        Command::Head => read::head(ctx, out).await?,
        Command::Append {
            fail_if,
            after,
            condition,
        } => append::append(ctx, fail_if, after, condition, out).await?,
        #[cfg(feature = "console")]
        Command::Serve {
            listen,
            token,
            token_file,
            allowed_host,
            insecure_no_auth,
            allow_actions,
            schema,
        } => {
            let options = serve::Options {
                listen,
                token,
                token_file,
                allowed_hosts: allowed_host,
                insecure_no_auth,
                allow_actions,
                schema,
            };
            serve::serve(ctx, options).await?
        }
        Command::Grant {
            role,
            redact,
            import,
            read_only,
        } => roles::grant(ctx, &role, redact, import, read_only, out).await?,
        Command::Redact {
            position,
            data,
            metadata,
            reason,
        } => roles::redact(ctx, position, &data, metadata.as_ref(), &reason, out).await?,
        Command::Export {
            after,
            output,
            force,
        } => export::export(ctx, after, output, force, out).await?,
        Command::Redactions { position } => redactions::redactions(ctx, position, out).await?,
        Command::Import {
            input,
            batch_size,
            json,
        } => import::import(ctx, input, batch_size, json, out).await?,
        Command::Projections {
            command:
                ProjectionsAction::Status {
                    json,
                    check,
                    max_lag,
                },
        } => projections::status(ctx, json, check, max_lag, out).await?,
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
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(output_error(e).into()),
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

/// The sentence the tool prints for `e`: a permission error names the
/// missing privilege and the command that gives it.
pub(crate) fn explain(e: &Error, user: Option<&str>) -> String {
    let message = cli_wording(&e.to_string());
    if e.sql_state() != Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        return message;
    }
    let Some(db) = e.as_db_error() else {
        return message;
    };
    let role = user.unwrap_or("ROLE");
    let grant = format!("as the schema's owner, run `dcbstore grant {role}`");
    let denied = db.message().strip_prefix("permission denied for ");
    let missing = match denied.and_then(|d| d.split_once(' ')) {
        Some(("function", "redact")) => {
            return format!(
                "{message}: role {role} lacks EXECUTE on dcbstore.redact; as the schema's owner, run `dcbstore grant {role} --redact`"
            )
        }
        Some(("schema", name)) => format!("USAGE on schema {name}"),
        Some(("table", name)) => format!("SELECT on table dcbstore.{name}"),
        Some(("function", name)) => format!("EXECUTE on function dcbstore.{name}"),
        Some(("database", name)) => {
            return format!(
                "{message}: role {role} lacks CREATE on database {name}, which `dcbstore migrate` needs to create the schema; as a superuser, run GRANT CREATE ON DATABASE {name} TO {role}"
            )
        }
        Some((kind, name)) => format!("a privilege on {kind} {name}"),
        None => return format!("{message}: {grant} (the role may lack what this command needs)"),
    };
    format!("{message}: role {role} lacks {missing}; {grant}")
}
