//! Export and import: the log as JSON lines, for backups, restores and
//! migrations from other stores. `dcbstore export` and `dcbstore import` are
//! thin layers over [`export`] and [`import`].
//!
//! **Export** writes one JSON object per line, the shape `dcbstore read`
//! prints (`position`, `id`, `type`, `data`, `tags`, `metadata`,
//! `recorded_at`), streaming the log in pages: memory stays bounded whatever
//! its size. The export is a snapshot: the head when it starts; events
//! committed meanwhile are left out.
//!
//! **Import** reads such lines (or lines written for another store) and
//! appends them, keeping their ids:
//!
//! - `type` and `id` are required; `data`, `tags` and `metadata` are
//!   optional; `position` is accepted and ignored, since the target store
//!   assigns positions. `recorded_at` (RFC 3339, as `export` writes it) is
//!   kept, raised where needed so that it never goes back along positions
//!   (an event older than the one before it gets that one's time); a line
//!   without it gets the import time. Importing a full export into an empty
//!   store (with no other writers meanwhile) reproduces its positions and
//!   times: the same log.
//! - Lines go in batches ([`ImportOptions::batch_size`]). Each line of a batch
//!   is validated before anything of the batch is sent; then the ids already
//!   stored are looked up (one query): an id stored with identical content is
//!   skipped, an id stored with other content is an error naming the id and
//!   the line, and the rest of the batch is appended as one atomic,
//!   unconditional append, in file order.
//! - So running an import again imports nothing new (idempotent), and an
//!   import that stopped (an error, a crash, Ctrl-C) picks up where it stopped
//!   when run again (resumable). Batches before a failing line stay imported.
//!
//! ```no_run
//! use dcbstore::transfer::{export, import, ExportOptions, ImportOptions};
//! use dcbstore::Store;
//!
//! # async fn f() -> dcbstore::Result<()> {
//! let source = Store::connect("postgres://app@old-host/app").await?;
//! let target = Store::connect("postgres://app@new-host/app").await?;
//! let mut file = Vec::new();
//! let exported = export(&source, &ExportOptions::new(), &mut file, |_| {}).await?;
//! let imported = import(&target, &file[..], &ImportOptions::new(), |_| {}).await?;
//! assert_eq!(exported.exported, imported.imported + imported.already_present);
//! # Ok(()) }
//! ```
//!
//! The parts: `export`, `import` (batches, the lookup of stored ids), and
//! `line` (what a line may hold, and when two lines are the same event).

mod export;
mod import;
mod line;

pub use export::{export, ExportOptions, ExportSummary};
pub use import::{import, line_cap, ImportOptions, ImportSummary, DEFAULT_BATCH_SIZE};

#[cfg(test)]
mod proptests;
