-- The entry points of an append: dcbstore.append (JSON, one request, for SQL
-- users), dcbstore.append_batch (batches, JSON), dcbstore.append_batch_unchecked
-- (data and metadata as JSON text, so that their sizes are the sizes the
-- client measured; JSON conditions) and dcbstore.append_batch_typed (the
-- Rust client's: as unchecked, with the conditions as typed arrays), which
-- the others run. It validates its input against dcbstore.limits
-- ("unchecked" is a historical name: every entry point checks; the Rust
-- client checks the same at the edge, to fail before sending), then takes
-- the append lock, decides and writes.
--
-- They are SECURITY DEFINER, owned by the schema's owner, with a fixed
-- search_path: the only way any other role writes the log, so that every
-- write is validated, takes the lock, checks its condition and keeps
-- event_tags in step.

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
--   outcome 'conflict'  a guard matched; conflict = {"position": latest, "head": H, "events": [...]}
--                       (first 100 conflicting events, position order, up to H: the head
--                       as the batch leaves it, later requests' events included); nothing written
--   outcome 'rejected'  error says why (an id stored with other content); nothing written
--
-- Validates its input (raising SQLSTATE 22023 with the reason), as
-- append_batch_unchecked does, which it runs; an event's bytes are those of
-- jsonb's text form (a space after each ':' and ','), a little more than the
-- compact form the Rust client measures.
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
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM dcbstore.append_batch_unchecked(
        p_ids, p_types, p_data::text[], p_metadata::text[], p_tag_ends, p_tags, p_request_ends, p_conditions);
END
$$;

-- The JSON-conditions form of dcbstore.append_batch_typed, for SQL callers
-- and clients of earlier versions: data and metadata as JSON text, each
-- request's condition NULL or an array of guards {"query": Q, "after": N}.
-- A malformed condition is refused (SQLSTATE 22023, with the reason); the
-- conditions are then given to append_batch_typed in its typed form.
CREATE OR REPLACE FUNCTION dcbstore.append_batch_unchecked(
    p_ids uuid[],
    p_types text[],
    p_data text[],
    p_metadata text[],
    p_tag_ends int[],
    p_tags text[],
    p_request_ends int[],
    p_conditions jsonb[]
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lim dcbstore.limits := dcbstore.current_limits();
    n_requests int := coalesce(cardinality(p_request_ends), 0);
    invalid text;
    g record;
BEGIN
    IF coalesce(cardinality(p_conditions), 0) <> n_requests THEN
        RAISE EXCEPTION 'conditions must have one entry (possibly NULL) per request' USING ERRCODE = '22023';
    END IF;
    SELECT CASE WHEN n_requests = 1 THEN v.err ELSE format('request %s: %s', v.r, v.err) END INTO invalid
      FROM (SELECT c.r, dcbstore.condition_error(c.cond, lim) AS err
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)) v
     WHERE v.err IS NOT NULL
     ORDER BY v.r
     LIMIT 1;
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
    END IF;
    g := dcbstore.guards_arrays(p_conditions);
    RETURN QUERY SELECT * FROM dcbstore.append_batch_typed(
        p_ids, p_types, p_data, p_metadata, p_tag_ends, p_tags, p_request_ends,
        g.guard_ends, g.guard_afters, g.guard_item_ends, g.item_type_ends, g.item_types,
        g.item_tag_ends, g.item_tags);
END
$$;

-- The Rust client's entry point, and the one body of every append: data and
-- metadata as JSON text (so that their sizes are the bytes the client
-- measured), the conditions as typed arrays (see sql/functions/guards.sql),
-- checked against dcbstore.limits as the client checks them at the edge,
-- then decided and written under the append lock. The usual request (one
-- event, a guard of one item) is found valid by one expression, other
-- batches by a few loops of simple expressions (no statement: in a new
-- transaction each expression is set up once, which is what a check here
-- costs, so they are few); a batch they refuse goes to
-- dcbstore.guards_error and dcbstore.batch_error, which say why (their false
-- alarms cost only that).
--
-- Correctness: the append lock (an EXCLUSIVE lock on the view
-- dcbstore.append_lock, which no other role may lock) is taken before any
-- position is assigned and held until commit, and PostgreSQL makes
-- a commit visible before it releases the transaction's locks. So appends
-- commit one after another in position order, every snapshot sees a prefix of
-- the log, and the condition check (run in statements that start after the
-- lock is granted, so with snapshots that see every earlier append) cannot
-- miss a concurrent write. Before the lock, the guards are checked against the
-- log up to the head seen then, which is final (commits come in position
-- order); under it, only the events committed since. Requires READ COMMITTED:
-- later isolation levels would keep the snapshot taken before the lock.
CREATE OR REPLACE FUNCTION dcbstore.append_batch_typed(
    p_ids uuid[],
    p_types text[],
    p_data text[],
    p_metadata text[],
    p_tag_ends int[],
    p_tags text[],
    p_request_ends int[],
    p_guard_ends int[],
    p_guard_afters bigint[],
    p_guard_item_ends int[],
    p_item_type_ends int[],
    p_item_types text[],
    p_item_tag_ends int[],
    p_item_tags text[]
) RETURNS TABLE (request int, outcome text, "position" bigint, conflict jsonb, error text)
-- Plans over function scans are the same for any input: generic plans avoid
-- replanning per call, and JIT would cost more than the queries. No plan
-- here may scan the log: each is an index probe or range, whatever the
-- statistics said when it was made (a plan made while the log was small would
-- otherwise scan it for ever).
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    n_events int := coalesce(cardinality(p_ids), 0);
    n_requests int := coalesce(cardinality(p_request_ends), 0);
    n_guards int := coalesce(cardinality(p_guard_afters), 0);
    n_items int := coalesce(cardinality(p_item_type_ends), 0);
    data jsonb[] := p_data::jsonb[];
    metadata jsonb[] := p_metadata::jsonb[];
    -- The conditions' JSON form, for the paths that take it (built there).
    conds jsonb[];
    -- The limits (a row of dcbstore.limits), and new_epoch.
    lim record;
    -- The check of an event's JSON as a path, made when the limits were set
    -- (see sql/migrations/0009_guards.sql).
    bad_json jsonpath;
    v_r int := 1;
    v_k int;
    v_j int;
    v_first int;
    v_size bigint;
    v_bytes bigint := 0;
    v_t text;
    ok boolean;
    -- Whether the usual request's one expression found the batch valid.
    checked boolean := false;
    invalid text;
    head bigint;
    seen bigint;
    early int[];
    new_epoch boolean;
    recorded timestamptz;
    lock_wait text;
    lean_fresh boolean;
    lean_blocked boolean;
    ids_distinct boolean;
    -- One request on this server's history (the usual call): the lean path.
    lean boolean;
    -- Whether the usual request's statement found it valid, on this
    -- server's history.
    lean_valid boolean;
    -- Its tags, sorted and distinct.
    lone_tags text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dcbstore.append_batch must run in a READ COMMITTED transaction, not %',
            current_setting('transaction_isolation') USING ERRCODE = '25001';
    END IF;
    -- An acknowledged append survives a crash: never commit with
    -- synchronous_commit = off, whoever set it (local, on, remote_write and
    -- remote_apply are kept). Until the transaction ends.
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'local', true);
    END IF;
    -- The usual request (one event, at most one guard of one tagged item)
    -- in one statement after the lock, its checks against the limits and
    -- the server's history included: a statement costs the set-up of each
    -- of its nodes at every call (some 10 us for the smallest), so the
    -- lone append runs as few as it can. What it does not settle (input it
    -- does not find valid, a new history, an id stored already) goes on
    -- below, the lock held, where it is checked again and told apart.
    -- (Two conditions: PostgreSQL sets up the whole of an expression before
    -- evaluating it, so batches pay only for the first.)
    IF n_requests = 1 AND n_events = 1 THEN
    IF cardinality(p_types) = 1 AND cardinality(data) = 1
       AND cardinality(metadata) = 1 AND cardinality(p_tag_ends) = 1 AND p_request_ends[1] = 1
       AND p_tag_ends[1] = coalesce(cardinality(p_tags), 0)
       AND cardinality(p_guard_ends) = 1 AND p_guard_ends[1] = n_guards
       AND coalesce(cardinality(p_guard_item_ends), 0) = n_guards
       AND coalesce(cardinality(p_item_tag_ends), 0) = n_items
       AND ((n_guards = 0 AND n_items = 0 AND coalesce(cardinality(p_item_types), 0) = 0
             AND coalesce(cardinality(p_item_tags), 0) = 0)
            OR (n_guards = 1 AND n_items = 1 AND p_guard_item_ends[1] = 1
                AND p_item_type_ends[1] = coalesce(cardinality(p_item_types), 0)
                AND p_item_tag_ends[1] = cardinality(p_item_tags) AND p_item_tag_ends[1] > 0
                AND coalesce(p_guard_afters[1], 0) >= 0))
       AND p_types[1] <> '' AND '' <> ALL (p_tags) AND '' <> ALL (p_item_types) AND '' <> ALL (p_item_tags) THEN
        v_size := coalesce(octet_length(p_data[1]), 4) + coalesce(octet_length(p_metadata[1]), 2);
        lone_tags := p_tags;
        IF cardinality(p_tags) > 1 THEN
            lone_tags := ARRAY(SELECT DISTINCT x FROM unnest(p_tags) x ORDER BY 1);
        END IF;
        lock_wait := dcbstore.lock_appends();
        -- (The head as dcbstore.locked_head has it, from the rows this
        -- statement reads anyway. The guard is probed without the head as its
        -- bound: under the lock, no event is above it.)
        WITH verdict AS MATERIALIZED (
            SELECT greatest(coalesce(last.position, 0), ep.base) AS head,
                   greatest(clock_timestamp(), last.recorded_at) AS at,
                   ep.timeline = dcbstore.wal_timeline() AND ep.system_identifier = dcbstore.system_identifier()
                   AND l.max_events_per_append >= 1
                   AND octet_length(p_types[1]) <= l.max_name_bytes
                   AND (metadata[1] IS NULL OR jsonb_typeof(metadata[1]) = 'object')
                   AND p_tag_ends[1] <= l.max_tags_per_event
                   AND v_size <= l.max_event_bytes AND v_size <= l.max_append_bytes
                   AND NOT jsonb_path_exists(data[1], l.bad_json)
                   AND NOT coalesce(jsonb_path_exists(metadata[1], l.bad_json), false)
                   AND octet_length(array_to_string(p_tags, '')) <= l.max_name_bytes
                   AND n_guards <= l.max_guards
                   AND (n_items = 0 OR (n_items <= l.max_query_items
                                        AND p_item_type_ends[1] <= l.max_item_terms
                                        AND p_item_tag_ends[1] <= l.max_item_terms
                                        AND octet_length(array_to_string(p_item_types, '') || array_to_string(p_item_tags, ''))
                                            <= l.max_name_bytes)) AS valid,
                   NOT EXISTS (SELECT 1 FROM dcbstore.events ev WHERE ev.id = p_ids[1]) AS fresh,
                   n_guards = 1 AND EXISTS (
                       SELECT 1 FROM dcbstore.event_tags t0
                        WHERE t0.tag = p_item_tags[1] AND t0.position > coalesce(p_guard_afters[1], 0)
                          AND (cardinality(p_item_types) = 0 OR t0.type = ANY (p_item_types))
                          AND NOT EXISTS (SELECT 1 FROM unnest(p_item_tags[2:]) AS other(tag)
                                           WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                                              WHERE t1.tag = other.tag AND t1.position = t0.position))) AS blocked
              FROM dcbstore.limits l
             CROSS JOIN LATERAL (SELECT e.timeline, e.system_identifier, e.base FROM dcbstore.epochs e
                                  ORDER BY e.epoch DESC LIMIT 1) AS ep
              LEFT JOIN LATERAL (SELECT ev.position, ev.recorded_at FROM dcbstore.events ev
                                  ORDER BY ev.position DESC LIMIT 1) AS last ON true
             WHERE l.singleton
        ), inserted AS (
            INSERT INTO dcbstore.events (position, id, type, data, metadata, tags, recorded_at)
            SELECT v.head + 1, coalesce(p_ids[1], gen_random_uuid()), p_types[1], data[1],
                   coalesce(metadata[1], '{}'), lone_tags, v.at
              FROM verdict v
             WHERE v.valid AND v.fresh AND NOT v.blocked
            RETURNING events.position, events.tags, events.type
        ), tagged AS (
            INSERT INTO dcbstore.event_tags (tag, position, type)
            SELECT unnest(i.tags), i.position, i.type FROM inserted i
        )
        SELECT v.head, v.valid, v.fresh, v.blocked INTO head, lean_valid, lean_fresh, lean_blocked FROM verdict v;
        IF lean_valid AND lean_fresh THEN
            request := 1; error := NULL;
            IF NOT lean_blocked THEN
                outcome := 'appended'; "position" := head + 1; conflict := NULL;
            ELSE
                outcome := 'conflict'; "position" := NULL;
                conflict := dcbstore.condition_conflict(
                    (dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends, p_item_type_ends,
                                          p_item_types, p_item_tag_ends, p_item_tags))[1], head);
            END IF;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    END IF;
    -- Whether the latest epoch is not this server's history (or there is
    -- none yet): then this append begins one, under the lock. Safe before the
    -- lock: a primary's history does not change while it runs.
    -- (The limits come with it: one statement.)
    SELECT l.*, NOT EXISTS (
               SELECT 1 FROM (SELECT e.timeline, e.system_identifier FROM dcbstore.epochs e
                               ORDER BY e.epoch DESC LIMIT 1) AS latest
                WHERE latest.timeline = dcbstore.wal_timeline()
                  AND latest.system_identifier = dcbstore.system_identifier()) AS new_epoch
      INTO lim
      FROM (SELECT 1) AS one LEFT JOIN dcbstore.limits l ON l.singleton;
    new_epoch := lim.new_epoch;
    bad_json := lim.bad_json;
    -- The arrays are of one shape: one entry per event, per request, per
    -- guard and per item, each "ends" array ending at its children's count;
    -- no guard's "after" is negative, no term empty (an empty or NULL term
    -- makes this false or NULL: the checks below say which).
    ok := lim.singleton IS NOT NULL
          AND coalesce(cardinality(p_types), 0) = n_events AND coalesce(cardinality(data), 0) = n_events
          AND coalesce(cardinality(metadata), 0) = n_events AND coalesce(cardinality(p_tag_ends), 0) = n_events
          AND n_requests > 0 AND p_request_ends[n_requests] = n_events
          AND (n_events = 0 OR p_tag_ends[n_events] = coalesce(cardinality(p_tags), 0))
          AND coalesce(cardinality(p_guard_ends), 0) = n_requests AND p_guard_ends[n_requests] = n_guards
          AND coalesce(cardinality(p_guard_item_ends), 0) = n_guards AND (n_guards > 0 OR n_items = 0)
          AND coalesce(cardinality(p_item_tag_ends), 0) = n_items
          AND (n_guards = 0 OR p_guard_item_ends[n_guards] = n_items)
          AND (n_items = 0 OR (p_item_type_ends[n_items] = coalesce(cardinality(p_item_types), 0)
                               AND p_item_tag_ends[n_items] = coalesce(cardinality(p_item_tags), 0)))
          AND (n_items > 0 OR (coalesce(cardinality(p_item_types), 0) = 0 AND coalesce(cardinality(p_item_tags), 0) = 0))
          AND NOT coalesce(0 > ANY (p_guard_afters), false)
          AND '' <> ALL (p_types) AND '' <> ALL (p_tags)
          AND '' <> ALL (p_item_types) AND '' <> ALL (p_item_tags);
    -- The usual request, one event under at most one guard of at most one
    -- item, in one expression; names measured together (a sum within the
    -- limit puts each name within it; a sum over it takes the loops below).
    IF ok AND n_requests = 1 AND n_events = 1 AND n_guards <= 1 AND n_items <= 1 THEN
        v_size := coalesce(octet_length(p_data[1]), 4) + coalesce(octet_length(p_metadata[1]), 2);
        ok := p_request_ends[1] = 1 AND lim.max_events_per_append >= 1
              AND octet_length(p_types[1]) <= lim.max_name_bytes
              AND (metadata[1] IS NULL OR jsonb_typeof(metadata[1]) = 'object')
              AND p_tag_ends[1] BETWEEN 0 AND lim.max_tags_per_event
              AND v_size <= lim.max_event_bytes AND v_size <= lim.max_append_bytes
              AND NOT jsonb_path_exists(data[1], bad_json)
              AND NOT coalesce(jsonb_path_exists(metadata[1], bad_json), false)
              AND octet_length(array_to_string(p_tags, '')) <= lim.max_name_bytes
              AND n_guards <= lim.max_guards
              AND (n_items = 0 OR (n_items <= lim.max_query_items
                                   AND p_item_type_ends[1] <= lim.max_item_terms
                                   AND p_item_tag_ends[1] <= lim.max_item_terms
                                   AND p_item_type_ends[1] + p_item_tag_ends[1] > 0
                                   AND octet_length(array_to_string(p_item_types, '') || array_to_string(p_item_tags, ''))
                                       <= lim.max_name_bytes));
        -- Refused here, the request may still be valid (the sum): the loops
        -- below decide.
        checked := coalesce(ok, false);
        ok := true;
    END IF;
    IF ok AND NOT checked THEN
        -- Events (names, tags, sizes, JSON) and the requests they end (events,
        -- bytes, guards).
        v_k := 1;
        WHILE ok AND v_k <= n_events LOOP
            v_first := coalesce(p_tag_ends[v_k - 1], 0);
            v_size := coalesce(octet_length(p_data[v_k]), 4) + coalesce(octet_length(p_metadata[v_k]), 2);
            v_bytes := v_bytes + v_size;
            ok := octet_length(p_types[v_k]) <= lim.max_name_bytes
                  AND (metadata[v_k] IS NULL OR jsonb_typeof(metadata[v_k]) = 'object')
                  AND p_tag_ends[v_k] - v_first BETWEEN 0 AND lim.max_tags_per_event
                  AND v_size <= lim.max_event_bytes
                  AND NOT jsonb_path_exists(data[v_k], bad_json)
                  AND NOT coalesce(jsonb_path_exists(metadata[v_k], bad_json), false)
                  AND (v_k < p_request_ends[v_r]
                       OR (v_k = p_request_ends[v_r]
                           AND v_k - coalesce(p_request_ends[v_r - 1], 0) BETWEEN 1 AND lim.max_events_per_append
                           AND v_bytes <= lim.max_append_bytes
                           AND p_guard_ends[v_r] - coalesce(p_guard_ends[v_r - 1], 0) BETWEEN 0 AND lim.max_guards));
            IF v_k = p_request_ends[v_r] THEN
                v_r := v_r + 1;
                v_bytes := 0;
            END IF;
            v_k := v_k + 1;
        END LOOP;
        ok := ok AND v_r = n_requests + 1;
        FOREACH v_t IN ARRAY p_tags LOOP
            ok := ok AND octet_length(v_t) <= lim.max_name_bytes;
        END LOOP;
        -- Guards (their items) and items (their terms).
        FOR v_j IN 1..n_guards LOOP
            ok := ok AND p_guard_item_ends[v_j] - coalesce(p_guard_item_ends[v_j - 1], 0) BETWEEN 0 AND lim.max_query_items;
        END LOOP;
        FOR v_j IN 1..n_items LOOP
            ok := ok AND p_item_type_ends[v_j] - coalesce(p_item_type_ends[v_j - 1], 0) BETWEEN 0 AND lim.max_item_terms
                  AND p_item_tag_ends[v_j] - coalesce(p_item_tag_ends[v_j - 1], 0) BETWEEN 0 AND lim.max_item_terms
                  AND p_item_type_ends[v_j] + p_item_tag_ends[v_j]
                      > coalesce(p_item_type_ends[v_j - 1], 0) + coalesce(p_item_tag_ends[v_j - 1], 0);
        END LOOP;
        FOREACH v_t IN ARRAY p_item_types || p_item_tags LOOP
            ok := ok AND octet_length(v_t) <= lim.max_name_bytes;
        END LOOP;
    END IF;
    IF ok IS NOT TRUE THEN
        -- Why (or nothing, for a false alarm): the guards' shape and limits
        -- first, then everything else on their JSON form.
        invalid := dcbstore.guards_error(n_requests, p_guard_ends, p_guard_afters, p_guard_item_ends,
                                         p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags,
                                         dcbstore.current_limits());
        IF invalid IS NOT NULL THEN
            RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
        END IF;
        PERFORM dcbstore.batch_error(p_ids, p_types, data, metadata,
                                     ARRAY(SELECT coalesce(octet_length(d), 4) + coalesce(octet_length(m), 2)
                                             FROM unnest(p_data, p_metadata) AS u(d, m)),
                                     p_tag_ends, p_tags, p_request_ends,
                                     dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                                          p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags));
    END IF;
    lean := n_requests = 1 AND NOT new_epoch;
    IF NOT lean THEN
        -- Before the lock, while another batch holds it: the requests whose guards
        -- already match the log up to the head seen now. Appends commit in position
        -- order, so the log up to that head is final and only the events committed
        -- between here and the lock remain to be checked under it. Only guards
        -- whose window reaches below that head are probed (a decision read at
        -- the head has none, and then no statement runs).
        seen := coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0);
        IF coalesce(seen > ANY (p_guard_afters), n_guards > 0) THEN
            SELECT coalesce(array_agg(DISTINCT m.r), '{}') INTO early
              FROM dcbstore.guards_matching(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                            p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags,
                                            0, seen) AS m;
        ELSE
            early := '{}';
        END IF;
    END IF;
    -- The append lock (already held when the usual request's statement
    -- above left its request to this path: taking it again costs nothing).
    lock_wait := dcbstore.lock_appends();
    -- One request on this server's history (the usual call): decided and
    -- written by one statement under the lock, which sees every earlier
    -- append (a statement after the lock takes a fresh snapshot): its ids
    -- are new and its guards match nothing in (after, head]. What it cannot
    -- settle (an id stored already or repeated, a conflict to report) goes to
    -- the general path below, the lock still held.
    IF lean THEN
        -- (Not in the statement: each of its nodes costs its set-up, and one
        -- event is distinct.)
        IF n_events = 1 THEN
            ids_distinct := true;
        ELSE
            ids_distinct := n_events = (SELECT count(DISTINCT x) FROM unnest(p_ids) AS x);
        END IF;
        WITH h AS MATERIALIZED (
            SELECT dcbstore.locked_head(false) AS head,
                   greatest(clock_timestamp(),
                            (SELECT ev.recorded_at FROM dcbstore.events ev ORDER BY ev.position DESC LIMIT 1)) AS at
        ), verdict AS MATERIALIZED (
            SELECT h.head, h.at,
                   -- Every id new (one probe of the ids' index), none repeated.
                   NOT EXISTS (SELECT 1 FROM dcbstore.events ev WHERE ev.id = ANY (p_ids)) AND ids_distinct AS fresh,
                   -- A guard matching an event in (after, head] (an index
                   -- probe per item: see guards_matching).
                   EXISTS (SELECT 1 FROM dcbstore.guards_matching(
                               p_guard_ends, p_guard_afters, p_guard_item_ends, p_item_type_ends,
                               p_item_types, p_item_tag_ends, p_item_tags, 0, h.head)) AS blocked
              FROM h
        ), inserted AS (
            INSERT INTO dcbstore.events (position, id, type, data, metadata, tags, recorded_at)
            SELECT v.head + u.k, coalesce(u.id, gen_random_uuid()), u.type, u.data, coalesce(u.metadata, '{}'),
                   ARRAY(SELECT DISTINCT x FROM unnest(p_tags[coalesce(p_tag_ends[u.k - 1], 0) + 1 : p_tag_ends[u.k]]) x ORDER BY 1),
                   v.at
              FROM verdict v, unnest(p_ids, p_types, data, metadata) WITH ORDINALITY AS u(id, type, data, metadata, k)
             WHERE v.fresh AND NOT v.blocked
            RETURNING events.position, events.tags, events.type
        ), tagged AS (
            INSERT INTO dcbstore.event_tags (tag, position, type)
            SELECT unnest(i.tags), i.position, i.type FROM inserted i
        )
        SELECT v.head, v.fresh, v.blocked INTO head, lean_fresh, lean_blocked FROM verdict v;
        request := 1; error := NULL;
        IF lean_fresh AND NOT lean_blocked THEN
            outcome := 'appended'; "position" := head + n_events; conflict := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
        conds := dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                      p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags);
        IF lean_fresh THEN
            outcome := 'conflict'; "position" := NULL;
            conflict := dcbstore.condition_conflict(conds[1], head);
            RETURN NEXT;
            RETURN;
        END IF;
        -- What it could not settle goes on below, checked in full under the
        -- lock (no early matches: every guard's whole window).
        seen := 0;
        early := '{}';
    END IF;
    head := dcbstore.locked_head(new_epoch);
    -- Taken under the lock, so that it never goes back along positions (not
    -- even when the clock does).
    recorded := greatest(clock_timestamp(),
                         (SELECT ev.recorded_at FROM dcbstore.events ev ORDER BY ev.position DESC LIMIT 1));

    -- The usual batch (no id stored or repeated, no guard after the head) is
    -- decided with a few set-based statements; anything else request by request.
    -- (A LATERAL with LIMIT keeps this an index probe per id whatever the
    -- table statistics say when the plan is cached.)
    IF NOT EXISTS (SELECT 1 FROM unnest(p_ids) AS x(id)
                    CROSS JOIN LATERAL (SELECT 1 FROM dcbstore.events ev WHERE ev.id = x.id LIMIT 1) AS hit)
       AND n_events = (SELECT count(DISTINCT x) FROM unnest(p_ids) x)
       AND NOT coalesce(head < ANY (p_guard_afters), false) THEN
        IF n_requests = 1 THEN
            -- One request, decided here: append_set would cost a function
            -- call, as much as the decision. Its guards match the log up to
            -- seen (early), or among the events committed since.
            request := 1; error := NULL;
            IF cardinality(early) = 0 AND (head = seen OR NOT EXISTS (
                   SELECT 1 FROM dcbstore.guards_matching(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                                          p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags,
                                                          seen, head))) THEN
                PERFORM dcbstore.insert_events(p_ids, p_types, data, metadata, p_tag_ends, p_tags,
                                               p_request_ends, ARRAY[1], head, recorded);
                outcome := 'appended'; "position" := head + n_events; conflict := NULL;
            ELSE
                outcome := 'conflict'; "position" := NULL;
                conflict := dcbstore.condition_conflict(
                    (dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends, p_item_type_ends,
                                          p_item_types, p_item_tag_ends, p_item_tags))[1], head);
            END IF;
            RETURN NEXT;
            RETURN;
        END IF;
        RETURN QUERY SELECT * FROM dcbstore.append_set(p_ids, p_types, data, metadata,
                                                      p_tag_ends, p_tags, p_request_ends,
                                                      p_guard_ends, p_guard_afters, p_guard_item_ends,
                                                      p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags,
                                                      head, seen, early, recorded);
    ELSE
        -- (It reports its conflicts last: rows go out in request order.)
        conds := dcbstore.guards_json(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                      p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags);
        RETURN QUERY SELECT * FROM dcbstore.append_sequential(p_ids, p_types, data, metadata,
                                                             p_tag_ends, p_tags, p_request_ends, conds,
                                                             head, recorded) AS o ORDER BY o.request;
    END IF;
END
$$;

-- Raises SQLSTATE 22023, with the reason, when a batch's arrays are not of
-- one shape, a request is empty or over the limits, a condition is malformed
-- or over the limits, or an event cannot be stored (events_error). Run by
-- append_batch_typed when its quick checks refuse a batch (it may find
-- nothing wrong: their false alarms only cost this). p_sizes: each event's
-- bytes of JSON as its entry point measured them.
CREATE OR REPLACE FUNCTION dcbstore.batch_error(
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_sizes bigint[],
    p_tag_ends int[],
    p_tags text[],
    p_request_ends int[],
    p_conditions jsonb[]
) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_events int := coalesce(cardinality(p_ids), 0);
    n_requests int := coalesce(cardinality(p_request_ends), 0);
    lim dcbstore.limits := dcbstore.current_limits();
    invalid text;
    bad record;
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
                WHEN p_request_ends[c.r] - coalesce(p_request_ends[c.r - 1], 0) > lim.max_events_per_append THEN
                    format('the append has %s events; the limit is %s (max_events_per_append in dcbstore.limits)',
                           p_request_ends[c.r] - coalesce(p_request_ends[c.r - 1], 0), lim.max_events_per_append)
                ELSE dcbstore.condition_error(c.cond, lim)
                END AS err
              FROM unnest(p_conditions) WITH ORDINALITY AS c(cond, r)) v
     WHERE v.err IS NOT NULL
     ORDER BY v.r
     LIMIT 1;
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
    END IF;
    SELECT * INTO bad FROM dcbstore.events_error(p_types, p_data, p_metadata, p_sizes, p_tag_ends, p_tags, lim);
    IF bad.k IS NOT NULL THEN
        -- The request of event k, and its number within it.
        SELECT CASE WHEN n_requests = 1 THEN bad.reason
                    ELSE format('request %s: event %s%s', re.r, bad.k - coalesce(p_request_ends[re.r - 1], 0),
                                substr(bad.reason, position(':' in bad.reason)))
               END INTO invalid
          FROM unnest(p_request_ends) WITH ORDINALITY AS re(e, r)
         WHERE re.e >= bad.k
         ORDER BY re.r
         LIMIT 1;
        RAISE EXCEPTION '%', coalesce(invalid, bad.reason) USING ERRCODE = '22023';
    END IF;
    -- Each request's JSON, within max_append_bytes.
    SELECT format('%sthe append is %s bytes of JSON; the limit is %s (max_append_bytes in dcbstore.limits)',
                  CASE WHEN n_requests = 1 THEN '' ELSE format('request %s: ', re.r) END, re.bytes, lim.max_append_bytes)
      INTO invalid
      FROM (SELECT re.r, (SELECT sum(coalesce(p_sizes[k], octet_length(coalesce(p_data[k], 'null')::text)
                                                       + octet_length(coalesce(p_metadata[k], '{}')::text)))
                            FROM generate_series(coalesce(p_request_ends[re.r - 1], 0) + 1, re.e) AS k) AS bytes
              FROM unnest(p_request_ends) WITH ORDINALITY AS re(e, r)) re
     WHERE re.bytes > lim.max_append_bytes
     ORDER BY re.r
     LIMIT 1;
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
    END IF;
END
$$;

-- JSON convenience for SQL users: one request. events is an array of
-- {"type", "data", "tags", "metadata", "id"} (only "type" required);
-- condition is NULL or an array of guards {"query": Q, "after": N}.
-- Returns {"position": N, "already_stored": false} (or true: every event was
-- stored already, with the same content; nothing was written) or
-- {"conflict": {"position": N, "events": [...]}}.
CREATE OR REPLACE FUNCTION dcbstore.append(events jsonb, condition jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
    RETURN jsonb_build_object('position', res."position", 'already_stored', res.outcome = 'duplicate');
END
$$;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.append(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.append_batch(uuid[], text[], jsonb[], jsonb[], int[], text[], int[], jsonb[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.append_batch_unchecked(uuid[], text[], text[], text[], int[], text[], int[], jsonb[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.append_batch_typed(uuid[], text[], text[], text[], int[], text[], int[], int[], bigint[], int[],
                                                   int[], text[], int[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.batch_error(uuid[], text[], jsonb[], jsonb[], bigint[], int[], text[], int[], jsonb[]) FROM PUBLIC;

-- The roles that may call append_batch may call the Rust client's entry
-- points, whatever their signatures were when they were granted them (a new
-- signature is a new function, without the old one's grants).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
         WHERE p.oid = 'dcbstore.append_batch(uuid[], text[], jsonb[], jsonb[], int[], text[], int[], jsonb[])'::regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION dcbstore.append_batch_unchecked(uuid[], text[], text[], text[], int[], text[], int[], jsonb[]) TO %s',
                       r.grantee::regrole::text);
        EXECUTE format('GRANT EXECUTE ON FUNCTION dcbstore.append_batch_typed(uuid[], text[], text[], text[], int[], text[], int[], int[], bigint[], int[], int[], text[], int[], text[]) TO %s',
                       r.grantee::regrole::text);
    END LOOP;
END
$$;
