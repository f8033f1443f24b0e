-- The checks every entry point that writes events runs on its input
-- (dcbstore.append, append_batch, append_batch_unchecked, import_batch,
-- redact), against the limits of dcbstore.limits: what the Rust client checks
-- at the edge, so that no role can store what a reader would refuse, above all
-- JSON that no reader decodes. A refusal is SQLSTATE 22023 with the reason.

-- The limits in force: the one row of dcbstore.limits.
CREATE OR REPLACE FUNCTION dcbstore.current_limits() RETURNS dcbstore.limits
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lim dcbstore.limits;
BEGIN
    SELECT * INTO lim FROM dcbstore.limits l WHERE l.singleton;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dcbstore.limits has no row: restore the defaults with INSERT INTO dcbstore.limits DEFAULT VALUES'
            USING ERRCODE = '55000';
    END IF;
    RETURN lim;
END
$$;

-- A JSON number at least this large in magnitude rounds to infinity as a
-- double: readers that decode numbers as doubles (serde_json, JavaScript and
-- most JSON libraries) refuse it. (2^1024 - 2^970, half an ulp above the
-- largest double: every number below it rounds to a finite one.)
CREATE OR REPLACE FUNCTION dcbstore.max_json_number() RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object('max', 2::numeric ^ 1024 - 2::numeric ^ 970)
$$;

-- The path that finds arrays and objects nested deeper than `depth` levels
-- (the outermost value is level 1).
CREATE OR REPLACE FUNCTION dcbstore.too_deep_path(depth integer) RETURNS jsonpath
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT format('strict $.**{%s to last} ? (@.type() == "array" || @.type() == "object")', depth)::jsonpath
$$;

-- The path that finds numbers a double cannot hold (vars: max_json_number()).
CREATE OR REPLACE FUNCTION dcbstore.huge_number_path() RETURNS jsonpath
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'strict $.** ? (@.type() == "number" && (@ >= $max || @ <= -$max))'::jsonpath
$$;

-- Why a JSON value (an event's data or metadata, named by `what`) cannot be
-- stored, or NULL: nested deeper than the limit, or holding a number no
-- double can hold. (PostgreSQL's jsonb already refuses \u0000 in strings.)
CREATE OR REPLACE FUNCTION dcbstore.json_error(what text, v jsonb, lim dcbstore.limits) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    huge jsonb;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_path_exists(v, dcbstore.too_deep_path(lim.max_json_depth)) THEN
        RETURN format('%s is nested deeper than %s levels (max_json_depth in dcbstore.limits): flatten it',
                      what, lim.max_json_depth);
    END IF;
    huge := jsonb_path_query_first(v, dcbstore.huge_number_path(), dcbstore.max_json_number());
    IF huge IS NOT NULL THEN
        RETURN format('%s holds the number %s, beyond what a double can hold (about ±1.8e308), which readers could not decode: store it as a string',
                      what, CASE WHEN length(huge::text) > 40 THEN left(huge::text, 20) || '...(' || length(huge::text) || ' digits)' ELSE huge::text END);
    END IF;
    RETURN NULL;
END
$$;

-- The first event of an append that cannot be stored, and why: k is its
-- number (1-based) among p_types/p_data/...; no row when every event is
-- well formed and within the limits. p_sizes holds each event's bytes of
-- JSON (data plus metadata) as the caller measured them, or NULL to measure
-- their text here (jsonb's text form, which has a space after each ':' and
-- ',': a little more than the compact form the Rust client measures).
CREATE OR REPLACE FUNCTION dcbstore.events_error(
    p_types text[], p_data jsonb[], p_metadata jsonb[], p_sizes bigint[], p_tag_ends int[],
    p_tags text[], lim dcbstore.limits, OUT k int, OUT reason text
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    deep jsonpath := dcbstore.too_deep_path(lim.max_json_depth);
    huge jsonpath := dcbstore.huge_number_path();
    vars jsonb := dcbstore.max_json_number();
BEGIN
    -- One statement for the usual, valid batch: each check is a scan of one
    -- value in C; the messages are made only for the event that fails.
    SELECT u.k INTO k
      FROM unnest(p_types, p_data, p_metadata) WITH ORDINALITY AS u(type, data, metadata, k)
     WHERE u.type IS NULL OR u.type = '' OR octet_length(u.type) > lim.max_name_bytes
        OR u.data IS NULL
        OR (u.metadata IS NOT NULL AND jsonb_typeof(u.metadata) <> 'object')
        OR p_tag_ends[u.k] IS NULL
        OR p_tag_ends[u.k] - coalesce(p_tag_ends[u.k - 1], 0) > lim.max_tags_per_event
        OR EXISTS (SELECT 1 FROM unnest(p_tags[coalesce(p_tag_ends[u.k - 1], 0) + 1 : p_tag_ends[u.k]]) AS t
                    WHERE t IS NULL OR t = '' OR octet_length(t) > lim.max_name_bytes)
        OR coalesce(p_sizes[u.k], octet_length(coalesce(u.data, 'null')::text)
                                  + octet_length(coalesce(u.metadata, '{}')::text)) > lim.max_event_bytes
        OR jsonb_path_exists(u.data, deep) OR jsonb_path_exists(u.metadata, deep)
        OR jsonb_path_exists(u.data, huge, vars) OR jsonb_path_exists(u.metadata, huge, vars)
     ORDER BY u.k
     LIMIT 1;
    IF k IS NULL THEN
        RETURN;
    END IF;
    reason := CASE
        WHEN p_types[k] IS NULL OR p_types[k] = '' THEN 'the event type must be a non-empty string'
        WHEN octet_length(p_types[k]) > lim.max_name_bytes THEN
            format('the event type "%s..." is %s bytes long; the limit is %s bytes (max_name_bytes in dcbstore.limits)',
                   left(p_types[k], 40), octet_length(p_types[k]), lim.max_name_bytes)
        WHEN p_data[k] IS NULL THEN 'the event data is SQL NULL: send JSON (the JSON null, ''null'', for an event without data)'
        WHEN p_metadata[k] IS NOT NULL AND jsonb_typeof(p_metadata[k]) <> 'object' THEN
            format('metadata must be a JSON object, got %s', jsonb_typeof(p_metadata[k]))
        WHEN p_tag_ends[k] IS NULL THEN 'tag_ends must have one entry per event'
        WHEN p_tag_ends[k] - coalesce(p_tag_ends[k - 1], 0) > lim.max_tags_per_event THEN
            format('the event has %s tags; the limit is %s (max_tags_per_event in dcbstore.limits)',
                   p_tag_ends[k] - coalesce(p_tag_ends[k - 1], 0), lim.max_tags_per_event)
        ELSE (SELECT CASE WHEN t IS NULL OR t = '' THEN 'a tag must be a non-empty string'
                          ELSE format('the tag "%s..." is %s bytes long; the limit is %s bytes (max_name_bytes in dcbstore.limits)',
                                      left(t, 40), octet_length(t), lim.max_name_bytes) END
                FROM unnest(p_tags[coalesce(p_tag_ends[k - 1], 0) + 1 : p_tag_ends[k]]) AS t
               WHERE t IS NULL OR t = '' OR octet_length(t) > lim.max_name_bytes
               LIMIT 1)
    END;
    IF reason IS NULL AND coalesce(p_sizes[k], octet_length(coalesce(p_data[k], 'null')::text)
                                               + octet_length(coalesce(p_metadata[k], '{}')::text)) > lim.max_event_bytes THEN
        reason := format('the event is %s bytes of JSON (data and metadata); the limit is %s (max_event_bytes in dcbstore.limits)',
                         coalesce(p_sizes[k], octet_length(coalesce(p_data[k], 'null')::text)
                                              + octet_length(coalesce(p_metadata[k], '{}')::text)),
                         lim.max_event_bytes);
    END IF;
    reason := coalesce(reason, dcbstore.json_error('the event data', p_data[k], lim),
                       dcbstore.json_error('the event metadata', p_metadata[k], lim));
    reason := format('event %s: %s', k, reason);
END
$$;

-- Why query q (JSON form) is over the limits, or NULL (its form is checked by
-- dcbstore.query_error).
CREATE OR REPLACE FUNCTION dcbstore.query_limit_error(q jsonb, lim dcbstore.limits) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    err text;
BEGIN
    IF jsonb_typeof(q) <> 'array' THEN
        RETURN NULL;
    END IF;
    IF jsonb_array_length(q) > lim.max_query_items THEN
        RETURN format('the query has %s items; the limit is %s (max_query_items in dcbstore.limits)',
                      jsonb_array_length(q), lim.max_query_items);
    END IF;
    SELECT CASE
               WHEN jsonb_array_length(coalesce(i.item -> 'types', '[]')) > lim.max_item_terms THEN
                   format('query item %s has %s types; the limit is %s (max_item_terms in dcbstore.limits)',
                          i.n, jsonb_array_length(i.item -> 'types'), lim.max_item_terms)
               WHEN jsonb_array_length(coalesce(i.item -> 'tags', '[]')) > lim.max_item_terms THEN
                   format('query item %s has %s tags; the limit is %s (max_item_terms in dcbstore.limits)',
                          i.n, jsonb_array_length(i.item -> 'tags'), lim.max_item_terms)
               ELSE (SELECT format('query item %s has a term of %s bytes; the limit is %s (max_name_bytes in dcbstore.limits)',
                                   i.n, octet_length(t), lim.max_name_bytes)
                       FROM jsonb_array_elements_text(coalesce(i.item -> 'types', '[]') || coalesce(i.item -> 'tags', '[]')) AS t
                      WHERE octet_length(t) > lim.max_name_bytes
                      LIMIT 1)
           END
      INTO err
      FROM jsonb_array_elements(q) WITH ORDINALITY AS i(item, n)
     WHERE jsonb_typeof(i.item) = 'object'
       AND (jsonb_array_length(coalesce(i.item -> 'types', '[]')) > lim.max_item_terms
            OR jsonb_array_length(coalesce(i.item -> 'tags', '[]')) > lim.max_item_terms
            OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce(i.item -> 'types', '[]') || coalesce(i.item -> 'tags', '[]')) AS t
                        WHERE octet_length(t) > lim.max_name_bytes))
     ORDER BY i.n
     LIMIT 1;
    RETURN err;
END
$$;

-- Why an append condition (NULL, or an array of guards {"query": Q, "after":
-- N}) is malformed or over the limits, or NULL.
CREATE OR REPLACE FUNCTION dcbstore.condition_error(cond jsonb, lim dcbstore.limits) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    err text;
BEGIN
    IF cond IS NULL THEN
        RETURN NULL;
    ELSIF jsonb_typeof(cond) <> 'array' THEN
        RETURN 'the condition must be an array of guards [{"query": Q, "after": N}, ...]';
    ELSIF jsonb_array_length(cond) = 0 THEN
        RETURN 'the condition has no guards: pass NULL for an unconditional append';
    ELSIF jsonb_array_length(cond) > lim.max_guards THEN
        RETURN format('the condition has %s guards; the limit is %s (max_guards in dcbstore.limits)',
                      jsonb_array_length(cond), lim.max_guards);
    END IF;
    SELECT x.e INTO err
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
                ELSE coalesce(dcbstore.query_error(gg.g -> 'query'), dcbstore.query_limit_error(gg.g -> 'query', lim))
                END AS e
              FROM jsonb_array_elements(cond) WITH ORDINALITY AS gg(g, o)) x
     WHERE x.e IS NOT NULL
     ORDER BY x.o
     LIMIT 1;
    RETURN err;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.current_limits() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.max_json_number() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.too_deep_path(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.huge_number_path() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.json_error(text, jsonb, dcbstore.limits) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.events_error(text[], jsonb[], jsonb[], bigint[], int[], text[], dcbstore.limits) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.query_limit_error(jsonb, dcbstore.limits) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.condition_error(jsonb, dcbstore.limits) FROM PUBLIC;
