-- PostgreSQL only (idempotent, run on every open): several `weir serve` on one store.
--
-- `leader_lease` has one row: who leads, where it listens, its epoch and when its lease ends
-- (the database's clock decides, never a daemon's). Taking over increments the epoch.
--
-- Fencing: a daemon sets `weir.epoch` on every connection it uses (-1 while following). A
-- write to the journal, the applies, the savepoints or the job records from a connection
-- whose epoch is not the current leader's unexpired one is refused by the database, in the
-- same statement, so a deposed leader that wakes up late cannot act. Connections without the
-- setting (the `weir` CLI) are not fenced.
--
-- `pending_triggers` is the inbox of the leader: a follower that accepts a signed webhook
-- records it here; the leader takes it (once) and reconciles.

CREATE TABLE IF NOT EXISTS leader_lease (
    one        BIGINT      NOT NULL PRIMARY KEY DEFAULT 1 CHECK (one = 1),
    holder     TEXT        NOT NULL,
    address    TEXT        NOT NULL,
    epoch      BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS pending_triggers (
    id             BIGSERIAL NOT NULL PRIMARY KEY,
    trigger        TEXT      NOT NULL,
    -- A pull-request delivery's body (already signature-checked by the follower).
    payload        TEXT,
    revision       TEXT,
    received_by    TEXT      NOT NULL,
    received_at_ms BIGINT    NOT NULL,
    taken_epoch    BIGINT
);

CREATE OR REPLACE FUNCTION weir_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    claimed TEXT := current_setting('weir.epoch', true);
BEGIN
    IF claimed IS NOT NULL AND claimed <> '' AND NOT EXISTS (
        SELECT 1 FROM leader_lease
        WHERE epoch = claimed::bigint AND expires_at > clock_timestamp())
    THEN
        RAISE EXCEPTION 'weir: fenced: epoch % does not hold the leader lease', claimed
            USING ERRCODE = 'WEIRF';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER journal_fenced BEFORE INSERT OR UPDATE ON journal
FOR EACH ROW EXECUTE FUNCTION weir_fence();
CREATE OR REPLACE TRIGGER applies_fenced BEFORE INSERT OR UPDATE ON applies
FOR EACH ROW EXECUTE FUNCTION weir_fence();
CREATE OR REPLACE TRIGGER savepoints_fenced BEFORE INSERT ON savepoints
FOR EACH ROW EXECUTE FUNCTION weir_fence();
CREATE OR REPLACE TRIGGER jobs_fenced BEFORE INSERT OR UPDATE ON jobs
FOR EACH ROW EXECUTE FUNCTION weir_fence();
