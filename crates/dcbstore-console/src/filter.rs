//! The parameters of `/events` and `/events/live` (a contract, like the
//! CLI's flags), checked into the store's query and window, and the URLs of
//! other pages of the same filter.

use serde::Deserialize;

use super::error::PageError;
use dcbstore::event::SequencePosition;
use dcbstore::query::{Query, QueryItem};
use dcbstore::read::ReadOptions;
use dcbstore::store::Store;

/// Events per page.
pub(crate) const PAGE: u64 = 50;

/// The URL's parameters (a contract, like the CLI's flags): repeatable
/// `type` and `tag` (one query item: types OR'd, tags AND'd) or `query`
/// (a JSON query, the store's semantics); the window `after`, `from`,
/// `to`; the page cursors `before` (the page of older events) and `newer`
/// (the page of newer events); `live`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default, rename = "type")]
    types: Vec<String>,
    #[serde(default, rename = "tag")]
    tags: Vec<String>,
    query: Option<String>,
    after: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    newer: Option<String>,
    live: Option<String>,
}

/// `Params` checked: the query and the window in the store's terms.
pub(crate) struct Filter {
    pub(crate) types: Vec<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) json: Option<String>,
    pub(crate) query: Query,
    pub(crate) after: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) before: Option<u64>,
    pub(crate) newer: Option<u64>,
    pub(crate) live: bool,
}

fn position(name: &str, v: Option<&str>) -> Result<Option<u64>, PageError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            PageError::BadRequest(format!(
                "{name}={v:?} is not a position: give a whole number from 0"
            ))
        }),
    }
}

impl Filter {
    pub(crate) fn parse(p: &Params, store: &Store) -> Result<Filter, PageError> {
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let (types, tags) = (clean(&p.types), clean(&p.tags));
        let json = p
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        let query = match (&json, types.is_empty(), tags.is_empty()) {
            (Some(_), false, _) | (Some(_), _, false) => {
                return Err(PageError::BadRequest(
                    "give either `query` (a JSON query) or `type` and `tag`, not both".into(),
                ))
            }
            (Some(q), ..) => Query::from_json_with(q, store.limits())?,
            (None, true, true) => Query::all(),
            (None, false, _) => Query::item(QueryItem::types(types.clone()).and_tags(tags.clone())),
            (None, true, false) => Query::item(QueryItem::tags(tags.clone())),
        };
        query.validate_with(store.limits())?;
        let from = position("from", p.from.as_deref())?;
        let after = match (position("after", p.after.as_deref())?, from) {
            (Some(_), Some(_)) => {
                return Err(PageError::BadRequest(
                    "give `after` or `from`, not both".into(),
                ))
            }
            (a, None) => a,
            (None, Some(f)) => Some(f.saturating_sub(1)),
        };
        let before = position("before", p.before.as_deref())?;
        let newer = position("newer", p.newer.as_deref())?;
        if before.is_some() && newer.is_some() {
            return Err(PageError::BadRequest(
                "give `before` or `newer`, not both".into(),
            ));
        }
        Ok(Filter {
            types,
            tags,
            json,
            query,
            after,
            to: position("to", p.to.as_deref())?,
            before,
            newer,
            live: p.live.as_deref().is_some_and(|v| v != "0" && !v.is_empty()),
        })
    }

    /// This filter's URL with other cursors (and live mode) than its own.
    pub(crate) fn url(&self, path: &str, cursor: Option<(&str, u64)>, live: bool) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for t in &self.types {
            s.append_pair("type", t);
        }
        for t in &self.tags {
            s.append_pair("tag", t);
        }
        if let Some(q) = &self.json {
            s.append_pair("query", q);
        }
        if let Some(a) = self.after {
            s.append_pair("after", &a.to_string());
        }
        if let Some(t) = self.to {
            s.append_pair("to", &t.to_string());
        }
        if let Some((name, p)) = cursor {
            s.append_pair(name, &p.to_string());
        }
        if live {
            s.append_pair("live", "1");
        }
        let qs = s.finish();
        if qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{qs}")
        }
    }

    /// The window's options, narrowed to `(after, to]`.
    pub(crate) fn window(&self, after: Option<u64>, to: Option<u64>) -> ReadOptions {
        let after = after.max(self.after);
        let to = match (to, self.to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut o = ReadOptions::new().after_opt(after.map(SequencePosition::new));
        if let Some(t) = to {
            o = o.to(SequencePosition::new(t));
        }
        o
    }
}

/// Percent-encodes a query-string value.
pub(crate) fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
