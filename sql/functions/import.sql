-- Import: one unconditional append of events that keep the recorded_at they
-- had where they were exported from (dcbstore import, transfer::import).

-- Appends the events in the order given, like append_batch_unchecked with
-- one request and no condition, but with each event's p_recorded_at (NULL:
-- the time of the append). recorded_at still never goes back along
-- positions: a time below the previous event's (the log's last, or an
-- earlier one of the batch) is raised to it. The caller has checked that no
-- id is stored (transfer::import looks them up first); one stored meanwhile
-- fails the whole batch with unique_violation, nothing written. Returns the
-- last event's position. SECURITY DEFINER like every append entry point.
CREATE OR REPLACE FUNCTION dcbstore.import_batch(
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_tag_ends int[],
    p_tags text[],
    p_recorded_at timestamptz[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET jit = off AS $$
DECLARE
    n int := coalesce(cardinality(p_ids), 0);
    head bigint;
    new_epoch boolean;
    last_recorded timestamptz;
    now_ts timestamptz;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dcbstore.import_batch must run in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25001';
    END IF;
    IF n = 0 THEN
        RAISE EXCEPTION 'an import batch needs at least one event' USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(p_types), 0) <> n OR coalesce(cardinality(p_data), 0) <> n
       OR coalesce(cardinality(p_metadata), 0) <> n OR coalesce(cardinality(p_tag_ends), 0) <> n
       OR coalesce(cardinality(p_recorded_at), 0) <> n THEN
        RAISE EXCEPTION 'import_batch: the arrays differ in length' USING ERRCODE = '22023';
    END IF;
    -- As for every append: an acknowledged import survives a crash.
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'local', true);
    END IF;
    new_epoch := NOT EXISTS (
        SELECT 1 FROM (SELECT e.timeline, e.system_identifier FROM dcbstore.epochs e
                        ORDER BY e.epoch DESC LIMIT 1) AS latest
         WHERE latest.timeline = dcbstore.wal_timeline()
           AND latest.system_identifier = dcbstore.system_identifier());

    PERFORM pg_advisory_xact_lock(dcbstore.append_lock_key());
    head := coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0);
    IF new_epoch THEN
        head := dcbstore.begin_epoch(head);
    END IF;
    last_recorded := (SELECT ev.recorded_at FROM dcbstore.events ev ORDER BY ev.position DESC LIMIT 1);
    now_ts := greatest(clock_timestamp(), last_recorded);
    WITH stamped AS (
        SELECT u.k,
               greatest(max(coalesce(p_recorded_at[u.k], now_ts)) OVER (ORDER BY u.k ROWS UNBOUNDED PRECEDING),
                        last_recorded) AS recorded
          FROM generate_series(1, n) AS u(k)
    ), inserted AS (
        INSERT INTO dcbstore.events (position, id, type, data, metadata, tags, recorded_at)
        SELECT head + s.k, p_ids[s.k], p_types[s.k], p_data[s.k], coalesce(p_metadata[s.k], '{}'),
               ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[s.k - 1], 0) + 1 : p_tag_ends[s.k]]) x ORDER BY 1),
               s.recorded
          FROM stamped s ORDER BY s.k
        RETURNING events.position, events.tags, events.type
    )
    INSERT INTO dcbstore.event_tags (tag, position, type)
    SELECT unnest(i.tags), i.position, i.type FROM inserted i;
    RETURN head + n;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.import_batch(uuid[], text[], jsonb[], jsonb[], int[], text[], timestamptz[]) FROM PUBLIC;
