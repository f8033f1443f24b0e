//! `dcbstore append`: the events on stdin, as one atomic append.

use std::io::Write;

use dcbstore::{
    AppendCondition, Appended, Conflict, Error, EventStore, PgResultExt, Query, SequencePosition,
    Store,
};
use uuid::Uuid;

use super::{write_json, Ctx, Outcome};
use crate::input::{read_events, EventLines};

/// Appends the event lines of stdin under `condition` (or the one-guard
/// `fail_if`/`after`); prints the position, or the conflict (exit 3).
pub(crate) async fn append(
    ctx: &Ctx,
    fail_if: Option<Query>,
    after: Option<u64>,
    condition: Option<AppendCondition>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    // The store first: its limits (the database's, or DCBSTORE_MAX_*) bound
    // how much of stdin is read.
    let store = ctx.store().await?;
    let EventLines { events, lines } = read_events(std::io::stdin().lock(), store.limits())?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let condition = condition
        .or_else(|| fail_if.map(|q| AppendCondition::new(q, after.map(SequencePosition::new))));
    match store.append(events, condition).await {
        Ok(a) => {
            let first = first_position(&store, &ids, a).await;
            write_json(
                out,
                &Stored {
                    position: a.position.get(),
                    first_position: first,
                    ids: &ids,
                    already_stored: a.already_stored,
                },
            )?;
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
        Err(e) => Err(lines.locate(e)),
    }
}

/// What `append` prints: the last position (as before), the first, the ids
/// in input order (to resend them in a retry) and whether they were already
/// stored (an idempotent retry, nothing written).
#[derive(serde::Serialize)]
struct Stored<'a> {
    position: u64,
    first_position: u64,
    ids: &'a [Uuid],
    already_stored: bool,
}

/// The position of the first event: a new batch has consecutive positions;
/// an idempotent retry has its original ones, looked up by id. The append
/// has happened: a lookup that fails is no failure of the command (it would
/// say "failed" of a write that happened); the events of one append have
/// consecutive positions, so the first is computed instead, with a warning.
async fn first_position(store: &Store, ids: &[Uuid], a: Appended) -> u64 {
    let n = u64::try_from(ids.len()).unwrap_or(u64::MAX);
    let consecutive = a.position.get().saturating_sub(n.saturating_sub(1));
    if !a.already_stored {
        return consecutive;
    }
    let looked_up = async {
        let client = store.pool().get().await.db()?;
        let first: Option<i64> = client
            .query_one(
                "SELECT min(\"position\") FROM dcbstore.events WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .db()?
            .try_get(0)
            .db()?;
        Ok::<_, Error>(first.and_then(|p| u64::try_from(p).ok()))
    };
    match looked_up.await {
        Ok(Some(first)) => first,
        Ok(None) => consecutive,
        Err(e) => {
            tracing::warn!(error = %e, "the events were already stored; their first position could not be looked up, so it is computed from the last");
            consecutive
        }
    }
}
