//! `dcbstore grant` and `dcbstore redact`: least privilege and audited
//! erasure.

use std::io::Write;

use serde_json::{json, Map, Value};

use dcbstore::connection::{connect, ConnectOptions};
use dcbstore::roles::{self, Grants};
use dcbstore::{Error, SequencePosition};

use super::{output_error, write_json, Ctx, Outcome};

/// Grants `role` append and read (and redact).
pub(crate) async fn grant(
    ctx: &Ctx,
    role: &str,
    redact: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let client = connect(&ConnectOptions::parse(&ctx.url)?).await?;
    let grants = if redact {
        Grants::app().with_redact()
    } else {
        Grants::app()
    };
    roles::grant_app(&client, role, grants).await?;
    writeln!(
        out,
        "granted {role:?} append and read{}",
        if redact { " and redact" } else { "" }
    )
    .map_err(output_error)?;
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
) -> Result<Outcome, Error> {
    let client = connect(&ConnectOptions::parse(&ctx.url)?).await?;
    let audit = roles::redact(
        &client,
        SequencePosition::new(position),
        data,
        reason,
        metadata,
    )
    .await?;
    write_json(out, &json!({"position": position, "redaction": audit}))?;
    Ok(Outcome::Done)
}
