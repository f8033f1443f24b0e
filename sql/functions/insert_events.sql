-- Inserts the events of the given requests, in order, at positions head + 1,
-- head + 2, ...: into events (tags sorted and deduplicated, recorded at
-- `recorded`) and event_tags. No NOTIFY here: a notification queued by the
-- append transaction would hold PostgreSQL's cluster-wide notify lock from its
-- commit until the WAL flush (and any synchronous-replication wait) is done,
-- one commit queue for every database of the cluster; writers wake followers
-- after the commit instead.
CREATE OR REPLACE FUNCTION dcbstore.insert_events(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], requests int[], head bigint, recorded timestamptz
) RETURNS void
-- Called under the entry points' settings (no JIT).
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- The events to insert, in position order: built here, so that the
    -- statement below is a plain scan of one array (the cost of a statement
    -- this size is mostly setting up its plan, so it has as few nodes as can
    -- be). One request, or every request, is the events 1..n.
    ks int[];
    r int;
    k int;
BEGIN
    IF cardinality(requests) = cardinality(p_request_ends) THEN
        ks := ARRAY(SELECT generate_series(1, p_request_ends[cardinality(p_request_ends)]));
    ELSE
        ks := '{}';
        FOREACH r IN ARRAY requests LOOP
            FOR k IN coalesce(p_request_ends[r - 1], 0) + 1 .. p_request_ends[r] LOOP
                ks := ks || k;
            END LOOP;
        END LOOP;
    END IF;
    WITH inserted AS (
        INSERT INTO dcbstore.events (position, id, type, data, metadata, tags, recorded_at)
        SELECT head + u.o, coalesce(p_ids[u.k], gen_random_uuid()),
               p_types[u.k], p_data[u.k], coalesce(p_metadata[u.k], '{}'),
               ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[u.k - 1], 0) + 1 : p_tag_ends[u.k]]) x ORDER BY 1),
               recorded
          FROM unnest(ks) WITH ORDINALITY AS u(k, o)
        RETURNING events.position, events.tags, events.type
    )
    INSERT INTO dcbstore.event_tags (tag, position, type)
    SELECT unnest(i.tags), i.position, i.type FROM inserted i;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.insert_events(uuid[], text[], jsonb[], jsonb[], int[], text[], int[], int[],
                                              bigint, timestamptz) FROM PUBLIC;
