-- dcbstore schema, version 4: the log is append-only; erasure is explicit and
-- audited.
--
-- Triggers refuse UPDATE, DELETE and TRUNCATE on the event tables for every
-- role, the owner included (privileges alone do not bind the owner). The one
-- sanctioned change is dcbstore.redact: it replaces an event's data (and
-- optionally its metadata), keeps its position, id, type, tags and time, and
-- records who, when, why and a digest of what was erased in
-- dcbstore.redactions, itself append-only.

CREATE TABLE dcbstore.redactions (
    redaction   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "position"  bigint NOT NULL REFERENCES dcbstore.events ("position"),
    redacted_at timestamptz NOT NULL DEFAULT now(),
    redacted_by text NOT NULL DEFAULT session_user,
    reason      text NOT NULL CHECK (reason <> ''),
    -- SHA-256 of the erased data and metadata: proves what was replaced
    -- without keeping it.
    erased_sha256 text NOT NULL
);
CREATE INDEX redactions_position ON dcbstore.redactions ("position");

CREATE FUNCTION dcbstore.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- dcbstore.redact marks the one row of events it may change, for its
    -- transaction; the row-level check keeps everything but data and metadata.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'events'
       AND coalesce(current_setting('dcbstore.redacting', true), '') <> '' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        END IF;
        -- (nested: PL/pgSQL may evaluate every operand of an AND)
        IF current_setting('dcbstore.redacting', true) = OLD."position"::text
           AND NEW."position" = OLD."position" AND NEW.id = OLD.id AND NEW.type = OLD.type
           AND NEW.tags = OLD.tags AND NEW.recorded_at = OLD.recorded_at THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'dcbstore.% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501',
              HINT = 'to erase personal data, call dcbstore.redact(position, data, reason)';
END
$$;

-- Statement triggers refuse even statements that touch no row.
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only_row BEFORE UPDATE ON dcbstore.events
    FOR EACH ROW EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.event_tags
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.redactions
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();

-- Replaces the data (and, when p_metadata is not NULL, the metadata) of the
-- event at p_position, and audits it. Returns the audit row's number.
-- SECURITY DEFINER: callers need EXECUTE on this function only (granted
-- explicitly; revoked from PUBLIC below), never UPDATE on the log.
CREATE FUNCTION dcbstore.redact(p_position bigint, p_data jsonb, p_reason text,
                                p_metadata jsonb DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old dcbstore.events;
    audit bigint;
BEGIN
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'a redaction needs a reason (it is kept in dcbstore.redactions)' USING ERRCODE = '22023';
    END IF;
    IF p_data IS NULL THEN
        RAISE EXCEPTION 'a redaction needs the replacement data (JSON; ''null'' erases all of it)' USING ERRCODE = '22023';
    END IF;
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        RAISE EXCEPTION 'replacement metadata must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO old FROM dcbstore.events e WHERE e."position" = p_position FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no event at position %', p_position USING ERRCODE = '22023';
    END IF;
    INSERT INTO dcbstore.redactions ("position", reason, erased_sha256, redacted_by)
    VALUES (p_position, p_reason,
            encode(sha256(convert_to(old.data::text || old.metadata::text, 'UTF8')), 'hex'),
            session_user)
    RETURNING redaction INTO audit;
    PERFORM set_config('dcbstore.redacting', p_position::text, true);
    UPDATE dcbstore.events e SET data = p_data, metadata = coalesce(p_metadata, e.metadata)
     WHERE e."position" = p_position;
    PERFORM set_config('dcbstore.redacting', '', true);
    RETURN audit;
END
$$;
REVOKE EXECUTE ON FUNCTION dcbstore.redact(bigint, jsonb, text, jsonb) FROM PUBLIC;
