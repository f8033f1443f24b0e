-- The advisory lock keys, named once: src/locks.rs holds the same values
-- (a test checks that they agree).

-- Held (transaction-scoped) by every append from before it assigns positions
-- until it commits: appends commit one at a time, in position order.
CREATE OR REPLACE FUNCTION dcbstore.append_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7235937214386151426::bigint $$;

-- Held (session-scoped) by migrate while it works.
CREATE OR REPLACE FUNCTION dcbstore.migrate_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7235937214386151427::bigint $$;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.append_lock_key() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.migrate_lock_key() FROM PUBLIC;
