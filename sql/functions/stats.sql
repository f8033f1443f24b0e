-- Statistics of the log (migration 8): folding new events into the counts.

-- Counts the events after stats_cursor.position, at most p_max_events of
-- them, into stats_types, stats_tags and stats_minutes, and moves the cursor
-- past them, in one transaction. Returns the cursor (every event at or
-- below it is counted).
--
-- Exactly once: the cursor row is locked for the whole call, so two
-- refreshers never count the same events; a second one finds it locked and
-- returns at once (SKIP LOCKED) instead of queueing behind the first.
-- Nothing is skipped: positions commit in order (the append lock), so every
-- position at or below the head this call reads is committed and visible to
-- its later statements.
--
-- SECURITY DEFINER: a read-only role (the console's) may keep the counts
-- current, but writes nothing else.
CREATE OR REPLACE FUNCTION dcbstore.refresh_stats(p_max_events bigint DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET jit = off AS $$
DECLARE
    from_pos bigint;
    to_pos bigint;
BEGIN
    IF p_max_events IS NULL OR p_max_events < 1 THEN
        RAISE EXCEPTION 'refresh_stats: p_max_events must be at least 1, got %', p_max_events
            USING ERRCODE = '22023';
    END IF;
    SELECT c."position" INTO from_pos FROM dcbstore.stats_cursor c FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- Another refresher holds it: its count will show once it commits.
        RETURN (SELECT c."position" FROM dcbstore.stats_cursor c);
    END IF;
    to_pos := (SELECT max(ev.position) FROM dcbstore.events ev
                WHERE ev.position > from_pos AND ev.position <= from_pos + p_max_events);
    IF to_pos IS NULL THEN
        -- Nothing in the next p_max_events positions: the head, or a gap
        -- (a new epoch begins above the old timeline's positions).
        to_pos := (SELECT min(ev.position) - 1 FROM dcbstore.events ev WHERE ev.position > from_pos);
        IF to_pos IS NULL THEN
            UPDATE dcbstore.stats_cursor SET refreshed_at = now();
            RETURN from_pos;
        END IF;
    ELSE
        -- Three range scans of the primary key: cheaper than staging the
        -- batch in a temporary table (catalog churn on every call).
        INSERT INTO dcbstore.stats_types AS s (type, events, last_position)
        SELECT ev.type, count(*), max(ev.position) FROM dcbstore.events ev
         WHERE ev.position > from_pos AND ev.position <= to_pos GROUP BY ev.type
        ON CONFLICT (type) DO UPDATE
           SET events = s.events + EXCLUDED.events,
               last_position = greatest(s.last_position, EXCLUDED.last_position);
        INSERT INTO dcbstore.stats_tags AS s (tag, events)
        SELECT t.tag, count(*) FROM dcbstore.events ev CROSS JOIN LATERAL unnest(ev.tags) AS t(tag)
         WHERE ev.position > from_pos AND ev.position <= to_pos GROUP BY t.tag
        ON CONFLICT (tag) DO UPDATE SET events = s.events + EXCLUDED.events;
        INSERT INTO dcbstore.stats_minutes AS s (minute, events)
        SELECT date_bin('1 minute', ev.recorded_at, timestamptz '2000-01-01 00:00:00+00'), count(*)
          FROM dcbstore.events ev
         WHERE ev.position > from_pos AND ev.position <= to_pos GROUP BY 1
        ON CONFLICT (minute) DO UPDATE SET events = s.events + EXCLUDED.events;
    END IF;
    UPDATE dcbstore.stats_cursor SET "position" = to_pos, refreshed_at = now();
    RETURN to_pos;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.refresh_stats(bigint) FROM PUBLIC;
