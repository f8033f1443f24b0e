-- dcbstore schema, version 6: the log cannot be bypassed, rewound or changed
-- without an audit row.
--
-- - Epochs: the server history (timeline and system identifier) positions
--   were handed out on. On a new one (after a failover, a point-in-time
--   restore, a restore into another cluster) the next position jumps above
--   every position the old history could have handed out, so positions are
--   never handed out twice (dcbstore.begin_epoch, sql/functions/epochs.sql).
--   The first epoch is recorded here, before any event of this version.
-- - Redactions record the transaction that wrote them and the digest of the
--   replacement, so that the append-only trigger lets through exactly the
--   change an audit row of the same transaction describes.
-- - Only the owner writes the log: the append functions are SECURITY DEFINER;
--   every other role loses INSERT, UPDATE, DELETE and TRUNCATE on the log's
--   tables, and EXECUTE on the functions that are not the SQL API.

CREATE TABLE dcbstore.epochs (
    epoch             integer PRIMARY KEY CHECK (epoch > 0),
    timeline          integer NOT NULL,
    system_identifier bigint NOT NULL,
    -- Positions of this epoch are above base.
    base              bigint NOT NULL CHECK (base >= 0),
    -- The head when the epoch began: positions in (resumed_after, base] were
    -- never handed out on this history (an earlier one may have).
    resumed_after     bigint NOT NULL CHECK (resumed_after >= 0 AND resumed_after <= base),
    started_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.epochs
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();

ALTER TABLE dcbstore.redactions
    ADD COLUMN replacement_sha256 text,
    ADD COLUMN txid bigint;

-- Roles other than the owner (an application role granted by an earlier
-- `dcbstore grant`) keep reading, but write only through the functions.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, a.grantee
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.relnamespace = 'dcbstore'::regnamespace
           AND c.relname IN ('events', 'event_tags', 'redactions', 'epochs')
           AND a.grantee <> c.relowner
           AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %s', r.rel,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
    FOR r IN
        SELECT DISTINCT p.oid::regprocedure AS fn, a.grantee
          FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         WHERE p.pronamespace = 'dcbstore'::regnamespace
           AND p.proname NOT IN ('append', 'append_batch', 'append_batch_unchecked', 'read', 'head',
                                 'redact', 'append_lock_key', 'migrate_lock_key')
           AND a.grantee <> p.proowner
           AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.fn,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
    -- Roles that read the log read the new bookkeeping too.
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.oid = 'dcbstore.events'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
           AND a.privilege_type = 'SELECT'
    LOOP
        EXECUTE format('GRANT SELECT ON dcbstore.epochs, dcbstore.schema_functions TO %s',
                       r.grantee::regrole::text);
    END LOOP;
END
$$;

-- The first epoch, before any event of this version: the server history the
-- existing positions were handed out on (see sql/functions/epochs.sql).
INSERT INTO dcbstore.epochs (epoch, timeline, system_identifier, base, resumed_after)
SELECT 1, h.timeline, h.system_identifier, head.p, head.p
  FROM dcbstore.server_history() h,
       (SELECT coalesce(max("position"), 0) AS p FROM dcbstore.events) head;
