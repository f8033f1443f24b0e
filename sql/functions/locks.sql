-- The advisory lock key of migrate, named once: src/locks.rs holds the same
-- value (a test checks that they agree).
--
-- (The append lock is no advisory lock, which any role could take: it is an
-- EXCLUSIVE lock on the view dcbstore.append_lock, which no other role may
-- lock; see sql/migrations/0009_guards.sql.)

-- Held (session-scoped) by migrate while it works.
CREATE OR REPLACE FUNCTION dcbstore.migrate_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7235937214386151427::bigint $$;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.migrate_lock_key() FROM PUBLIC;
