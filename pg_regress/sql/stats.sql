-- The console's statistics: refresh_stats folds events in bounded batches
-- and counts each once (tests/stats.rs races it and steps over a gap).
\set VERBOSITY terse
SELECT dcbstore.refresh_stats() AS empty_log;
SELECT dcbstore.append('[{"type": "A", "tags": ["x"]},
                         {"type": "B", "tags": ["x", "y"]},
                         {"type": "A", "tags": ["y"]},
                         {"type": "A"},
                         {"type": "C", "tags": ["x", "z"]}]');
SELECT dcbstore.refresh_stats(2) AS first_batch;
SELECT type, events, last_position FROM dcbstore.stats_types ORDER BY type;
SELECT dcbstore.refresh_stats(2) AS second_batch;
SELECT dcbstore.refresh_stats(2) AS third_batch;
SELECT dcbstore.refresh_stats(2) AS nothing_new;
SELECT type, events, last_position FROM dcbstore.stats_types ORDER BY type;
SELECT tag, events FROM dcbstore.stats_tags ORDER BY events DESC, tag;
SELECT sum(events) AS counted_by_minute FROM dcbstore.stats_minutes;
SELECT "position" FROM dcbstore.stats_cursor;
-- Bad batch sizes.
SELECT dcbstore.refresh_stats(0);
SELECT dcbstore.refresh_stats(NULL);
