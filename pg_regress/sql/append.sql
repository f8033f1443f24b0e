-- Unconditional appends through the SQL API.
\set VERBOSITY terse
SELECT dcbstore.head() AS empty_head;
SELECT dcbstore.append('[{"type": "A", "data": {"n": 1}, "tags": ["b", "a", "b"], "id": "00000000-0000-0000-0000-000000000001"},
                         {"type": "B", "id": "00000000-0000-0000-0000-000000000002"}]');
SELECT position, id, type, data, tags, metadata FROM dcbstore.events ORDER BY position;
SELECT tag, position FROM dcbstore.event_tags ORDER BY position, tag;
-- Idempotent retry: same ids, same content (tag order and duplicates aside).
SELECT dcbstore.append('[{"type": "A", "data": {"n": 1}, "tags": ["a", "b"], "id": "00000000-0000-0000-0000-000000000001"},
                         {"type": "B", "id": "00000000-0000-0000-0000-000000000002"}]');
-- Same id, other content: an error naming the id.
SELECT dcbstore.append('[{"type": "A", "data": {"n": 2}, "id": "00000000-0000-0000-0000-000000000001"}]');
-- Part of the batch stored already: an error too.
SELECT dcbstore.append('[{"type": "A", "data": {"n": 1}, "tags": ["a", "b"], "id": "00000000-0000-0000-0000-000000000001"},
                         {"type": "C", "id": "00000000-0000-0000-0000-000000000003"}]');
-- Bad input: nothing is written.
SELECT dcbstore.append('[]');
SELECT dcbstore.append('[{"data": 1}]');
SELECT dcbstore.append('[{"type": ""}]');
SELECT dcbstore.append('[{"type": "A", "tags": [""]}]');
SELECT dcbstore.append('[{"type": "A", "metadata": [1]}]');
SELECT dcbstore.append('[{"type": "A", "colour": "red"}]');
SELECT dcbstore.head() AS head_unchanged;
-- One append_batch call with three requests (one transaction):
-- the second conflicting, the third seeing the first. The conflict is
-- reported against the log as the batch leaves it: its latest event is the
-- third request's (position 4).
SELECT request, outcome, position, conflict -> 'position' AS conflict_position, error
  FROM dcbstore.append_batch(
    ARRAY['00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000c']::uuid[],
    ARRAY['X', 'Y', 'Z'],
    ARRAY['1', '2', '3']::jsonb[],
    ARRAY['{}', '{}', '{"by": "test"}']::jsonb[],
    ARRAY[1, 2, 3],
    ARRAY['k', 'k', 'k'],
    ARRAY[1, 2, 3],
    ARRAY[NULL,
          '[{"query": [{"tags": ["k"]}], "after": 2}]',
          '[{"query": [{"types": ["Y"]}], "after": 2}]']::jsonb[]);
SELECT position, type, data, tags, metadata FROM dcbstore.events WHERE position > 2 ORDER BY position;
-- Appends must run in READ COMMITTED.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT dcbstore.append('[{"type": "A"}]');
ROLLBACK;
-- In-batch decisions: a types-only guard and an "all" guard see earlier
-- requests of the batch; an unrelated guard does not.
SELECT request, outcome, position, conflict -> 'position' AS conflict_position,
       jsonb_path_query_array(conflict, '$.events[*].type') AS conflicting_types
  FROM dcbstore.append_batch(
    ARRAY['00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000d2',
          '00000000-0000-0000-0000-0000000000d3', '00000000-0000-0000-0000-0000000000d4']::uuid[],
    ARRAY['P', 'Q', 'R', 'S'],
    ARRAY['1', '2', '3', '4']::jsonb[],
    ARRAY['{}', '{}', '{}', '{}']::jsonb[],
    ARRAY[0, 1, 1, 2],
    ARRAY['m', 'n'],
    ARRAY[1, 2, 3, 4],
    ARRAY[NULL,
          '[{"query": [{"types": ["P"]}], "after": 4}]',
          '[{"query": [{"tags": ["zzz"]}, {"types": ["Q"]}], "after": 4}]',
          '[{"query": "all", "after": 4}]']::jsonb[]);
-- A guard after the head and a repeated id take the request-by-request path,
-- with the same rules.
SELECT request, outcome, position, conflict -> 'position' AS conflict_position, error
  FROM dcbstore.append_batch(
    ARRAY['00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000e1',
          '00000000-0000-0000-0000-0000000000e3']::uuid[],
    ARRAY['T', 'T', 'U'],
    ARRAY['1', '1', '3']::jsonb[],
    ARRAY['{}', '{}', '{}']::jsonb[],
    ARRAY[1, 2, 2],
    ARRAY['w', 'w'],
    ARRAY[1, 2, 3],
    ARRAY['[{"query": [{"tags": ["w"]}], "after": 1000}]',
          NULL,
          '[{"query": [{"types": ["T"]}], "after": 5}]']::jsonb[]);
SELECT position, id, type, tags FROM dcbstore.events WHERE position > 4 ORDER BY position;
