//! `dcbstore serve`: the operations console.

use std::net::SocketAddr;
use std::path::PathBuf;

use dcbstore::console::{install_prometheus, Console, ConsoleOptions};
use dcbstore::schema::SchemaFile;
use dcbstore::Error;

use super::{Ctx, Failure, Outcome};

/// The flags of `serve`.
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
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
    if let Some(token) = o.token {
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
    let store = ctx.store().await?;
    let metrics = install_prometheus()?;
    let console = Console::new(store, options)?.with_metrics(metrics);
    let bound = console.bind().await?;
    // The address only: the connection settings never reach a log.
    eprintln!("dcbstore console on http://{}/", bound.local_addr());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("cannot handle SIGTERM", e))?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
    };
    bound.serve(shutdown).await?;
    Ok(Outcome::Done)
}
