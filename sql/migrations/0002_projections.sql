-- dcbstore schema, version 2: checkpoints of durable projections.
--
-- One row per projection. The checkpoint moves in the same transaction as the
-- projection's read-model writes; runners lock the row (FOR UPDATE) before
-- reading events after it, so two runners can never apply the same events.

CREATE TABLE dcbstore.projections (
    name           text PRIMARY KEY CHECK (name <> ''),
    checkpoint     bigint NOT NULL DEFAULT 0 CHECK (checkpoint >= 0),
    state          text NOT NULL DEFAULT 'idle'
                   CHECK (state IN ('idle', 'running', 'failed', 'rebuilding')),
    last_error     text,
    error_position bigint,
    failures       integer NOT NULL DEFAULT 0,
    owner          text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
