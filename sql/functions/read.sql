-- Reading the log: pages of a query's events, the head, events as JSON.

-- Events matching q with after < position <= upto (upto NULL: no upper bound),
-- in position order (descending when backwards), at most lim of them. "all"
-- is a static primary-key range scan; other queries select the page's
-- positions first (bounded index scans), then the rows by primary key.
-- SECURITY DEFINER, so that the query helpers it calls stay internal.
CREATE OR REPLACE FUNCTION dcbstore.read(
    q jsonb,
    after bigint DEFAULT 0,
    upto bigint DEFAULT NULL,
    backwards boolean DEFAULT false,
    lim bigint DEFAULT NULL
) RETURNS SETOF dcbstore.events
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
SET enable_seqscan = off AS $$
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
    USING coalesce(after, 0), coalesce(upto, 9223372036854775807), lim, q;
END
$$;

-- Highest committed position, NULL for an empty store. Appends commit in
-- position order, so no uncommitted position is below it.
-- (PL/pgSQL with its own settings, so that it is planned once per session
-- and never as a scan of the log, whoever calls it.)
CREATE OR REPLACE FUNCTION dcbstore.head() RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
BEGIN
    RETURN (SELECT e.position FROM dcbstore.events e ORDER BY e.position DESC LIMIT 1);
END
$$;

-- Event rows as the JSON objects dcbstore returns for conflicts.
CREATE OR REPLACE FUNCTION dcbstore.event_json(e dcbstore.events) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'position', e.position, 'id', e.id, 'type', e.type, 'data', e.data,
        'tags', to_jsonb(e.tags), 'metadata', e.metadata,
        'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

REVOKE ALL ON FUNCTION dcbstore.event_json(dcbstore.events) FROM PUBLIC;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.read(jsonb, bigint, bigint, boolean, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.head() FROM PUBLIC;
