-- What the SQL entry points refuse (SQLSTATE 22023, with the reason), as the
-- Rust client does, so that no role stores what a reader cannot decode.
\set VERBOSITY terse
-- Numbers a double cannot hold: refused, wherever they are.
SELECT dcbstore.append('[{"type": "P", "data": {"n": 1e400}}]');
SELECT dcbstore.append('[{"type": "P", "data": [1, [-2e308]]}]');
SELECT dcbstore.append('[{"type": "P", "metadata": {"n": 123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890}}]');
-- The largest double is fine, and so is a 30-digit integer (kept exactly).
SELECT dcbstore.append('[{"type": "P", "data": {"max": 1.7976931348623157e308, "big": 123456789012345678901234567890, "tiny": 1e-400}}]');
SELECT data->'big' AS big, data->'tiny' = '0.0'::jsonb AS tiny_is_not_zero FROM dcbstore.events;
-- Nesting beyond max_json_depth (100 by default), in data or metadata.
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'D', 'data', (repeat('[', 101) || repeat(']', 101))::jsonb)));
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'D', 'metadata', ('{"a": ' || repeat('[', 100) || repeat(']', 100) || '}')::jsonb)));
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'D', 'data', (repeat('[', 100) || repeat(']', 100))::jsonb))) ->> 'position' AS exactly_the_limit;
-- Sizes, names and counts.
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'S', 'data', repeat('x', 1048577))));
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', repeat('t', 257))));
SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'T', 'tags', (SELECT jsonb_agg('t' || g) FROM generate_series(1, 101) g))));
SELECT dcbstore.append((SELECT jsonb_agg(jsonb_build_object('type', 'N')) FROM generate_series(1, 10001)));
-- Conditions over the limits.
SELECT dcbstore.append('[{"type": "C"}]',
                       (SELECT jsonb_build_array(jsonb_build_object('query', jsonb_agg(jsonb_build_object('tags', jsonb_build_array('t' || g)))))
                          FROM generate_series(1, 129) g));
SELECT dcbstore.append('[{"type": "C"}]',
                       (SELECT jsonb_agg(jsonb_build_object('query', 'all')) FROM generate_series(1, 101) g));
-- The Rust client's entry point checks the same, on the text it sends.
SELECT outcome FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['{"n": 1e400}'],
                                                    ARRAY['{}'], ARRAY[0], '{}', ARRAY[1], ARRAY[NULL::jsonb]);
SELECT outcome FROM dcbstore.append_batch_unchecked(ARRAY[gen_random_uuid()], ARRAY['P'], ARRAY['{"n": 1}'],
                                                    ARRAY['[]'], ARRAY[0], '{}', ARRAY[1], ARRAY[NULL::jsonb]);
-- A redaction cannot store what an append refuses.
SELECT dcbstore.redact(1, '{"n": 1e400}', 'test');
SELECT dcbstore.redact(1, (repeat('[', 101) || repeat(']', 101))::jsonb, 'test');
-- Imports: times within [the previous event's, the clock + max_clock_skew].
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['I'], ARRAY['1'], ARRAY['{}'], ARRAY[0], '{}', ARRAY['infinity'::timestamptz]);
-- (The messages of these name times of this run: their SQLSTATE only.)
\set VERBOSITY sqlstate
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['I'], ARRAY['1'], ARRAY['{}'], ARRAY[0], '{}', ARRAY[now() + interval '1 hour']) IS NULL AS refused;
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['I'], ARRAY['1'], ARRAY['{}'], ARRAY[0], '{}', ARRAY['2000-01-01'::timestamptz]);
\set VERBOSITY terse
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['I'], ARRAY['{"n": 1e400}'], ARRAY['{}'], ARRAY[0], '{}', ARRAY[NULL::timestamptz]);
\set VERBOSITY sqlstate
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['I', 'I'], ARRAY['1', '2'], ARRAY['{}', '{}'], ARRAY[0, 0], '{}',
                             ARRAY[now(), now() - interval '1 second']);
\set VERBOSITY terse
SELECT dcbstore.import_batch(ARRAY[gen_random_uuid()], ARRAY['I'], ARRAY['1'], ARRAY['{}'], ARRAY[0], '{}', ARRAY[clock_timestamp()]) > 0 AS imported;
-- The owner may change the limits, within what any store accepts.
UPDATE dcbstore.limits SET max_json_depth = 128;
UPDATE dcbstore.limits SET max_json_depth = 3;
SELECT dcbstore.append('[{"type": "D", "data": [[[[]]]]}]');
-- Nothing refused was written.
SELECT type, count(*) FROM dcbstore.events GROUP BY type ORDER BY type;
