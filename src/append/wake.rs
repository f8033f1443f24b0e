//! Waking the store's followers for appends made in an application's own
//! transaction ([`append_in`](super::append_in)), which the store's writer
//! does not see.

use tokio_postgres::GenericClient;

use crate::error::{PgResultExt, Result};

/// The channel every store's listening connection follows, notified in the
/// caller's transaction (sent at its commit).
pub(crate) const CHANNEL_SQL: &str = "SELECT pg_notify('dcbstore_events', '')";

/// A wake-up in a transaction of its own, once the writes have committed:
/// it waits for no flush and no standby (nothing of it needs to survive a
/// crash). `Store::wake` and imports send it.
pub(crate) const AFTER_COMMIT_SQL: &str =
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify('dcbstore_events', '')";

/// Wakes the store's followers (subscriptions, durable projections,
/// delivery consumers) for events appended with
/// [`append_in`](super::append_in), which the store's own writer does not
/// see: without it they find such events at their next poll.
///
/// Two ways, both tested:
///
/// - **Inside the transaction**, after the append and before `COMMIT`: the
///   notification is queued and PostgreSQL sends it when, and only if, the
///   transaction commits. Nothing to remember after commit; but a notifying
///   transaction holds PostgreSQL's cluster-wide notify lock from its commit
///   until its WAL is flushed (and any synchronous standby answers), so
///   concurrent notifying commits of every database on the server queue
///   behind one another. Fine for an application's occasional writes; the
///   store's writer does not do it for its batches.
/// - **After `COMMIT`**, on any connection (or [`Store::wake`](crate::Store::wake)):
///   no lock held by the commit, one more statement; a crash between the
///   commit and the call leaves followers to their next poll (never losing
///   the events).
///
/// ```no_run
/// # async fn f(store: &dcbstore::Store) -> Result<(), Box<dyn std::error::Error>> {
/// use dcbstore::append::{append_in, wake};
/// use dcbstore::Event;
/// use serde_json::json;
///
/// let mut client = store.pool().get().await?;
/// let tx = client.transaction().await?;
/// tx.execute("UPDATE accounts SET balance = balance - 5 WHERE id = 1", &[]).await?;
/// append_in(&*tx, vec![Event::new("Withdrawn", json!({"amount": 5}))], None).await?;
/// wake(&*tx).await?; // sent at COMMIT, only if it commits
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn wake<C: GenericClient + Sync>(client: &C) -> Result<()> {
    client.batch_execute(CHANNEL_SQL).await.db()?;
    Ok(())
}
