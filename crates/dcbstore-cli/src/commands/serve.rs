//! `dcbstore serve`: the operations console.
//!
//! The token comes from `--token-file`, `DCBSTORE_CONSOLE_TOKEN` or
//! `--token` (which the process list shows to every local user: a warning
//! says so). Without one, on loopback, the console makes up a random token
//! and prints the URL that carries it, once, on stderr. The store's
//! connections get the console's deadline as `statement_timeout`, so no
//! page leaves a statement running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{signal, SignalKind};

use dcbstore::schema::SchemaFile;
use dcbstore::Error;
use dcbstore_console::{install_prometheus, Console, ConsoleOptions};

use super::{Ctx, Failure, Outcome};

/// The environment variable of the token.
const TOKEN_ENV: &str = "DCBSTORE_CONSOLE_TOKEN";

/// The flags of `serve`.
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) insecure_no_auth: bool,
    pub(crate) allow_actions: bool,
    pub(crate) schema: Option<PathBuf>,
}

/// Serves until SIGINT or SIGTERM (exit 0).
pub(crate) async fn serve(ctx: &Ctx, o: Options) -> Result<Outcome, Failure> {
    let mut options = ConsoleOptions::new()
        .listen(o.listen)
        .insecure_no_auth(o.insecure_no_auth)
        .allow_actions(o.allow_actions);
    for name in &o.allowed_hosts {
        options = options.allowed_host(name);
    }
    if let Some(token) = token(o.token, o.token_file.as_deref())? {
        options = options.token(token);
    }
    // Refused before connecting: the flags alone decide it.
    options
        .check_bind()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(path) = &o.schema {
        let schema = SchemaFile::load(path)
            .map_err(|e| Failure::Usage(format!("--schema {}: {e}", path.display())))?;
        options = options.schema(schema);
    }
    let store = ctx
        .builder()
        .statement_timeout(Some(options.deadline()))
        .build()
        .await?;
    let metrics = install_prometheus()?;
    let console = Console::new(store, options)?.with_metrics(metrics);
    let bound = console.bind().await?;
    // The handlers go in before the address is printed: a supervisor that
    // stops the console the moment it announces itself gets a clean stop,
    // not the default action of an unhandled signal.
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot handle SIGTERM", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot handle SIGINT", e))?;
    // Once, on stderr, for the operator: with the generated token when
    // there is one. The logs get the address only.
    eprintln!("dcbstore console on {}", bound.url());
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    };
    bound.serve(shutdown).await?;
    Ok(Outcome::Done)
}

/// The token of `--token-file`, or of `--token`/the environment (one of
/// them, not both).
fn token(flag_or_env: Option<String>, file: Option<&Path>) -> Result<Option<String>, Failure> {
    let from_env = std::env::var(TOKEN_ENV).ok().filter(|v| !v.is_empty());
    match (flag_or_env, file) {
        (Some(_), Some(_)) => Err(Failure::Usage(format!(
            "give the console token once: --token-file, or {TOKEN_ENV}, or --token (unset {TOKEN_ENV} to use --token-file)"
        ))),
        (None, Some(path)) => read_token_file(path).map(Some),
        (Some(t), None) => {
            if from_env.as_deref() != Some(t.as_str()) {
                eprintln!(
                    "warning: --token on the command line shows in the process list to every local user; \
                     give it with --token-file PATH or {TOKEN_ENV} instead"
                );
            }
            Ok(Some(t))
        }
        (None, None) => Ok(None),
    }
}

/// The first line of `path`, trimmed; never shown in an error.
fn read_token_file(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Usage(format!(
            "--token-file {}: cannot read it ({e}); give a file that holds the token on its first line",
            path.display()
        ))
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(Failure::Usage(format!(
            "--token-file {}: its first line is empty; write the token there (for example `openssl rand -hex 32 > FILE`)",
            path.display()
        )));
    }
    Ok(token)
}
