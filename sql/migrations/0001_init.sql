-- dcbstore schema, version 1: the event log and its tag index.
--
-- Every object lives in the `dcbstore` schema; every function in
-- sql/functions/. Writes go through dcbstore.append_batch (or its JSON
-- wrapper dcbstore.append) only: that function takes the append lock that
-- makes positions commit in order.

CREATE TABLE dcbstore.store (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id   uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO dcbstore.store DEFAULT VALUES;

CREATE TABLE dcbstore.events (
    position    bigint PRIMARY KEY CHECK (position > 0),
    id          uuid NOT NULL UNIQUE,
    type        text NOT NULL CHECK (type <> ''),
    data        jsonb NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    -- Sorted and deduplicated; returned by reads. Lookups use dcbstore.event_tags.
    tags        text[] NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
-- Types-only query items: index range scan in position order per type.
CREATE INDEX events_type_position ON dcbstore.events (type, position);

-- One row per (tag, event). A B-tree on (tag, position) keeps "events with tag X
-- after position P" an index range scan in position order at any log size
-- (no GIN: its bitmap scans lose position order and must sort every match).
-- The event's type is repeated here so that items with tags and types (the
-- usual DCB query) never join back to events to filter.
CREATE TABLE dcbstore.event_tags (
    tag      text NOT NULL CHECK (tag <> ''),
    position bigint NOT NULL,
    type     text NOT NULL,
    PRIMARY KEY (tag, position)
);
