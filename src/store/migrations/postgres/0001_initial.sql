-- PostgreSQL twin of ../0001_initial.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE plans (
    id            TEXT    NOT NULL PRIMARY KEY,
    created_at_ms BIGINT  NOT NULL,
    revision      TEXT    NOT NULL,
    triggered_by  TEXT    NOT NULL,
    summary       TEXT    NOT NULL,
    plan_json     TEXT    NOT NULL
);

CREATE INDEX plans_by_time ON plans (created_at_ms, id);

CREATE TABLE plan_jobs (
    plan_id TEXT NOT NULL REFERENCES plans (id),
    job     TEXT NOT NULL,
    PRIMARY KEY (plan_id, job)
);

CREATE INDEX plan_jobs_by_job ON plan_jobs (job, plan_id);

CREATE TABLE applies (
    id             TEXT    NOT NULL PRIMARY KEY,
    plan_id        TEXT    NOT NULL REFERENCES plans (id),
    started_at_ms  BIGINT  NOT NULL,
    revision       TEXT    NOT NULL,
    triggered_by   TEXT    NOT NULL,
    finished_at_ms BIGINT ,
    outcome        TEXT CHECK (outcome IN ('succeeded', 'failed', 'interrupted')),
    error          TEXT,
    CHECK ((finished_at_ms IS NULL) = (outcome IS NULL)),
    CHECK (finished_at_ms IS NOT NULL OR error IS NULL)
);

CREATE INDEX applies_by_time ON applies (started_at_ms, id);

CREATE INDEX applies_by_plan ON applies (plan_id);

CREATE INDEX applies_unfinished ON applies (started_at_ms, id) WHERE finished_at_ms IS NULL;

CREATE TABLE apply_jobs (
    apply_id TEXT NOT NULL REFERENCES applies (id),
    job      TEXT NOT NULL,
    PRIMARY KEY (apply_id, job)
);

CREATE INDEX apply_jobs_by_job ON apply_jobs (job, apply_id);

CREATE TABLE journal (
    id             BIGSERIAL PRIMARY KEY,
    apply_id       TEXT    NOT NULL REFERENCES applies (id),
    job            TEXT    NOT NULL,
    seq            BIGINT  NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
    kind           TEXT    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'succeeded', 'failed')),
    intent_json    TEXT    NOT NULL,
    detail_json    TEXT    NOT NULL,
    result_json    TEXT,
    created_at_ms  BIGINT  NOT NULL,
    progress_at_ms BIGINT ,
    finished_at_ms BIGINT ,
    CHECK ((status = 'pending') = (finished_at_ms IS NULL)),
    CHECK ((status = 'pending') = (result_json IS NULL))
);

CREATE INDEX journal_by_apply ON journal (apply_id, job, seq, id);

CREATE TABLE jobs (
    name                 TEXT    NOT NULL PRIMARY KEY,
    cluster              TEXT    NOT NULL,
    current_job_id       TEXT,
    spec_json            TEXT,
    suspended            BIGINT  NOT NULL CHECK (suspended IN (0, 1)),
    last_savepoint       TEXT,
    last_savepoint_at_ms BIGINT ,
    updated_at_ms        BIGINT  NOT NULL,
    deleted              BIGINT  NOT NULL CHECK (deleted IN (0, 1))
);

CREATE TABLE savepoints (
    path              TEXT    NOT NULL PRIMARY KEY,
    job               TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('savepoint', 'checkpoint')),
    flink_job_id      TEXT    NOT NULL,
    produced_by_apply TEXT    REFERENCES applies (id),
    at_ms             BIGINT  NOT NULL,
    -- SQLite's implicit rowid, made explicit: insertion order breaks ties of at_ms.
    rowid             BIGSERIAL NOT NULL UNIQUE
);

CREATE INDEX savepoints_by_job ON savepoints (job, at_ms);

CREATE INDEX savepoints_by_apply ON savepoints (produced_by_apply);

CREATE TABLE savepoint_restores (
    id       BIGSERIAL PRIMARY KEY,
    path     TEXT    NOT NULL REFERENCES savepoints (path),
    apply_id TEXT    NOT NULL REFERENCES applies (id),
    job_id   TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL
);

CREATE INDEX savepoint_restores_by_path ON savepoint_restores (path, id);

CREATE INDEX savepoint_restores_by_apply ON savepoint_restores (apply_id);

-- Append-only, enforced by the database. `weir_refuse` raises its first argument;
-- `weir_refuse_update_of` refuses an update changing any of the named columns.
CREATE FUNCTION weir_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE FUNCTION weir_applies_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.plan_id, NEW.started_at_ms, NEW.revision, NEW.triggered_by)
       IS DISTINCT FROM (OLD.id, OLD.plan_id, OLD.started_at_ms, OLD.revision, OLD.triggered_by)
    THEN
        RAISE EXCEPTION 'weir: an apply''s identity columns are immutable';
    END IF;
    IF OLD.finished_at_ms IS NOT NULL THEN
        RAISE EXCEPTION 'weir: apply is already finished';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION weir_journal_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT finished_at_ms FROM applies WHERE id = NEW.apply_id) IS NOT NULL THEN
        RAISE EXCEPTION 'weir: apply is already finished';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION weir_journal_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.apply_id, NEW.job, NEW.seq, NEW.kind, NEW.intent_json, NEW.created_at_ms)
       IS DISTINCT FROM
       (OLD.id, OLD.apply_id, OLD.job, OLD.seq, OLD.kind, OLD.intent_json, OLD.created_at_ms)
    THEN
        RAISE EXCEPTION 'weir: a journal entry''s intent is immutable';
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'weir: journal entry is already complete';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER plans_no_update BEFORE UPDATE ON plans
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: plans are append-only');
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: plans are append-only');

CREATE TRIGGER plan_jobs_no_update BEFORE UPDATE ON plan_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: plan_jobs are append-only');
CREATE TRIGGER plan_jobs_no_delete BEFORE DELETE ON plan_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: plan_jobs are append-only');

CREATE TRIGGER applies_update BEFORE UPDATE ON applies
FOR EACH ROW EXECUTE FUNCTION weir_applies_update();
CREATE TRIGGER applies_no_delete BEFORE DELETE ON applies
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: applies are append-only');

CREATE TRIGGER apply_jobs_no_update BEFORE UPDATE ON apply_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_jobs are append-only');
CREATE TRIGGER apply_jobs_no_delete BEFORE DELETE ON apply_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: apply_jobs are append-only');

CREATE TRIGGER journal_no_intent_after_finish BEFORE INSERT ON journal
FOR EACH ROW EXECUTE FUNCTION weir_journal_insert();
CREATE TRIGGER journal_update BEFORE UPDATE ON journal
FOR EACH ROW EXECUTE FUNCTION weir_journal_update();
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: the journal is append-only');

CREATE TRIGGER savepoints_no_update BEFORE UPDATE ON savepoints
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: savepoints are append-only');
CREATE TRIGGER savepoints_no_delete BEFORE DELETE ON savepoints
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: savepoints are append-only');

CREATE TRIGGER savepoint_restores_no_update BEFORE UPDATE ON savepoint_restores
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: savepoint_restores are append-only');
CREATE TRIGGER savepoint_restores_no_delete BEFORE DELETE ON savepoint_restores
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: savepoint_restores are append-only');
