-- The log is append-only: the trigger function the tables' triggers call
-- (see sql/migrations/0001_init.sql).

-- Refuses UPDATE, DELETE and TRUNCATE for every role, the owner included,
-- but the one change dcbstore.redact makes.
CREATE OR REPLACE FUNCTION dcbstore.refuse_change() RETURNS trigger
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
