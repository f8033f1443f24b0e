-- Conditional appends: fail_if_events_match + after, one or more guards.
\set VERBOSITY terse
SELECT dcbstore.append('[{"type": "CourseDefined", "tags": ["course:c1"]},
                         {"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]},
                         {"type": "CourseDefined", "tags": ["course:c2"]}]');
-- A match after the position: conflict, nothing written; checked at head 3.
SELECT r -> 'conflict' -> 'position' AS latest, r -> 'conflict' -> 'head' AS head,
       jsonb_path_query_array(r, '$.conflict.events[*].position') AS conflicting
  FROM dcbstore.append('[{"type": "StudentSubscribed", "tags": ["course:c1", "student:s2"]}]',
                       '[{"query": [{"tags": ["course:c1"]}], "after": 1}]') r;
-- No after: any match conflicts.
SELECT jsonb_path_query_array(r, '$.conflict.events[*].position') AS conflicting
  FROM dcbstore.append('[{"type": "X"}]', '[{"query": [{"types": ["CourseDefined"]}]}]') r;
SELECT dcbstore.head() AS head_unchanged;
-- Matches only up to the position: success.
SELECT dcbstore.append('[{"type": "StudentSubscribed", "tags": ["course:c1", "student:s2"]}]',
                       '[{"query": [{"tags": ["course:c1"]}], "after": 2}]');
-- Unrelated boundary: success.
SELECT dcbstore.append('[{"type": "StudentSubscribed", "tags": ["course:c2", "student:s1"]}]',
                       '[{"query": [{"tags": ["course:c2", "student:s1"]}], "after": null}]');
-- Several guards: fails when any fails; reports the union.
SELECT r -> 'conflict' -> 'position' AS latest,
       jsonb_path_query_array(r, '$.conflict.events[*].position') AS conflicting
  FROM dcbstore.append('[{"type": "X"}]',
                       '[{"query": [{"tags": ["course:c2"]}], "after": 5},
                         {"query": [{"tags": ["student:s1"]}], "after": 1},
                         {"query": "all", "after": 5}]') r;
SELECT dcbstore.append('[{"type": "X"}]',
                       '[{"query": [{"tags": ["course:c2"]}], "after": 5},
                         {"query": [{"tags": ["student:s1"]}], "after": 5}]');
-- The batch is not checked against its own events.
SELECT dcbstore.append('[{"type": "Y", "tags": ["new"]}, {"type": "Y", "tags": ["new"]}]',
                       '[{"query": [{"tags": ["new"]}]}]');
-- Malformed conditions are errors, not "match all" or "match nothing".
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": []}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": [{}]}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": [{"tag": ["a"]}]}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": [{"tags": [""]}]}]');
SELECT dcbstore.append('[{"type": "X"}]', '{"query": "all"}');
SELECT dcbstore.head() AS head;
-- Malformed guards: errors, never a silent "no condition" or "anywhere".
SELECT dcbstore.append('[{"type": "X"}]', '[]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": "all", "afer": 1}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": "all", "after": 5.0}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": "all", "after": -1}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"query": "all", "after": 18446744073709551615}]');
SELECT dcbstore.append('[{"type": "X"}]', '[{"after": 1}]');
SELECT dcbstore.head() AS head_unchanged;
