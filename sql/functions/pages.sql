-- The pages the Rust client reads: every read, boundary read, subscription
-- and export page, for one query or for several decisions read together, is
-- this one statement.

-- One page for each of several requests, all in one snapshot, with the head
-- it was read at. Request k reads the events matching its query in the
-- window (p_after[k], min(p_to[k], head)], at most p_limit[k] of them, in
-- position order (descending when p_backwards). A query is "all"
-- (p_all[k]), or its items: each tagged item is a row of the p_item_*
-- arrays (its request, its first tag, its types and its other tags as
-- slices: item i's types are p_item_types[p_item_type_ends[i-1]+1 ..
-- p_item_type_ends[i]]), each type of its types-only items a row of
-- p_type_request/p_type (items are OR'd; so are an item's types).
--
-- Rows: first the head (request 0, position NULL), then each request's
-- events. The text of the statement depends on nothing but the direction, so
-- each connection plans it once; every plan is index ranges and probes, made
-- without sequential scans whatever the statistics said when it was made (a
-- plan made while the log was small would otherwise scan it for ever): each
-- tagged item is a range of its first tag's (tag, position) index, each type
-- a range of the (type, position) index (written as a range of that index
-- only, in its order, so that no plan reads the window by position and
-- filters it by type), each with its own LIMIT, so a page
-- costs what its size and its query's width cost, never the log's size.
CREATE OR REPLACE FUNCTION dcbstore.read_pages(
    p_after bigint[],
    p_to bigint[],
    p_limit bigint[],
    p_all boolean[],
    p_item_request int[],
    p_item_first text[],
    p_item_type_ends int[],
    p_item_types text[],
    p_item_tag_ends int[],
    p_item_tags text[],
    p_type_request int[],
    p_type text[],
    p_backwards boolean
) RETURNS TABLE (head bigint, "position" bigint, id uuid, type text, data jsonb, tags text[],
                 metadata jsonb, recorded_at timestamptz, request int)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    IF p_backwards THEN
        RETURN QUERY
        WITH w AS MATERIALIZED (
            SELECT coalesce((SELECT e.position FROM dcbstore.events e ORDER BY e.position DESC LIMIT 1), 0) AS head
        ), r AS MATERIALIZED (
            SELECT u.k::int AS request, u.lo, least(u.hi, w.head) AS hi, u.lim, u.al
              FROM w, unnest(p_after, p_to, p_limit, p_all) WITH ORDINALITY AS u(lo, hi, lim, al, k)
        ), found AS (
            SELECT r.request, x.position FROM r
             CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e
                                  WHERE r.al AND e.position > r.lo AND e.position <= r.hi
                                  ORDER BY e.position DESC LIMIT r.lim) AS x
            UNION ALL
            SELECT r.request, x.position
              FROM unnest(p_item_request, p_item_first) WITH ORDINALITY AS i(request, first, n)
              JOIN r ON r.request = i.request
             CROSS JOIN LATERAL (
                 SELECT t0.position FROM dcbstore.event_tags t0
                  WHERE t0.tag = i.first AND t0.position > r.lo AND t0.position <= r.hi
                    AND (coalesce(p_item_type_ends[i.n - 1], 0) = p_item_type_ends[i.n]
                         OR t0.type = ANY (p_item_types[coalesce(p_item_type_ends[i.n - 1], 0) + 1 : p_item_type_ends[i.n]]))
                    AND NOT EXISTS (
                        SELECT 1 FROM unnest(p_item_tags[coalesce(p_item_tag_ends[i.n - 1], 0) + 1 : p_item_tag_ends[i.n]]) AS other(tag)
                         WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                            WHERE t1.tag = other.tag AND t1.position = t0.position))
                  ORDER BY t0.position DESC LIMIT r.lim) AS x
            UNION ALL
            SELECT r.request, x.position
              FROM unnest(p_type_request, p_type) AS ty(request, t)
              JOIN r ON r.request = ty.request
             CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e
                                  WHERE e.type = ty.t AND (e.type, e.position) > (ty.t, r.lo)
                                    AND (e.type, e.position) <= (ty.t, r.hi)
                                  ORDER BY e.type DESC, e.position DESC LIMIT r.lim) AS x
        ), page AS (
            SELECT z.request, z.position
              FROM (SELECT d.request, d.position,
                           row_number() OVER (PARTITION BY d.request ORDER BY d.position DESC) AS n
                      FROM (SELECT DISTINCT f.request, f.position FROM found f) AS d) AS z
              JOIN r ON r.request = z.request
             WHERE z.n <= r.lim
        )
        SELECT w.head, NULL::bigint, NULL::uuid, NULL::text, NULL::jsonb, NULL::text[], NULL::jsonb,
               NULL::timestamptz, 0 FROM w
        UNION ALL
        SELECT NULL::bigint, e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at, p.request
          FROM page p JOIN dcbstore.events e ON e.position = p.position;
    ELSE
        RETURN QUERY
        WITH w AS MATERIALIZED (
            SELECT coalesce((SELECT e.position FROM dcbstore.events e ORDER BY e.position DESC LIMIT 1), 0) AS head
        ), r AS MATERIALIZED (
            SELECT u.k::int AS request, u.lo, least(u.hi, w.head) AS hi, u.lim, u.al
              FROM w, unnest(p_after, p_to, p_limit, p_all) WITH ORDINALITY AS u(lo, hi, lim, al, k)
        ), found AS (
            SELECT r.request, x.position FROM r
             CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e
                                  WHERE r.al AND e.position > r.lo AND e.position <= r.hi
                                  ORDER BY e.position LIMIT r.lim) AS x
            UNION ALL
            SELECT r.request, x.position
              FROM unnest(p_item_request, p_item_first) WITH ORDINALITY AS i(request, first, n)
              JOIN r ON r.request = i.request
             CROSS JOIN LATERAL (
                 SELECT t0.position FROM dcbstore.event_tags t0
                  WHERE t0.tag = i.first AND t0.position > r.lo AND t0.position <= r.hi
                    AND (coalesce(p_item_type_ends[i.n - 1], 0) = p_item_type_ends[i.n]
                         OR t0.type = ANY (p_item_types[coalesce(p_item_type_ends[i.n - 1], 0) + 1 : p_item_type_ends[i.n]]))
                    AND NOT EXISTS (
                        SELECT 1 FROM unnest(p_item_tags[coalesce(p_item_tag_ends[i.n - 1], 0) + 1 : p_item_tag_ends[i.n]]) AS other(tag)
                         WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                            WHERE t1.tag = other.tag AND t1.position = t0.position))
                  ORDER BY t0.position LIMIT r.lim) AS x
            UNION ALL
            SELECT r.request, x.position
              FROM unnest(p_type_request, p_type) AS ty(request, t)
              JOIN r ON r.request = ty.request
             CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e
                                  WHERE e.type = ty.t AND (e.type, e.position) > (ty.t, r.lo)
                                    AND (e.type, e.position) <= (ty.t, r.hi)
                                  ORDER BY e.type, e.position LIMIT r.lim) AS x
        ), page AS (
            SELECT z.request, z.position
              FROM (SELECT d.request, d.position,
                           row_number() OVER (PARTITION BY d.request ORDER BY d.position) AS n
                      FROM (SELECT DISTINCT f.request, f.position FROM found f) AS d) AS z
              JOIN r ON r.request = z.request
             WHERE z.n <= r.lim
        )
        SELECT w.head, NULL::bigint, NULL::uuid, NULL::text, NULL::jsonb, NULL::text[], NULL::jsonb,
               NULL::timestamptz, 0 FROM w
        UNION ALL
        SELECT NULL::bigint, e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at, p.request
          FROM page p JOIN dcbstore.events e ON e.position = p.position;
    END IF;
END
$$;

-- read_pages for its most frequent request, a decision's boundary: one
-- request, a query of one tagged item (first tag p_first, any of p_types,
-- every other tag of p_others). The same rows as read_pages gives it (the
-- head, then the events, request 1), from a statement a third its size:
-- setting up a statement's plan is most of what a small read costs. The
-- same plans: a range of the first tag's (tag, position) index, the other
-- tags probed, whatever the statistics.
CREATE OR REPLACE FUNCTION dcbstore.read_page_tagged(
    p_after bigint,
    p_to bigint,
    p_limit bigint,
    p_first text,
    p_types text[],
    p_others text[],
    p_backwards boolean
) RETURNS TABLE (head bigint, "position" bigint, id uuid, type text, data jsonb, tags text[],
                 metadata jsonb, recorded_at timestamptz, request int)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    IF p_backwards THEN
        RETURN QUERY
        WITH w AS MATERIALIZED (
            SELECT coalesce((SELECT e.position FROM dcbstore.events e ORDER BY e.position DESC LIMIT 1), 0) AS head
        )
        SELECT w.head, NULL::bigint, NULL::uuid, NULL::text, NULL::jsonb, NULL::text[], NULL::jsonb,
               NULL::timestamptz, 0 FROM w
        UNION ALL
        SELECT NULL::bigint, e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at, 1
          FROM w CROSS JOIN LATERAL (
                   SELECT t0.position FROM dcbstore.event_tags t0
                    WHERE t0.tag = p_first AND t0.position > p_after AND t0.position <= least(p_to, w.head)
                      AND (cardinality(p_types) = 0 OR t0.type = ANY (p_types))
                      AND NOT EXISTS (SELECT 1 FROM unnest(p_others) AS other(tag)
                                       WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                                          WHERE t1.tag = other.tag AND t1.position = t0.position))
                    ORDER BY t0.position DESC LIMIT p_limit) AS p
          JOIN dcbstore.events e ON e.position = p.position;
    ELSE
        RETURN QUERY
        WITH w AS MATERIALIZED (
            SELECT coalesce((SELECT e.position FROM dcbstore.events e ORDER BY e.position DESC LIMIT 1), 0) AS head
        )
        SELECT w.head, NULL::bigint, NULL::uuid, NULL::text, NULL::jsonb, NULL::text[], NULL::jsonb,
               NULL::timestamptz, 0 FROM w
        UNION ALL
        SELECT NULL::bigint, e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at, 1
          FROM w CROSS JOIN LATERAL (
                   SELECT t0.position FROM dcbstore.event_tags t0
                    WHERE t0.tag = p_first AND t0.position > p_after AND t0.position <= least(p_to, w.head)
                      AND (cardinality(p_types) = 0 OR t0.type = ANY (p_types))
                      AND NOT EXISTS (SELECT 1 FROM unnest(p_others) AS other(tag)
                                       WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                                          WHERE t1.tag = other.tag AND t1.position = t0.position))
                    ORDER BY t0.position LIMIT p_limit) AS p
          JOIN dcbstore.events e ON e.position = p.position;
    END IF;
END
$$;

-- Called by every role that reads (the read-only ones too): SELECT on the
-- log is all it needs. Roles granted dcbstore.read before this function
-- existed may call it.
REVOKE ALL ON FUNCTION dcbstore.read_pages(bigint[], bigint[], bigint[], boolean[], int[], text[], int[], text[],
                                           int[], text[], int[], text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.read_page_tagged(bigint, bigint, bigint, text, text[], text[], boolean) FROM PUBLIC;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
         WHERE p.oid = 'dcbstore.read(jsonb, bigint, bigint, boolean, bigint)'::regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION dcbstore.read_pages(bigint[], bigint[], bigint[], boolean[], int[], '
                       'text[], int[], text[], int[], text[], int[], text[], boolean) TO %s', r.grantee::regrole::text);
        EXECUTE format('GRANT EXECUTE ON FUNCTION dcbstore.read_page_tagged(bigint, bigint, bigint, text, text[], text[], '
                       'boolean) TO %s', r.grantee::regrole::text);
    END LOOP;
END
$$;
