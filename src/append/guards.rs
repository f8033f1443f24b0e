//! A batch's append conditions as the typed arrays `dcbstore.append_batch_typed`
//! takes (layout in `sql/functions/guards.sql`): the database proves them
//! well formed by comparing a few cardinalities, where the JSON form needs a
//! JSON path per request on the hot path.

use super::AppendCondition;
use crate::error::{Error, Result};
use crate::event::SequencePosition;
use crate::query::sorted_terms;

/// The guards of a batch's requests, each "ends" array cumulative.
#[derive(Debug, Default)]
pub(crate) struct GuardArrays<'a> {
    /// One per request: where its guards end.
    pub(crate) guard_ends: Vec<i32>,
    /// One per guard: only events after it count.
    pub(crate) guard_afters: Vec<Option<i64>>,
    /// One per guard: where its query's items end (none: "all").
    pub(crate) guard_item_ends: Vec<i32>,
    /// One per item: where its types end in `item_types`.
    pub(crate) item_type_ends: Vec<i32>,
    /// The items' types.
    pub(crate) item_types: Vec<&'a str>,
    /// One per item: where its tags end in `item_tags`.
    pub(crate) item_tag_ends: Vec<i32>,
    /// The items' tags.
    pub(crate) item_tags: Vec<&'a str>,
}

impl<'a> GuardArrays<'a> {
    /// Adds the next request's condition (none: unconditional). Terms go out
    /// sorted and deduplicated, as the JSON form sends them.
    pub(super) fn push(&mut self, condition: Option<&'a AppendCondition>) -> Result<()> {
        for g in condition.map_or(&[][..], |c| &c.guards[..]) {
            self.guard_afters.push(g.after.map(position).transpose()?);
            for item in g.fail_if_events_match.items_slice() {
                self.item_types.extend(sorted_terms(&item.types));
                self.item_type_ends.push(to_i32(self.item_types.len())?);
                self.item_tags.extend(sorted_terms(&item.tags));
                self.item_tag_ends.push(to_i32(self.item_tags.len())?);
            }
            self.guard_item_ends
                .push(to_i32(self.item_type_ends.len())?);
        }
        self.guard_ends.push(to_i32(self.guard_afters.len())?);
        Ok(())
    }
}

fn position(p: SequencePosition) -> Result<i64> {
    i64::try_from(p.get()).map_err(|_| {
        Error::invalid(format!(
            "a guard's after position must be at most {}",
            i64::MAX
        ))
    })
}

/// A count or an end index of a batch's arrays, as PostgreSQL's `int`.
pub(super) fn to_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| {
        Error::invalid("too many events, tags, guards or query terms in one append batch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Query, QueryItem};

    #[test]
    fn requests_guards_and_items_end_where_their_children_end() {
        let two = AppendCondition::new(
            Query::item(QueryItem::tags(["b", "a", "a"])).or(QueryItem::types(["T"])),
            Some(SequencePosition::new(7)),
        )
        .and(Query::all(), None);
        let mut g = GuardArrays::default();
        g.push(Some(&two)).unwrap();
        g.push(None).unwrap();
        assert_eq!(g.guard_ends, [2, 2]);
        assert_eq!(g.guard_afters, [Some(7), None]);
        assert_eq!(g.guard_item_ends, [2, 2]);
        assert_eq!(g.item_type_ends, [0, 1]);
        assert_eq!(g.item_types, ["T"]);
        assert_eq!(g.item_tag_ends, [2, 2]);
        assert_eq!(g.item_tags, ["a", "b"]);
    }
}
