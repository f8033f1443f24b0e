//! Decoding an event row of a read page, `(head, position, id, type, data,
//! tags, metadata, recorded_at)` with the head NULL, one event at a time: an
//! event that cannot be decoded is an [`Error::Undecodable`] naming its
//! position, never the failure of its page.

use std::error::Error as StdError;

use postgres_types::{FromSql, Type};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::event::{Event, RawEvent, SequencePosition, SequencedEvent};

/// What a read or a subscription yields for each event: [`SequencedEvent`]
/// or [`RawEvent`] (sealed).
pub trait Decode: sealed::FromRow + Sized + Send + 'static {
    /// The event's position.
    fn position(&self) -> SequencePosition;
}

pub(crate) mod sealed {
    /// Decoding from a read page's row (the crate's own).
    pub trait FromRow {
        /// Decodes one row.
        fn decode(row: &tokio_postgres::Row) -> crate::error::Result<Self>
        where
            Self: Sized;
    }
}

impl Decode for SequencedEvent {
    fn position(&self) -> SequencePosition {
        self.position
    }
}

impl sealed::FromRow for SequencedEvent {
    fn decode(row: &Row) -> Result<Self> {
        let position = position(row)?;
        let field = |what: &str, e: &dyn std::fmt::Display| undecodable(position, what, e);
        let metadata = metadata_object(
            position,
            row.try_get::<_, Value>(6)
                .map_err(|e| field("its metadata", &source_text(&e)))?,
        )?;
        Ok(SequencedEvent {
            position,
            event: Event {
                id: row.try_get(2).map_err(|e| field("its id", &e))?,
                event_type: row.try_get(3).map_err(|e| field("its type", &e))?,
                data: row
                    .try_get(4)
                    .map_err(|e| field("its data", &source_text(&e)))?,
                tags: row.try_get(5).map_err(|e| field("its tags", &e))?,
                metadata,
            },
            recorded_at: row
                .try_get(7)
                .map_err(|e| field("its recorded_at", &source_text(&e)))?,
        })
    }
}

impl Decode for RawEvent {
    fn position(&self) -> SequencePosition {
        self.position
    }
}

impl sealed::FromRow for RawEvent {
    fn decode(row: &Row) -> Result<Self> {
        let position = position(row)?;
        let field = |what: &str, e: &dyn std::fmt::Display| undecodable(position, what, e);
        let json = |i: usize, what: &str| -> Result<Box<RawValue>> {
            let JsonText(text) = row.try_get(i).map_err(|e| field(what, &e))?;
            RawValue::from_string(compact(&text)).map_err(|e| field(what, &e))
        };
        Ok(RawEvent {
            position,
            id: row.try_get(2).map_err(|e| field("its id", &e))?,
            event_type: row.try_get(3).map_err(|e| field("its type", &e))?,
            data: json(4, "its data")?,
            tags: row.try_get(5).map_err(|e| field("its tags", &e))?,
            metadata: json(6, "its metadata")?,
            recorded_at: row
                .try_get(7)
                .map_err(|e| field("its recorded_at", &source_text(&e)))?,
        })
    }
}

fn position(row: &Row) -> Result<SequencePosition> {
    let p: i64 = row
        .try_get(1)
        .map_err(|e| Error::decode_from("a read page's row has no position", e))?;
    Ok(SequencePosition::from_sql(p))
}

/// An event's metadata, which must be a JSON object.
pub(crate) fn metadata_object(
    position: SequencePosition,
    metadata: Value,
) -> Result<serde_json::Map<String, Value>> {
    match metadata {
        Value::Object(m) => Ok(m),
        _ => Err(undecodable(position, "its metadata", &"not a JSON object")),
    }
}

pub(crate) fn undecodable(
    position: SequencePosition,
    what: &str,
    e: &dyn std::fmt::Display,
) -> Error {
    Error::Undecodable {
        position,
        message: format!("{what}: {e}"),
    }
}

/// The driver's message with its cause (which says what was wrong with the
/// value: "number out of range", "recursion limit exceeded", an infinite time).
fn source_text(e: &tokio_postgres::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A `jsonb` (or `json`) value as its text, exactly as PostgreSQL holds it:
/// numbers keep every digit, whatever their size.
pub(crate) struct JsonText(pub(crate) String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let raw = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb encoding version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// The compact form of jsonb's text output, which puts one space after each
/// `:` and `,` between values: every space outside strings goes (there is no
/// other whitespace there), strings are kept byte for byte.
pub(crate) fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compact_drops_the_spaces_jsonb_adds_and_keeps_strings() {
        assert_eq!(
            compact(
                r#"{"a": [1, 2.50, {"b c": "x, y: \"z\" \\"}], "n": 123456789012345678901234567890}"#
            ),
            r#"{"a":[1,2.50,{"b c":"x, y: \"z\" \\"}],"n":123456789012345678901234567890}"#
        );
        assert_eq!(compact(r#""  ""#), r#""  ""#);
        assert_eq!(compact("[]"), "[]");
    }
}
