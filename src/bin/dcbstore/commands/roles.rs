//! `dcbstore grant` and `dcbstore redact`: least privilege and audited
//! erasure.

use std::io::Write;

use serde_json::{json, Map, Value};

use dcbstore::roles::{self, Grants};
use dcbstore::{Error, SequencePosition};

use tokio_postgres::error::SqlState;

use super::{output_error, write_json, Ctx, Failure, Outcome};

/// Grants `role` append and read (and redact), or read only.
pub(crate) async fn grant(
    ctx: &Ctx,
    role: &str,
    redact: bool,
    read_only: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = ctx.connect().await?;
    // clap refuses --read-only with --redact; grant_app refuses the pair too.
    let (grants, granted) = match (read_only, redact) {
        (true, _) => (Grants::read_only(), "read only"),
        (false, true) => (Grants::app().with_redact(), "append and read and redact"),
        (false, false) => (Grants::app(), "append and read"),
    };
    roles::grant_app(&client, role, grants).await?;
    writeln!(out, "granted {role:?} {granted}").map_err(output_error)?;
    Ok(Outcome::Done)
}

/// Replaces the data (and metadata) of the event at `position`, audited.
pub(crate) async fn redact(
    ctx: &Ctx,
    position: u64,
    data: &Value,
    metadata: Option<&Map<String, Value>>,
    reason: &str,
    out: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let client = ctx.connect().await?;
    let audit = match roles::redact(
        &client,
        SequencePosition::new(position),
        data,
        reason,
        metadata,
    )
    .await
    {
        Ok(audit) => audit,
        // The function's own check (raised before anything is written):
        // the argument names an event that is not there.
        Err(e)
            if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE)
                && e.as_db_error()
                    .is_some_and(|db| db.message().starts_with("no event at position")) =>
        {
            return Err(Failure::Usage(format!(
                "--position {position}: no event at position {position} (see `dcbstore head` for the highest)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    write_json(out, &json!({"position": position, "redaction": audit}))?;
    Ok(Outcome::Done)
}
