-- Epochs: positions are never handed out twice, whatever the server's history.
--
-- A position is the head plus one, under the append lock, so a lost tail of
-- the log (acknowledged commits gone after a failover to an asynchronous
-- standby, a point-in-time restore, a restore of an older backup into another
-- cluster) would hand the same positions out again, and a stale `after` or a
-- projection's checkpoint would miss the new events. Every such history
-- change shows as a new WAL timeline or a new system identifier: the first
-- append on it begins an epoch whose positions start above every position
-- an earlier epoch could have handed out (2^40 per epoch).

-- This server's WAL timeline and system identifier: the history positions
-- are handed out on now. One SELECT of one expression each, so that the
-- planner inlines them into the statement that calls them (an append checks
-- its history on every call; a function call of its own would cost more than
-- the check).
CREATE OR REPLACE FUNCTION dcbstore.wal_timeline() RETURNS integer
LANGUAGE sql VOLATILE AS $$
    SELECT ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::integer
$$;

CREATE OR REPLACE FUNCTION dcbstore.system_identifier() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT (pg_catalog.pg_control_system()).system_identifier
$$;

-- Both, as one row. (PL/pgSQL, here and below: its statements' plans are
-- kept for the session, where a SQL function's would be made again at every
-- call.)
CREATE OR REPLACE FUNCTION dcbstore.server_history(OUT timeline integer, OUT system_identifier bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    timeline := dcbstore.wal_timeline();
    system_identifier := dcbstore.system_identifier();
END
$$;

-- Whether the latest epoch is not this server's history (or there is none
-- yet), so that the next append must begin an epoch, is asked by
-- append_batch_unchecked in one statement of its own (see there).

-- Under the append lock, with the head seen there: begins an epoch on this
-- server's history unless one was begun meanwhile, and returns the position
-- the next one follows. The first epoch (recorded by migrate, before any
-- event) goes on from the head; a later one from n * 2^40 at least, where n
-- is above the latest epoch that survived and at least the WAL timeline: a
-- lost tail may hold epochs of its own, but timelines only grow along a
-- cluster's history (a second restore from one backup gets a higher one).
CREATE OR REPLACE FUNCTION dcbstore.begin_epoch(head bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h record;
    l_epoch integer;
    l_timeline integer;
    l_system bigint;
    next_base bigint;
BEGIN
    -- (Scalars, not a row of dcbstore.epochs: this file is applied before the
    -- migration that creates the table.)
    SELECT * INTO h FROM dcbstore.server_history();
    SELECT e.epoch, e.timeline, e.system_identifier INTO l_epoch, l_timeline, l_system
      FROM dcbstore.epochs e ORDER BY e.epoch DESC LIMIT 1;
    IF FOUND AND l_timeline = h.timeline AND l_system = h.system_identifier THEN
        RETURN head;
    END IF;
    next_base := CASE WHEN l_epoch IS NULL THEN head
                      ELSE greatest(head, greatest(l_epoch + 1, h.timeline)::bigint << 40) END;
    INSERT INTO dcbstore.epochs (epoch, timeline, system_identifier, base, resumed_after)
    VALUES (coalesce(l_epoch, 0) + 1, h.timeline, h.system_identifier, next_base, head);
    RETURN next_base;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.server_history() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.wal_timeline() FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.system_identifier() FROM PUBLIC;
-- Under the append lock: the position the next event follows, after
-- beginning an epoch on this server's history when new_epoch. It is the
-- last position or, when that is higher, the latest epoch's base: an append
-- that begins an epoch and then writes nothing (a conflict, an idempotent
-- retry) leaves the epoch without events, and the appends after it still go
-- on above its base, never from the old head, whose next positions an
-- earlier history may have handed out. (The usual append's statement reads
-- the same in a join of its own: see append.sql.)
CREATE OR REPLACE FUNCTION dcbstore.locked_head(new_epoch boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint;
BEGIN
    head := greatest(coalesce((SELECT max(ev.position) FROM dcbstore.events ev), 0),
                     (SELECT e.base FROM dcbstore.epochs e ORDER BY e.epoch DESC LIMIT 1));
    IF new_epoch THEN
        head := dcbstore.begin_epoch(head);
    END IF;
    RETURN head;
END
$$;

REVOKE ALL ON FUNCTION dcbstore.begin_epoch(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dcbstore.locked_head(boolean) FROM PUBLIC;
