//! `dcbstore grant` and `dcbstore redact`: least privilege and audited
//! erasure.

use std::io::Write;

use serde_json::{json, Map, Value};

use dcbstore::roles::{self, Grants};
use dcbstore::{Error, PgErrorExt, SequencePosition};

use tokio_postgres::error::SqlState;

use super::{output_error, write_json, Ctx, Failure, Outcome};

/// Grants `role` append and read (and redact, and import), or read only.
pub(crate) async fn grant(
    ctx: &Ctx,
    role: &str,
    redact: bool,
    import: bool,
    read_only: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = ctx.connect().await?;
    // clap refuses --read-only with --redact or --import; grant_app refuses
    // the pairs too.
    let (grants, granted) = if read_only {
        (Grants::read_only(), "read only".to_string())
    } else {
        let mut grants = Grants::app();
        let mut granted = String::from("append and read");
        if redact {
            grants = grants.with_redact();
            granted.push_str(" and redact");
        }
        if import {
            grants = grants.with_import();
            granted.push_str(" and import");
        }
        (grants, granted)
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
            if e.sql_state() == Some(&SqlState::INVALID_PARAMETER_VALUE)
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
