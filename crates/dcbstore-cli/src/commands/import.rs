//! `dcbstore import`: JSON lines appended, idempotent and resumable.

use std::io::Write;
use std::path::PathBuf;

use dcbstore::transfer::{self, ImportOptions, ImportSummary};
use dcbstore::Error;
use dcbstore_cli::kit::progress;

use super::{write_json, Ctx, Outcome};

/// `dcbstore import [--input FILE] [--batch-size N] [--json]`: a progress bar
/// and a summary line on stderr; with `--json` the summary on `stdout` too.
pub(crate) async fn import(
    ctx: &Ctx,
    input: Option<PathBuf>,
    batch_size: u64,
    json: bool,
    stdout: &mut dyn Write,
) -> Result<Outcome, Error> {
    let store = ctx.store().await?;
    let input = input.as_deref();
    let batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    let options = ImportOptions::new().batch_size(batch_size);
    let mut done = ImportSummary::default();
    let result = match input {
        None => {
            let bar = progress::bar(None, "{spinner} importing: {msg}");
            let result = transfer::import(&store, std::io::stdin().lock(), &options, |s| {
                done = *s;
                bar.set_message(import_message(s));
                bar.tick();
            })
            .await;
            bar.finish_and_clear();
            result
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::io(format_args!("cannot open {}", path.display()), e))?;
            let len = file.metadata().map(|m| m.len()).ok();
            let bar = progress::bar(
                len,
                "importing [{bar:40}] {bytes}/{total_bytes}, {msg}, eta {eta}",
            );
            let input = std::io::BufReader::with_capacity(1 << 16, file);
            let result = transfer::import(&store, input, &options, |s| {
                done = *s;
                bar.set_message(import_message(s));
                bar.set_position(s.bytes_read);
            })
            .await;
            bar.finish_and_clear();
            result
        }
    };
    let s = result.map_err(|e| with_progress(e, &done))?;
    eprintln!(
        "import complete: {} lines read, {} imported, {} already present",
        s.lines_read, s.imported, s.already_present
    );
    if json {
        write_json(stdout, &s)?;
    }
    Ok(Outcome::Done)
}

fn import_message(s: &ImportSummary) -> String {
    format!(
        "{} imported, {} already present",
        s.imported, s.already_present
    )
}

/// The error of a failed import, with how far it got (one line, like every
/// error of the tool).
fn with_progress(e: Error, done: &ImportSummary) -> Error {
    let context = if done.last_line == 0 {
        "nothing was imported: fix the input and run the import again".to_string()
    } else {
        format!(
            "lines 1 to {} are imported ({} events new, {} already present) and nothing after them: fix the input and run the import again, it skips what is stored",
            done.last_line, done.imported, done.already_present
        )
    };
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{m}; {context}")),
        Error::IdConflict { id, message } => Error::IdConflict {
            id,
            message: format!("{message}; {context}"),
        },
        Error::Io { message, source } => Error::Io {
            message: format!("{message}; {context}"),
            source,
        },
        // Only printed: a message-carrying variant with the original text.
        other => Error::Invalid(format!("{other}; {context}")),
    }
}
