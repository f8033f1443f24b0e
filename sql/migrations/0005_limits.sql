-- dcbstore schema, version 5: limits every writer obeys (see src/limits.rs).
--
-- NOT VALID: enforced for new rows without scanning an existing log.

ALTER TABLE dcbstore.events
    ADD CONSTRAINT events_type_length CHECK (octet_length(type) <= 256) NOT VALID,
    ADD CONSTRAINT events_tag_count CHECK (cardinality(tags) <= 100) NOT VALID;
ALTER TABLE dcbstore.event_tags
    ADD CONSTRAINT event_tags_tag_length CHECK (octet_length(tag) <= 256) NOT VALID;
