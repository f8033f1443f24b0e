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
-- With the redaction mark set by hand, the row check still keeps an event's
-- position, id, type, tags and time.
BEGIN;
SELECT set_config('dcbstore.redacting', '2', true) IS NOT NULL AS marked;
UPDATE dcbstore.events SET type = 'Forged' WHERE position = 2;
ROLLBACK;
-- The lock keys the functions take.
SELECT dcbstore.append_lock_key(), dcbstore.migrate_lock_key();
