-- Leases of durable projections, subscribers and relays (dcbstore.leases,
-- migration 10): one runner at a time per name, in any process.
--
-- A lease is taken and checked only through these functions (SECURITY
-- DEFINER; no role but the owner writes the table). Its holder is a backend
-- holding a session advisory lock on a random key drawn when it took the
-- lease, so the lease ends when that backend's connection closes (a crash,
-- a network cut, pg_terminate_backend), as with the advisory locks of
-- earlier versions, but no other role can take it first or keep it: the key
-- is unknown until drawn, and a lock another backend holds on it, or a
-- backend that reuses the holder's pid under another role, does not count.
-- The bodies are PL/pgSQL: migration 10, which creates the table, grants
-- them to existing roles and is applied after this file.

-- Whether the backend p_pid, logged in as p_role, holds the session advisory
-- lock on p_key in this database. pg_locks and the user of each backend in
-- pg_stat_activity are visible to every role.
CREATE OR REPLACE FUNCTION dcbstore.lease_holder_alive(p_pid integer, p_role oid, p_key bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_pid IS NULL OR p_role IS NULL OR p_key IS NULL THEN
        RETURN false;
    END IF;
    -- A bigint key is split in pg_locks: classid the high 32 bits, objid
    -- the low ones, objsubid 1.
    RETURN EXISTS (
        SELECT 1
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
           AND l.classid = ((p_key >> 32) & 4294967295)::oid
           AND l.objid = (p_key & 4294967295)::oid
           AND l.pid = p_pid
           AND a.usesysid = p_role);
END
$$;

-- Takes the lease p_name for the calling session when nobody alive holds it
-- (or this session already does); p_owner names the runner for operators.
-- Returns the lease's generation, or NULL when another session holds it.
-- The row is locked for the call, so two takers never both win. The
-- session advisory lock taken here outlives the call: it is the lease, and
-- it ends with the connection.
CREATE OR REPLACE FUNCTION dcbstore.take_lease(p_name text, p_owner text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- Not a row of dcbstore.leases: the table is created after this file.
    g bigint;
    pid integer;
    role_oid oid;
    k bigint;
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        RAISE EXCEPTION 'take_lease: the lease needs a name' USING ERRCODE = '22023';
    END IF;
    INSERT INTO dcbstore.leases (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
    SELECT l.generation, l.holder_pid, l.holder_role, l.lock_key INTO g, pid, role_oid, k
      FROM dcbstore.leases l WHERE l.name = p_name FOR UPDATE;
    IF dcbstore.lease_holder_alive(pid, role_oid, k) THEN
        IF pid = pg_backend_pid() THEN
            RETURN g;
        END IF;
        RETURN NULL;
    END IF;
    -- A fresh key (62 random bits of gen_random_uuid, a strong random
    -- source), never one of dcbstore's own lock keys, and free.
    LOOP
        k := ('x' || encode(substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex'))::bit(64)::bigint;
        EXIT WHEN k <> dcbstore.migrate_lock_key()
              AND pg_try_advisory_lock(k);
    END LOOP;
    UPDATE dcbstore.leases
       SET generation = generation + 1, holder_pid = pg_backend_pid(),
           holder_role = (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user),
           lock_key = k, owner = p_owner, taken_at = now()
     WHERE name = p_name
    RETURNING generation INTO g;
    RETURN g;
END
$$;

-- Whether the calling session holds generation p_generation of the lease
-- p_name. Called on the lease's own connection before a send: an answer at
-- all means the connection, and the lock, is alive. Takes no row lock
-- (a lock would write to the row at every send).
CREATE OR REPLACE FUNCTION dcbstore.lease_held(p_name text, p_generation bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM dcbstore.leases l
                    WHERE l.name = p_name AND l.generation = p_generation
                      AND l.holder_pid = pg_backend_pid());
END
$$;

-- The fence of a checkpoint move: whether p_generation is still the lease's
-- generation, with the row locked (FOR SHARE) until the calling transaction
-- ends, so that no takeover commits between this check and the move. A
-- runner whose lease was taken over gets false and moves nothing.
CREATE OR REPLACE FUNCTION dcbstore.lease_current(p_name text, p_generation bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g bigint;
BEGIN
    SELECT l.generation INTO g FROM dcbstore.leases l WHERE l.name = p_name FOR SHARE;
    RETURN coalesce(g = p_generation, false);
END
$$;

-- The SQL API: executable by the roles `dcbstore grant` names, not by PUBLIC.
REVOKE ALL ON FUNCTION dcbstore.lease_holder_alive(integer, oid, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.take_lease(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.lease_held(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.lease_current(text, bigint) FROM PUBLIC;
