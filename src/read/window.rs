//! Where a read stands in its window, for any driver: the part still to read,
//! (lo, hi], how many events it may still return, which page to ask for next
//! and, once it has ended, the position through which it saw every matching
//! event.

use super::ReadOptions;
use crate::event::SequencePosition;

/// A read's window, moved page by page.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    page_size: u64,
    lo: u64,
    /// None until the first page came back with the head.
    hi: Option<u64>,
    to: Option<u64>,
    backwards: bool,
    remaining: Option<u64>,
    exhausted: bool,
    /// Where the read started (its exclusive lower bound) and the top of its
    /// window (the requested upper bound or the head, the lower), once known.
    start: u64,
    top: Option<u64>,
}

impl Window {
    /// The window of `options`, read in pages of `page_size` events.
    pub(crate) fn new(options: &ReadOptions, page_size: u64) -> Window {
        Window {
            page_size: page_size.max(1),
            lo: options.lower(),
            hi: None,
            to: options.upper(),
            backwards: options.is_backwards(),
            remaining: options.max_events(),
            exhausted: false,
            start: options.lower(),
            top: None,
        }
    }

    /// Whether the read is backwards.
    pub(crate) fn backwards(&self) -> bool {
        self.backwards
    }

    /// Whether the read has nothing more to fetch.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Ends the read (after an error).
    pub(crate) fn end(&mut self) {
        self.exhausted = true;
    }

    /// The next page to ask for: (exclusive lower bound, inclusive upper
    /// bound, most events). Before the first page, the upper bound is the
    /// requested one; the server caps it at the head.
    pub(crate) fn request(&self) -> (u64, u64, u64) {
        let want = self
            .remaining
            .map_or(self.page_size, |r| r.min(self.page_size));
        (self.lo, self.hi.or(self.to).unwrap_or(u64::MAX), want)
    }

    /// Moves the window past a page that the server read at `head` for
    /// `want` events: `got` of them, the last (in the read's order) at
    /// `last`. Returns whether another page may hold more.
    pub(crate) fn advance(&mut self, head: u64, want: u64, got: u64, last: Option<u64>) -> bool {
        if self.hi.is_none() {
            let top = self.to.map_or(head, |to| to.min(head));
            self.hi = Some(top);
            self.top = Some(top);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r -= got.min(*r);
        }
        match last {
            Some(p) if got == want && self.remaining != Some(0) => {
                if self.backwards {
                    self.hi = Some(p.saturating_sub(1));
                } else {
                    self.lo = p;
                }
            }
            _ => self.exhausted = true,
        }
        if self.exhausted || self.lo >= self.hi.unwrap_or(0) {
            self.exhausted = true;
        }
        !self.exhausted
    }

    /// Once the read has ended, the position through which it saw every
    /// matching event: a decision made from what it returned appends after
    /// it. The top of the window, except for a forwards read cut short by its
    /// limit: then the last event returned (or where it started, if none).
    pub(crate) fn seen_through(&self, last: Option<SequencePosition>) -> Option<SequencePosition> {
        let top = self.top.unwrap_or(0);
        let cut_short = !self.backwards && self.remaining == Some(0);
        let p = if cut_short {
            last.map_or(self.start, SequencePosition::get).min(top)
        } else {
            top
        };
        (p > 0).then_some(SequencePosition::new(p))
    }
}

/// Puts a page's rows in the read's order (the statement orders them; this
/// checks rather than trusts the order of a UNION ALL's branches), by each
/// row's position as the driver reads it.
pub(crate) fn in_read_order<R>(
    rows: &mut Vec<R>,
    backwards: bool,
    position: impl Fn(&R) -> crate::Result<i64>,
) -> crate::Result<()> {
    let mut prev: Option<i64> = None;
    let mut ordered = true;
    for row in rows.iter() {
        let p = position(row)?;
        if prev.is_some_and(|q| (backwards && p >= q) || (!backwards && p <= q)) {
            ordered = false;
            break;
        }
        prev = Some(p);
    }
    if ordered {
        return Ok(());
    }
    let mut keyed = std::mem::take(rows)
        .into_iter()
        .map(|r| Ok((position(&r)?, r)))
        .collect::<crate::Result<Vec<_>>>()?;
    keyed.sort_by_key(|(p, _)| if backwards { -*p } else { *p });
    *rows = keyed.into_iter().map(|(_, r)| r).collect();
    Ok(())
}

/// A page's rows split into the head (the one row that has one, as the
/// driver reads column 0) and the event rows, in the order sent.
pub(crate) fn split_head<R>(
    rows: Vec<R>,
    head_of: impl Fn(&R) -> crate::Result<Option<i64>>,
) -> crate::Result<(u64, Vec<R>)> {
    let mut head = None;
    let mut events = Vec::with_capacity(rows.len().saturating_sub(1));
    for row in rows {
        match head_of(&row)? {
            Some(h) if head.is_none() => head = Some(h),
            Some(_) => return Err(crate::Error::decode("a read page carried two heads")),
            None => events.push(row),
        }
    }
    let head = head.ok_or_else(|| crate::Error::decode("a read page carried no head"))?;
    Ok((u64::try_from(head).unwrap_or(0), events))
}
