//! Typed decisions inside an application's sqlx transaction.

use sqlx::PgConnection;

use crate::error::Error;
use crate::projection::{CommandError, Executed};
use crate::typed::{Decision, Events, Model};
use crate::{AppendCondition, ReadOptions};

/// Runs a typed [`Decision`] inside the caller's transaction: reads its
/// model's boundary there, decides, appends under the model's condition
/// with [`append_in`](super::append_in). The application then writes its
/// own rows from what was decided, in the same transaction, and commits:
/// both or neither.
///
/// A conflict is decided again in the same transaction, after a fresh read:
/// the failed append already holds the append lock (until the transaction
/// ends), so nothing can commit in between and the second attempt is
/// final. Nothing of the application's is rolled back. Errors are those of
/// [`decide`](crate::typed::decide): the domain's
/// ([`CommandError::Rejected`]), an event the model cannot decode
/// ([`CommandError::Undecodable`]), the store's ([`CommandError::Store`]).
///
/// ```no_run
/// # use dcbstore::typed::Decision;
/// # async fn f<D: Decision>(pool: sqlx::PgPool, enrol: D) -> Result<(), Box<dyn std::error::Error>>
/// # where D::Error: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static {
/// use dcbstore::projection::Executed;
///
/// let mut tx = pool.begin().await?;
/// if let Executed::Appended { .. } = dcbstore::sqlx::decide_in(&mut tx, &enrol).await? {
///     sqlx::query("UPDATE seats SET taken = taken + 1 WHERE course = 'c1'")
///         .execute(&mut *tx)
///         .await?;
///     dcbstore::sqlx::wake(&mut tx).await?;
/// }
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn decide_in<D: Decision>(
    conn: &mut PgConnection,
    decision: &D,
) -> Result<Executed, CommandError<D::Error>> {
    let model = decision.model();
    let query = model.query();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let boundary = super::read_boundary_in(conn, &query, ReadOptions::default())
            .await
            .map_err(CommandError::from)?;
        let mut state = model.initial();
        for event in &boundary.events {
            state = model.fold(state, event).map_err(CommandError::from)?;
        }
        let emits = decision.decide(&state).map_err(CommandError::Rejected)?;
        if emits.is_empty() {
            return Ok(Executed::NothingToDo);
        }
        let events = emits
            .iter()
            .map(Events::to_event)
            .collect::<crate::Result<Vec<_>>>()
            .map_err(CommandError::Store)?;
        let condition = AppendCondition::new(query.clone(), boundary.after);
        match super::append_in(conn, events.clone(), Some(&condition)).await {
            Ok(appended) => {
                return Ok(Executed::Appended {
                    appended,
                    events,
                    attempts,
                })
            }
            // Held since this conflict: the lock. One more attempt decides.
            Err(Error::Conflict(conflict)) if attempts < 2 => drop(conflict),
            Err(Error::Conflict(conflict)) => {
                return Err(CommandError::Exhausted { attempts, conflict })
            }
            Err(e) => return Err(CommandError::Store(e)),
        }
    }
}
