-- dcbstore schema, version 9: what another role cannot do to the log's
-- writers, and the limits every entry point enforces.
--
-- - The append lock becomes a lock on dcbstore.append_lock, a relation that no
--   role but the owner may lock: LOCK TABLE needs a privilege on it, and what
--   other statements take (ACCESS SHARE, while they find they may not read
--   it) never conflicts with the writers' EXCLUSIVE mode. It was a
--   transaction-scoped advisory lock on a constant key, which any role that
--   can connect could take and hold, stopping every append. A view, not a
--   table: it has no storage, so no VACUUM ever needs a lock on it.
-- - dcbstore.limits: the limits the SQL entry points (dcbstore.append,
--   append_batch, append_batch_unchecked, import_batch) enforce, so that no
--   role stores what the Rust client would refuse, above all JSON that a
--   reader cannot decode. The defaults are the Rust client's; the owner may
--   change them (UPDATE dcbstore.limits SET ...), within what any store
--   accepts (the CHECKs).
-- - dcbstore.import_batch keeps recorded_at from its caller, so it is no
--   longer an application role's: taken back from every role but the owner
--   (`dcbstore grant ROLE --import` gives it to an import role).

CREATE VIEW dcbstore.append_lock AS SELECT WHERE false;
REVOKE ALL ON dcbstore.append_lock FROM PUBLIC;

CREATE TABLE dcbstore.limits (
    singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_events_per_append integer NOT NULL DEFAULT 10000
        CHECK (max_events_per_append BETWEEN 1 AND 100000),
    max_event_bytes       integer NOT NULL DEFAULT 1048576
        CHECK (max_event_bytes BETWEEN 1 AND 267386880),
    max_append_bytes      integer NOT NULL DEFAULT 67108864
        CHECK (max_append_bytes BETWEEN 1 AND 268435456),
    max_tags_per_event    integer NOT NULL DEFAULT 100
        CHECK (max_tags_per_event BETWEEN 1 AND 100),
    max_name_bytes        integer NOT NULL DEFAULT 256
        CHECK (max_name_bytes BETWEEN 1 AND 256),
    max_json_depth        integer NOT NULL DEFAULT 100
        CHECK (max_json_depth BETWEEN 1 AND 127),
    max_query_items       integer NOT NULL DEFAULT 128
        CHECK (max_query_items BETWEEN 1 AND 10000),
    max_item_terms        integer NOT NULL DEFAULT 100
        CHECK (max_item_terms BETWEEN 1 AND 10000),
    max_guards            integer NOT NULL DEFAULT 100
        CHECK (max_guards BETWEEN 1 AND 10000),
    -- How far ahead of the server's clock an imported recorded_at may be
    -- (the clocks of the exporting and the importing server differ).
    max_clock_skew        interval NOT NULL DEFAULT interval '5 minutes'
        CHECK (max_clock_skew >= interval '0' AND max_clock_skew <= interval '1 day'),
    CHECK (max_event_bytes <= max_append_bytes),
    -- The checks of the entry points as JSON paths, made once when a limit
    -- changes (parsing them at each append would cost more than running
    -- them). JSON a reader cannot decode: nesting past max_json_depth, or a
    -- number no double can hold (at least 2^1024 - 2^970 in magnitude).
    bad_json jsonpath GENERATED ALWAYS AS ((
        'strict $ ? (exists(@.**{' || max_json_depth::text || ' to last} ? (@.type() == "array" || @.type() == "object"))'
        || ' || exists(@.** ? (@.type() == "number" && (@ >= 179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792 || @ <= -179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792))))')::jsonpath) STORED,
    -- A condition that is not [{"query": "all" | [{"types": [..], "tags":
    -- [..]}, ..], "after": null | 0..2^63-1}, ..] within the limits (strict
    -- mode: a path that errs is unknown, so each test reaches what it tests
    -- through keyvalue() and type checks; a term of more characters than
    -- max_name_bytes has more bytes, and a regex counts at most 255 a brace).
    bad_condition jsonpath GENERATED ALWAYS AS ((
        'strict $ ? ('
        || 'exists($[*] ? (@.type() != "object"))'
        || ' || exists($[*] ? (@.type() == "object") ? (!(@.keyvalue().key == "query")))'
        || ' || exists($[*].keyvalue() ? (@.key != "query" && @.key != "after"))'
        || ' || exists($[*].keyvalue() ? (@.key == "after" && @.value.type() != "null"'
        || ' && (@.value.type() != "number" || @.value < 0 || @.value > 9223372036854775807 || @.value.floor() != @.value)))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() != "array" && !(@.type() == "string" && @ == "all")))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() == "array" && (@.size() == 0 || @.size() > '
        || max_query_items::text || ')))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() == "array")[*] ? (@.type() != "object"))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() == "array")[*] ? (@.type() == "object")'
        || ' ? (!exists(@.keyvalue() ? (@.value.type() == "array" && @.value.size() > 0))))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() == "array")[*] ? (@.type() == "object").keyvalue()'
        || ' ? (@.key != "types" && @.key != "tags" || @.value.type() != "array" || @.value.size() > '
        || max_item_terms::text || '))'
        || ' || exists($[*].keyvalue() ? (@.key == "query").value ? (@.type() == "array")[*] ? (@.type() == "object").keyvalue().value'
        || ' ? (@.type() == "array")[*] ? (@.type() != "string" || @ == "" || @ like_regex "^'
        || repeat('.{255}', (max_name_bytes + 1) / 255) || '.{' || ((max_name_bytes + 1) % 255)::text || '}"))'
        || ')')::jsonpath) STORED
);
INSERT INTO dcbstore.limits DEFAULT VALUES;

-- Roles that read the log read the limits too (the Rust client may compare
-- its own with them).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.oid = 'dcbstore.events'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
           AND a.privilege_type = 'SELECT'
    LOOP
        EXECUTE format('GRANT SELECT ON dcbstore.limits TO %s', r.grantee::regrole::text);
    END LOOP;
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         WHERE p.pronamespace = 'dcbstore'::regnamespace AND p.proname = 'import_batch'
           AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s',
                       'dcbstore.import_batch(uuid[], text[], jsonb[], jsonb[], integer[], text[], timestamptz[])',
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
END
$$;
