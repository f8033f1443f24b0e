//! Moving a consumer's checkpoint: fenced by its lease, compared with
//! where the batch began, and with the dead letter that lets it pass an
//! event, in one transaction.

use super::dead_letters;
use dcbstore::consumer::checkpoint;
use dcbstore::consumer::Lease;
use dcbstore::store::Store;
use dcbstore::Error;

/// Why a batch stopped early.
pub(super) enum Halt {
    /// Told to stop, or the lease (or checkpoint) is someone else's now.
    Stopped,
    Store(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Store(e)
    }
}

/// Moves the checkpoint from `from` to `to` in one transaction, with the
/// dead letter that lets it pass `to` if there is one. Refuses (stops the
/// batch) when the checkpoint is no longer `from` or the lease is no longer
/// at this runner's generation: another runner has it.
pub(super) async fn move_checkpoint(
    store: &Store,
    name: &str,
    lease: &Lease,
    from: u64,
    to: u64,
    letter: Option<dead_letters::Letter<'_>>,
) -> std::result::Result<(), Halt> {
    let mut client = store.pool().get().await.map_err(dcbstore::pool_error)?;
    let tx = client.transaction().await.map_err(dcbstore::pg_error)?;
    if !lease.fence(&tx).await? {
        tracing::warn!(
            consumer = name,
            "another runner took the lease over; stopping the batch"
        );
        return Err(Halt::Stopped);
    }
    let now = checkpoint::lock(&tx, name).await?;
    if now != from {
        tracing::warn!(
            consumer = name,
            expected = from,
            found = now,
            "the checkpoint moved under this runner; stopping the batch"
        );
        return Err(Halt::Stopped);
    }
    if let Some(letter) = letter {
        dead_letters::record(&tx, &letter).await?;
    }
    checkpoint::advance(&tx, name, to, to).await?;
    tx.commit().await.map_err(dcbstore::pg_error)?;
    Ok(())
}
