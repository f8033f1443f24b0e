//! `dcbstore projections status`: where each durable projection stands (their
//! runners live in applications, through `dcbstore::kit::projections`).

use dcbstore::kit::projections::print_status;
use dcbstore::Error;

use super::{Ctx, Outcome};

/// Prints each projection's checkpoint, head, lag, state and last error.
pub(crate) async fn status(ctx: &Ctx, json: bool) -> Result<Outcome, Error> {
    let store = ctx.store().await?;
    print_status(&store, json).await?;
    Ok(Outcome::Done)
}
