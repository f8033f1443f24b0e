-- How append_batch_typed decides a batch under the append lock request by
-- request: idempotent retries and guards after the head.

-- append_batch's general path, under the append lock: one request at a time,
-- with the idempotency check by id.
CREATE OR REPLACE FUNCTION dcbstore.append_sequential(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], p_conditions jsonb[], head bigint,
    recorded timestamptz
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Called by append_batch_typed, under the entry points' settings (generic plans:
-- plans over function scans are the same for any input; no JIT).
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r int;
    s int;
    e int;
    n_found int;
    n_same int;
    found_max bigint;
    bad_id uuid;
    conflicted int[] := '{}';
BEGIN
    FOR r IN 1..cardinality(p_request_ends) LOOP
        s := coalesce(p_request_ends[r - 1], 0);
        e := p_request_ends[r];
        request := r;
        conflict := NULL; error := NULL; "position" := NULL;

        -- Idempotent retry: ids already stored (by earlier appends or requests).
        SELECT count(*)::int,
               count(*) FILTER (WHERE ev.type = u.type AND ev.data = u.data
                   AND ev.metadata = coalesce(u.metadata, '{}')
                   AND ev.tags = ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[s + u.ord - 1], 0) + 1 : p_tag_ends[s + u.ord]]) x ORDER BY 1))::int,
               max(ev.position),
               (array_agg(u.id ORDER BY u.ord) FILTER (WHERE NOT (ev.type = u.type AND ev.data = u.data
                   AND ev.metadata = coalesce(u.metadata, '{}')
                   AND ev.tags = ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[s + u.ord - 1], 0) + 1 : p_tag_ends[s + u.ord]]) x ORDER BY 1))))[1]
          INTO n_found, n_same, found_max, bad_id
          FROM unnest(p_ids[s + 1 : e], p_types[s + 1 : e], p_data[s + 1 : e], p_metadata[s + 1 : e])
               WITH ORDINALITY AS u(id, type, data, metadata, ord)
          CROSS JOIN LATERAL (SELECT * FROM dcbstore.events e1 WHERE e1.id = u.id LIMIT 1) AS ev;
        IF n_found = e - s AND n_same = n_found THEN
            outcome := 'duplicate'; "position" := found_max;
            RETURN NEXT;
            CONTINUE;
        ELSIF n_found > 0 THEN
            IF bad_id IS NULL THEN
                SELECT u.id INTO bad_id
                  FROM unnest(p_ids[s + 1 : e]) WITH ORDINALITY AS u(id, ord)
                 CROSS JOIN LATERAL (SELECT 1 FROM dcbstore.events e1 WHERE e1.id = u.id LIMIT 1) AS hit
                 ORDER BY u.ord LIMIT 1;
                error := format('event id %s is already stored by another append; an idempotent retry must resend exactly the same events', bad_id);
            ELSE
                error := format('event id %s is already stored with different content', bad_id);
            END IF;
            outcome := 'rejected';
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_conditions[r]) AS g(guard)
                    WHERE dcbstore.latest_match(g.guard -> 'query', coalesce((g.guard ->> 'after')::bigint, 0), head)
                          IS NOT NULL) THEN
            -- Reported once the batch is decided, against its final head.
            conflicted := conflicted || r;
            CONTINUE;
        END IF;

        PERFORM dcbstore.insert_events(p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags,
                                       p_request_ends, ARRAY[r], head, recorded);
        head := head + (e - s);
        outcome := 'appended'; "position" := head;
        RETURN NEXT;
    END LOOP;
    -- The conflicts, against the log as the batch leaves it (as append_set).
    FOREACH r IN ARRAY conflicted LOOP
        request := r; outcome := 'conflict'; "position" := NULL; error := NULL;
        conflict := dcbstore.condition_conflict(p_conditions[r], head);
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.append_sequential(uuid[], text[], jsonb[], jsonb[], int[], text[], int[],
                                                  jsonb[], bigint, timestamptz) FROM PUBLIC;
