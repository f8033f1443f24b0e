-- dcbstore schema, version 1: the event log, its tag index and the SQL API.
--
-- Every object lives in the `dcbstore` schema. Writes go through
-- dcbstore.append_batch (or its JSON wrapper dcbstore.append) only: that
-- function takes the append lock that makes positions commit in order.

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

-- Why a query in its JSON form is malformed, or NULL when it is well formed:
-- "all" or a non-empty array of items {"types": [...], "tags": [...]}, each
-- with at least one non-empty type or tag.
CREATE FUNCTION dcbstore.query_error(q jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    err text;
BEGIN
    -- One static statement: PL/pgSQL caches its plan (a SQL function would be
    -- planned on every call).
    SELECT CASE
            WHEN q IS NULL THEN 'query is missing: use "all" to match every event'
            WHEN jsonb_typeof(q) = 'string' THEN
                CASE WHEN q #>> '{}' = 'all' THEN NULL
                     ELSE format('query must be "all" or an array of items, got the string %s', q) END
            WHEN jsonb_typeof(q) <> 'array' THEN
                format('query must be "all" or an array of items, got %s', jsonb_typeof(q))
            WHEN jsonb_array_length(q) = 0 THEN 'query has no items: use "all" to match every event'
            ELSE (
                SELECT x.err FROM (SELECT i.n, CASE
                    WHEN jsonb_typeof(i.item) <> 'object' THEN
                        format('query item must be an object with "types" and/or "tags", got %s', i.item)
                    WHEN EXISTS (SELECT 1 FROM jsonb_object_keys(i.item) k WHERE k NOT IN ('types', 'tags')) THEN
                        format('query item has unknown field "%s": expected "types" and/or "tags"',
                               (SELECT min(k) FROM jsonb_object_keys(i.item) k WHERE k NOT IN ('types', 'tags')))
                    WHEN jsonb_typeof(coalesce(i.item -> 'types', '[]')) <> 'array' THEN
                        'query item field "types" must be an array of strings'
                    WHEN jsonb_typeof(coalesce(i.item -> 'tags', '[]')) <> 'array' THEN
                        'query item field "tags" must be an array of strings'
                    WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(i.item -> 'types', '[]')) e
                                 WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' = '') THEN
                        'query item field "types" must hold non-empty strings'
                    WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(i.item -> 'tags', '[]')) e
                                 WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' = '') THEN
                        'query item field "tags" must hold non-empty strings'
                    WHEN jsonb_array_length(coalesce(i.item -> 'types', '[]')) = 0
                         AND jsonb_array_length(coalesce(i.item -> 'tags', '[]')) = 0 THEN
                        'query item has neither types nor tags: use "all" to match every event'
                    END AS err
                  FROM jsonb_array_elements(q) WITH ORDINALITY AS i(item, n)) x
                 WHERE x.err IS NOT NULL
                 ORDER BY x.n
                 LIMIT 1)
            END
      INTO err;
    RETURN err;
END
$$;

-- Raises query_error(q), if any.
CREATE FUNCTION dcbstore.check_query(q jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    err text := dcbstore.query_error(q);
BEGIN
    IF err IS NOT NULL THEN
        RAISE EXCEPTION '%', err USING ERRCODE = '22023';
    END IF;
END
$$;

-- SQL text selecting the positions matching query q in the window ($1, $2],
-- ordered (descending when backwards), at most $3 rows. Each branch of the
-- UNION ALL is an ordered index range scan with its own LIMIT, so the cost of a
-- page depends on the page size, not on the size of the log.
CREATE FUNCTION dcbstore.query_sql(q jsonb, backwards boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    dir text := CASE WHEN backwards THEN ' DESC' ELSE '' END;
    branches text[] := '{}';
    item jsonb;
    types text[];
    tags text[];
    t text;
    branch text;
    i int;
BEGIN
    PERFORM dcbstore.check_query(q);
    IF jsonb_typeof(q) = 'string' THEN
        RETURN 'SELECT e.position FROM dcbstore.events e WHERE e.position > $1 AND e.position <= $2'
            || ' ORDER BY e.position' || dir || ' LIMIT $3';
    END IF;
    FOR item IN SELECT jsonb_array_elements(q) LOOP
        types := ARRAY(SELECT DISTINCT x FROM jsonb_array_elements_text(coalesce(item -> 'types', '[]')) x ORDER BY 1);
        tags := ARRAY(SELECT DISTINCT x FROM jsonb_array_elements_text(coalesce(item -> 'tags', '[]')) x ORDER BY 1);
        IF cardinality(tags) > 0 THEN
            -- Driven by the first tag's (tag, position) range; the type is on
            -- the same row, the other tags are primary-key probes.
            branch := 'SELECT t0.position FROM dcbstore.event_tags t0 WHERE t0.tag = ' || quote_literal(tags[1])
                || ' AND t0.position > $1 AND t0.position <= $2';
            IF cardinality(types) > 0 THEN
                branch := branch || ' AND t0.type = ANY(' || quote_literal(types::text) || '::text[])';
            END IF;
            FOR i IN 2..cardinality(tags) LOOP
                branch := branch || format(
                    ' AND EXISTS (SELECT 1 FROM dcbstore.event_tags t%s WHERE t%s.tag = %L AND t%s.position = t0.position)',
                    i, i, tags[i], i);
            END LOOP;
            branches := branches || ('(' || branch || ' ORDER BY t0.position' || dir || ' LIMIT $3)');
        ELSE
            FOREACH t IN ARRAY types LOOP
                branches := branches || ('(SELECT e.position FROM dcbstore.events e WHERE e.type = '
                    || quote_literal(t) || ' AND e.position > $1 AND e.position <= $2 ORDER BY e.position'
                    || dir || ' LIMIT $3)');
            END LOOP;
        END IF;
    END LOOP;
    IF cardinality(branches) = 1 THEN
        RETURN branches[1];
    END IF;
    RETURN 'SELECT DISTINCT m.position FROM (' || array_to_string(branches, ' UNION ALL ')
        || ') m ORDER BY m.position' || dir || ' LIMIT $3';
END
$$;

-- Events matching q with after < position <= upto (upto NULL: no upper bound),
-- in position order (descending when backwards), at most lim of them.
CREATE FUNCTION dcbstore.read(
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
    -- The page's positions first (bounded index scans), then the rows by
    -- primary key: never a join the planner could turn into a table scan.
    RETURN QUERY EXECUTE
        'SELECT e.* FROM dcbstore.events e WHERE e.position = ANY (ARRAY(' || dcbstore.query_sql(q, backwards)
        || ')) ORDER BY e.position' || CASE WHEN backwards THEN ' DESC' ELSE '' END
    USING coalesce(after, 0), coalesce(upto, 9223372036854775807), lim;
END
$$;

-- Highest committed position, NULL for an empty store. Appends commit in
-- position order, so no uncommitted position is below it.
CREATE FUNCTION dcbstore.head() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT max(position) FROM dcbstore.events $$;

-- Event rows as the JSON objects dcbstore returns for conflicts.
CREATE FUNCTION dcbstore.event_json(e dcbstore.events) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'position', e.position, 'id', e.id, 'type', e.type, 'data', e.data,
        'tags', to_jsonb(e.tags), 'metadata', e.metadata,
        'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

-- The latest position in (after, upto] matching query q (JSON form), or NULL.
-- Static SQL, so its plan is cached per session: per item, one ordered index
-- scan that stops at the first row.
CREATE FUNCTION dcbstore.latest_match(q jsonb, after bigint, upto bigint) RETURNS bigint
-- The generic plan is right for every query (ordered index scans, LIMIT 1);
-- without this the plan cache would replan per call, which costs 20x the run.
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    latest bigint;
BEGIN
    IF after >= upto THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(q) = 'string' THEN
        RETURN (SELECT max(ev.position) FROM dcbstore.events ev
                 WHERE ev.position > after AND ev.position <= upto);
    END IF;
    SELECT max(m.p) INTO latest
      FROM jsonb_array_elements(q) AS i(item)
      CROSS JOIN LATERAL (
          SELECT (SELECT t.position
                    FROM dcbstore.event_tags t
                   WHERE t.tag = i.item -> 'tags' ->> 0
                     AND t.position > after AND t.position <= upto
                     AND (jsonb_array_length(coalesce(i.item -> 'types', '[]')) = 0
                          OR t.type IN (SELECT jsonb_array_elements_text(i.item -> 'types')))
                     -- every other tag: one primary-key probe each
                     AND (SELECT count(*) FROM dcbstore.event_tags t2
                           WHERE t2.position = t.position
                             AND t2.tag = ANY (ARRAY(SELECT jsonb_array_elements_text(i.item -> 'tags'))))
                         = (SELECT count(DISTINCT x) FROM jsonb_array_elements_text(i.item -> 'tags') x)
                   ORDER BY t.position DESC
                   LIMIT 1) AS p
           WHERE jsonb_array_length(coalesce(i.item -> 'tags', '[]')) > 0
          UNION ALL
          SELECT (SELECT ev.position
                    FROM dcbstore.events ev
                   WHERE ev.type = ty AND ev.position > after AND ev.position <= upto
                   ORDER BY ev.position DESC
                   LIMIT 1)
            FROM jsonb_array_elements_text(coalesce(i.item -> 'types', '[]')) AS ty
           WHERE jsonb_array_length(coalesce(i.item -> 'tags', '[]')) = 0
      ) AS m;
    RETURN latest;
END
$$;

-- The conflict of a condition (array of guards {"query", "after"}) against the
-- log up to position upto: NULL when no guard matches, else
-- {"position": latest match, "events": [the first 100 matches, in order]}.
CREATE FUNCTION dcbstore.condition_conflict(guards jsonb, upto bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    guard jsonb;
    g_after bigint;
    g_latest bigint;
    latest bigint;
    g_positions bigint[];
    positions bigint[] := '{}';
    result jsonb;
BEGIN
    IF guards IS NULL THEN
        RETURN NULL;
    END IF;
    FOR guard IN SELECT jsonb_array_elements(guards) LOOP
        g_after := coalesce((guard ->> 'after')::bigint, 0);
        g_latest := dcbstore.latest_match(guard -> 'query', g_after, upto);
        IF g_latest IS NOT NULL THEN
            latest := greatest(latest, g_latest);
            EXECUTE 'SELECT array_agg(p.position) FROM (' || dcbstore.query_sql(guard -> 'query', false) || ') p'
                INTO g_positions USING g_after, upto, 100;
            positions := positions || g_positions;
        END IF;
    END LOOP;
    IF latest IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_build_object('position', latest, 'events',
               coalesce(jsonb_agg(dcbstore.event_json(ev) ORDER BY ev.position), '[]'))
      INTO result
      FROM dcbstore.events ev
     WHERE ev.position = ANY (ARRAY(SELECT DISTINCT p FROM unnest(positions) p ORDER BY p LIMIT 100));
    RETURN result;
END
$$;

-- Appends a batch of requests, each all-or-nothing, in one transaction.
--
-- Events are given as parallel arrays; event i's tags are
-- p_tags[p_tag_ends[i-1]+1 .. p_tag_ends[i]]; request r owns events
-- p_request_ends[r-1]+1 .. p_request_ends[r]; p_conditions[r] is NULL or an array of
-- guards {"query": Q, "after": N|null}. Requests are decided in order, each
-- against the log plus the earlier requests of the batch. One row per request:
--   outcome 'appended'  position = its last event's position
--   outcome 'duplicate' every id already stored with identical content (idempotent retry);
--                       position = the last of their positions; nothing written
--   outcome 'conflict'  a guard matched; conflict = {"position": latest, "events": [...]}
--                       (first 100 conflicting events, position order); nothing written
--   outcome 'rejected'  error says why (an id stored with other content); nothing written
--
-- Correctness: the transaction-scoped advisory lock below is taken before any
-- position is assigned and held until commit, and PostgreSQL makes a commit
-- visible before it releases the transaction's locks. So appends commit one
-- after another in position order, every snapshot sees a prefix of the log,
-- and the condition check (run in statements that start after the lock is
-- granted, so with snapshots that see every earlier append) cannot miss a
-- concurrent write. Requires READ COMMITTED: later isolation levels would keep
-- the snapshot taken before the lock.
CREATE FUNCTION dcbstore.append_batch(
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
    head bigint;
    invalid text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dcbstore.append_batch must run in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25001';
    END IF;
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
                                                      p_tag_ends, p_tags, p_request_ends, p_conditions, head);
    ELSE
        RETURN QUERY SELECT * FROM dcbstore.append_sequential(p_ids, p_types, p_data, p_metadata,
                                                             p_tag_ends, p_tags, p_request_ends, p_conditions, head);
    END IF;
END
$$;

-- Inserts the events of the given requests, in order, at positions head + 1,
-- head + 2, ...: into events (tags sorted and deduplicated) and event_tags.
CREATE FUNCTION dcbstore.insert_events(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], requests int[], head bigint
) RETURNS void
LANGUAGE plpgsql VOLATILE SET jit = off AS $$
BEGIN
    WITH be AS (
        SELECT a.n, k
          FROM unnest(requests) WITH ORDINALITY AS a(r, n)
          CROSS JOIN LATERAL generate_series(coalesce(p_request_ends[a.r - 1], 0) + 1, p_request_ends[a.r]) AS k
    ), inserted AS (
        INSERT INTO dcbstore.events (position, id, type, data, metadata, tags)
        SELECT head + row_number() OVER (ORDER BY be.n, be.k), coalesce(p_ids[be.k], gen_random_uuid()),
               p_types[be.k], p_data[be.k], coalesce(p_metadata[be.k], '{}'),
               ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[be.k - 1], 0) + 1 : p_tag_ends[be.k]]) x ORDER BY 1)
          FROM be
        RETURNING events.position, events.tags, events.type
    )
    INSERT INTO dcbstore.event_tags (tag, position, type)
    SELECT unnest(i.tags), i.position, i.type FROM inserted i;
    -- A wake-up for followers, delivered at commit. Never the source of events.
    PERFORM pg_notify('dcbstore_events', (SELECT max(ev.position) FROM dcbstore.events ev)::text);
END
$$;

-- append_batch's set-based path, under the append lock: no id is stored or
-- repeated and every guard's "after" is at most the head, so earlier requests'
-- events (all above the head) match a guard exactly when they match its query.
CREATE FUNCTION dcbstore.append_set(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], p_conditions jsonb[], head bigint
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
    -- Requests whose guards match the log in (after, head].
    SELECT coalesce(array_agg(DISTINCT c.r), '{}') INTO log_conflicts
      FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)
      CROSS JOIN LATERAL jsonb_array_elements(c.cond) AS g(guard)
     WHERE dcbstore.latest_match(g.guard -> 'query', coalesce((g.guard ->> 'after')::bigint, 0), head) IS NOT NULL;

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

-- append_batch's general path, under the append lock: one request at a time,
-- with the idempotency check by id.
CREATE FUNCTION dcbstore.append_sequential(
    p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_tag_ends int[],
    p_tags text[], p_request_ends int[], p_conditions jsonb[], head bigint
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Plans over function scans are the same for any input: generic plans avoid
-- replanning per call, and JIT would cost more than the queries.
LANGUAGE plpgsql VOLATILE SET jit = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r int;
    s int;
    e int;
    n_found int;
    n_same int;
    found_max bigint;
    bad_id uuid;
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

        conflict := dcbstore.condition_conflict(p_conditions[r], head);
        IF conflict IS NOT NULL THEN
            outcome := 'conflict';
            RETURN NEXT;
            CONTINUE;
        END IF;

        PERFORM dcbstore.insert_events(p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags,
                                       p_request_ends, ARRAY[r], head);
        head := head + (e - s);
        outcome := 'appended'; "position" := head;
        RETURN NEXT;
    END LOOP;
END
$$;

-- JSON convenience for SQL users: one request. events is an array of
-- {"type", "data", "tags", "metadata", "id"} (only "type" required);
-- condition is NULL or an array of guards {"query": Q, "after": N}.
-- Returns {"position": N} or {"conflict": {"position": N, "events": [...]}}.
CREATE FUNCTION dcbstore.append(events jsonb, condition jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    res record;
    ev jsonb;
    k text;
BEGIN
    IF events IS NULL OR jsonb_typeof(events) <> 'array' OR jsonb_array_length(events) = 0 THEN
        RAISE EXCEPTION 'events must be a non-empty array: an append needs at least one event' USING ERRCODE = '22023';
    END IF;
    FOR ev IN SELECT jsonb_array_elements(events) LOOP
        IF jsonb_typeof(ev) <> 'object' OR jsonb_typeof(ev -> 'type') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'each event must be an object with a string "type", got %', ev USING ERRCODE = '22023';
        END IF;
        FOR k IN SELECT jsonb_object_keys(ev) LOOP
            IF k NOT IN ('type', 'data', 'tags', 'metadata', 'id') THEN
                RAISE EXCEPTION 'event has unknown field "%"', k USING ERRCODE = '22023';
            END IF;
        END LOOP;
    END LOOP;
    SELECT * INTO res FROM dcbstore.append_batch(
        ARRAY(SELECT (x ->> 'id')::uuid FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o) ORDER BY o),
        ARRAY(SELECT x ->> 'type' FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o) ORDER BY o),
        ARRAY(SELECT coalesce(x -> 'data', 'null') FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o) ORDER BY o),
        ARRAY(SELECT coalesce(x -> 'metadata', '{}') FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o) ORDER BY o),
        ARRAY(SELECT sum(coalesce(jsonb_array_length(x -> 'tags'), 0)) OVER (ORDER BY o)::int
                FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o) ORDER BY o),
        ARRAY(SELECT t FROM jsonb_array_elements(events) WITH ORDINALITY a(x, o),
                     jsonb_array_elements_text(coalesce(x -> 'tags', '[]')) WITH ORDINALITY b(t, o2)
               ORDER BY o, o2),
        ARRAY[jsonb_array_length(events)],
        ARRAY[condition]);
    IF res.outcome = 'conflict' THEN
        RETURN jsonb_build_object('conflict', res.conflict);
    ELSIF res.outcome = 'rejected' THEN
        RAISE EXCEPTION '%', res.error USING ERRCODE = '23505';
    END IF;
    RETURN jsonb_build_object('position', res."position");
END
$$;
