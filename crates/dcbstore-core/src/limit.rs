//! [`Limit`]: which of the [`Limits`](crate::limits::Limits) an input is over
//! (`dcbstore::limits::Limit`). Below [`Error`](crate::Error), which names it.

use std::fmt;

use serde::Serialize;

/// One of the [`Limits`](crate::limits::Limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// [`Limits::max_events_per_append`](crate::limits::Limits::max_events_per_append).
    EventsPerAppend,
    /// [`Limits::max_event_bytes`](crate::limits::Limits::max_event_bytes).
    EventBytes,
    /// [`Limits::max_append_bytes`](crate::limits::Limits::max_append_bytes).
    AppendBytes,
    /// [`Limits::max_tags_per_event`](crate::limits::Limits::max_tags_per_event).
    TagsPerEvent,
    /// [`Limits::max_name_bytes`](crate::limits::Limits::max_name_bytes).
    NameBytes,
    /// [`Limits::max_json_depth`](crate::limits::Limits::max_json_depth).
    JsonDepth,
    /// [`Limits::max_query_items`](crate::limits::Limits::max_query_items).
    QueryItems,
    /// [`Limits::max_item_terms`](crate::limits::Limits::max_item_terms).
    ItemTerms,
    /// [`Limits::max_guards`](crate::limits::Limits::max_guards).
    Guards,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 9] = [
        Limit::EventsPerAppend,
        Limit::EventBytes,
        Limit::AppendBytes,
        Limit::TagsPerEvent,
        Limit::NameBytes,
        Limit::JsonDepth,
        Limit::QueryItems,
        Limit::ItemTerms,
        Limit::Guards,
    ];

    /// The field's name (`max_event_bytes`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Limit::EventsPerAppend => "max_events_per_append",
            Limit::EventBytes => "max_event_bytes",
            Limit::AppendBytes => "max_append_bytes",
            Limit::TagsPerEvent => "max_tags_per_event",
            Limit::NameBytes => "max_name_bytes",
            Limit::JsonDepth => "max_json_depth",
            Limit::QueryItems => "max_query_items",
            Limit::ItemTerms => "max_item_terms",
            Limit::Guards => "max_guards",
        }
    }

    /// The environment variable the CLI reads it from
    /// (`DCBSTORE_MAX_EVENT_BYTES`).
    #[must_use]
    pub fn env_var(self) -> String {
        format!("DCBSTORE_{}", self.name().to_ascii_uppercase())
    }

    #[doc(hidden)]
    pub fn ceiling_reason(self) -> &'static str {
        match self {
            Limit::TagsPerEvent | Limit::NameBytes => " (the schema's constraint)",
            Limit::JsonDepth => " (JSON decoders stop at 128 levels)",
            Limit::EventBytes => " (PostgreSQL's largest jsonb)",
            Limit::AppendBytes => " (a batch must fit PostgreSQL's 1 GiB messages)",
            _ => "",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
