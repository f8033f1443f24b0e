//! `dcbstore export`: the log as JSON lines, to stdout or a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use dcbstore::transfer::{self, ExportOptions, ExportSummary};
use dcbstore::{Error, SequencePosition, Store};
use dcbstore_cli::kit::progress;

use super::{Ctx, Failure, Outcome};

/// `dcbstore export [--after N] [--output FILE]`: JSON lines on `stdout` or
/// in FILE (written as FILE.partial, renamed when complete), a progress bar
/// and a summary line on stderr.
pub(crate) async fn export(
    ctx: &Ctx,
    after: Option<u64>,
    output: Option<PathBuf>,
    force: bool,
    stdout: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let output = output.as_deref();
    if let Some(path) = output {
        // Checked first, and again (atomically) at the rename.
        if !force && path.exists() {
            return Err(Failure::Usage(format!(
                "--output {}: the file exists; pass --force to overwrite it",
                path.display()
            )));
        }
    }
    let store = ctx.store().await?;
    let mut options = ExportOptions::new();
    if let Some(a) = after {
        options = options.after(SequencePosition::new(a));
    }
    let bar = progress::bar(
        Some(0),
        "exporting [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
    );
    let report = |s: &ExportSummary| {
        if s.exported == 0 {
            let head = s.head.map_or(0, SequencePosition::get);
            let after = s.after.map_or(0, SequencePosition::get);
            bar.set_length(head.saturating_sub(after));
        }
        bar.set_position(s.exported);
    };
    let summary = match output {
        None => transfer::export(&store, &options, stdout, report).await,
        Some(path) => export_to_file(&store, &options, path, force, report).await,
    };
    bar.finish_and_clear();
    let s = summary?;
    let to = output.map_or("stdout".to_string(), |p| p.display().to_string());
    match (s.exported, s.head) {
        (0, None) => eprintln!("exported 0 events to {to}: the store is empty"),
        (0, Some(head)) => eprintln!("exported 0 events to {to}: none after position {} (head {head})", s.after.map_or(0, SequencePosition::get)),
        (n, Some(head)) => eprintln!(
            "exported {n} events to {to}, up to position {} (the head when the export started: {head})",
            s.last_position.map_or(0, SequencePosition::get)
        ),
        (n, None) => eprintln!("exported {n} events to {to}"),
    }
    Ok(Outcome::Done)
}

async fn export_to_file(
    store: &Store,
    options: &ExportOptions,
    path: &Path,
    force: bool,
    progress: impl FnMut(&ExportSummary),
) -> Result<ExportSummary, Error> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| Error::io(format_args!("cannot create {}", partial.display()), e))?;
    let result = async {
        let summary = transfer::export(store, options, &mut file, progress).await?;
        file.sync_all()
            .map_err(|e| Error::io(format_args!("cannot write {}", partial.display()), e))?;
        if force {
            std::fs::rename(&partial, path).map_err(|e| {
                Error::io(
                    format_args!("cannot rename {} to {}", partial.display(), path.display()),
                    e,
                )
            })?;
        } else {
            // A hard link fails when FILE appeared meanwhile: never overwritten.
            std::fs::hard_link(&partial, path).map_err(|e| {
                Error::io(
                    format_args!(
                        "cannot move {} to {} (pass --force to overwrite a file that exists)",
                        partial.display(),
                        path.display()
                    ),
                    e,
                )
            })?;
            std::fs::remove_file(&partial)
                .map_err(|e| Error::io(format_args!("cannot remove {}", partial.display()), e))?;
        }
        Ok(summary)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
