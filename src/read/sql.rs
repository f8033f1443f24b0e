//! The SQL of a read: `dcbstore.read_pages` (`sql/functions/pages.sql`), one
//! static statement for every query, with the query as arrays. Each
//! connection prepares it once; the function plans its statement once per
//! session, index ranges and probes only, whatever the statistics.
//!
//! The first page and the head it was read at come from one statement, one
//! snapshot: the head is the row `(head, NULL, ...)`; the events follow,
//! `(NULL, position, id, ...)`, each with its request's number last. Several
//! requests (decisions read together) share the statement and the snapshot.

use tokio_postgres::types::{ToSql, Type};

use crate::query::Query;

/// The statement of every read page.
pub(super) const READ_PAGES_SQL: &str =
    "SELECT head, position, id, type, data, tags, metadata, recorded_at, request \
     FROM dcbstore.read_pages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// The parameter types of [`READ_PAGES_SQL`].
pub(super) const READ_PAGES_TYPES: [Type; 13] = [
    Type::INT8_ARRAY,
    Type::INT8_ARRAY,
    Type::INT8_ARRAY,
    Type::BOOL_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::BOOL,
];

/// A query as `dcbstore.read_pages` takes it: "all", or its tagged items
/// (first tag, types, other tags) and the types of its types-only items,
/// each term once.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ReadSql {
    all: bool,
    items: Vec<Item>,
    types_only: Vec<String>,
    pub(super) backwards: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    first: String,
    types: Vec<String>,
    others: Vec<String>,
}

impl ReadSql {
    /// The arrays of `query`, read in one direction.
    pub(crate) fn new(query: &Query, backwards: bool) -> ReadSql {
        let mut sql = ReadSql {
            backwards,
            ..ReadSql::default()
        };
        let items = match query {
            Query::All => {
                sql.all = true;
                return sql;
            }
            Query::Items(items) => items,
        };
        for item in items {
            let (types, tags) = (sorted(&item.types), sorted(&item.tags));
            match tags.split_first() {
                // Types-only items are one set of types: items are OR'd, and
                // so are an item's types.
                None => sql.types_only.extend(types),
                Some((first, others)) => {
                    let item = Item {
                        first: first.clone(),
                        types,
                        others: others.to_vec(),
                    };
                    if !sql.items.contains(&item) {
                        sql.items.push(item);
                    }
                }
            }
        }
        sql.types_only.sort_unstable();
        sql.types_only.dedup();
        sql
    }

    /// How many terms (tags and types) the statement takes for this read.
    pub(super) fn terms(&self) -> usize {
        let items: usize = self
            .items
            .iter()
            .map(|i| 1 + i.types.len() + i.others.len())
            .sum();
        1 + items + self.types_only.len()
    }

    /// The parameters of one page of each of `requests` (a read and its
    /// window: (exclusive lower bound, inclusive upper bound, most events)),
    /// all in one direction.
    pub(super) fn params(requests: &[(&ReadSql, [i64; 3])]) -> Params {
        let mut p = Params {
            backwards: requests.first().is_some_and(|(s, _)| s.backwards),
            ..Params::default()
        };
        for (k, (sql, [lo, hi, want])) in requests.iter().enumerate() {
            let request = i32::try_from(k + 1).unwrap_or(i32::MAX);
            p.after.push(*lo);
            p.to.push(*hi);
            p.limit.push(*want);
            p.all.push(sql.all);
            for item in &sql.items {
                p.item_request.push(request);
                p.item_first.push(item.first.clone());
                p.item_types.extend(item.types.iter().cloned());
                p.item_type_ends.push(len_i32(p.item_types.len()));
                p.item_tags.extend(item.others.iter().cloned());
                p.item_tag_ends.push(len_i32(p.item_tags.len()));
            }
            for t in &sql.types_only {
                p.type_request.push(request);
                p.types.push(t.clone());
            }
        }
        p
    }
}

/// The arguments of `dcbstore.read_pages`.
#[derive(Debug, Default)]
pub(super) struct Params {
    after: Vec<i64>,
    to: Vec<i64>,
    limit: Vec<i64>,
    all: Vec<bool>,
    item_request: Vec<i32>,
    item_first: Vec<String>,
    item_type_ends: Vec<i32>,
    item_types: Vec<String>,
    item_tag_ends: Vec<i32>,
    item_tags: Vec<String>,
    type_request: Vec<i32>,
    types: Vec<String>,
    backwards: bool,
}

impl Params {
    /// As the statement's parameters, in order.
    pub(super) fn as_sql(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.after,
            &self.to,
            &self.limit,
            &self.all,
            &self.item_request,
            &self.item_first,
            &self.item_type_ends,
            &self.item_types,
            &self.item_tag_ends,
            &self.item_tags,
            &self.type_request,
            &self.types,
            &self.backwards,
        ]
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut out = v.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryItem;

    #[test]
    fn duplicate_terms_and_items_are_read_once() {
        let q = Query::item(QueryItem::tags(["x", "x", "y"]))
            .or(QueryItem::tags(["y", "x"]))
            .or(QueryItem::types(["A", "A"]))
            .or(QueryItem::types(["B", "A"]));
        let sql = ReadSql::new(&q, false);
        assert_eq!(sql.items.len(), 1);
        assert_eq!(sql.items[0].first, "x");
        assert_eq!(sql.items[0].others, ["y"]);
        assert_eq!(sql.types_only, ["A", "B"]);
    }

    #[test]
    fn a_query_as_wide_as_the_ceiling_is_one_statement_with_its_terms_as_arrays() {
        let mut q = Query::item(QueryItem::types((0..100).map(|t| format!("T{t}"))));
        for i in 0..10_000 {
            q = q.or(QueryItem::types((0..100).map(|t| format!("T{i}.{t}"))));
            q = q.or(QueryItem::tags([format!("a{i}"), format!("b{i}")]).and_types(["X"]));
        }
        let sql = ReadSql::new(&q, false);
        let p = ReadSql::params(&[(&sql, [0, 10, 100])]);
        assert_eq!(p.item_first.len(), 10_000);
        assert_eq!(p.types.len(), 100 + 10_000 * 100);
        assert_eq!(p.item_tag_ends.last(), Some(&10_000));
        assert_eq!(p.item_type_ends.last(), Some(&10_000));
    }

    #[test]
    fn several_requests_are_numbered_from_one() {
        let a = ReadSql::new(&Query::item(QueryItem::tags(["a"]).and_types(["T"])), false);
        let b = ReadSql::new(&Query::item(QueryItem::types(["U", "V"])), false);
        let all = ReadSql::new(&Query::all(), false);
        let p = ReadSql::params(&[(&a, [0, 9, 5]), (&b, [3, 9, 5]), (&all, [0, 9, 1])]);
        assert_eq!(p.after, [0, 3, 0]);
        assert_eq!(p.all, [false, false, true]);
        assert_eq!(p.item_request, [1]);
        assert_eq!(p.type_request, [2, 2]);
        assert_eq!(p.types, ["U", "V"]);
    }
}
