-- Append conditions as typed arrays, the form dcbstore.append_batch_typed
-- takes (the Rust client's): proved well formed by a few cardinalities,
-- where the JSON form needs a JSON path (tens of microseconds a request, on
-- the hot path). Their JSON form is built only where a path needs it
-- (batches, conflicts), and the JSON form's callers are converted to them.
--
-- The layout, each "ends" array cumulative (entry i is where element i's
-- children end; element i's children start after entry i - 1, or 0):
--   p_guard_ends       one per request: request r's guards
--   p_guard_afters     one per guard: only events after it count (NULL: any)
--   p_guard_item_ends  one per guard: its query's items (none: "all")
--   p_item_type_ends   one per item: its types in p_item_types (any of them;
--                      none: any type)
--   p_item_tag_ends    one per item: its tags in p_item_tags (all of them);
--                      an item has a type or a tag

-- Why typed guards are malformed or over the limits, or NULL. Messages name
-- the request when the batch has more than one.
CREATE OR REPLACE FUNCTION dcbstore.guards_error(
    n_requests int, p_guard_ends int[], p_guard_afters bigint[], p_guard_item_ends int[],
    p_item_type_ends int[], p_item_types text[], p_item_tag_ends int[], p_item_tags text[],
    lim dcbstore.limits
) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n_guards int := coalesce(cardinality(p_guard_afters), 0);
    n_items int := coalesce(cardinality(p_item_type_ends), 0);
    r int;
    g int;
    i int;
    t text;
    at text;
BEGIN
    IF coalesce(cardinality(p_guard_ends), 0) <> n_requests THEN
        RETURN 'guard_ends must have one entry per request';
    ELSIF coalesce(cardinality(p_guard_item_ends), 0) <> n_guards THEN
        RETURN 'guard_item_ends must have one entry per guard (per entry of guard_afters)';
    ELSIF coalesce(cardinality(p_item_tag_ends), 0) <> n_items THEN
        RETURN 'item_type_ends and item_tag_ends must have one entry per query item';
    ELSIF n_guards = 0 AND n_items > 0 THEN
        RETURN 'guard_item_ends must end at the number of query items';
    ELSIF n_items = 0 AND (coalesce(cardinality(p_item_types), 0) > 0 OR coalesce(cardinality(p_item_tags), 0) > 0) THEN
        RETURN 'item_type_ends and item_tag_ends must end at the number of types and of tags';
    END IF;
    FOR r IN 1..n_requests LOOP
        at := CASE WHEN n_requests > 1 THEN format('request %s: ', r) ELSE '' END;
        IF p_guard_ends[r] IS NULL OR p_guard_ends[r] < coalesce(p_guard_ends[r - 1], 0)
           OR (r = n_requests AND p_guard_ends[r] <> n_guards) THEN
            RETURN 'guard_ends must be non-decreasing and end at the number of guards';
        ELSIF p_guard_ends[r] - coalesce(p_guard_ends[r - 1], 0) > lim.max_guards THEN
            RETURN format('%sthe condition has %s guards; the limit is %s (max_guards in dcbstore.limits)',
                          at, p_guard_ends[r] - coalesce(p_guard_ends[r - 1], 0), lim.max_guards);
        END IF;
        FOR g IN coalesce(p_guard_ends[r - 1], 0) + 1 .. p_guard_ends[r] LOOP
            IF p_guard_afters[g] < 0 THEN
                RETURN format('%sa guard''s "after" must be a position (an integer from 0 to 9223372036854775807) or null', at);
            ELSIF p_guard_item_ends[g] IS NULL OR p_guard_item_ends[g] < coalesce(p_guard_item_ends[g - 1], 0)
                  OR (g = n_guards AND p_guard_item_ends[g] <> n_items) THEN
                RETURN 'guard_item_ends must be non-decreasing and end at the number of query items';
            ELSIF p_guard_item_ends[g] - coalesce(p_guard_item_ends[g - 1], 0) > lim.max_query_items THEN
                RETURN format('%sthe query has %s items; the limit is %s (max_query_items in dcbstore.limits)',
                              at, p_guard_item_ends[g] - coalesce(p_guard_item_ends[g - 1], 0), lim.max_query_items);
            END IF;
            FOR i IN coalesce(p_guard_item_ends[g - 1], 0) + 1 .. p_guard_item_ends[g] LOOP
                IF p_item_type_ends[i] IS NULL OR p_item_type_ends[i] < coalesce(p_item_type_ends[i - 1], 0)
                   OR (i = n_items AND p_item_type_ends[i] <> coalesce(cardinality(p_item_types), 0))
                   OR p_item_tag_ends[i] IS NULL OR p_item_tag_ends[i] < coalesce(p_item_tag_ends[i - 1], 0)
                   OR (i = n_items AND p_item_tag_ends[i] <> coalesce(cardinality(p_item_tags), 0)) THEN
                    RETURN 'item_type_ends and item_tag_ends must be non-decreasing and end at the number of types and of tags';
                ELSIF p_item_type_ends[i] - coalesce(p_item_type_ends[i - 1], 0) > lim.max_item_terms THEN
                    RETURN format('%squery item %s has %s types; the limit is %s (max_item_terms in dcbstore.limits)',
                                  at, i - coalesce(p_guard_item_ends[g - 1], 0),
                                  p_item_type_ends[i] - coalesce(p_item_type_ends[i - 1], 0), lim.max_item_terms);
                ELSIF p_item_tag_ends[i] - coalesce(p_item_tag_ends[i - 1], 0) > lim.max_item_terms THEN
                    RETURN format('%squery item %s has %s tags; the limit is %s (max_item_terms in dcbstore.limits)',
                                  at, i - coalesce(p_guard_item_ends[g - 1], 0),
                                  p_item_tag_ends[i] - coalesce(p_item_tag_ends[i - 1], 0), lim.max_item_terms);
                ELSIF p_item_type_ends[i] = coalesce(p_item_type_ends[i - 1], 0)
                      AND p_item_tag_ends[i] = coalesce(p_item_tag_ends[i - 1], 0) THEN
                    RETURN format('%squery item %s has neither types nor tags: give it one, or match every event with the query "all" (a guard without items)',
                                  at, i - coalesce(p_guard_item_ends[g - 1], 0));
                END IF;
                FOREACH t IN ARRAY p_item_types[coalesce(p_item_type_ends[i - 1], 0) + 1 : p_item_type_ends[i]]
                                   || p_item_tags[coalesce(p_item_tag_ends[i - 1], 0) + 1 : p_item_tag_ends[i]] LOOP
                    IF t IS NULL OR t = '' THEN
                        RETURN format('%squery item %s has an empty type or tag', at, i - coalesce(p_guard_item_ends[g - 1], 0));
                    ELSIF octet_length(t) > lim.max_name_bytes THEN
                        RETURN format('%squery item %s has a term of %s bytes; the limit is %s (max_name_bytes in dcbstore.limits)',
                                      at, i - coalesce(p_guard_item_ends[g - 1], 0), octet_length(t), lim.max_name_bytes);
                    END IF;
                END LOOP;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$$;

-- The JSON form of well-formed typed guards (see dcbstore.guards_error):
-- one condition per request, NULL for a request without guards, else
-- [{"query": "all" | [{"types": [...], "tags": [...]}, ...], "after": N | null}, ...].
-- One statement, for the paths that take the JSON form (batches, conflicts).
-- (PL/pgSQL: its statement's plan is kept for the session, where a SQL
-- function's would be made again at every call.)
CREATE OR REPLACE FUNCTION dcbstore.guards_json(
    p_guard_ends int[], p_guard_afters bigint[], p_guard_item_ends int[],
    p_item_type_ends int[], p_item_types text[], p_item_tag_ends int[], p_item_tags text[]
) RETURNS jsonb[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(
               (SELECT jsonb_agg(jsonb_build_object(
                           'query', CASE WHEN p_guard_item_ends[g] = coalesce(p_guard_item_ends[g - 1], 0) THEN to_jsonb('all'::text)
                                         ELSE (SELECT jsonb_agg(jsonb_build_object(
                                                          'types', to_jsonb(p_item_types[coalesce(p_item_type_ends[i - 1], 0) + 1 : p_item_type_ends[i]]),
                                                          'tags', to_jsonb(p_item_tags[coalesce(p_item_tag_ends[i - 1], 0) + 1 : p_item_tag_ends[i]]))
                                                      ORDER BY i)
                                                 FROM generate_series(coalesce(p_guard_item_ends[g - 1], 0) + 1, p_guard_item_ends[g]) AS i)
                                    END,
                           'after', p_guard_afters[g])
                       ORDER BY g)
                  FROM generate_series(coalesce(p_guard_ends[r - 1], 0) + 1, p_guard_ends[r]) AS g)
               ORDER BY r), '{}')
      FROM generate_subscripts(p_guard_ends, 1) AS r);
END
$$;

-- Typed guards as rows, one per query item (one for a guard without items,
-- "all": match_all, no types or tags): the request it guards, its "after"
-- (NULL as 0), its types (any of them; none: any type) and its tags (all of
-- them). SQL, STABLE, not STRICT and called without ORDINALITY so that the
-- planner inlines it into the statement that calls it: no function call, and
-- that statement's plan sees the arrays.
CREATE OR REPLACE FUNCTION dcbstore.guard_items(
    p_guard_ends int[], p_guard_afters bigint[], p_guard_item_ends int[],
    p_item_type_ends int[], p_item_types text[], p_item_tag_ends int[], p_item_tags text[]
) RETURNS TABLE (r int, after bigint, match_all boolean, types text[], tags text[])
LANGUAGE sql IMMUTABLE AS $$
    SELECT re.r, coalesce(p_guard_afters[g.g], 0), it.i IS NULL,
           coalesce(p_item_types[coalesce(p_item_type_ends[it.i - 1], 0) + 1 : p_item_type_ends[it.i]], '{}'),
           coalesce(p_item_tags[coalesce(p_item_tag_ends[it.i - 1], 0) + 1 : p_item_tag_ends[it.i]], '{}')
      FROM generate_series(1, coalesce(cardinality(p_guard_ends), 0)) AS re(r)
     CROSS JOIN LATERAL generate_series(coalesce(p_guard_ends[re.r - 1], 0) + 1, p_guard_ends[re.r]) AS g(g)
      LEFT JOIN LATERAL generate_series(coalesce(p_guard_item_ends[g.g - 1], 0) + 1, p_guard_item_ends[g.g]) AS it(i) ON true
$$;

-- The requests (with repeats) whose typed guards match an event in
-- (greatest(after, lower), upto]: per item, an index probe that stops at the
-- first match (the first tag's range with the type on the row and the other
-- tags probed, or a range of the (type, position) index per type), never a
-- scan of the window, whatever the statistics said when the calling plan was
-- made. Inlined like guard_items (SQL, STABLE).
CREATE OR REPLACE FUNCTION dcbstore.guards_matching(
    p_guard_ends int[], p_guard_afters bigint[], p_guard_item_ends int[],
    p_item_type_ends int[], p_item_types text[], p_item_tag_ends int[], p_item_tags text[],
    lower bigint, upto bigint
) RETURNS TABLE (r int)
LANGUAGE sql STABLE AS $$
    SELECT it.r
      FROM dcbstore.guard_items(p_guard_ends, p_guard_afters, p_guard_item_ends,
                                p_item_type_ends, p_item_types, p_item_tag_ends, p_item_tags) AS it
     CROSS JOIN LATERAL (SELECT greatest(it.after, lower) AS after) AS a
     WHERE a.after < upto
       AND CASE WHEN it.match_all THEN EXISTS (
                    SELECT 1 FROM dcbstore.events ev WHERE ev.position > a.after AND ev.position <= upto)
                WHEN cardinality(it.tags) > 0 THEN EXISTS (
                    SELECT 1 FROM dcbstore.event_tags t0
                     WHERE t0.tag = it.tags[1]
                       AND t0.position > a.after AND t0.position <= upto
                       AND (cardinality(it.types) = 0 OR t0.type = ANY (it.types))
                       AND NOT EXISTS (
                           SELECT 1 FROM unnest(it.tags[2:]) AS other(tag)
                            WHERE NOT EXISTS (SELECT 1 FROM dcbstore.event_tags t1
                                               WHERE t1.tag = other.tag AND t1.position = t0.position)))
                ELSE EXISTS (
                    SELECT 1 FROM unnest(it.types) AS ty(t)
                     CROSS JOIN LATERAL (SELECT 1 FROM dcbstore.events ev
                                          WHERE ev.type = ty.t
                                            AND (ev.type, ev.position) > (ty.t, a.after)
                                            AND (ev.type, ev.position) <= (ty.t, upto)
                                          ORDER BY ev.type, ev.position LIMIT 1) AS hit)
           END
$$;

-- The typed form of JSON conditions (one per request, NULL or an array of
-- guards), which dcbstore.condition_error has found well formed.
CREATE OR REPLACE FUNCTION dcbstore.guards_arrays(
    p_conditions jsonb[],
    OUT guard_ends int[], OUT guard_afters bigint[], OUT guard_item_ends int[],
    OUT item_type_ends int[], OUT item_types text[], OUT item_tag_ends int[], OUT item_tags text[]
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r int;
    guard jsonb;
    item jsonb;
BEGIN
    guard_ends := '{}'; guard_afters := '{}'; guard_item_ends := '{}';
    item_type_ends := '{}'; item_types := '{}'; item_tag_ends := '{}'; item_tags := '{}';
    FOR r IN 1..coalesce(cardinality(p_conditions), 0) LOOP
        IF p_conditions[r] IS NOT NULL THEN
            FOR guard IN SELECT x FROM jsonb_array_elements(p_conditions[r]) AS x LOOP
                guard_afters := guard_afters || (guard ->> 'after')::bigint;
                IF jsonb_typeof(guard -> 'query') = 'array' THEN
                    FOR item IN SELECT x FROM jsonb_array_elements(guard -> 'query') AS x LOOP
                        item_types := item_types || ARRAY(SELECT jsonb_array_elements_text(coalesce(item -> 'types', '[]')));
                        item_type_ends := item_type_ends || coalesce(cardinality(item_types), 0);
                        item_tags := item_tags || ARRAY(SELECT jsonb_array_elements_text(coalesce(item -> 'tags', '[]')));
                        item_tag_ends := item_tag_ends || coalesce(cardinality(item_tags), 0);
                    END LOOP;
                END IF;
                guard_item_ends := guard_item_ends || coalesce(cardinality(item_type_ends), 0);
            END LOOP;
        END IF;
        guard_ends := guard_ends || coalesce(cardinality(guard_afters), 0);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.guards_error(int, int[], bigint[], int[], int[], text[], int[], text[], dcbstore.limits) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.guards_json(int[], bigint[], int[], int[], text[], int[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.guards_arrays(jsonb[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.guard_items(int[], bigint[], int[], int[], text[], int[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.guards_matching(int[], bigint[], int[], int[], text[], int[], text[], bigint, bigint) FROM PUBLIC;
