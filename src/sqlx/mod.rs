//! The store inside an application's sqlx transaction (feature `sqlx`):
//! appends, boundaries and reads on an sqlx [`PgConnection`](sqlx::PgConnection)
//! or [`Transaction`](sqlx::Transaction), so that the application's own rows
//! and its events commit together, and [`SqlxStore`], the store API on the
//! application's sqlx pool.
//!
//! The statements are the store's own (`dcbstore.append_batch_typed`,
//! `dcbstore.read_pages`), with the same arguments, so the semantics,
//! limits, errors and conflict reports are those of
//! [`append_in`](crate::append::append_in) and of
//! [`Store`](crate::Store)'s reads: one suite of semantics tests runs on
//! both paths. A `Transaction` dereferences to its connection: pass
//! `&mut tx` (or `&mut *tx`).
//!
//! ```no_run
//! # async fn f(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use dcbstore::{AppendCondition, Error, Event, Query, QueryItem};
//! use serde_json::json;
//!
//! let mut tx = pool.begin().await?;
//! let query = Query::item(QueryItem::tags(["account:7"]));
//! let boundary = dcbstore::sqlx::read_boundary_in(&mut tx, &query, Default::default()).await?;
//! let balance: i64 = boundary.events.iter().filter_map(|e| e.event.data["amount"].as_i64()).sum();
//! if balance >= 5 {
//!     let withdrawn = Event::new("Withdrawn", json!({"amount": -5})).with_tags(["account:7"]);
//!     let condition = AppendCondition::new(query, boundary.after);
//!     match dcbstore::sqlx::append_in(&mut tx, vec![withdrawn], Some(&condition)).await {
//!         Ok(_) => {
//!             sqlx::query("UPDATE balances SET amount = amount - 5 WHERE account = 7")
//!                 .execute(&mut *tx)
//!                 .await?;
//!             dcbstore::sqlx::wake(&mut tx).await?;
//!             tx.commit().await?;
//!         }
//!         // Someone else wrote to the account meanwhile: nothing was
//!         // appended; decide again (or give up) - the transaction is usable.
//!         Err(Error::Conflict(_)) => tx.rollback().await?,
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok(()) }
//! ```

mod append;
mod connect;
mod decide;
mod error;
mod read;
mod store;

pub use append::{append_in, append_in_with, wake};
pub use connect::connect_options;
pub use decide::decide_in;
pub use error::{sqlx_driver_error, sqlx_error, SqlxErrorExt};
pub use read::{head_in, read_boundary_in, read_boundary_in_with, read_in, read_in_with};
pub use store::SqlxStore;
