-- The log is append-only, for every role; erasure goes through dcbstore.redact
-- and is audited.
\set VERBOSITY terse
SELECT dcbstore.append('[{"type": "Registered", "data": {"name": "Ada", "email": "ada@example.org"}, "tags": ["person:1"], "metadata": {"ip": "10.0.0.1"}, "id": "00000000-0000-0000-0000-000000000001"},
                         {"type": "Renamed", "data": {"name": "Ada L."}, "tags": ["person:1"], "id": "00000000-0000-0000-0000-000000000002"}]');
-- Refused, even for the owner, even when no row matches.
UPDATE dcbstore.events SET data = '{}' WHERE position = 1;
UPDATE dcbstore.events SET data = '{}' WHERE position = 99;
DELETE FROM dcbstore.events WHERE position = 2;
TRUNCATE dcbstore.events;
UPDATE dcbstore.event_tags SET tag = 'person:2';
DELETE FROM dcbstore.event_tags;
-- Redaction: a reason and the replacement data are required.
SELECT dcbstore.redact(1, '{"name": null}', '');
SELECT dcbstore.redact(1, NULL, 'erasure request');
SELECT dcbstore.redact(1, '{"name": null}', 'erasure request', '[]');
SELECT dcbstore.redact(3, '{"name": null}', 'erasure request');
-- Data (and metadata) replaced; position, id, type, tags and time kept.
SELECT dcbstore.redact(1, '{"name": null, "email": null}', 'erasure request', '{}') AS audit;
SELECT position, id, type, data, tags, metadata FROM dcbstore.events ORDER BY position;
SELECT redaction, position, reason, redacted_by = session_user AS by_me,
       erased_sha256 = encode(sha256(convert_to('{"name": "Ada", "email": "ada@example.org"}{"ip": "10.0.0.1"}', 'UTF8')), 'hex') AS digest_of_the_erased
  FROM dcbstore.redactions;
-- The audit itself is append-only.
DELETE FROM dcbstore.redactions;
-- No setting opens the log: the old redaction mark changes nothing.
BEGIN;
SELECT set_config('dcbstore.redacting', '2', true) IS NOT NULL AS marked;
UPDATE dcbstore.events SET data = '{"name": "Mallory"}' WHERE position = 2;
ROLLBACK;
-- Nor does an audit row of another transaction, even one that describes the
-- change exactly.
INSERT INTO dcbstore.redactions ("position", reason, erased_sha256, replacement_sha256, txid)
VALUES (2, 'forged', dcbstore.content_sha256('{"name": "Ada L."}', '{}'),
        dcbstore.content_sha256('{"name": "Mallory"}', '{}'), 1);
UPDATE dcbstore.events SET data = '{"name": "Mallory"}' WHERE position = 2;
-- Nor, in a redacting transaction, a change its audit row does not describe.
BEGIN;
SELECT dcbstore.redact(2, '{"name": null}', 'erasure request') AS audit;
UPDATE dcbstore.events SET data = '{"name": "Mallory"}' WHERE position = 2;
ROLLBACK;
SELECT position, data FROM dcbstore.events ORDER BY position;
-- A redaction keeps an event's position, id, type, tags and time.
BEGIN;
SELECT dcbstore.redact(2, '{"name": null}', 'erasure request') AS audit;
UPDATE dcbstore.events SET type = 'Forged' WHERE position = 2;
ROLLBACK;
-- The migrate lock's key, and the append lock's relation (a view).
SELECT dcbstore.migrate_lock_key(), to_regclass('dcbstore.append_lock') AS append_lock;
