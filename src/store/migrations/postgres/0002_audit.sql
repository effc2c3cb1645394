-- PostgreSQL twin of ../0002_audit.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE record_origins (
    record_id      TEXT    NOT NULL PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('plan', 'apply')),
    actor          TEXT,
    commit_sha     TEXT,
    dirty          BIGINT  NOT NULL CHECK (dirty IN (0, 1)),
    author_name    TEXT,
    author_email   TEXT,
    authored_at_ms BIGINT ,
    message        TEXT,
    recorded_at_ms BIGINT  NOT NULL
);

CREATE TABLE apply_changes (
    apply_id   TEXT    NOT NULL REFERENCES applies (id),
    job        TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    ok         BIGINT  NOT NULL CHECK (ok IN (0, 1)),
    message    TEXT    NOT NULL,
    new_job_id TEXT,
    savepoint  TEXT,
    at_ms      BIGINT  NOT NULL,
    PRIMARY KEY (apply_id, job)
);

CREATE TABLE apply_events (
    id       BIGSERIAL PRIMARY KEY,
    apply_id TEXT    NOT NULL REFERENCES applies (id),
    at_ms    BIGINT  NOT NULL,
    kind     TEXT    NOT NULL,
    message  TEXT    NOT NULL
);

CREATE INDEX apply_events_by_apply ON apply_events (apply_id, id);

CREATE FUNCTION weir_apply_changes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT finished_at_ms FROM applies WHERE id = NEW.apply_id) IS NOT NULL THEN
        RAISE EXCEPTION 'weir: apply is already finished';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER record_origins_no_update BEFORE UPDATE ON record_origins
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: record_origins are append-only');
CREATE TRIGGER record_origins_no_delete BEFORE DELETE ON record_origins
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: record_origins are append-only');

CREATE TRIGGER apply_changes_before_finish BEFORE INSERT ON apply_changes
FOR EACH ROW EXECUTE FUNCTION weir_apply_changes_insert();
CREATE TRIGGER apply_changes_no_update BEFORE UPDATE ON apply_changes
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_changes are append-only');
CREATE TRIGGER apply_changes_no_delete BEFORE DELETE ON apply_changes
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_changes are append-only');

CREATE TRIGGER apply_events_no_update BEFORE UPDATE ON apply_events
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_events are append-only');
CREATE TRIGGER apply_events_no_delete BEFORE DELETE ON apply_events
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_events are append-only');
