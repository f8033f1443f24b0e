-- Erasure, explicit and audited.

-- Replaces the data (and, when p_metadata is not NULL, the metadata) of the
-- event at p_position, and audits it in dcbstore.redactions. Returns the audit
-- row's number. SECURITY DEFINER: callers need EXECUTE on this function only
-- (granted explicitly; revoked from PUBLIC below), never UPDATE on the log.
CREATE OR REPLACE FUNCTION dcbstore.redact(p_position bigint, p_data jsonb, p_reason text,
                                p_metadata jsonb DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old dcbstore.events;
    audit bigint;
    lim dcbstore.limits := dcbstore.current_limits();
    invalid text;
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
    -- What replaces the data must be readable, as what an append stores.
    invalid := coalesce(dcbstore.json_error('the replacement data', p_data, lim),
                        dcbstore.json_error('the replacement metadata', p_metadata, lim));
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION '%', invalid USING ERRCODE = '22023';
    END IF;
    SELECT * INTO old FROM dcbstore.events e WHERE e."position" = p_position FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no event at position %', p_position USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_data::text) + octet_length(coalesce(p_metadata, old.metadata)::text) > lim.max_event_bytes THEN
        RAISE EXCEPTION 'the replacement is % bytes of JSON (data and metadata); the limit is % (max_event_bytes in dcbstore.limits)',
            octet_length(p_data::text) + octet_length(coalesce(p_metadata, old.metadata)::text), lim.max_event_bytes
            USING ERRCODE = '22023';
    END IF;
    -- The audit row first: the append-only trigger lets through only the change
    -- it describes, and only in this transaction.
    INSERT INTO dcbstore.redactions ("position", reason, erased_sha256, replacement_sha256, txid, redacted_by)
    VALUES (p_position, p_reason,
            dcbstore.content_sha256(old.data, old.metadata),
            dcbstore.content_sha256(p_data, coalesce(p_metadata, old.metadata)),
            pg_current_xact_id()::text::bigint,
            session_user)
    RETURNING redaction INTO audit;
    UPDATE dcbstore.events e SET data = p_data, metadata = coalesce(p_metadata, e.metadata)
     WHERE e."position" = p_position;
    RETURN audit;
END
$$;

REVOKE EXECUTE ON FUNCTION dcbstore.redact(bigint, jsonb, text, jsonb) FROM PUBLIC;
