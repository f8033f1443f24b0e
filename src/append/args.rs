//! A batch's requests as the arguments of `dcbstore.append_batch_typed`, for
//! any driver: the events as parallel arrays (data and metadata as compact
//! JSON text, so that the database measures the sizes the client measured),
//! each request's end, and its guards as typed arrays.

use super::guards::{to_i32, GuardArrays};
use super::prepare::PreparedAppend;
use crate::error::{Error, Result};

/// The statement every driver sends: one batch, one transaction's worth of
/// requests, one row per request.
pub(crate) const APPEND_BATCH_SQL: &str = "SELECT request, outcome, position, conflict, error \
     FROM dcbstore.append_batch_typed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// The fourteen arguments of [`APPEND_BATCH_SQL`], in order.
#[derive(Debug)]
pub(crate) struct BatchArgs<'a> {
    pub(crate) ids: Vec<uuid::Uuid>,
    pub(crate) types: Vec<&'a str>,
    pub(crate) data: Vec<String>,
    pub(crate) metadata: Vec<String>,
    pub(crate) tag_ends: Vec<i32>,
    pub(crate) tags: Vec<&'a str>,
    pub(crate) request_ends: Vec<i32>,
    pub(crate) guards: GuardArrays<'a>,
}

impl<'a> BatchArgs<'a> {
    /// The arguments of `appends`, numbered from one in this order.
    pub(crate) fn of(appends: &'a [PreparedAppend]) -> Result<Self> {
        let total: usize = appends.iter().map(|a| a.events.len()).sum();
        let mut args = BatchArgs {
            ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            data: Vec::with_capacity(total),
            metadata: Vec::with_capacity(total),
            tag_ends: Vec::with_capacity(total),
            tags: Vec::new(),
            request_ends: Vec::with_capacity(appends.len()),
            guards: GuardArrays::default(),
        };
        for a in appends {
            for e in &a.events {
                args.ids.push(e.id);
                args.types.push(e.event_type.as_str());
                args.data.push(json_text(&e.data)?);
                args.metadata.push(json_text(&e.metadata)?);
                args.tags.extend(e.tags.iter().map(String::as_str));
                args.tag_ends.push(to_i32(args.tags.len())?);
            }
            args.request_ends.push(to_i32(args.ids.len())?);
            args.guards.push(a.condition.as_ref())?;
        }
        Ok(args)
    }
}

/// The compact JSON text of a value, as the limits measure it.
fn json_text(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))
}
