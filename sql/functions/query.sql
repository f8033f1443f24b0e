-- Queries in their JSON form ("all" or [{"types": [...], "tags": [...]}, ...]):
-- what is well formed, and the SQL that finds their matches.

-- Why a query in its JSON form is malformed, or NULL when it is well formed:
-- "all" or a non-empty array of items {"types": [...], "tags": [...]}, each
-- with at least one non-empty type or tag.
CREATE OR REPLACE FUNCTION dcbstore.query_error(q jsonb) RETURNS text
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
CREATE OR REPLACE FUNCTION dcbstore.check_query(q jsonb) RETURNS void
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
-- ordered (descending when backwards), at most $3 rows; run it with q as $4.
-- The text depends on the direction only (and on whether q is "all"), so its
-- plan is made once per session, whatever the query: each tagged item is a
-- bounded range of its first tag's (tag, position) index, each type of the
-- types-only items a bounded range of the (type, position) index, both as
-- lateral scans over the query's items, with their own LIMIT. So the cost of
-- a page depends on the page size and the number of items and types, never
-- on the size of the log, and a query of any width is one statement (a
-- branch per item or type would nest as deep as the query is wide).
CREATE OR REPLACE FUNCTION dcbstore.query_sql(q jsonb, backwards boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    dir text := CASE WHEN backwards THEN ' DESC' ELSE '' END;
BEGIN
    PERFORM dcbstore.check_query(q);
    IF jsonb_typeof(q) = 'string' THEN
        RETURN 'SELECT e.position FROM dcbstore.events e WHERE e.position > $1 AND e.position <= $2'
            || ' ORDER BY e.position' || dir || ' LIMIT $3';
    END IF;
    RETURN 'SELECT DISTINCT m.position FROM ('
        || 'SELECT x.position FROM jsonb_array_elements($4) AS i(item)'
        || ' CROSS JOIN LATERAL (SELECT t0.position FROM dcbstore.event_tags t0'
        || ' WHERE t0.tag = i.item -> ''tags'' ->> 0 AND t0.position > $1 AND t0.position <= $2'
        || ' AND (jsonb_array_length(coalesce(i.item -> ''types'', ''[]'')) = 0'
        || ' OR t0.type IN (SELECT jsonb_array_elements_text(i.item -> ''types'')))'
        || ' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(i.item -> ''tags'') AS other(tag)'
        || ' WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1 WHERE t1.tag = other.tag AND t1.position = t0.position))'
        || ' ORDER BY t0.position' || dir || ' LIMIT $3) AS x'
        || ' WHERE jsonb_array_length(coalesce(i.item -> ''tags'', ''[]'')) > 0'
        || ' UNION ALL '
        || 'SELECT x.position FROM (SELECT DISTINCT ty FROM jsonb_array_elements($4) AS i(item)'
        || ' CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(i.item -> ''types'', ''[]'')) AS ty'
        || ' WHERE jsonb_array_length(coalesce(i.item -> ''tags'', ''[]'')) = 0) AS t'
        || ' CROSS JOIN LATERAL (SELECT e.position FROM dcbstore.events e WHERE e.type = t.ty'
        || ' AND (e.type, e.position) > (t.ty, $1) AND (e.type, e.position) <= (t.ty, $2)'
        || ' ORDER BY e.type' || dir || ', e.position' || dir || ' LIMIT $3) AS x'
        || ') m ORDER BY m.position' || dir || ' LIMIT $3';
END
$$;

REVOKE ALL ON FUNCTION dcbstore.query_error(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.check_query(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.query_sql(jsonb, boolean) FROM PUBLIC;
