-- dcbstore schema, version 10: leases of durable projections, subscribers and
-- relays that only the dcbstore functions can take.
--
-- Until now a lease was a session advisory lock on a key every role could
-- compute (hashtextextended of the consumer's name): any role, a read-only
-- one included, could take that key first and stop the consumer for ever.
-- A lease is now a row of this table, written only by the SECURITY DEFINER
-- functions of sql/functions/leases.sql. Its holder is the backend that
-- took it (holder_pid, logged in as holder_role), which holds a session
-- advisory lock on lock_key, a random key drawn when it took the lease:
-- the lease lives as long as that backend's connection, and a holder is
-- alive only while pg_locks shows that lock granted to that backend.
-- Knowing the key is no use to another role: it can neither hold a lock
-- for another backend nor log in as the holder's role. generation counts
-- the takeovers: checkpoint moves compare it under the row lock, so a
-- consumer that lost its lease moves no checkpoint after the next holder
-- took it.

CREATE TABLE dcbstore.leases (
    name        text PRIMARY KEY CHECK (name <> ''),
    generation  bigint NOT NULL DEFAULT 0 CHECK (generation >= 0),
    holder_pid  integer,
    holder_role oid,
    lock_key    bigint,
    owner       text,
    taken_at    timestamptz
);

-- Roles granted by an earlier `dcbstore grant` keep their runners going
-- without a new grant: application roles (UPDATE on the checkpoints) may
-- call the lease functions, and every role that reads the checkpoints
-- reads the leases too. Nobody but the owner writes this table.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee, a.privilege_type
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.oid = 'dcbstore.projections'::regclass AND a.grantee <> c.relowner
           AND a.grantee <> 0 AND a.privilege_type IN ('SELECT', 'UPDATE')
    LOOP
        IF r.privilege_type = 'SELECT' THEN
            EXECUTE format('GRANT SELECT ON dcbstore.leases TO %s', r.grantee::regrole::text);
        ELSE
            EXECUTE format('GRANT EXECUTE ON FUNCTION dcbstore.take_lease(text, text), '
                           'dcbstore.lease_held(text, bigint), dcbstore.lease_current(text, bigint) TO %s',
                           r.grantee::regrole::text);
        END IF;
    END LOOP;
END
$$;
