-- dcbstore schema, version 11: the log's rows are checked by the functions
-- that write them, not again by CHECK constraints.
--
-- Every write of dcbstore.events and dcbstore.event_tags is a statement of
-- the SECURITY DEFINER entry points (append_batch_typed and the JSON forms
-- that run it, import_batch, redact), and each validates its input first:
-- types and tags non-empty and within max_name_bytes (at most 256), at most
-- max_tags_per_event tags (at most 100), metadata an object, positions from
-- the head up (sql/functions/append.sql, guards.sql, validate.sql). No other
-- role may write these tables. The CHECK constraints below repeated those
-- checks, and PostgreSQL reads and plans a table's CHECK expressions for
-- every statement that inserts: about 30 microseconds of each append (of
-- some 400), for checks that could not fail. The owner, who alone could
-- write around the functions, could drop them as well.

ALTER TABLE dcbstore.events
    DROP CONSTRAINT IF EXISTS events_position_check,
    DROP CONSTRAINT IF EXISTS events_type_check,
    DROP CONSTRAINT IF EXISTS events_metadata_check,
    DROP CONSTRAINT IF EXISTS events_type_length,
    DROP CONSTRAINT IF EXISTS events_tag_count;
ALTER TABLE dcbstore.event_tags
    DROP CONSTRAINT IF EXISTS event_tags_tag_check,
    DROP CONSTRAINT IF EXISTS event_tags_tag_length;
