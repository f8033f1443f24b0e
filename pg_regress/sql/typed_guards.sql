-- The Rust client's entry point, dcbstore.append_batch_typed: conditions as
-- typed arrays (sql/functions/guards.sql). Arrays that are not of one shape,
-- or over the limits, are refused (SQLSTATE 22023, with the reason), never
-- read as a narrower condition; well-formed ones decide as the JSON form.
\set VERBOSITY terse
-- A helper for these tests: one event of type T with tag t, under typed guards.
CREATE FUNCTION pg_temp.typed(guard_ends int[], afters bigint[], item_ends int[], type_ends int[], types text[],
                              tag_ends int[], tags text[], t text DEFAULT 'k:1') RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(outcome || coalesce(' ' || position, '') || coalesce(' conflict at ' || (conflict ->> 'position'), ''), 'no row')
      FROM dcbstore.append_batch_typed(ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY['{}'], ARRAY['{}'], ARRAY[1], ARRAY[t],
                                       ARRAY[1], guard_ends, afters, item_ends, type_ends, types, tag_ends, tags)
$$;
-- Well formed: unconditional, a tag guard, a type guard, "all", two guards.
SELECT pg_temp.typed('{0}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT pg_temp.typed('{1}', '{1}', '{1}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{1}', '{1}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{NULL}', '{1}', '{1}', '{U}', '{0}', '{}');
SELECT pg_temp.typed('{1}', '{3}', '{0}', '{}', '{}', '{}', '{}');
SELECT pg_temp.typed('{2}', '{3, 0}', '{1, 2}', '{0, 1}', '{U}', '{1, 1}', '{k:2}');
SELECT pg_temp.typed('{2}', '{3, 2}', '{1, 2}', '{0, 1}', '{T}', '{1, 1}', '{k:2}');
-- Several tags in an item: all of them (k:1 alone does not match k:1 and k:9).
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{2}', '{k:1, k:9}');
-- Not of one shape: refused, whichever array is off.
SELECT pg_temp.typed('{}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT pg_temp.typed('{2}', '{0}', '{1}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{2}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{0}', '{}', '{}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{0}', '{}', '{}', '{}', '{T}', '{}', '{}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{2}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{2}', '{1, 0}', '{T}', '{0, 1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{NULL}', '{}', '{1}', '{k:1}');
-- Malformed guards and items.
SELECT pg_temp.typed('{1}', '{-1}', '{1}', '{0}', '{}', '{1}', '{k:1}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{0}', '{}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{1}', '{""}');
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{1}', '{NULL}', '{0}', '{}');
-- Over the limits: terms, items, guards.
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{1}', ARRAY[repeat('t', 257)]);
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{101}', (SELECT array_agg('t' || g) FROM generate_series(1, 101) g));
SELECT pg_temp.typed('{1}', '{0}', '{129}', (SELECT array_agg(0) FROM generate_series(1, 129)), '{}',
                     (SELECT array_agg(g) FROM generate_series(1, 129) g), (SELECT array_agg('t' || g) FROM generate_series(1, 129) g));
SELECT pg_temp.typed('{101}', (SELECT array_agg(0::bigint) FROM generate_series(1, 101)), (SELECT array_agg(0) FROM generate_series(1, 101)),
                     '{}', '{}', '{}', '{}');
-- Long names together, each within the limit: taken (the quick check's sum
-- is not a limit).
SELECT pg_temp.typed('{1}', '{0}', '{1}', '{0}', '{}', '{2}', ARRAY[repeat('a', 200), repeat('b', 200)], repeat('c', 200));
-- Data as SQL NULL (not the JSON null): refused, with what to send.
SELECT outcome FROM dcbstore.append_batch_typed(ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY[NULL::text], ARRAY['{}'], ARRAY[0], '{}',
                                                ARRAY[1], ARRAY[0], '{}', '{}', '{}', '{}', '{}', '{}');
-- In a batch, a request's message names it.
SELECT request, outcome FROM dcbstore.append_batch_typed(
    ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['T', 'T'], ARRAY['{}', '{}'], ARRAY['{}', '{}'], ARRAY[0, 0], '{}',
    ARRAY[1, 2], ARRAY[0, 1], ARRAY[-5::bigint], ARRAY[0], '{}', '{}', '{}', '{}');
-- Nothing refused was written.
SELECT position, type, tags FROM dcbstore.events ORDER BY position;
