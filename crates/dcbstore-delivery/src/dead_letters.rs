//! `dcbstore.dead_letters`: events a consumer gave up on, and the tools to
//! list, retry and discard them.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures::TryStreamExt;
use serde::Serialize;

use super::fence::Fence;
use super::sink::Consumer;
use crate::dispatch::from_store_event;
use dcbstore::event::{SequencePosition, SequencedEvent};
use dcbstore::query::Query;
use dcbstore::read::ReadOptions;
use dcbstore::store::{EventStore, Store};
use dcbstore::{Error, PgResultExt, Result};

/// An event a durable subscriber or relay could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The consumer's name.
    pub subscriber: String,
    /// The event's position in the log (its payload is there).
    pub position: u64,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it first failed.
    pub first_failed_at: DateTime<Utc>,
    /// When it last failed.
    pub last_failed_at: DateTime<Utc>,
}

/// A dead letter as the consumer records it.
pub(crate) struct Letter<'a> {
    pub(crate) subscriber: &'a str,
    pub(crate) position: u64,
    pub(crate) attempts: u32,
    pub(crate) error: &'a str,
    pub(crate) first_failed_at: DateTime<Utc>,
    pub(crate) last_failed_at: DateTime<Utc>,
}

/// Which dead letters a retry or a discard takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every dead letter of the consumer.
    All,
    /// The one at this position.
    Position(u64),
}

/// What a retry did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryReport {
    /// Dead letters tried.
    pub tried: u64,
    /// Delivered, and removed from the table.
    pub delivered: u64,
    /// Failed again (their attempts and error updated).
    pub failed: u64,
    /// Left alone because another caller was retrying them at that moment
    /// (or had just delivered them): each dead letter is retried by one
    /// caller at a time.
    pub skipped: u64,
}

/// Records a dead letter in `tx` (with the checkpoint that passes it).
pub(crate) async fn record(tx: &Transaction<'_>, l: &Letter<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO dcbstore.dead_letters \
           (subscriber, \"position\", attempts, last_error, first_failed_at, last_failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (subscriber, \"position\") DO UPDATE SET \
           attempts = dcbstore.dead_letters.attempts + EXCLUDED.attempts, \
           last_error = EXCLUDED.last_error, last_failed_at = EXCLUDED.last_failed_at",
        &[
            &l.subscriber,
            &to_i64(l.position),
            &i32::try_from(l.attempts).unwrap_or(i32::MAX),
            &l.error,
            &l.first_failed_at,
            &l.last_failed_at,
        ],
    )
    .await
    .db()?;
    Ok(())
}

/// The dead letters, of one consumer or all, by consumer and position.
pub async fn list(store: &Store, subscriber: Option<&str>) -> Result<Vec<DeadLetter>> {
    let client = store.pool().get().await.db()?;
    let rows = client
        .query(
            "SELECT subscriber, \"position\", attempts, last_error, first_failed_at, last_failed_at \
               FROM dcbstore.dead_letters WHERE $1::text IS NULL OR subscriber = $1 \
              ORDER BY subscriber, \"position\"",
            &[&subscriber],
        )
        .await.db()?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                subscriber: r.try_get(0).db()?,
                position: u64::try_from(r.try_get::<_, i64>(1).db()?).unwrap_or(0),
                attempts: r.try_get(2).db()?,
                last_error: r.try_get(3).db()?,
                first_failed_at: r.try_get(4).db()?,
                last_failed_at: r.try_get(5).db()?,
            })
        })
        .collect()
}

/// Removes dead letters without delivering them; returns how many.
pub async fn discard(store: &Store, subscriber: &str, which: Selection) -> Result<u64> {
    let client = store.pool().get().await.db()?;
    let position = match which {
        Selection::All => None,
        Selection::Position(p) => Some(to_i64(p)),
    };
    client
        .execute(
            "DELETE FROM dcbstore.dead_letters WHERE subscriber = $1 \
               AND ($2::bigint IS NULL OR \"position\" = $2)",
            &[&subscriber, &position],
        )
        .await
        .db()
}

/// Delivers the selected dead letters of `consumer` again, one by one, in
/// position order: a success removes the row, a failure updates it.
///
/// Each letter is retried in a transaction that holds its row (`FOR UPDATE
/// SKIP LOCKED`) from before the delivery until the row is deleted or
/// updated: of two callers retrying at once (two operators, or a retry
/// beside a scheduled one), one delivers it and the other skips it, and a
/// caller that comes after the delete finds nothing to deliver.
pub(crate) async fn retry(
    store: &Store,
    consumer: &Consumer,
    which: Selection,
) -> Result<RetryReport> {
    let letters: Vec<DeadLetter> = list(store, Some(&consumer.name))
        .await?
        .into_iter()
        .filter(|l| matches!(which, Selection::All) || which == Selection::Position(l.position))
        .collect();
    if let Selection::Position(p) = which {
        if letters.is_empty() {
            return Err(Error::invalid(format!(
                "{} has no dead letter at position {p} (list them with `dead-letters list --subscriber {}`)",
                consumer.name, consumer.name
            )));
        }
    }
    let mut report = RetryReport::default();
    for letter in letters {
        // Read before the transaction takes a pooled connection (a pool of
        // one would otherwise wait for itself).
        let Some(event) = event_at(store, letter.position).await? else {
            return Err(Error::invalid(format!(
                "the dead letter at position {} has no event in the log (the log lost its tail?): discard it",
                letter.position
            )));
        };
        let mut client = store.pool().get().await.db()?;
        let tx = client.transaction().await.db()?;
        let mine = tx
            .query_opt(
                "SELECT 1 FROM dcbstore.dead_letters WHERE subscriber = $1 AND \"position\" = $2 \
                 FOR UPDATE SKIP LOCKED",
                &[&consumer.name, &to_i64(letter.position)],
            )
            .await
            .db()?;
        if mine.is_none() {
            // Another caller holds it (and delivers it), or deleted it.
            report.skipped += 1;
            continue;
        }
        report.tried += 1;
        let envelope = from_store_event(&event);
        let fence = Fence::unfenced();
        match consumer
            .sink
            .deliver(std::slice::from_ref(&envelope), &fence)
            .await
        {
            Ok(()) => {
                tx.execute(
                    "DELETE FROM dcbstore.dead_letters WHERE subscriber = $1 AND \"position\" = $2",
                    &[&consumer.name, &to_i64(letter.position)],
                )
                .await
                .db()?;
                tx.commit().await.db()?;
                tracing::info!(consumer = %consumer.name, position = letter.position, "dead letter delivered on retry");
                report.delivered += 1;
            }
            Err(e) => {
                tx.execute(
                    "UPDATE dcbstore.dead_letters SET attempts = attempts + 1, last_error = $3, \
                     last_failed_at = now() WHERE subscriber = $1 AND \"position\" = $2",
                    &[
                        &consumer.name,
                        &to_i64(letter.position),
                        &e.error.to_string(),
                    ],
                )
                .await
                .db()?;
                tx.commit().await.db()?;
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

async fn event_at(store: &Store, position: u64) -> Result<Option<SequencedEvent>> {
    let p = SequencePosition::new(position);
    let mut events: Vec<SequencedEvent> = store
        .read(&Query::all(), ReadOptions::new().from(p).to(p))
        .try_collect()
        .await?;
    Ok(events.pop())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
