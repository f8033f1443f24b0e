-- How a batch is decided under the append lock (dcbstore.append_set): the
-- guards' matches found before the lock (early) up to the head seen then
-- (seen), plus the events committed between seen and the lock (head): a few
-- batches' worth hash-joined, more probed per item (guards_matching). Called
-- here directly, as the owner, with a seen below the head, the case a single
-- session never produces; each call is rolled back.
\set VERBOSITY terse
-- The log: 1 A {k:1}, 2 B {k:2, x:1}, 3 C {}, 4 A {k:3}, 5 B {k:1, x:2}.
SELECT dcbstore.append('[{"type": "A", "tags": ["k:1"]}, {"type": "B", "tags": ["k:2", "x:1"]}, {"type": "C"},
                         {"type": "A", "tags": ["k:3"]}, {"type": "B", "tags": ["k:1", "x:2"]}]') ->> 'position' AS head;
-- Typed guards as rows: one per item, one for "all".
SELECT * FROM dcbstore.guard_items(ARRAY[1, 3, 3], ARRAY[5, NULL, 7]::bigint[], ARRAY[1, 1, 3],
                                   ARRAY[0, 1, 1], ARRAY['T'], ARRAY[2, 2, 3], ARRAY['a:1', 'b:2', 'c:3']);
-- Which requests' guards match in (greatest(after, lower), upto]: a tag, two
-- tags (all of them), a type, "all"; each from 0 and from a lower bound.
CREATE FUNCTION pg_temp.matching(afters bigint[], item_ends int[], type_ends int[], types text[],
                                 tag_ends int[], tags text[], lower bigint, upto bigint) RETURNS int[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(DISTINCT m.r ORDER BY m.r), '{}')
      FROM dcbstore.guards_matching(ARRAY[cardinality(afters)], afters, item_ends, type_ends, types,
                                    tag_ends, tags, lower, upto) AS m
$$;
SELECT pg_temp.matching('{0}', '{1}', '{0}', '{}', '{1}', '{k:1}', 0, 5) AS k1,
       pg_temp.matching('{0}', '{1}', '{0}', '{}', '{1}', '{k:1}', 1, 4) AS k1_in_1_4,
       pg_temp.matching('{0}', '{1}', '{0}', '{}', '{2}', '{k:2, x:1}', 0, 5) AS k2_x1,
       pg_temp.matching('{0}', '{1}', '{0}', '{}', '{2}', '{k:2, x:2}', 0, 5) AS k2_x2,
       pg_temp.matching('{0}', '{1}', '{1}', '{B}', '{1}', '{k:1}', 0, 5) AS b_k1,
       pg_temp.matching('{0}', '{1}', '{1}', '{A}', '{1}', '{x:2}', 0, 5) AS a_x2,
       pg_temp.matching('{2}', '{1}', '{1}', '{C}', '{0}', '{}', 0, 5) AS c_after_2,
       pg_temp.matching('{3}', '{1}', '{1}', '{C}', '{0}', '{}', 0, 5) AS c_after_3,
       pg_temp.matching('{4}', '{0}', '{}', '{}', '{}', '{}', 0, 5) AS all_after_4,
       pg_temp.matching('{5}', '{0}', '{}', '{}', '{}', '{}', 0, 5) AS all_after_5,
       pg_temp.matching('{NULL}', '{0}', '{}', '{}', '{}', '{}', 4, 5) AS all_from_4;
-- A batch of six single-event requests, decided with seen = 4 (so only event
-- 5 is new to the decision) or far below (more than 10000 events: probes):
--   1: tag k:1 after 0          (5 has k:1: a conflict; early had nothing)
--   2: type C after 0, writes a C with tag k:9 (3 is C, but before seen)
--   3: "all" after 4            (5 is after 4: a conflict)
--   4: tag k:9 after 5          (request 2's event: a conflict)
--   5: "all" after 5            (request 2 was accepted: a conflict)
--   6: type D after 5, writes D (nothing matches: appended)
CREATE FUNCTION pg_temp.batch(seen bigint) RETURNS TABLE (request int, outcome text, "position" bigint, conflict_at text)
LANGUAGE sql AS $$
    SELECT s.request, s.outcome, s.position, s.conflict ->> 'position'
      FROM dcbstore.append_set(
               ARRAY[gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid()],
               ARRAY['E', 'C', 'E', 'E', 'E', 'D'], array_fill('{}'::jsonb, ARRAY[6]), array_fill('{}'::jsonb, ARRAY[6]),
               ARRAY[0, 1, 1, 1, 1, 1], ARRAY['k:9'], ARRAY[1, 2, 3, 4, 5, 6],
               ARRAY[1, 2, 3, 4, 5, 6], ARRAY[0, 0, 4, 5, 5, 5]::bigint[], ARRAY[1, 2, 2, 3, 3, 4],
               ARRAY[0, 1, 1, 2], ARRAY['C', 'D'], ARRAY[1, 1, 2, 2], ARRAY['k:1', 'k:9'],
               5, seen, '{}', now()) AS s
$$;
BEGIN;
SELECT * FROM pg_temp.batch(4);
ROLLBACK;
-- From 0: every event is new to the decision, hash-joined (request 2 now
-- sees event 3, so request 4 is not blocked by it).
BEGIN;
SELECT * FROM pg_temp.batch(0);
ROLLBACK;
-- Far below: the same, by a probe per item.
BEGIN;
SELECT * FROM pg_temp.batch(-10000);
ROLLBACK;
-- Nothing was kept.
SELECT max(position) AS head FROM dcbstore.events;
