//! Rebuilding a projection from scratch, under its lease.

use std::time::Duration;

use super::catch_up::{catch_up, reset, setup, Stop};
use super::config::{Progress, RunnerConfig};
use super::definition::{DurableProjection, Erased, ProjectionRegistry};
#[cfg(doc)]
use super::runner::Runner;
use crate::consumer::checkpoint;
use crate::consumer::Lease;
use crate::error::Error;
use crate::store::Store;

/// Folds a whole projection's events into its read model from scratch: resets
/// the tables and the checkpoint, then replays the log in batches, reporting
/// progress. Holds the projection's lease meanwhile, waiting up to `wait` for
/// it (a runner elsewhere must stop first; an in-process [`Runner`] can
/// [`rebuild`](Runner::rebuild) itself instead).
pub async fn rebuild<P: DurableProjection>(
    store: &Store,
    projection: &P,
    config: &RunnerConfig,
    wait: Duration,
    mut progress: impl FnMut(Progress) + Send,
) -> crate::error::Result<u64> {
    rebuild_erased(store, projection, config, wait, &mut progress).await
}

pub(crate) async fn rebuild_erased(
    store: &Store,
    p: &dyn Erased,
    config: &RunnerConfig,
    wait: Duration,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> crate::error::Result<u64> {
    let owner = format!(
        "rebuild {}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let lease = Lease::acquire(store, p.name(), &owner, Some(wait)).await?;
    let Some(lease) = lease else {
        return Err(Error::Invalid(format!(
            "projection {} is being run by another process: stop its runner (or rebuild through it) and retry",
            p.name()
        )));
    };
    checkpoint::ensure_row(store, p.name()).await?;
    let result = async {
        setup(store, p).await?;
        reset(store, p, &lease).await?;
        let applied = catch_up(store, p, config, progress, &lease).await?;
        Ok::<u64, Stop>(applied)
    }
    .await;
    drop(lease);
    result.map_err(|s| s.into_error(p.name()))
}

impl ProjectionRegistry {
    /// [`rebuild`] of the registered projection `name` (what an
    /// application's command line offers); `None` when none has that name.
    pub async fn rebuild_by_name(
        &self,
        name: &str,
        store: &Store,
        config: &RunnerConfig,
        wait: Duration,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Option<crate::error::Result<u64>> {
        let p = self.get(name)?;
        Some(rebuild_erased(store, p.as_ref(), config, wait, &mut progress).await)
    }
}
