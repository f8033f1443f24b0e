//! The SQL of a read: one static statement per query *shape* (its items,
//! how many tags each has, whether it has types, how many types a types-only
//! item has, and the direction), with the query's values as parameters. The
//! text depends on the shape only, so each connection prepares it once and
//! PostgreSQL keeps its plan; no SQL is generated or planned per read.
//!
//! Every statement starts with the head (one index probe) and bounds the
//! page by it, so the first page and the head it was read at come from one
//! snapshot: the head is the first row, `(head, NULL, ...)`; the events
//! follow, `(NULL, position, id, ...)`.

use std::fmt::Write;

use tokio_postgres::types::{ToSql, Type};

use crate::query::Query;

/// The head, captured in the statement's snapshot, and the window's upper
/// bound: `$2`, never above the head.
const PREFIX: &str =
    "WITH w AS MATERIALIZED (SELECT coalesce(max(position), 0) AS head FROM dcbstore.events) \
     SELECT w.head, NULL::bigint, NULL::uuid, NULL::text, NULL::jsonb, NULL::text[], NULL::jsonb, \
     NULL::timestamptz FROM w UNION ALL ";
const HI: &str = "(SELECT least($2::bigint, w.head) FROM w)";
const COLUMNS: &str =
    "SELECT NULL, e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at FROM dcbstore.events e";

/// A statement with more parameters than this is not prepared and kept (a
/// rare, large query), but sent with its types in one round trip and
/// planned for that call.
pub(super) const MAX_CACHED_PARAMS: usize = 64;

/// A read's statement and the query's values, its parameters from `$4` on
/// (`$1` the window's exclusive lower bound, `$2` its inclusive upper bound,
/// `$3` the page's size).
#[derive(Debug, PartialEq)]
pub(crate) struct ReadSql {
    pub(super) text: String,
    values: Vec<Param>,
}

#[derive(Debug, PartialEq)]
enum Param {
    Text(String),
    TextArray(Vec<String>),
    IntArray(Vec<i32>),
}

/// Up to this many tagged items, each is a branch of its own (the plan of a
/// usual query); above, one statement reads any number of them.
const MAX_TAG_BRANCHES: usize = 16;

impl ReadSql {
    /// The statement reading `query` in one direction.
    pub(crate) fn new(query: &Query, backwards: bool) -> ReadSql {
        let dir = if backwards { " DESC" } else { "" };
        let mut text = String::from(PREFIX);
        let mut values = Vec::new();
        let items = match query {
            Query::All => {
                let _ = write!(
                    text,
                    "({COLUMNS} WHERE e.position > $1::bigint AND e.position <= {HI} \
                     ORDER BY e.position{dir} LIMIT $3::bigint)"
                );
                return ReadSql { text, values };
            }
            Query::Items(items) => items,
        };
        let mut branches: Vec<String> = Vec::new();
        let mut seen: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
        let mut tagged: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
        // Types-only items are one set of types, whatever their number: items
        // are OR'd, and so are an item's types.
        let mut types_only: Vec<&str> = Vec::new();
        for item in items {
            let (types, tags) = (sorted(&item.types), sorted(&item.tags));
            if seen.contains(&(types.clone(), tags.clone())) {
                continue;
            }
            seen.push((types.clone(), tags.clone()));
            if tags.is_empty() {
                types_only.extend(types);
            } else {
                tagged.push((types, tags));
            }
        }
        if tagged.len() <= MAX_TAG_BRANCHES {
            for (types, tags) in &tagged {
                let Some((first, rest)) = tags.split_first() else {
                    continue;
                };
                // Driven by the first tag's (tag, position) range; the type is
                // on the same row, every other tag a primary-key probe.
                values.push(Param::Text((*first).to_owned()));
                let mut b = format!(
                    "(SELECT t0.position FROM dcbstore.event_tags t0 WHERE t0.tag = ${} \
                     AND t0.position > $1::bigint AND t0.position <= {HI}",
                    values.len() + 3
                );
                if !types.is_empty() {
                    values.push(Param::TextArray(
                        types.iter().map(|t| (*t).to_owned()).collect(),
                    ));
                    let _ = write!(b, " AND t0.type = ANY (${}::text[])", values.len() + 3);
                }
                for (i, tag) in rest.iter().enumerate() {
                    values.push(Param::Text((*tag).to_owned()));
                    let _ = write!(
                        b,
                        " AND EXISTS (SELECT 1 FROM dcbstore.event_tags t{n} WHERE t{n}.tag = ${p} \
                         AND t{n}.position = t0.position)",
                        n = i + 1,
                        p = values.len() + 3
                    );
                }
                let _ = write!(b, " ORDER BY t0.position{dir} LIMIT $3::bigint)");
                branches.push(b);
            }
        } else {
            // Many tagged items: one statement for any number of them, each
            // item a bounded range of its first tag (a lateral index scan),
            // its types and other tags as slices of flat arrays. A branch per
            // item would nest as deep as the query is wide.
            let mut firsts = Vec::with_capacity(tagged.len());
            let (mut all_types, mut type_ends) = (Vec::new(), Vec::with_capacity(tagged.len()));
            let (mut others, mut other_ends) = (Vec::new(), Vec::with_capacity(tagged.len()));
            for (types, tags) in &tagged {
                firsts.push(tags[0].to_owned());
                all_types.extend(types.iter().map(|t| (*t).to_owned()));
                type_ends.push(all_types.len() as i32);
                others.extend(tags[1..].iter().map(|t| (*t).to_owned()));
                other_ends.push(others.len() as i32);
            }
            let n = values.len() + 3;
            values.push(Param::TextArray(firsts));
            values.push(Param::TextArray(all_types));
            values.push(Param::IntArray(type_ends));
            values.push(Param::TextArray(others));
            values.push(Param::IntArray(other_ends));
            let (f, ty, te, o, oe) = (n + 1, n + 2, n + 3, n + 4, n + 5);
            branches.push(format!(
                "(SELECT x.position FROM generate_subscripts(${f}::text[], 1) AS i \
                 CROSS JOIN LATERAL (SELECT t0.position FROM dcbstore.event_tags t0 \
                 WHERE t0.tag = (${f}::text[])[i] AND t0.position > $1::bigint AND t0.position <= {HI} \
                 AND (coalesce((${te}::int[])[i - 1], 0) = (${te}::int[])[i] \
                 OR t0.type = ANY ((${ty}::text[])[coalesce((${te}::int[])[i - 1], 0) + 1 : (${te}::int[])[i]])) \
                 AND NOT EXISTS (SELECT 1 FROM unnest((${o}::text[])[coalesce((${oe}::int[])[i - 1], 0) + 1 : (${oe}::int[])[i]]) AS other(tag) \
                 WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1 WHERE t1.tag = other.tag AND t1.position = t0.position)) \
                 ORDER BY t0.position{dir} LIMIT $3::bigint) AS x \
                 ORDER BY x.position{dir} LIMIT $3::bigint)"
            ));
        }
        types_only.sort_unstable();
        types_only.dedup();
        match types_only.as_slice() {
            [] => {}
            [t] => {
                values.push(Param::Text((*t).to_owned()));
                branches.push(format!(
                    "(SELECT e.position FROM dcbstore.events e WHERE e.type = ${} \
                     AND e.position > $1::bigint AND e.position <= {HI} \
                     ORDER BY e.position{dir} LIMIT $3::bigint)",
                    values.len() + 3
                ));
            }
            many => {
                // One ordered (type, position) range per type, as a lateral
                // scan over the array: PostgreSQL cannot merge
                // `type = ANY (...)` ranges in position order.
                values.push(Param::TextArray(
                    many.iter().map(|t| (*t).to_owned()).collect(),
                ));
                branches.push(format!(
                    "(SELECT x.position FROM unnest(${}::text[]) AS ty(t) \
                     CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e WHERE e.type = ty.t \
                     AND e.position > $1::bigint AND e.position <= {HI} \
                     ORDER BY e.position{dir} LIMIT $3::bigint) AS x \
                     ORDER BY x.position{dir} LIMIT $3::bigint)",
                    values.len() + 3
                ));
            }
        }
        let positions = if branches.len() == 1 {
            branches.swap_remove(0)
        } else {
            format!(
                "SELECT DISTINCT m.position FROM ({}) m ORDER BY m.position{dir} LIMIT $3::bigint",
                branches.join(" UNION ALL ")
            )
        };
        // The page's positions first (bounded index scans), then its rows by
        // primary key: never a join the planner could turn into a table scan.
        let _ = write!(
            text,
            "({COLUMNS} WHERE e.position = ANY (ARRAY({positions})) ORDER BY e.position{dir})"
        );
        ReadSql { text, values }
    }

    /// How many parameters the statement takes.
    pub(super) fn param_count(&self) -> usize {
        3 + self.values.len()
    }

    /// The parameters with their types, for a window (lo, hi] and a page of
    /// at most `want` events.
    pub(super) fn params<'a>(
        &'a self,
        window: &'a [i64; 3],
    ) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
        let mut out: Vec<(&(dyn ToSql + Sync), Type)> = window
            .iter()
            .map(|v| (v as &(dyn ToSql + Sync), Type::INT8))
            .collect();
        for v in &self.values {
            out.push(match v {
                Param::Text(s) => (s as &(dyn ToSql + Sync), Type::TEXT),
                Param::TextArray(a) => (a as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
                Param::IntArray(a) => (a as &(dyn ToSql + Sync), Type::INT4_ARRAY),
            });
        }
        out
    }
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryItem;

    #[test]
    fn the_text_depends_on_the_shape_only() {
        let a = ReadSql::new(
            &Query::item(QueryItem::tags(["course:c1"]).and_types(["A", "B"])),
            false,
        );
        let b = ReadSql::new(
            &Query::item(QueryItem::tags(["course:c2"]).and_types(["C"])),
            false,
        );
        assert_eq!(a.text, b.text);
        assert_ne!(a.values, b.values);
        let back = ReadSql::new(
            &Query::item(QueryItem::tags(["course:c2"]).and_types(["C"])),
            true,
        );
        assert_ne!(back.text, b.text);
    }

    #[test]
    fn duplicate_terms_and_items_are_read_once() {
        let q = Query::item(QueryItem::tags(["x", "x", "y"]))
            .or(QueryItem::tags(["y", "x"]))
            .or(QueryItem::types(["A", "A"]));
        let sql = ReadSql::new(&q, false);
        assert_eq!(sql.param_count(), 3 + 3);
        // The head's row, and one between the two items' branches.
        assert_eq!(sql.text.matches("UNION ALL").count(), 2);
    }

    #[test]
    fn a_query_as_wide_as_the_ceiling_is_one_statement_of_a_few_branches() {
        let mut q = Query::item(QueryItem::types((0..100).map(|t| format!("T{t}"))));
        for i in 0..10_000 {
            q = q.or(QueryItem::types((0..100).map(|t| format!("T{i}.{t}"))));
            q = q.or(QueryItem::tags([format!("a{i}"), format!("b{i}")]).and_types(["X"]));
        }
        let sql = ReadSql::new(&q, false);
        // The head's row, and one between the tagged and the types-only items.
        assert_eq!(sql.text.matches("UNION ALL").count(), 2);
        assert_eq!(sql.param_count(), 3 + 6);
    }

    #[test]
    fn every_parameter_is_used() {
        let q = Query::item(QueryItem::tags(["a", "b", "c"]).and_types(["T"]))
            .or(QueryItem::types(["U", "V"]));
        let sql = ReadSql::new(&q, true);
        for n in 1..=sql.param_count() {
            assert!(sql.text.contains(&format!("${n}")), "${n} in {}", sql.text);
        }
        assert!(!sql.text.contains(&format!("${}", sql.param_count() + 1)));
    }
}
