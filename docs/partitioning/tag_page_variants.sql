-- The tag page on the partitioned copy: the store's statement shape (an
-- array of positions, then the rows) cannot prune the events partitions
-- (the array is an InitPlan parameter); a lateral join by position can,
-- per row, at run time.
\pset pager off
\echo '== the tag page as a lateral join: one partition probed per position'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT e.* FROM (SELECT t.position FROM part.event_tags t
                  WHERE t.tag = 'account:7' AND t.position > 5000000 ORDER BY t.position LIMIT 100) p
CROSS JOIN LATERAL (SELECT * FROM part.events e WHERE e.position = p.position) e
ORDER BY e.position;
DO $$
DECLARE t0 timestamptz; n int := 200; x bigint;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO x FROM (SELECT t.position FROM part.event_tags t
       WHERE t.tag = 'account:7' AND t.position > 5000000 ORDER BY t.position LIMIT 100) p
    CROSS JOIN LATERAL (SELECT * FROM part.events e WHERE e.position = p.position) e;
  END LOOP;
  RAISE NOTICE 'tag page partitioned, lateral join: % ms', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / n)::numeric, 3);
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO x FROM dcbstore.events e WHERE e.position = ANY (ARRAY(SELECT t.position FROM dcbstore.event_tags t WHERE t.tag = 'account:7' AND t.position > 5000000 ORDER BY t.position LIMIT 100));
  END LOOP;
  RAISE NOTICE 'tag page unpartitioned, as the store runs it: % ms', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / n)::numeric, 3);
END $$;
