-- PostgreSQL twin of ../0009_savepoint_lifecycle.sql: savepoint operations (intent before Flink
-- is asked, outcome after; the intent immutable, finished once, never deleted) and pins.

CREATE TABLE savepoint_operations (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('trigger', 'dispose')),
    origin         TEXT    NOT NULL CHECK (origin IN ('periodic', 'manual', 'retention')),
    job            TEXT    NOT NULL,
    cluster        TEXT    NOT NULL,
    flink_job_id   TEXT,
    path           TEXT,
    request_id     TEXT,
    actor          TEXT,
    started_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT,
    outcome        TEXT CHECK (outcome IN ('succeeded', 'failed')),
    error          TEXT,
    CHECK ((finished_at_ms IS NULL) = (outcome IS NULL)),
    CHECK (kind = 'trigger' OR path IS NOT NULL)
);

CREATE INDEX savepoint_operations_by_job ON savepoint_operations (job, id);
CREATE INDEX savepoint_operations_by_path ON savepoint_operations (path, id);
CREATE INDEX savepoint_operations_pending ON savepoint_operations (id) WHERE finished_at_ms IS NULL;

CREATE FUNCTION weir_savepoint_operations_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.finished_at_ms IS NOT NULL THEN
        RAISE EXCEPTION 'weir: savepoint operation is already finished';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.kind IS DISTINCT FROM OLD.kind
       OR NEW.origin IS DISTINCT FROM OLD.origin OR NEW.job IS DISTINCT FROM OLD.job
       OR NEW.cluster IS DISTINCT FROM OLD.cluster
       OR NEW.flink_job_id IS DISTINCT FROM OLD.flink_job_id
       OR NEW.actor IS DISTINCT FROM OLD.actor
       OR NEW.started_at_ms IS DISTINCT FROM OLD.started_at_ms THEN
        RAISE EXCEPTION 'weir: a savepoint operation''s intent is immutable';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER savepoint_operations_update BEFORE UPDATE ON savepoint_operations
FOR EACH ROW EXECUTE FUNCTION weir_savepoint_operations_update();
CREATE TRIGGER savepoint_operations_no_delete BEFORE DELETE ON savepoint_operations
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: savepoint operations are append-only');

CREATE TABLE savepoint_pins (
    path      TEXT    NOT NULL PRIMARY KEY,
    job       TEXT    NOT NULL,
    actor     TEXT,
    at_ms     BIGINT  NOT NULL
);
