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
-- ordered (descending when backwards), at most $3 rows. Each branch of the
-- UNION ALL is an ordered index range scan with its own LIMIT, so the cost of a
-- page depends on the page size, not on the size of the log.
CREATE OR REPLACE FUNCTION dcbstore.query_sql(q jsonb, backwards boolean) RETURNS text
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

REVOKE ALL ON FUNCTION dcbstore.query_error(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.check_query(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.query_sql(jsonb, boolean) FROM PUBLIC;
