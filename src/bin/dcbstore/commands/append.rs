//! `dcbstore append`: the events on stdin, as one atomic append.

use std::io::Write;

use serde_json::json;

use dcbstore::{AppendCondition, Conflict, Error, EventStore, Query, SequencePosition};

use super::{write_json, Ctx, Outcome};
use crate::input::read_events;

/// Appends the event lines of stdin under `condition` (or the one-guard
/// `fail_if`/`after`); prints the position, or the conflict (exit 3).
pub(crate) async fn append(
    ctx: &Ctx,
    fail_if: Option<Query>,
    after: Option<u64>,
    condition: Option<AppendCondition>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let events = read_events(std::io::stdin().lock())?;
    let condition = condition
        .or_else(|| fail_if.map(|q| AppendCondition::new(q, after.map(SequencePosition::new))));
    let store = ctx.store().await?;
    match store.append(events, condition).await {
        Ok(a) => {
            write_json(out, &json!({"position": a.position}))?;
            Ok(Outcome::Done)
        }
        Err(Error::Conflict(conflict)) => {
            // A struct, not json!, to keep each event's fields in order.
            #[derive(serde::Serialize)]
            struct Out<'a> {
                conflict: &'a Conflict,
            }
            write_json(
                out,
                &Out {
                    conflict: &conflict,
                },
            )?;
            Ok(Outcome::Conflict)
        }
        Err(e) => Err(e),
    }
}
