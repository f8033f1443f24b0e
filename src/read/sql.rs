//! The SQL of a read: `dcbstore.read_pages` (`sql/functions/pages.sql`), one
//! static statement for every query, with the query as arrays, and
//! `dcbstore.read_page_tagged`, the same for a single request of one tagged
//! item (a decision's boundary, most often) in a statement a third the size.
//! Each connection prepares them once; the functions plan their statements
//! once per session, index ranges and probes only, whatever the statistics.
//!
//! The first page and the head it was read at come from one statement, one
//! snapshot: the head is the row `(head, NULL, ...)`; the events follow,
//! `(NULL, position, id, ...)`, each with its request's number last. Several
//! requests (decisions read together) share the statement and the snapshot.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::error::{PgResultExt, Result};
use crate::query::{sorted_terms, Query};

/// The statement of every read page.
pub(crate) const READ_PAGES_SQL: &str =
    "SELECT head, position, id, type, data, tags, metadata, recorded_at, request \
     FROM dcbstore.read_pages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// The parameter types of [`READ_PAGES_SQL`].
const READ_PAGES_TYPES: [Type; 13] = [
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

/// The statement of a page of one request whose query is one tagged item.
pub(crate) const READ_TAGGED_SQL: &str =
    "SELECT head, position, id, type, data, tags, metadata, recorded_at, request \
     FROM dcbstore.read_page_tagged($1, $2, $3, $4, $5, $6, $7)";

/// The parameter types of [`READ_TAGGED_SQL`].
const READ_TAGGED_TYPES: [Type; 7] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT_ARRAY,
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
pub(crate) struct Item {
    pub(crate) first: String,
    pub(crate) types: Vec<String>,
    pub(crate) others: Vec<String>,
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
            let (types, tags) = (
                owned(sorted_terms(&item.types)),
                owned(sorted_terms(&item.tags)),
            );
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

    /// The call that reads one page of each of `requests` (a read and its
    /// window: (exclusive lower bound, inclusive upper bound, most events)),
    /// all in one direction: `read_page_tagged` for one request of one
    /// tagged item, else `read_pages`.
    pub(crate) fn call(requests: &[(&ReadSql, [i64; 3])]) -> PageCall {
        match requests {
            [(sql, window)] if !sql.all && sql.types_only.is_empty() && sql.items.len() == 1 => {
                PageCall::Tagged {
                    window: *window,
                    item: sql.items[0].clone(),
                    backwards: sql.backwards,
                }
            }
            _ => PageCall::Pages(ReadSql::params(requests)),
        }
    }

    /// The parameters of `read_pages` for one page of each of `requests`.
    fn params(requests: &[(&ReadSql, [i64; 3])]) -> Params {
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

/// One page call, as [`ReadSql::call`] chose it.
#[derive(Debug)]
pub(crate) enum PageCall {
    /// `dcbstore.read_page_tagged`.
    Tagged {
        window: [i64; 3],
        item: Item,
        backwards: bool,
    },
    /// `dcbstore.read_pages`.
    Pages(Params),
}

impl PageCall {
    /// Runs the call on `c` (preparing its statement once per connection):
    /// the head's row, then the events' rows, each with its request's
    /// number last.
    pub(super) async fn query(&self, c: &ClientWrapper) -> Result<Vec<Row>> {
        match self {
            PageCall::Tagged {
                window: [lo, hi, want],
                item,
                backwards,
            } => {
                let stmt = c
                    .prepare_typed_cached(READ_TAGGED_SQL, &READ_TAGGED_TYPES)
                    .await
                    .db()?;
                Ok(c.query(
                    &stmt,
                    &[
                        lo,
                        hi,
                        want,
                        &item.first,
                        &item.types,
                        &item.others,
                        backwards,
                    ],
                )
                .await
                .db()?)
            }
            PageCall::Pages(params) => {
                let stmt = c
                    .prepare_typed_cached(READ_PAGES_SQL, &READ_PAGES_TYPES)
                    .await
                    .db()?;
                Ok(c.query(&stmt, &params.as_sql()).await.db()?)
            }
        }
    }
}

/// The arguments of `dcbstore.read_pages`.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub(crate) after: Vec<i64>,
    pub(crate) to: Vec<i64>,
    pub(crate) limit: Vec<i64>,
    pub(crate) all: Vec<bool>,
    pub(crate) item_request: Vec<i32>,
    pub(crate) item_first: Vec<String>,
    pub(crate) item_type_ends: Vec<i32>,
    pub(crate) item_types: Vec<String>,
    pub(crate) item_tag_ends: Vec<i32>,
    pub(crate) item_tags: Vec<String>,
    pub(crate) type_request: Vec<i32>,
    pub(crate) types: Vec<String>,
    pub(crate) backwards: bool,
}

impl Params {
    /// As the statement's parameters, in order.
    fn as_sql(&self) -> [&(dyn ToSql + Sync); 13] {
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

fn owned(terms: Vec<&str>) -> Vec<String> {
    terms.into_iter().map(str::to_owned).collect()
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
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

    #[test]
    fn one_request_of_one_tagged_item_takes_the_small_statement() {
        let one = ReadSql::new(
            &Query::item(QueryItem::tags(["b", "a"]).and_types(["T"])),
            true,
        );
        match ReadSql::call(&[(&one, [1, 9, 5])]) {
            PageCall::Tagged {
                window,
                item,
                backwards,
            } => {
                assert_eq!(window, [1, 9, 5]);
                assert_eq!(
                    (item.first.as_str(), &item.others[..]),
                    ("a", &["b".to_string()][..])
                );
                assert_eq!(item.types, ["T"]);
                assert!(backwards);
            }
            other => panic!("{other:?}"),
        }
        let two = ReadSql::new(
            &Query::item(QueryItem::tags(["a"])).or(QueryItem::tags(["b"])),
            false,
        );
        let types = ReadSql::new(&Query::item(QueryItem::types(["T"])), false);
        let all = ReadSql::new(&Query::all(), false);
        for call in [
            ReadSql::call(&[(&two, [0, 9, 5])]),
            ReadSql::call(&[(&types, [0, 9, 5])]),
            ReadSql::call(&[(&all, [0, 9, 5])]),
            ReadSql::call(&[(&one, [0, 9, 5]), (&one, [0, 9, 5])]),
        ] {
            assert!(matches!(call, PageCall::Pages(_)), "{call:?}");
        }
    }
}
