//! Queries: which events a read returns or an append condition guards.
//!
//! A [`Query`] is either [`Query::all`] or one or more [`QueryItem`]s, OR'd.
//! An event matches an item when its type is one of the item's types (or the
//! item has none) and its tags contain all of the item's tags (or it has none).

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::{Limit, Limits};

/// One OR-branch of a [`Query`]: types OR'd, tags AND'd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryItem {
    /// Event types, any of which matches (empty: any type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Tags, all of which must be present (empty: no tag required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl QueryItem {
    /// An item matching events of any of these types.
    pub fn types<I>(types: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        QueryItem::default().and_types(types)
    }

    /// An item matching events carrying all of these tags.
    pub fn tags<I>(tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        QueryItem::default().and_tags(tags)
    }

    /// Adds types (OR'd with the item's other types).
    #[must_use]
    pub fn and_types<I>(mut self, types: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Adds tags (AND'd with the item's other tags).
    #[must_use]
    pub fn and_tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Whether `event` matches this item.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.tags.iter().all(|t| event.tags.contains(t))
    }

    fn validate(&self, limits: &Limits) -> Result<()> {
        let terms = self.types.len().max(self.tags.len());
        if terms > limits.max_item_terms {
            return Err(limits.exceeded(
                Limit::ItemTerms,
                terms,
                format!(
                    "a query item has {} types and {} tags; the limit is {} of each",
                    self.types.len(),
                    self.tags.len(),
                    limits.max_item_terms
                ),
            ));
        }
        if self.types.is_empty() && self.tags.is_empty() {
            return Err(Error::invalid(
                "query item has neither types nor tags: use Query::all (\"all\" in JSON) to match every event",
            ));
        }
        for t in &self.types {
            limits.check_name("query type", t)?;
        }
        for t in &self.tags {
            limits.check_name("query tag", t)?;
        }
        Ok(())
    }
}

/// Which events to read, or to guard an append against.
///
/// In JSON (CLI, SQL) a query is `"all"` or `[{"types": [...], "tags": [...]}, ...]`.
///
/// ```
/// use dcbstore_core::{Query, QueryItem};
///
/// let q = Query::item(QueryItem::tags(["course:c1"]).and_types(["CourseDefined"]))
///     .or(QueryItem::types(["CourseCapacityChanged"]));
/// assert_eq!(q.items_slice().len(), 2);
/// assert!(q.validate().is_ok());
/// assert!(Query::items([]).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    /// Matches every event.
    All,
    /// Matches events matching any of the items.
    Items(Vec<QueryItem>),
}

impl Query {
    /// The query matching every event.
    #[must_use]
    pub fn all() -> Self {
        Query::All
    }

    /// A query of one item.
    #[must_use]
    pub fn item(item: QueryItem) -> Self {
        Query::Items(vec![item])
    }

    /// A query of several items (OR'd). An empty list is invalid: use [`Query::all`].
    pub fn items(items: impl IntoIterator<Item = QueryItem>) -> Self {
        Query::Items(items.into_iter().collect())
    }

    /// Adds an item (OR). Adding to [`Query::All`] leaves it matching everything.
    #[must_use]
    pub fn or(self, item: QueryItem) -> Self {
        match self {
            Query::All => Query::All,
            Query::Items(mut items) => {
                items.push(item);
                Query::Items(items)
            }
        }
    }

    /// The items, empty for [`Query::All`].
    #[must_use]
    pub fn items_slice(&self) -> &[QueryItem] {
        match self {
            Query::All => &[],
            Query::Items(items) => items,
        }
    }

    /// Whether `event` matches.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Query::All => true,
            Query::Items(items) => items.iter().any(|i| i.matches(event)),
        }
    }

    /// Checks the query is well formed and within the default
    /// [`Limits`]: at least one item, each with a type or a tag, no empty
    /// strings or NUL bytes.
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&Limits::DEFAULT)
    }

    /// [`validate`](Self::validate) against `limits` (a store's).
    pub fn validate_with(&self, limits: &Limits) -> Result<()> {
        match self {
            Query::All => Ok(()),
            Query::Items(items) if items.is_empty() => Err(Error::invalid(
                "query has no items: use Query::all (\"all\" in JSON) to match every event",
            )),
            Query::Items(items) if items.len() > limits.max_query_items => Err(limits.exceeded(
                Limit::QueryItems,
                items.len(),
                format!(
                    "a query has {} items; the limit is {}",
                    items.len(),
                    limits.max_query_items
                ),
            )),
            Query::Items(items) => items.iter().try_for_each(|i| i.validate(limits)),
        }
    }

    /// Parses the JSON form (`"all"` or a list of items) and validates it
    /// against the default [`Limits`].
    pub fn from_json(json: &str) -> Result<Self> {
        Query::from_json_with(json, &Limits::DEFAULT)
    }

    /// [`from_json`](Self::from_json) against `limits`.
    pub fn from_json_with(json: &str, limits: &Limits) -> Result<Self> {
        let q: Query = serde_json::from_str(json)
            .map_err(|e| Error::invalid(format!("invalid query JSON: {e}")))?;
        q.validate_with(limits)?;
        Ok(q)
    }

    /// The JSON form, as the SQL functions take it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Query::All => Value::String("all".into()),
            Query::Items(items) => Value::Array(
                items
                    .iter()
                    .map(|i| serde_json::json!({"types": sorted_terms(&i.types), "tags": sorted_terms(&i.tags)}))
                    .collect(),
            ),
        }
    }
}

/// An item's types or tags as the SQL functions take them: sorted, each once.
#[doc(hidden)]
pub fn sorted_terms(v: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl From<QueryItem> for Query {
    fn from(item: QueryItem) -> Self {
        Query::item(item)
    }
}

impl Serialize for Query {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Query::All => s.serialize_str("all"),
            Query::Items(items) => items.serialize(s),
        }
    }
}

/// What a query looks like in JSON, for error messages.
const QUERY_SHAPE: &str =
    "\"all\" or a list of items like [{\"types\": [\"T\"], \"tags\": [\"t\"]}]";

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Items are deserialized straight from the input (not through a
        // `Value`, which keeps the last of duplicate keys), so an item with a
        // key twice is an error rather than a silently narrower query.
        struct QueryVisitor;
        impl<'de> Visitor<'de> for QueryVisitor {
            type Value = Query;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(QUERY_SHAPE)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Query, E> {
                if s == "all" {
                    Ok(Query::All)
                } else {
                    Err(E::custom(format!(
                        "a query must be {QUERY_SHAPE}, got {}",
                        Value::String(s.to_owned())
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Query, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(item) = seq.next_element::<QueryItem>()? {
                    items.push(item);
                }
                Ok(Query::Items(items))
            }
        }
        d.deserialize_any(QueryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips() {
        assert_eq!(Query::from_json("\"all\"").unwrap(), Query::All);
        let q =
            Query::from_json(r#"[{"types":["A","B"],"tags":["x"]},{"tags":["y","z"]}]"#).unwrap();
        assert_eq!(
            q,
            Query::item(QueryItem::types(["A", "B"]).and_tags(["x"]))
                .or(QueryItem::tags(["y", "z"]))
        );
        let back: Query = serde_json::from_value(q.to_json()).unwrap();
        assert_eq!(back, q);
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        for (json, says) in [
            ("", "invalid query JSON"),
            ("[{\"types\": [\"A\"]", "invalid query JSON"),
            ("\"everything\"", "\"all\" or a list of items"),
            ("{\"types\": [\"A\"]}", "\"all\" or a list of items"),
            ("42", "\"all\" or a list of items"),
            ("[]", "use Query::all"),
            ("[{}]", "neither types nor tags"),
            ("[{\"types\": []}]", "neither types nor tags"),
            ("[{\"tag\": [\"x\"]}]", "unknown field"),
            ("[{\"types\": \"A\"}]", "invalid type"),
            ("[{\"tags\": [1]}]", "invalid type"),
            ("[{\"tags\": [\"\"]}]", "must not be empty"),
            ("[{\"tags\": [\"a\\u0000\"]}]", "NUL"),
        ] {
            let err = Query::from_json(json).expect_err(json).to_string();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn matching_in_memory() {
        let e = Event::new("A", Value::Null).with_tags(["x", "y"]);
        assert!(Query::all().matches(&e));
        assert!(Query::item(QueryItem::types(["B", "A"])).matches(&e));
        assert!(Query::item(QueryItem::tags(["x", "y"])).matches(&e));
        assert!(!Query::item(QueryItem::tags(["x", "z"])).matches(&e));
        assert!(!Query::item(QueryItem::types(["B"]).and_tags(["x"])).matches(&e));
        assert!(Query::item(QueryItem::tags(["z"]))
            .or(QueryItem::types(["A"]))
            .matches(&e));
    }
}
