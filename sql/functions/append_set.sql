-- How append_batch_typed decides a batch of requests under the append lock,
-- set-based: the usual batch (see append_sequential.sql for the others).

-- append_batch's set-based path, under the append lock: no id is stored or
-- repeated and every guard's "after" is at most the head, so earlier requests'
-- events (all above the head) match a guard exactly when they match its query.
-- early: the requests whose guards match the log up to position seen (<= head),
-- found before the lock; only (seen, head] remains to be checked here.
CREATE OR REPLACE FUNCTION dcbstore.append_set(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[],
    p_guard_ends int[], p_guard_afters bigint[], p_guard_item_ends int[],
    p_item_type_ends int[], p_item_types text[], p_item_tag_ends int[], p_item_tags text[],
    head bigint, seen bigint, early int[], recorded timestamptz
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Called by append_batch_typed, under the entry points' settings (no JIT, whose
-- start would cost more than the queries): a SET clause here would cost its
-- save and restore per call. The guards come typed (see guards.sql): their
-- JSON form is built only for the conflicts reported.
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_requests int := cardinality(p_request_ends);
    log_conflicts int[];
    -- Pairs (dep_r[j], dep_q[j]): request dep_q[j] < dep_r[j] writes an event
    -- that a guard of dep_r[j] matches; dep_q[j] = 0: dep_r[j] has a guard
    -- "all", which any accepted earlier request blocks.
    dep_r int[];
    dep_q int[];
    accepted boolean[] := array_fill(false, ARRAY[n_requests]);
    blocked_by_log boolean[] := array_fill(false, ARRAY[n_requests]);
    accepted_list int[] := '{}';
    ends bigint[] := array_fill(0::bigint, ARRAY[n_requests]);
    next_position bigint := head;
    conds jsonb[];
    r int;
    j int;
    blocked boolean;
BEGIN
    -- Requests whose guards match the log in (after, head]: those found up to
    -- seen before the lock, plus matches among the events committed since.
    log_conflicts := early;
    IF head > seen AND head - seen <= 10000 THEN
        -- A few batches' worth: hash-joined, one statement for every guard.
        WITH recent AS MATERIALIZED (
            SELECT ev.position, ev.type, ev.tags FROM dcbstore.events ev
             WHERE ev.position > seen AND ev.position <= head
        ), recent_tags AS MATERIALIZED (
            SELECT rc.position, rc.type, rc.tags, t AS tag FROM recent rc CROSS JOIN LATERAL unnest(rc.tags) AS t
        ), items AS MATERIALIZED (
            SELECT * FROM dcbstore.guard_items(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                               p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags)
        )
        SELECT log_conflicts || coalesce(array_agg(DISTINCT m.r), '{}') INTO log_conflicts
          FROM (SELECT it.r FROM items it JOIN recent_tags rt ON rt.tag = it.tags[1]
                 WHERE rt.position > it.after AND rt.tags @> it.tags
                   AND (cardinality(it.types) = 0 OR rt.type = ANY (it.types))
                UNION ALL
                SELECT it.r FROM items it CROSS JOIN LATERAL unnest(it.types) AS ty JOIN recent rc ON rc.type = ty
                 WHERE cardinality(it.tags) = 0 AND NOT it.match_all AND rc.position > it.after
                UNION ALL
                SELECT it.r FROM items it
                 WHERE it.match_all AND EXISTS (SELECT 1 FROM recent rc WHERE rc.position > it.after)) AS m;
    ELSIF head > seen THEN
        -- More: an index probe per item.
        SELECT log_conflicts || coalesce(array_agg(DISTINCT m.r), '{}') INTO log_conflicts
          FROM dcbstore.guards_matching(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                        p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags,
                                        seen, head) AS m;
    END IF;

    -- One request has no earlier requests to depend on.
    IF n_requests > 1 THEN
        -- Hash joins on an item's first tag or on its types, then the full check.
        WITH be AS MATERIALIZED (
            SELECT re.r AS q, k, p_types[k] AS type,
                   p_tags[coalesce(p_tag_ends[k - 1], 0) + 1 : p_tag_ends[k]] AS tags
              FROM unnest(p_request_ends) WITH ORDINALITY AS re(e, r)
              CROSS JOIN LATERAL generate_series(coalesce(p_request_ends[re.r - 1], 0) + 1, re.e) AS k
        ), bt AS MATERIALIZED (
            SELECT be.q, be.type, be.tags, t AS tag FROM be CROSS JOIN LATERAL unnest(be.tags) AS t
        ), items AS MATERIALIZED (
            SELECT * FROM dcbstore.guard_items(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                               p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags) AS gi
             WHERE gi.r > 1
        ), pairs AS (
            SELECT it.r, bt.q FROM items it JOIN bt ON bt.tag = it.tags[1]
             WHERE bt.q < it.r AND bt.tags @> it.tags
               AND (cardinality(it.types) = 0 OR bt.type = ANY (it.types))
            UNION
            SELECT it.r, be.q FROM items it CROSS JOIN LATERAL unnest(it.types) AS ty JOIN be ON be.type = ty
             WHERE cardinality(it.tags) = 0 AND NOT it.match_all AND be.q < it.r
            UNION
            SELECT it.r, 0 FROM items it WHERE it.match_all
        )
        SELECT coalesce(array_agg(p.r ORDER BY p.r, p.q), '{}'), coalesce(array_agg(p.q ORDER BY p.r, p.q), '{}')
          INTO dep_r, dep_q
          FROM pairs p;
    ELSE
        dep_r := '{}'; dep_q := '{}';
    END IF;
    FOREACH j IN ARRAY log_conflicts LOOP
        blocked_by_log[j] := true;
    END LOOP;

    -- Decide in order: a request is blocked by the log or by an accepted
    -- earlier one. dep_r is sorted, so one cursor walks the pairs once.
    j := 1;
    FOR r IN 1..n_requests LOOP
        blocked := blocked_by_log[r];
        WHILE j <= cardinality(dep_r) AND dep_r[j] < r LOOP
            j := j + 1;
        END LOOP;
        WHILE j <= cardinality(dep_r) AND dep_r[j] = r LOOP
            IF dep_q[j] = 0 THEN
                blocked := blocked OR cardinality(accepted_list) > 0;
            ELSE
                blocked := blocked OR accepted[dep_q[j]];
            END IF;
            j := j + 1;
        END LOOP;
        IF NOT blocked THEN
            accepted[r] := true;
            accepted_list := accepted_list || r;
            next_position := next_position + p_request_ends[r] - coalesce(p_request_ends[r - 1], 0);
            ends[r] := next_position;
        END IF;
    END LOOP;

    IF cardinality(accepted_list) > 0 THEN
        PERFORM dcbstore.insert_events(p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags,
                                       p_request_ends, accepted_list, head, recorded);
    END IF;

    -- A conflict is reported against the log as the batch leaves it (its
    -- head: next_position), later requests' events included: a caller that
    -- retries after it then starts from what is committed, not from a state
    -- the batch already moved past.
    IF cardinality(accepted_list) < n_requests THEN
        conds := dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                      p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags);
    END IF;
    FOR r IN 1..n_requests LOOP
        request := r;
        error := NULL;
        IF accepted[r] THEN
            outcome := 'appended'; "position" := ends[r]; conflict := NULL;
        ELSE
            outcome := 'conflict'; "position" := NULL;
            conflict := dcbstore.condition_conflict(conds[r], next_position);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.append_set(uuid[], text[], jsonb[], jsonb[], int[], text[], int[],
                                           int[], bigint[], int[], int[], text[], int[], text[],
                                           bigint, bigint, int[], timestamptz) FROM PUBLIC;
