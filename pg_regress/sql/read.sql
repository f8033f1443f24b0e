-- Reads: query scopes, position windows, direction, limit.
\set VERBOSITY terse
SELECT dcbstore.append('[{"type": "A", "tags": ["x"]},
                         {"type": "B", "tags": ["x", "y"]},
                         {"type": "C", "tags": ["y"]},
                         {"type": "A", "tags": ["x", "y", "z"]},
                         {"type": "B"},
                         {"type": "C", "tags": ["z"]}]');
SELECT dcbstore.head() AS head;
SELECT array_agg(position ORDER BY position) AS everything FROM dcbstore.read('"all"');
SELECT array_agg(position ORDER BY position) AS types_ored FROM dcbstore.read('[{"types": ["A", "C"]}]');
SELECT array_agg(position ORDER BY position) AS tags_anded FROM dcbstore.read('[{"tags": ["x", "y"]}]');
SELECT array_agg(position ORDER BY position) AS types_and_tags FROM dcbstore.read('[{"types": ["A", "B"], "tags": ["y"]}]');
SELECT array_agg(position ORDER BY position) AS items_ored FROM dcbstore.read('[{"tags": ["z"]}, {"types": ["A"]}]');
SELECT array_agg(position ORDER BY position) AS duplicates_harmless FROM dcbstore.read('[{"types": ["C", "C"], "tags": ["z", "z"]}]');
SELECT position, type, tags FROM dcbstore.read('"all"', after => 2, upto => 4);
SELECT position, type, tags FROM dcbstore.read('"all"', backwards => true);
SELECT position FROM dcbstore.read('"all"', after => 2, backwards => true, lim => 2);
SELECT position FROM dcbstore.read('[{"tags": ["x"]}]', backwards => true, lim => 1);
SELECT count(*) AS limit_zero FROM dcbstore.read('"all"', lim => 0);
SELECT count(*) AS past_head FROM dcbstore.read('"all"', after => 6);
-- Malformed queries.
SELECT * FROM dcbstore.read(NULL);
SELECT * FROM dcbstore.read('[]');
SELECT * FROM dcbstore.read('[{}]');
SELECT * FROM dcbstore.read('[{"types": []}]');
SELECT * FROM dcbstore.read('[{"types": "A"}]');
SELECT * FROM dcbstore.read('[{"types": [1]}]');
SELECT * FROM dcbstore.read('"everything"');
SELECT * FROM dcbstore.read('{"types": ["A"]}');
SELECT * FROM dcbstore.read('"all"', lim => -1);
-- Tag lookups are ordered index range scans, not sorts of every match.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT e.* FROM dcbstore.events e JOIN (
  SELECT t0.position FROM dcbstore.event_tags t0
   WHERE t0.tag = 'x' AND t0.position > 0 AND t0.position <= 100
   ORDER BY t0.position LIMIT 10) p ON p.position = e.position ORDER BY e.position;
RESET enable_seqscan;
