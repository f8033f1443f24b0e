-- dcbstore schema, version 7: dead letters of durable subscribers and relays.
--
-- A durable subscriber (level 3) or a relay to a broker (level 4) keeps its
-- checkpoint in dcbstore.projections, like a durable projection. An event it
-- could not deliver within its attempts is recorded here, and the consumer
-- moves on (the dead-letter policy), in the same transaction that moves its
-- checkpoint past the event: a dead letter is never lost nor recorded twice.
-- Retrying one deletes its row when the delivery succeeds.

CREATE TABLE dcbstore.dead_letters (
    subscriber       text NOT NULL CHECK (subscriber <> ''),
    "position"       bigint NOT NULL CHECK ("position" > 0),
    attempts         integer NOT NULL CHECK (attempts > 0),
    last_error       text NOT NULL,
    first_failed_at  timestamptz NOT NULL,
    last_failed_at   timestamptz NOT NULL,
    PRIMARY KEY (subscriber, "position")
);

-- Roles granted by an earlier `dcbstore grant` keep their consumers running.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.oid = 'dcbstore.projections'::regclass AND a.grantee <> c.relowner
           AND a.grantee <> 0 AND a.privilege_type = 'UPDATE'
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON dcbstore.dead_letters TO %s',
                       r.grantee::regrole::text);
    END LOOP;
END
$$;
