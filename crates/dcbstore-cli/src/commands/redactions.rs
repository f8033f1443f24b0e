//! `dcbstore redactions`, and the redaction marks `read` adds to the lines
//! of redacted events.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};

use dcbstore::{Error, PgResultExt, RawEvent, Store};

use super::{write_json, Ctx, Outcome};

/// A redacted event's line: the event, then when and why it was redacted
/// (the latest redaction).
#[derive(serde::Serialize)]
struct Marked<'a> {
    #[serde(flatten)]
    event: &'a RawEvent,
    redacted: &'a Redaction,
}

/// When and why an event was redacted.
#[derive(serde::Serialize)]
pub(crate) struct Redaction {
    at: DateTime<Utc>,
    reason: String,
    by: String,
}

/// The redaction marks of a read: the latest redaction of each redacted
/// position in its window.
pub(crate) struct Marks(HashMap<u64, Redaction>);

impl Marks {
    /// `e` as its JSON line: marked when it was redacted.
    pub(crate) fn line(&self, e: &RawEvent) -> Result<String, Error> {
        match self.0.get(&e.position.get()) {
            None => serde_json::to_string(e),
            Some(mark) => serde_json::to_string(&Marked {
                event: e,
                redacted: mark,
            }),
        }
        .map_err(|e| Error::output(e.to_string()))
    }
}

/// The latest redaction of each redacted position in the window (few:
/// redactions are rare), read before the events.
pub(crate) async fn redactions_in(
    store: &Store,
    after: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Marks, Error> {
    let low = after.map(|a| a.saturating_add(1)).or(from).unwrap_or(1);
    let high = to.unwrap_or(i64::MAX.unsigned_abs());
    let (low, high) = (
        i64::try_from(low).unwrap_or(i64::MAX),
        i64::try_from(high).unwrap_or(i64::MAX),
    );
    let client = store.pool().get().await.db()?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (\"position\") \"position\", redacted_at, reason, redacted_by
               FROM dcbstore.redactions WHERE \"position\" BETWEEN $1 AND $2
              ORDER BY \"position\", redaction DESC",
            &[&low, &high],
        )
        .await
        .db()?;
    rows.iter()
        .map(|r| {
            let position: i64 = r.try_get(0).db()?;
            Ok((
                u64::try_from(position).unwrap_or(0),
                Redaction {
                    at: r.try_get(1).db()?,
                    reason: r.try_get(2).db()?,
                    by: r.try_get(3).db()?,
                },
            ))
        })
        .collect::<Result<_, Error>>()
        .map(Marks)
}

/// `dcbstore redactions [--position N]`: the audit rows, one JSON line each,
/// in the order they were written.
pub(crate) async fn redactions(
    ctx: &Ctx,
    position: Option<u64>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = ctx.connect().await?;
    let position = position.map(|p| i64::try_from(p).unwrap_or(i64::MAX));
    let rows = client
        .query(
            "SELECT redaction, \"position\", redacted_at, redacted_by, reason, erased_sha256, replacement_sha256
               FROM dcbstore.redactions WHERE $1::bigint IS NULL OR \"position\" = $1
              ORDER BY redaction",
            &[&position],
        )
        .await.db()?;
    for r in &rows {
        #[derive(serde::Serialize)]
        struct Row {
            redaction: i64,
            position: i64,
            redacted_at: DateTime<Utc>,
            redacted_by: String,
            reason: String,
            erased_sha256: String,
            replacement_sha256: Option<String>,
        }
        let row = Row {
            redaction: r.try_get(0).db()?,
            position: r.try_get(1).db()?,
            redacted_at: r.try_get(2).db()?,
            redacted_by: r.try_get(3).db()?,
            reason: r.try_get(4).db()?,
            erased_sha256: r.try_get(5).db()?,
            replacement_sha256: r.try_get(6).db()?,
        };
        write_json(out, &row)?;
    }
    Ok(Outcome::Done)
}
