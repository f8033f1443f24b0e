//! The checks of one event's names and JSON against the [`Limits`].

use serde_json::{Map, Value};

use super::{Limit, Limits};
use crate::error::{Error, Result};

impl Limits {
    /// Checks an event type, a tag or a query term: not empty, no NUL byte
    /// (PostgreSQL text cannot hold NUL), at most
    /// [`max_name_bytes`](Self::max_name_bytes). `what` names it in the
    /// error ("event 2 tag").
    pub fn check_name(&self, what: &str, s: &str) -> Result<()> {
        if s.is_empty() {
            return Err(Error::invalid(format!("{what} must not be empty")));
        }
        if s.len() > self.max_name_bytes {
            let head: String = s.chars().take(40).collect();
            return Err(self.exceeded(
                Limit::NameBytes,
                s.len(),
                format!(
                    "{what} \"{head}...\" is {} bytes long; the limit is {} bytes",
                    s.len(),
                    self.max_name_bytes
                ),
            ));
        }
        if s.contains('\0') {
            return Err(Error::invalid(format!(
                "{what} {s:?} contains a NUL byte, which PostgreSQL cannot store"
            )));
        }
        Ok(())
    }

    /// Checks an event's data: at most [`max_json_depth`](Self::max_json_depth)
    /// levels of arrays and objects, no NUL in a string or a key.
    pub fn check_data(&self, what: &str, data: &Value) -> Result<()> {
        self.check_json(what, data, 0)
    }

    /// Checks an event's metadata as [`check_data`](Self::check_data) does
    /// (the object itself is the first level).
    pub fn check_metadata(&self, what: &str, metadata: &Map<String, Value>) -> Result<()> {
        self.check_object(what, metadata, 1)
    }

    /// Checks `v`, which has `depth` arrays or objects around it: at most
    /// `max_json_depth` of them nest, whatever the innermost holds (an empty
    /// one counts too), and no string or key holds a NUL.
    fn check_json(&self, what: &str, v: &Value, depth: usize) -> Result<()> {
        match v {
            Value::String(s) if s.contains('\0') => Err(Error::invalid(format!(
                "{what} contains a string with a NUL byte (\\u0000), which PostgreSQL cannot store"
            ))),
            Value::Array(_) | Value::Object(_) if depth >= self.max_json_depth => Err(self
                .exceeded(
                    Limit::JsonDepth,
                    depth + 1,
                    format!(
                        "{what} is nested deeper than {} levels",
                        self.max_json_depth
                    ),
                )),
            Value::Array(a) => a
                .iter()
                .try_for_each(|x| self.check_json(what, x, depth + 1)),
            Value::Object(m) => self.check_object(what, m, depth + 1),
            _ => Ok(()),
        }
    }

    fn check_object(&self, what: &str, m: &Map<String, Value>, depth: usize) -> Result<()> {
        for (k, x) in m {
            if k.contains('\0') {
                return Err(Error::invalid(format!(
                    "{what} has a key with a NUL byte (\\u0000), which PostgreSQL cannot store"
                )));
            }
            self.check_json(what, x, depth)?;
        }
        Ok(())
    }
}
