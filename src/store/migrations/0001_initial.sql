-- weir store, schema version 1.
--
-- Audit tables (plans, plan_jobs, applies, apply_jobs, journal, savepoints, savepoint_restores)
-- are append-only: triggers below refuse deletes and every update except the columns that
-- record how something ended (applies.finished_at_ms/outcome/error, journal progress/result).
-- `jobs` is the only mutable view. Times are unix epoch milliseconds.

CREATE TABLE plans (
    id            TEXT    NOT NULL PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    revision      TEXT    NOT NULL,
    triggered_by  TEXT    NOT NULL,
    summary       TEXT    NOT NULL,
    plan_json     TEXT    NOT NULL
) STRICT;

CREATE INDEX plans_by_time ON plans (created_at_ms, id);

CREATE TABLE plan_jobs (
    plan_id TEXT NOT NULL REFERENCES plans (id),
    job     TEXT NOT NULL,
    PRIMARY KEY (plan_id, job)
) STRICT, WITHOUT ROWID;

CREATE INDEX plan_jobs_by_job ON plan_jobs (job, plan_id);

CREATE TABLE applies (
    id             TEXT    NOT NULL PRIMARY KEY,
    plan_id        TEXT    NOT NULL REFERENCES plans (id),
    started_at_ms  INTEGER NOT NULL,
    revision       TEXT    NOT NULL,
    triggered_by   TEXT    NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT CHECK (outcome IN ('succeeded', 'failed', 'interrupted')),
    error          TEXT,
    CHECK ((finished_at_ms IS NULL) = (outcome IS NULL)),
    CHECK (finished_at_ms IS NOT NULL OR error IS NULL)
) STRICT;

CREATE INDEX applies_by_time ON applies (started_at_ms, id);
CREATE INDEX applies_by_plan ON applies (plan_id);
CREATE INDEX applies_unfinished ON applies (started_at_ms, id) WHERE finished_at_ms IS NULL;

CREATE TABLE apply_jobs (
    apply_id TEXT NOT NULL REFERENCES applies (id),
    job      TEXT NOT NULL,
    PRIMARY KEY (apply_id, job)
) STRICT, WITHOUT ROWID;

CREATE INDEX apply_jobs_by_job ON apply_jobs (job, apply_id);

-- The apply journal: one row per side effect, inserted (status 'pending') before the effect is
-- attempted and completed after. `intent_json` keeps the detail as first written; `detail_json`
-- is the latest detail (progress may extend it).
CREATE TABLE journal (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    apply_id       TEXT    NOT NULL REFERENCES applies (id),
    job            TEXT    NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
    kind           TEXT    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'succeeded', 'failed')),
    intent_json    TEXT    NOT NULL,
    detail_json    TEXT    NOT NULL,
    result_json    TEXT,
    created_at_ms  INTEGER NOT NULL,
    progress_at_ms INTEGER,
    finished_at_ms INTEGER,
    CHECK ((status = 'pending') = (finished_at_ms IS NULL)),
    CHECK ((status = 'pending') = (result_json IS NULL))
) STRICT;

CREATE INDEX journal_by_apply ON journal (apply_id, job, seq, id);

-- Current knowledge per job definition (mutable).
CREATE TABLE jobs (
    name                 TEXT    NOT NULL PRIMARY KEY,
    cluster              TEXT    NOT NULL,
    current_job_id       TEXT,
    spec_json            TEXT,
    suspended            INTEGER NOT NULL CHECK (suspended IN (0, 1)),
    last_savepoint       TEXT,
    last_savepoint_at_ms INTEGER,
    updated_at_ms        INTEGER NOT NULL,
    deleted              INTEGER NOT NULL CHECK (deleted IN (0, 1))
) STRICT;

-- Savepoint and retained-checkpoint lineage.
CREATE TABLE savepoints (
    path              TEXT    NOT NULL PRIMARY KEY,
    job               TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('savepoint', 'checkpoint')),
    flink_job_id      TEXT    NOT NULL,
    produced_by_apply TEXT    REFERENCES applies (id),
    at_ms             INTEGER NOT NULL
) STRICT;

CREATE INDEX savepoints_by_job ON savepoints (job, at_ms);
CREATE INDEX savepoints_by_apply ON savepoints (produced_by_apply);

CREATE TABLE savepoint_restores (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    path     TEXT    NOT NULL REFERENCES savepoints (path),
    apply_id TEXT    NOT NULL REFERENCES applies (id),
    job_id   TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL
) STRICT;

CREATE INDEX savepoint_restores_by_path ON savepoint_restores (path, id);
CREATE INDEX savepoint_restores_by_apply ON savepoint_restores (apply_id);

-- Append-only enforcement.

CREATE TRIGGER plans_no_update BEFORE UPDATE ON plans
BEGIN SELECT RAISE(ABORT, 'weir: plans are append-only'); END;
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
BEGIN SELECT RAISE(ABORT, 'weir: plans are append-only'); END;

CREATE TRIGGER plan_jobs_no_update BEFORE UPDATE ON plan_jobs
BEGIN SELECT RAISE(ABORT, 'weir: plan_jobs are append-only'); END;
CREATE TRIGGER plan_jobs_no_delete BEFORE DELETE ON plan_jobs
BEGIN SELECT RAISE(ABORT, 'weir: plan_jobs are append-only'); END;

CREATE TRIGGER applies_fixed_columns
BEFORE UPDATE OF id, plan_id, started_at_ms, revision, triggered_by ON applies
BEGIN SELECT RAISE(ABORT, 'weir: an apply''s identity columns are immutable'); END;
CREATE TRIGGER applies_finish_once BEFORE UPDATE ON applies WHEN OLD.finished_at_ms IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'weir: apply is already finished'); END;
CREATE TRIGGER applies_no_delete BEFORE DELETE ON applies
BEGIN SELECT RAISE(ABORT, 'weir: applies are append-only'); END;

CREATE TRIGGER apply_jobs_no_update BEFORE UPDATE ON apply_jobs
BEGIN SELECT RAISE(ABORT, 'weir: apply_jobs are append-only'); END;
CREATE TRIGGER apply_jobs_no_delete BEFORE DELETE ON apply_jobs
BEGIN SELECT RAISE(ABORT, 'weir: apply_jobs are append-only'); END;

CREATE TRIGGER journal_no_intent_after_finish BEFORE INSERT ON journal
WHEN (SELECT finished_at_ms FROM applies WHERE id = NEW.apply_id) IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'weir: apply is already finished'); END;
CREATE TRIGGER journal_fixed_columns
BEFORE UPDATE OF id, apply_id, job, seq, kind, intent_json, created_at_ms ON journal
BEGIN SELECT RAISE(ABORT, 'weir: a journal entry''s intent is immutable'); END;
CREATE TRIGGER journal_complete_once BEFORE UPDATE ON journal WHEN OLD.status <> 'pending'
BEGIN SELECT RAISE(ABORT, 'weir: journal entry is already complete'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'weir: the journal is append-only'); END;

CREATE TRIGGER savepoints_no_update BEFORE UPDATE ON savepoints
BEGIN SELECT RAISE(ABORT, 'weir: savepoints are append-only'); END;
CREATE TRIGGER savepoints_no_delete BEFORE DELETE ON savepoints
BEGIN SELECT RAISE(ABORT, 'weir: savepoints are append-only'); END;

CREATE TRIGGER savepoint_restores_no_update BEFORE UPDATE ON savepoint_restores
BEGIN SELECT RAISE(ABORT, 'weir: savepoint_restores are append-only'); END;
CREATE TRIGGER savepoint_restores_no_delete BEFORE DELETE ON savepoint_restores
BEGIN SELECT RAISE(ABORT, 'weir: savepoint_restores are append-only'); END;
