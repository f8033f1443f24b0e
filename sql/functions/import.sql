-- Import: one unconditional append of events that keep the recorded_at they
-- had where they were exported from (dcbstore import, transfer::import).

-- Appends the events in the order given, like append_batch_unchecked with
-- one request and no condition (data and metadata as JSON text, validated
-- against dcbstore.limits the same way), but with each event's p_recorded_at
-- (NULL: the time of the append). A time is refused (SQLSTATE 22023) unless
-- it lies in [the previous event's time (the log's last, or an earlier one of
-- the batch), the server's clock + dcbstore.limits.max_clock_skew]: recorded_at
-- never goes back along positions, and no import can stamp the log in the
-- future, which every later append would inherit. The caller has checked that
-- no id is stored (transfer::import looks them up first); one stored meanwhile
-- fails the whole batch with unique_violation, nothing written. Returns the
-- last event's position. SECURITY DEFINER like every append entry point, but
-- executable only by the roles `dcbstore grant ROLE --import` names: it sets
-- times, which an application must not.
CREATE OR REPLACE FUNCTION dcbstore.import_batch(
    p_ids uuid[],
    p_types text[],
    p_data text[],
    p_metadata text[],
    p_tag_ends int[],
    p_tags text[],
    p_recorded_at timestamptz[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET jit = off SET enable_seqscan = off AS $$
DECLARE
    n int := coalesce(cardinality(p_ids), 0);
    head bigint;
    new_epoch boolean;
    last_recorded timestamptz;
    now_ts timestamptz;
    lim dcbstore.limits := dcbstore.current_limits();
    data jsonb[];
    metadata jsonb[];
    sizes bigint[];
    bad record;
    late record;
    lock_wait text;
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
    IF n > lim.max_events_per_append THEN
        RAISE EXCEPTION 'the import batch has % events; the limit is % (max_events_per_append in dcbstore.limits)',
            n, lim.max_events_per_append USING ERRCODE = '22023';
    END IF;
    IF p_tag_ends[n] IS DISTINCT FROM coalesce(cardinality(p_tags), 0)
       OR EXISTS (SELECT 1 FROM generate_subscripts(p_tag_ends, 1) i
                   WHERE p_tag_ends[i] IS NULL OR p_tag_ends[i] < coalesce(p_tag_ends[i - 1], 0)) THEN
        RAISE EXCEPTION 'tag_ends must be non-decreasing and end at the number of tags' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_ids) AS x(id) WHERE x.id IS NULL) THEN
        RAISE EXCEPTION 'an imported event needs its id' USING ERRCODE = '22023';
    END IF;
    data := ARRAY(SELECT x::jsonb FROM unnest(p_data) WITH ORDINALITY AS u(x, o) ORDER BY u.o);
    metadata := ARRAY(SELECT x::jsonb FROM unnest(p_metadata) WITH ORDINALITY AS u(x, o) ORDER BY u.o);
    sizes := ARRAY(SELECT coalesce(octet_length(d), 4) + coalesce(octet_length(m), 2)
                     FROM unnest(p_data, p_metadata) WITH ORDINALITY AS u(d, m, o) ORDER BY u.o);
    SELECT * INTO bad FROM dcbstore.events_error(p_types, data, metadata, sizes, p_tag_ends, p_tags, lim);
    IF bad.k IS NOT NULL THEN
        RAISE EXCEPTION '%', bad.reason USING ERRCODE = '22023';
    END IF;
    IF (SELECT sum(s) FROM unnest(sizes) s) > lim.max_append_bytes THEN
        RAISE EXCEPTION 'the import batch is % bytes of JSON; the limit is % (max_append_bytes in dcbstore.limits)',
            (SELECT sum(s) FROM unnest(sizes) s), lim.max_append_bytes USING ERRCODE = '22023';
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

    -- The append lock (see dcbstore.lock_appends).
    lock_wait := dcbstore.lock_appends();
    head := dcbstore.locked_head(new_epoch);
    last_recorded := (SELECT ev.recorded_at FROM dcbstore.events ev ORDER BY ev.position DESC LIMIT 1);
    now_ts := greatest(clock_timestamp(), last_recorded);
    -- Each time within [the previous event's, the clock + the skew], under
    -- the lock (the previous event is the log's last one until then).
    SELECT v.k, v.at, v.prev INTO late
      FROM (SELECT u.k, u.at, coalesce(lag(u.at) OVER (ORDER BY u.k), last_recorded) AS prev
              FROM (SELECT x.k, coalesce(p_recorded_at[x.k], now_ts) AS at
                      FROM generate_series(1, n) AS x(k)) u) v
     WHERE v.at IN ('infinity', '-infinity') OR v.at > clock_timestamp() + lim.max_clock_skew OR v.at < v.prev
     ORDER BY v.k
     LIMIT 1;
    IF NOT FOUND THEN
        NULL;
    ELSIF late.at IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'event %: recorded_at % is not a time: give a finite timestamp, or leave it out to stamp the event with the time of the import',
            late.k, late.at USING ERRCODE = '22023';
    ELSIF late.at > clock_timestamp() + lim.max_clock_skew THEN
        RAISE EXCEPTION 'event %: recorded_at % is more than % ahead of the server''s clock (%): check the clocks, or leave recorded_at out to stamp the event with the time of the import',
            late.k, late.at, lim.max_clock_skew, clock_timestamp() USING ERRCODE = '22023';
    ELSE
        RAISE EXCEPTION 'event %: recorded_at % is before the previous event''s (%): times never go back along positions; import into an empty store in the export''s order, or leave recorded_at out to stamp the event with the time of the import',
            late.k, late.at, late.prev USING ERRCODE = '22023';
    END IF;
    WITH stamped AS (
        SELECT u.k, coalesce(p_recorded_at[u.k], now_ts) AS recorded
          FROM generate_series(1, n) AS u(k)
    ), inserted AS (
        INSERT INTO dcbstore.events (position, id, type, data, metadata, tags, recorded_at)
        SELECT head + s.k, p_ids[s.k], p_types[s.k], data[s.k], coalesce(metadata[s.k], '{}'),
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

REVOKE ALL ON FUNCTION dcbstore.import_batch(uuid[], text[], text[], text[], int[], text[], timestamptz[]) FROM PUBLIC;
