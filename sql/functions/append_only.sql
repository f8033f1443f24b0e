-- The log is append-only: the trigger function the tables' triggers call
-- (see sql/migrations/0001_init.sql and 0004_append_only.sql), and the digest
-- an audited change is matched by.
--
-- What is enforced: UPDATE, DELETE and TRUNCATE are refused for every role
-- but superusers and the schema's owner, who can disable triggers (so an
-- application must never log in as the owner). The one change let through is
-- the one dcbstore.redact makes: an UPDATE of an event's data and metadata
-- that an audit row, written by the same transaction, describes exactly.

-- SHA-256 (hex) of an event's data and metadata, as dcbstore.redactions
-- records what was erased and what replaced it.
CREATE OR REPLACE FUNCTION dcbstore.content_sha256(data jsonb, metadata jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(data::text || metadata::text, 'UTF8')), 'hex')
$$;

-- Refuses UPDATE, DELETE and TRUNCATE, but the change of one event's data and
-- metadata that an audit row of this transaction describes (position, digest
-- of what is erased, digest of what replaces it). Nothing anyone can set opens
-- it: the audit row must exist, and be this transaction's.
CREATE OR REPLACE FUNCTION dcbstore.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me bigint := pg_current_xact_id()::text::bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'events' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            -- The row trigger decides, row by row, for a redacting transaction.
            IF EXISTS (SELECT 1 FROM dcbstore.redactions r WHERE r.txid = me) THEN
                RETURN NULL;
            END IF;
        -- (nested: PL/pgSQL may evaluate every operand of an AND)
        ELSIF NEW."position" = OLD."position" AND NEW.id = OLD.id AND NEW.type = OLD.type
              AND NEW.tags = OLD.tags AND NEW.recorded_at = OLD.recorded_at THEN
            IF EXISTS (SELECT 1 FROM dcbstore.redactions r
                        WHERE r."position" = OLD."position" AND r.txid = me
                          AND r.erased_sha256 = dcbstore.content_sha256(OLD.data, OLD.metadata)
                          AND r.replacement_sha256 = dcbstore.content_sha256(NEW.data, NEW.metadata)) THEN
                RETURN NEW;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'dcbstore.% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501',
              HINT = 'to erase personal data, call dcbstore.redact(position, data, reason)';
END
$$;

REVOKE ALL ON FUNCTION dcbstore.content_sha256(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.refuse_change() FROM PUBLIC;
