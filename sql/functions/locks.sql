-- The advisory lock key of migrate, named once: src/locks.rs holds the same
-- value (a test checks that they agree).
--
-- (The append lock is no advisory lock, which any role could take: it is an
-- EXCLUSIVE lock on the view dcbstore.append_lock, which no other role may
-- lock; see sql/migrations/0009_guards.sql.)

-- Held (session-scoped) by migrate while it works.
CREATE OR REPLACE FUNCTION dcbstore.migrate_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7235937214386151427::bigint $$;

-- Takes the append lock, held until the transaction ends: the entry points
-- that write the log (append_batch_typed, import_batch) call it, as the
-- schema's owner, before they hand out a position. A stuck holder (a
-- transaction that appended and never ended) is an error after
-- lock_timeout, not a hang: 10 s unless the caller set a lock_timeout of its
-- own. Returns the lock_timeout it waited under. (Called in an assignment,
-- a simple expression, not by PERFORM, which would cost a statement; the
-- same here.)
CREATE OR REPLACE FUNCTION dcbstore.lock_appends() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    timeout text := current_setting('lock_timeout');
    reset text;
BEGIN
    IF timeout = '0' THEN
        timeout := set_config('lock_timeout', '10s', true);
        LOCK TABLE dcbstore.append_lock IN EXCLUSIVE MODE;
        reset := set_config('lock_timeout', '0', true);
    ELSE
        LOCK TABLE dcbstore.append_lock IN EXCLUSIVE MODE;
    END IF;
    RETURN timeout;
END
$$;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.migrate_lock_key() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.lock_appends() FROM PUBLIC;
