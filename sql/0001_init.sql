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
CREATE TABLE dcbstore.event_tags (
    tag      text NOT NULL CHECK (tag <> ''),
    position bigint NOT NULL,
    PRIMARY KEY (tag, position)
);

-- Validates a query in its JSON form: "all" or a non-empty array of items
-- {"types": [...], "tags": [...]}, each with at least one non-empty type or tag.
-- One static statement (its plan is cached), as appends call it per guard.
CREATE FUNCTION dcbstore.check_query(q jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    err text;
BEGIN
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
            -- Driven by the first tag's (tag, position) range; the other tags and
            -- the types are checked per candidate through primary-key lookups.
            branch := 'SELECT t0.position FROM dcbstore.event_tags t0';
            IF cardinality(types) > 0 THEN
                branch := branch || ' JOIN dcbstore.events e ON e.position = t0.position AND e.type = ANY('
                    || quote_literal(types::text) || '::text[])';
            END IF;
            branch := branch || ' WHERE t0.tag = ' || quote_literal(tags[1])
                || ' AND t0.position > $1 AND t0.position <= $2';
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
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF lim IS NOT NULL AND lim < 0 THEN
        RAISE EXCEPTION 'limit must not be negative, got %', lim USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE
        'SELECT e.* FROM dcbstore.events e JOIN (' || dcbstore.query_sql(q, backwards)
        || ') p ON p.position = e.position ORDER BY e.position' || CASE WHEN backwards THEN ' DESC' ELSE '' END
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

-- Appends a batch of requests, each all-or-nothing, in one transaction.
--
-- Events are given as parallel arrays; event i's tags are
-- p_tags[p_tag_ends[i-1]+1 .. p_tag_ends[i]]; request r owns events
-- p_request_ends[r-1]+1 .. p_request_ends[r]; p_conditions[r] is NULL or an array of
-- guards {"query": Q, "after": N|null}. One row per request:
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
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_events int := coalesce(cardinality(p_ids), 0);
    head bigint;
    r int;
    s int;
    e int;
    any_known boolean;
    n_found int;
    n_same int;
    found_max bigint;
    bad_id uuid;
    guard jsonb;
    q jsonb;
    g_after bigint;
    g_positions bigint[];
    latest bigint;
    g_latest bigint;
    conflict_positions bigint[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dcbstore.append_batch must run in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25001';
    END IF;
    IF coalesce(cardinality(p_types), 0) <> n_events OR coalesce(cardinality(p_data), 0) <> n_events
       OR coalesce(cardinality(p_metadata), 0) <> n_events OR coalesce(cardinality(p_tag_ends), 0) <> n_events THEN
        RAISE EXCEPTION 'ids, types, data, metadata and tag_ends must have one entry per event' USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(p_request_ends), 0) = 0 THEN
        RAISE EXCEPTION 'an append needs at least one request' USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(p_conditions), 0) <> cardinality(p_request_ends) THEN
        RAISE EXCEPTION 'conditions must have one entry (possibly NULL) per request' USING ERRCODE = '22023';
    END IF;
    IF p_request_ends[cardinality(p_request_ends)] <> n_events THEN
        RAISE EXCEPTION 'request_ends must end at the number of events (%)', n_events USING ERRCODE = '22023';
    END IF;
    FOR r IN 1..cardinality(p_request_ends) LOOP
        IF p_request_ends[r] <= coalesce(p_request_ends[r - 1], 0) THEN
            RAISE EXCEPTION 'request % has no events: an append needs at least one event', r USING ERRCODE = '22023';
        END IF;
        IF p_conditions[r] IS NOT NULL THEN
            IF jsonb_typeof(p_conditions[r]) <> 'array' THEN
                RAISE EXCEPTION 'condition of request % must be an array of guards', r USING ERRCODE = '22023';
            END IF;
            FOR guard IN SELECT jsonb_array_elements(p_conditions[r]) LOOP
                PERFORM dcbstore.check_query(guard -> 'query');
            END LOOP;
        END IF;
    END LOOP;

    PERFORM pg_advisory_xact_lock(7235937214386151426);  -- the append lock
    head := coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0);
    -- Fast path: usually no id is stored yet or repeated, and no request
    -- needs the per-request idempotency check.
    any_known := EXISTS (SELECT 1 FROM dcbstore.events ev WHERE ev.id = ANY (p_ids))
        OR n_events <> (SELECT count(DISTINCT x) FROM unnest(p_ids) x);

    FOR r IN 1..cardinality(p_request_ends) LOOP
        s := coalesce(p_request_ends[r - 1], 0);
        e := p_request_ends[r];
        request := r;

        -- Idempotent retry: ids already stored.
        IF any_known THEN
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
              JOIN dcbstore.events ev ON ev.id = u.id;
            IF n_found = e - s AND n_same = n_found THEN
                outcome := 'duplicate'; "position" := found_max; conflict := NULL; error := NULL;
                RETURN NEXT;
                CONTINUE;
            ELSIF n_found > 0 THEN
                IF bad_id IS NULL THEN
                    SELECT u.id INTO bad_id
                      FROM unnest(p_ids[s + 1 : e]) WITH ORDINALITY AS u(id, ord)
                      JOIN dcbstore.events ev ON ev.id = u.id ORDER BY u.ord LIMIT 1;
                    error := format('event id %s is already stored by another append; an idempotent retry must resend exactly the same events', bad_id);
                ELSE
                    error := format('event id %s is already stored with different content', bad_id);
                END IF;
                outcome := 'rejected'; "position" := NULL; conflict := NULL;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        -- The condition: every guard is checked against the log as of now,
        -- which includes the earlier requests of this batch.
        latest := NULL;
        conflict_positions := '{}';
        IF p_conditions[r] IS NOT NULL THEN
            FOR guard IN SELECT jsonb_array_elements(p_conditions[r]) LOOP
                g_after := coalesce((guard ->> 'after')::bigint, 0);
                IF g_after >= head THEN
                    CONTINUE;
                END IF;
                -- Static SQL (plan cached per session): the latest match in
                -- (g_after, head], per item through an ordered index scan.
                q := guard -> 'query';
                IF jsonb_typeof(q) = 'string' THEN
                    g_latest := head;  -- "all": any event after g_after matches
                ELSE
                    SELECT max(m.p) INTO g_latest
                      FROM jsonb_array_elements(q) AS i(item)
                      CROSS JOIN LATERAL (
                          SELECT (SELECT t.position
                                    FROM dcbstore.event_tags t
                                    JOIN dcbstore.events ev ON ev.position = t.position
                                   WHERE t.tag = i.item -> 'tags' ->> 0
                                     AND t.position > g_after AND t.position <= head
                                     AND ev.tags @> ARRAY(SELECT jsonb_array_elements_text(i.item -> 'tags'))
                                     AND (jsonb_array_length(coalesce(i.item -> 'types', '[]')) = 0
                                          OR ev.type IN (SELECT jsonb_array_elements_text(i.item -> 'types')))
                                   ORDER BY t.position DESC
                                   LIMIT 1) AS p
                           WHERE jsonb_array_length(coalesce(i.item -> 'tags', '[]')) > 0
                          UNION ALL
                          SELECT (SELECT ev.position
                                    FROM dcbstore.events ev
                                   WHERE ev.type = ty AND ev.position > g_after AND ev.position <= head
                                   ORDER BY ev.position DESC
                                   LIMIT 1)
                            FROM jsonb_array_elements_text(coalesce(i.item -> 'types', '[]')) AS ty
                           WHERE jsonb_array_length(coalesce(i.item -> 'tags', '[]')) = 0
                      ) AS m;
                END IF;
                IF g_latest IS NOT NULL THEN
                    latest := greatest(latest, g_latest);
                    EXECUTE 'SELECT array_agg(p.position) FROM (' || dcbstore.query_sql(guard -> 'query', false) || ') p'
                        INTO g_positions USING g_after, head, 100;
                    conflict_positions := conflict_positions || g_positions;
                END IF;
            END LOOP;
        END IF;
        IF latest IS NOT NULL THEN
            outcome := 'conflict'; "position" := NULL; error := NULL;
            SELECT jsonb_build_object('position', latest, 'events',
                       coalesce(jsonb_agg(dcbstore.event_json(ev) ORDER BY ev.position), '[]'))
              INTO conflict
              FROM (SELECT DISTINCT p FROM unnest(conflict_positions) p ORDER BY p LIMIT 100) c
              JOIN dcbstore.events ev ON ev.position = c.p;
            RETURN NEXT;
            CONTINUE;
        END IF;

        WITH inserted AS (
            INSERT INTO dcbstore.events (position, id, type, data, metadata, tags)
            SELECT head + u.ord, coalesce(u.id, gen_random_uuid()), u.type, u.data, coalesce(u.metadata, '{}'),
                   ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[s + u.ord - 1], 0) + 1 : p_tag_ends[s + u.ord]]) x ORDER BY 1)
              FROM unnest(p_ids[s + 1 : e], p_types[s + 1 : e], p_data[s + 1 : e], p_metadata[s + 1 : e])
                   WITH ORDINALITY AS u(id, type, data, metadata, ord)
            RETURNING events.position, events.tags
        )
        INSERT INTO dcbstore.event_tags (tag, position)
        SELECT unnest(i.tags), i.position FROM inserted i;

        head := head + (e - s);
        outcome := 'appended'; "position" := head; conflict := NULL; error := NULL;
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
