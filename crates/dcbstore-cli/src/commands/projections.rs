//! `dcbstore projections status`: where each durable projection stands (their
//! runners live in applications, through `dcbstore_cli::kit::projections`).

use std::io::Write;

use dcbstore::projection::durable::status as read_status;
use dcbstore::Error;
use dcbstore_cli::kit::projections::write_status;

use super::{Ctx, Outcome};

/// Exit status of `projections status --check` when a projection has
/// failed or lags more than `--max-lag`.
pub(crate) const EXIT_UNHEALTHY: u8 = 4;

/// Prints each projection's checkpoint, head, lag, state, failures, last
/// update and last error; with `check`, exits 4 when one has failed or lags
/// more than `max_lag` events.
pub(crate) async fn status(
    ctx: &Ctx,
    json: bool,
    check: bool,
    max_lag: Option<u64>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let store = ctx.store().await?;
    let rows = read_status(&store).await?;
    write_status(&rows, json, out)?;
    let unhealthy = rows.iter().any(|r| {
        r.state == "failed" || r.last_error.is_some() || max_lag.is_some_and(|m| r.lag > m)
    });
    Ok(if check && unhealthy {
        Outcome::Check(EXIT_UNHEALTHY)
    } else {
        Outcome::Done
    })
}
