-- Append conditions: whether a guard's query matches the log in a window, and
-- the conflict an append reports.

-- The latest position in (after, upto] matching query q (JSON form), or NULL.
-- Static SQL, so its plan is cached per session: per item, one ordered index
-- scan that stops at the first row.
CREATE OR REPLACE FUNCTION dcbstore.latest_match(q jsonb, after bigint, upto bigint) RETURNS bigint
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
                   -- A range of the (type, position) index only, in its
                   -- order: never the window read by position and filtered
                   -- by type.
                   WHERE ev.type = ty AND (ev.type, ev.position) > (ty, after) AND (ev.type, ev.position) <= (ty, upto)
                   ORDER BY ev.type DESC, ev.position DESC
                   LIMIT 1)
            FROM jsonb_array_elements_text(coalesce(i.item -> 'types', '[]')) AS ty
           WHERE jsonb_array_length(coalesce(i.item -> 'tags', '[]')) = 0
      ) AS m;
    RETURN latest;
END
$$;

-- The conflict of a condition (array of guards {"query", "after"}) against the
-- log up to position upto: NULL when no guard matches, else
-- {"position": latest match, "head": upto, "events": [the first 100 matches,
-- in order]}. Fewer than 100 events are every match in the guards' windows
-- up to the head: a caller can fold them and retry after the head, without
-- reading again.
CREATE OR REPLACE FUNCTION dcbstore.condition_conflict(guards jsonb, upto bigint) RETURNS jsonb
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
                INTO g_positions USING g_after, upto, 100, guard -> 'query';
            positions := positions || g_positions;
        END IF;
    END LOOP;
    IF latest IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_build_object('position', latest, 'head', upto, 'events',
               coalesce(jsonb_agg(dcbstore.event_json(ev) ORDER BY ev.position), '[]'))
      INTO result
      FROM dcbstore.events ev
     WHERE ev.position = ANY (ARRAY(SELECT DISTINCT p FROM unnest(positions) p ORDER BY p LIMIT 100));
    RETURN result;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.latest_match(jsonb, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.condition_conflict(jsonb, bigint) FROM PUBLIC;
