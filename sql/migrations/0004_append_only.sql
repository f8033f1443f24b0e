-- dcbstore schema, version 4: the log is append-only; erasure is explicit and
-- audited.
--
-- Triggers refuse UPDATE, DELETE and TRUNCATE on the event tables for every
-- role, the owner included (privileges alone do not bind the owner). They
-- call dcbstore.refuse_change (sql/functions/append_only.sql), which migrate
-- applies before this migration. The one sanctioned change is dcbstore.redact
-- (sql/functions/redact.sql): it replaces an event's data (and optionally its
-- metadata), keeps its position, id, type, tags and time, and records who,
-- when, why and a digest of what was erased in dcbstore.redactions, itself
-- append-only.

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

-- Statement triggers refuse even statements that touch no row.
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only_row BEFORE UPDATE ON dcbstore.events
    FOR EACH ROW EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.event_tags
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON dcbstore.redactions
    FOR EACH STATEMENT EXECUTE FUNCTION dcbstore.refuse_change();
