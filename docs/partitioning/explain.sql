-- The partitioning design of docs/partitioning.md, checked on a partitioned
-- copy of the benchmark log (the 10,000,000-event log of `cargo bench
-- --bench dcb`): the same rows in tables partitioned by position range,
-- then the plans of the store's hot statements on both.
\timing off
\pset pager off
DROP SCHEMA IF EXISTS part CASCADE;
CREATE SCHEMA part;
CREATE TABLE part.events (LIKE dcbstore.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (position);
CREATE TABLE part.event_tags (LIKE dcbstore.event_tags INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (position);
-- Ten partitions of 1,000,000 positions each, and one open-ended spare.
SELECT format('CREATE TABLE part.events_%s PARTITION OF part.events FOR VALUES FROM (%s) TO (%s)',
              lpad(i::text, 4, '0'), i * 1000000 + 1, (i + 1) * 1000000 + 1),
       format('CREATE TABLE part.event_tags_%s PARTITION OF part.event_tags FOR VALUES FROM (%s) TO (%s)',
              lpad(i::text, 4, '0'), i * 1000000 + 1, (i + 1) * 1000000 + 1)
  FROM generate_series(0, 10) i \gexec
-- Indexes on the parents: each partition gets its own (all local).
ALTER TABLE part.events ADD PRIMARY KEY (position);
CREATE INDEX ON part.events (type, position);
ALTER TABLE part.event_tags ADD PRIMARY KEY (tag, position);
-- The one global constraint partitioning cannot keep: ids, unique across
-- partitions, in a table of their own.
CREATE TABLE part.event_ids (id uuid PRIMARY KEY, position bigint NOT NULL);
INSERT INTO part.events SELECT * FROM dcbstore.events WHERE position <= 11000000;
INSERT INTO part.event_tags SELECT * FROM dcbstore.event_tags WHERE position <= 11000000;
INSERT INTO part.event_ids SELECT id, position FROM dcbstore.events WHERE position <= 11000000;
VACUUM ANALYZE part.events;
VACUUM ANALYZE part.event_tags;
VACUUM ANALYZE part.event_ids;

\echo '== 1. the head'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT max(position) FROM dcbstore.events;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT max(position) FROM part.events;
\echo '== 2. a read page: 1,000 events after a position'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT * FROM dcbstore.events WHERE position > 5000000 AND position <= 9223372036854775807 ORDER BY position LIMIT 1000;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT * FROM part.events WHERE position > 5000000 AND position <= 9223372036854775807 ORDER BY position LIMIT 1000;
\echo '== 3. a tag page: the first 100 positions of a tag after a position, then the rows'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT e.* FROM dcbstore.events e WHERE e.position = ANY (ARRAY(
  SELECT t.position FROM dcbstore.event_tags t WHERE t.tag = 'account:7' AND t.position > 5000000 ORDER BY t.position LIMIT 100))
ORDER BY e.position;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT e.* FROM part.events e WHERE e.position = ANY (ARRAY(
  SELECT t.position FROM part.event_tags t WHERE t.tag = 'account:7' AND t.position > 5000000 ORDER BY t.position LIMIT 100))
ORDER BY e.position;
\echo '== 4. a condition: does an event of the tag exist after the guard position?'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT EXISTS (SELECT 1 FROM dcbstore.event_tags t WHERE t.tag = 'account:7' AND t.position > 9999000);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT EXISTS (SELECT 1 FROM part.event_tags t WHERE t.tag = 'account:7' AND t.position > 9999000);
\echo '== 5. a type, newest first (the console), and an id lookup (idempotent retries)'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT * FROM part.events WHERE type = 'Deposited' ORDER BY position DESC LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT e.* FROM part.event_ids i JOIN part.events e ON e.position = i.position
 WHERE i.id = (SELECT id FROM dcbstore.events WHERE position = 7777777);
\echo '== timings, 200 runs each (ms per statement), unpartitioned then partitioned'
DO $$
DECLARE t0 timestamptz; n int := 200; r record; x bigint;
BEGIN
  FOR r IN SELECT * FROM (VALUES
    ('head', 'SELECT max(position) FROM dcbstore.events', 'SELECT max(position) FROM part.events'),
    ('read page', 'SELECT count(*) FROM (SELECT * FROM dcbstore.events WHERE position > 5000000 ORDER BY position LIMIT 1000) s',
                  'SELECT count(*) FROM (SELECT * FROM part.events WHERE position > 5000000 ORDER BY position LIMIT 1000) s'),
    ('tag page', 'SELECT count(*) FROM dcbstore.events e WHERE e.position = ANY (ARRAY(SELECT t.position FROM dcbstore.event_tags t WHERE t.tag = ''account:7'' AND t.position > 5000000 ORDER BY t.position LIMIT 100))',
                 'SELECT count(*) FROM part.events e WHERE e.position = ANY (ARRAY(SELECT t.position FROM part.event_tags t WHERE t.tag = ''account:7'' AND t.position > 5000000 ORDER BY t.position LIMIT 100))'),
    ('condition', 'SELECT count(*) FROM (SELECT 1 FROM dcbstore.event_tags t WHERE t.tag = ''account:7'' AND t.position > 9999000 LIMIT 1) s',
                  'SELECT count(*) FROM (SELECT 1 FROM part.event_tags t WHERE t.tag = ''account:7'' AND t.position > 9999000 LIMIT 1) s')
  ) AS v(name, plain, parted) LOOP
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP EXECUTE r.plain INTO x; END LOOP;
    RAISE NOTICE '% unpartitioned: % ms', r.name, round((extract(epoch FROM clock_timestamp() - t0) * 1000 / n)::numeric, 3);
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP EXECUTE r.parted INTO x; END LOOP;
    RAISE NOTICE '% partitioned: % ms', r.name, round((extract(epoch FROM clock_timestamp() - t0) * 1000 / n)::numeric, 3);
  END LOOP;
END $$;
