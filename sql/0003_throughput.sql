-- dcbstore schema, version 3: throughput.
--
-- Conditional appends check the log before the append lock; under it only the
-- events committed since remain to be checked, so batches hold the lock for
-- less time. The Rust client, which validates at the edge, calls
-- append_batch_unchecked; a single request skips the in-batch dependency
-- statements; reads of "all" are plain primary-key range scans.

DROP FUNCTION dcbstore.append_set(uuid[], text[], jsonb[], jsonb[], int[], text[], int[], jsonb[], bigint);

-- append_batch's set-based path, under the append lock: no id is stored or
-- repeated and every guard's "after" is at most the head, so earlier requests'
-- events (all above the head) match a guard exactly when they match its query.
-- early: the requests whose guards match the log up to position seen (<= head).
CREATE FUNCTION dcbstore.append_set(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], p_conditions jsonb[], head bigint,
    seen bigint, early int[]
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Custom plans here: with the batch's real sizes the planner picks hash joins,
-- which generic plans miss. JIT would cost more than the queries.
LANGUAGE plpgsql VOLATILE SET jit = off AS $$
DECLARE
    n_requests int := cardinality(p_request_ends);
    log_conflicts int[];
    dep_r int[];
    dep_q int[];
    accepted boolean[] := array_fill(false, ARRAY[n_requests]);
    blocked_by_log boolean[] := array_fill(false, ARRAY[n_requests]);
    needs_none_before boolean[] := array_fill(false, ARRAY[n_requests]);
    all_guarded int[];
    accepted_list int[] := '{}';
    ends bigint[] := array_fill(0::bigint, ARRAY[n_requests]);
    next_position bigint := head;
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
            SELECT c.r, coalesce((g.guard ->> 'after')::bigint, 0) AS after,
                   jsonb_typeof(g.guard -> 'query') = 'string' AS match_all,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(i.item -> 'types', '[]'))) AS types,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(i.item -> 'tags', '[]'))) AS tags
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
              CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)
              LEFT JOIN LATERAL jsonb_array_elements(
                  CASE WHEN jsonb_typeof(g.guard -> 'query') = 'array' THEN g.guard -> 'query' END) AS i(item) ON true
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
        SELECT log_conflicts || coalesce(array_agg(DISTINCT c.r), '{}') INTO log_conflicts
          FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
          CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)
         WHERE dcbstore.latest_match(g.guard -> 'query',
                                     greatest(coalesce((g.guard ->> 'after')::bigint, 0), seen), head) IS NOT NULL;
    END IF;

    -- One request has no earlier requests to depend on.
    IF n_requests > 1 THEN
        -- Pairs (r, q), q < r, where an event of request q matches a guard of r:
        -- hash joins on an item's first tag or on its types, then the full check.
        WITH be AS MATERIALIZED (
            SELECT re.r AS q, k, p_types[k] AS type,
                   p_tags[coalesce(p_tag_ends[k - 1], 0) + 1 : p_tag_ends[k]] AS tags
              FROM unnest(p_request_ends) WITH ORDINALITY AS re(e, r)
              CROSS JOIN LATERAL generate_series(coalesce(p_request_ends[re.r - 1], 0) + 1, re.e) AS k
        ), bt AS MATERIALIZED (
            SELECT be.q, be.type, be.tags, t AS tag FROM be CROSS JOIN LATERAL unnest(be.tags) AS t
        ), items AS MATERIALIZED (
            SELECT c.r, jsonb_typeof(g.guard -> 'query') = 'string' AS match_all,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(i.item -> 'types', '[]'))) AS types,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(i.item -> 'tags', '[]'))) AS tags
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
              CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)
              LEFT JOIN LATERAL jsonb_array_elements(
                  CASE WHEN jsonb_typeof(g.guard -> 'query') = 'array' THEN g.guard -> 'query' END) AS i(item) ON true
             WHERE c.r > 1
        ), pairs AS (
            SELECT it.r, bt.q FROM items it JOIN bt ON bt.tag = it.tags[1]
             WHERE bt.q < it.r AND bt.tags @> it.tags
               AND (cardinality(it.types) = 0 OR bt.type = ANY (it.types))
            UNION
            SELECT it.r, be.q FROM items it CROSS JOIN LATERAL unnest(it.types) AS ty JOIN be ON be.type = ty
             WHERE cardinality(it.tags) = 0 AND NOT it.match_all AND be.q < it.r
        )
        SELECT coalesce(array_agg(p.r ORDER BY p.r, p.q), '{}'), coalesce(array_agg(p.q ORDER BY p.r, p.q), '{}')
          INTO dep_r, dep_q
          FROM pairs p;
        -- Requests with an "all" guard are blocked by any accepted earlier request.
        SELECT coalesce(array_agg(DISTINCT c.r), '{}') INTO all_guarded
          FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
          CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)
         WHERE jsonb_typeof(g.guard -> 'query') = 'string';
    ELSE
        dep_r := '{}'; dep_q := '{}';
        all_guarded := '{}';
    END IF;
    FOREACH j IN ARRAY log_conflicts LOOP
        blocked_by_log[j] := true;
    END LOOP;
    FOREACH j IN ARRAY all_guarded LOOP
        needs_none_before[j] := true;
    END LOOP;

    -- Decide in order: a request is blocked by the log or by an accepted
    -- earlier one. dep_r is sorted, so one cursor walks the pairs once.
    j := 1;
    FOR r IN 1..n_requests LOOP
        blocked := blocked_by_log[r] OR (needs_none_before[r] AND cardinality(accepted_list) > 0);
        WHILE j <= cardinality(dep_r) AND dep_r[j] < r LOOP
            j := j + 1;
        END LOOP;
        WHILE j <= cardinality(dep_r) AND dep_r[j] = r LOOP
            blocked := blocked OR accepted[dep_q[j]];
            j := j + 1;
        END LOOP;
        ends[r] := next_position;  -- for a blocked request: the position before it
        IF NOT blocked THEN
            accepted[r] := true;
            accepted_list := accepted_list || r;
            next_position := next_position + p_request_ends[r] - coalesce(p_request_ends[r - 1], 0);
            ends[r] := next_position;
        END IF;
    END LOOP;

    IF cardinality(accepted_list) > 0 THEN
        PERFORM dcbstore.insert_events(p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags,
                                       p_request_ends, accepted_list, head);
    END IF;

    FOR r IN 1..n_requests LOOP
        request := r;
        error := NULL;
        IF accepted[r] THEN
            outcome := 'appended'; "position" := ends[r]; conflict := NULL;
        ELSE
            outcome := 'conflict'; "position" := NULL;
            conflict := dcbstore.condition_conflict(p_conditions[r], ends[r]);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- append_batch without the validation of its input, for callers that
-- validate the same rules before sending (the Rust client does, at the edge):
-- malformed input here gives wrong decisions or raw SQL errors.
CREATE FUNCTION dcbstore.append_batch_unchecked(
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_tag_ends int[],
    p_tags text[],
    p_request_ends int[],
    p_conditions jsonb[]
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Plans over function scans are the same for any input: generic plans avoid
-- replanning per call, and JIT would cost more than the queries.
LANGUAGE plpgsql VOLATILE SET jit = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n_events int := coalesce(cardinality(p_ids), 0);
    head bigint;
    seen bigint;
    early int[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dcbstore.append_batch must run in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25001';
    END IF;
    -- Before the lock, while another batch holds it: the requests whose guards
    -- already match the log up to the head seen now. Appends commit in position
    -- order, so the log up to that head is final and only the events committed
    -- between here and the lock remain to be checked under it. One statement
    -- for every guard (latest_match's scans, each stopping at its first row).
    seen := coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0);
    SELECT coalesce(array_agg(DISTINCT gd.r), '{}') INTO early
      FROM (SELECT c.r, coalesce((g.guard ->> 'after')::bigint, 0) AS after, g.guard -> 'query' AS q
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
              CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)) AS gd
     WHERE gd.after < seen
       AND CASE WHEN jsonb_typeof(gd.q) = 'string' THEN true
           ELSE EXISTS (
               SELECT 1 FROM jsonb_array_elements(gd.q) AS i(item)
                WHERE CASE WHEN jsonb_array_length(coalesce(i.item -> 'tags', '[]')) > 0 THEN
                          EXISTS (SELECT 1 FROM dcbstore.event_tags t
                                   WHERE t.tag = i.item -> 'tags' ->> 0
                                     AND t.position > gd.after AND t.position <= seen
                                     AND (jsonb_array_length(coalesce(i.item -> 'types', '[]')) = 0
                                          OR t.type IN (SELECT jsonb_array_elements_text(i.item -> 'types')))
                                     AND (jsonb_array_length(i.item -> 'tags') = 1
                                          OR (SELECT count(*) FROM dcbstore.event_tags t2
                                               WHERE t2.position = t.position
                                                 AND t2.tag = ANY (ARRAY(SELECT jsonb_array_elements_text(i.item -> 'tags'))))
                                             = (SELECT count(DISTINCT x) FROM jsonb_array_elements_text(i.item -> 'tags') x)))
                      ELSE
                          EXISTS (SELECT 1 FROM jsonb_array_elements_text(i.item -> 'types') AS ty
                                   WHERE EXISTS (SELECT 1 FROM dcbstore.events ev
                                                  WHERE ev.type = ty AND ev.position > gd.after AND ev.position <= seen))
                      END)
           END;

    PERFORM pg_advisory_xact_lock(7235937214386151426);  -- the append lock
    head := coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0);

    -- The usual batch (no id stored or repeated, no guard after the head) is
    -- decided with a few set-based statements; anything else request by request.
    -- (A LATERAL with LIMIT keeps this an index probe per id whatever the
    -- table statistics say when the plan is cached.)
    IF NOT EXISTS (SELECT 1 FROM unnest(p_ids) AS x(id)
                    CROSS JOIN LATERAL (SELECT 1 FROM dcbstore.events ev WHERE ev.id = x.id LIMIT 1) AS hit)
       AND n_events = (SELECT count(DISTINCT x) FROM unnest(p_ids) x)
       AND NOT EXISTS (SELECT 1 FROM unnest(p_conditions) c, jsonb_array_elements(c) g
                        WHERE (g ->> 'after')::bigint > head) THEN
        RETURN QUERY SELECT * FROM dcbstore.append_set(p_ids, p_types, p_data, p_metadata,
                                                      p_tag_ends, p_tags, p_request_ends, p_conditions,
                                                      head, seen, early);
    ELSE
        RETURN QUERY SELECT * FROM dcbstore.append_sequential(p_ids, p_types, p_data, p_metadata,
                                                             p_tag_ends, p_tags, p_request_ends, p_conditions, head);
    END IF;
END
$$;


-- append_batch as in version 1 (see there for its contract): validates its
-- input, then runs append_batch_unchecked.
CREATE OR REPLACE FUNCTION dcbstore.append_batch(
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_tag_ends int[],
    p_tags text[],
    p_request_ends int[],
    p_conditions jsonb[]
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Plans over function scans are the same for any input: generic plans avoid
-- replanning per call, and JIT would cost more than the queries.
LANGUAGE plpgsql VOLATILE SET jit = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n_events int := coalesce(cardinality(p_ids), 0);
    n_requests int := coalesce(cardinality(p_request_ends), 0);
    invalid text;
BEGIN
    IF coalesce(cardinality(p_types), 0) <> n_events OR coalesce(cardinality(p_data), 0) <> n_events
       OR coalesce(cardinality(p_metadata), 0) <> n_events OR coalesce(cardinality(p_tag_ends), 0) <> n_events THEN
        RAISE EXCEPTION 'ids, types, data, metadata and tag_ends must have one entry per event' USING ERRCODE = '22023';
    END IF;
    IF n_requests = 0 THEN
        RAISE EXCEPTION 'an append needs at least one request' USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(p_conditions), 0) <> n_requests THEN
        RAISE EXCEPTION 'conditions must have one entry (possibly NULL) per request' USING ERRCODE = '22023';
    END IF;
    IF p_request_ends[n_requests] IS DISTINCT FROM n_events THEN
        RAISE EXCEPTION 'request_ends must end at the number of events (%)', n_events USING ERRCODE = '22023';
    END IF;
    IF n_events > 0 AND (p_tag_ends[n_events] IS DISTINCT FROM coalesce(cardinality(p_tags), 0)
       OR EXISTS (SELECT 1 FROM generate_subscripts(p_tag_ends, 1) i
                   WHERE p_tag_ends[i] IS NULL OR p_tag_ends[i] < coalesce(p_tag_ends[i - 1], 0))) THEN
        RAISE EXCEPTION 'tag_ends must be non-decreasing and end at the number of tags' USING ERRCODE = '22023';
    END IF;
    SELECT CASE WHEN n_requests = 1 THEN v.err ELSE format('request %s: %s', v.r, v.err) END INTO invalid
      FROM (SELECT c.r, CASE
                WHEN p_request_ends[c.r] IS NULL OR p_request_ends[c.r] <= coalesce(p_request_ends[c.r - 1], 0) THEN
                    'an append needs at least one event'
                WHEN c.cond IS NULL THEN NULL
                WHEN jsonb_typeof(c.cond) <> 'array' THEN
                    'the condition must be an array of guards [{"query": Q, "after": N}, ...]'
                WHEN jsonb_array_length(c.cond) = 0 THEN
                    'the condition has no guards: pass NULL for an unconditional append'
                ELSE (SELECT x.e
                        FROM (SELECT gg.o, CASE
                                  WHEN jsonb_typeof(gg.g) <> 'object' OR NOT gg.g ? 'query' THEN
                                      'each guard must be an object {"query": Q, "after": N}'
                                  WHEN EXISTS (SELECT 1 FROM jsonb_object_keys(gg.g) k WHERE k NOT IN ('query', 'after')) THEN
                                      'a guard has an unknown field: expected "query" and "after"'
                                  WHEN coalesce(gg.g -> 'after', 'null') <> 'null'
                                       AND NOT (jsonb_typeof(gg.g -> 'after') = 'number'
                                                AND (gg.g ->> 'after') ~ '^[0-9]{1,19}$'
                                                AND (gg.g ->> 'after')::numeric <= 9223372036854775807) THEN
                                      'a guard''s "after" must be a position (an integer from 0 to 9223372036854775807) or null'
                                  ELSE dcbstore.query_error(gg.g -> 'query') END AS e
                                FROM jsonb_array_elements(c.cond) WITH ORDINALITY AS gg(g, o)) x
                       WHERE x.e IS NOT NULL
                       ORDER BY x.o
                       LIMIT 1)
                END AS err
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)) v
     WHERE v.err IS NOT NULL
     ORDER BY v.r
     LIMIT 1;
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
    END IF;

    RETURN QUERY SELECT * FROM dcbstore.append_batch_unchecked(
        p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags, p_request_ends, p_conditions);
END
$$;

-- read as in version 1, with "all" as a static primary-key range scan (no
-- dynamic SQL, no position array).
CREATE OR REPLACE FUNCTION dcbstore.read(
    q jsonb,
    after bigint DEFAULT 0,
    upto bigint DEFAULT NULL,
    backwards boolean DEFAULT false,
    lim bigint DEFAULT NULL
) RETURNS SETOF dcbstore.events
LANGUAGE plpgsql STABLE SET jit = off AS $$
BEGIN
    IF lim IS NOT NULL AND lim < 0 THEN
        RAISE EXCEPTION 'limit must not be negative, got %', lim USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(q) = 'string' AND q #>> '{}' = 'all' THEN
        IF backwards THEN
            RETURN QUERY SELECT * FROM dcbstore.events e
                          WHERE e.position > coalesce(after, 0) AND e.position <= coalesce(upto, 9223372036854775807)
                          ORDER BY e.position DESC LIMIT lim;
        ELSE
            RETURN QUERY SELECT * FROM dcbstore.events e
                          WHERE e.position > coalesce(after, 0) AND e.position <= coalesce(upto, 9223372036854775807)
                          ORDER BY e.position LIMIT lim;
        END IF;
        RETURN;
    END IF;
    -- The page's positions first (bounded index scans), then the rows by
    -- primary key: never a join the planner could turn into a table scan.
    RETURN QUERY EXECUTE
        'SELECT e.* FROM dcbstore.events e WHERE e.position = ANY (ARRAY(' || dcbstore.query_sql(q, backwards)
        || ')) ORDER BY e.position' || CASE WHEN backwards THEN ' DESC' ELSE '' END
    USING coalesce(after, 0), coalesce(upto, 9223372036854775807), lim;
END
$$;
