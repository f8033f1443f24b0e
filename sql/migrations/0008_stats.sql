-- dcbstore schema, version 8: statistics of the log for the operations
-- console (`dcbstore serve`), maintained so that no page scans the log.
--
-- dcbstore.refresh_stats (sql/functions/stats.sql) folds the events after
-- stats_cursor.position into these tables, a bounded batch per call, and
-- moves the cursor in the same transaction: each event is counted exactly
-- once. The append path is untouched (no trigger, no extra write under the
-- append lock); the statistics trail the head by what the last refresh had
-- not yet seen, and every page says how far they reach.

CREATE TABLE dcbstore.stats_cursor (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Every event at or below it is counted.
    "position"   bigint NOT NULL DEFAULT 0 CHECK ("position" >= 0),
    refreshed_at timestamptz
);
INSERT INTO dcbstore.stats_cursor DEFAULT VALUES;

-- Events per type (the overview's volume by type).
CREATE TABLE dcbstore.stats_types (
    type          text PRIMARY KEY,
    events        bigint NOT NULL CHECK (events > 0),
    last_position bigint NOT NULL
);

-- Events per tag; the index answers "the most used tags" without a sort.
CREATE TABLE dcbstore.stats_tags (
    tag    text PRIMARY KEY,
    events bigint NOT NULL CHECK (events > 0)
);
CREATE INDEX stats_tags_events ON dcbstore.stats_tags (events DESC, tag);

-- Events per minute of recorded_at (UTC minutes): the append-rate chart and
-- the counts of the last minute and hour. A row per minute with events:
-- about half a million rows a year of constant traffic.
CREATE TABLE dcbstore.stats_minutes (
    minute timestamptz PRIMARY KEY,
    events bigint NOT NULL CHECK (events > 0)
);

-- What keeps each checkpoint: a durable projection, a durable subscriber
-- (level 3) or a relay (level 4). The console and its gauges tell them
-- apart; rows of earlier versions are projections until their consumer
-- next starts and says otherwise.
ALTER TABLE dcbstore.projections
    ADD COLUMN kind text NOT NULL DEFAULT 'projection'
        CHECK (kind IN ('projection', 'subscriber', 'relay'));
