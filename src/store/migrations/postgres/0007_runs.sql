-- PostgreSQL twin of ../0007_runs.sql: runs of batch jobs, the same columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL.

CREATE TABLE runs (
    id             BIGSERIAL PRIMARY KEY,
    job            TEXT    NOT NULL,
    cluster        TEXT    NOT NULL,
    flink_job_id   TEXT    UNIQUE,
    trigger_kind   TEXT    NOT NULL,
    due_ms         BIGINT,
    started_at_ms  BIGINT  NOT NULL,
    ended_at_ms    BIGINT,
    outcome        TEXT    NOT NULL,
    detail         TEXT
);

CREATE INDEX runs_by_job ON runs (job, started_at_ms);
CREATE INDEX runs_open ON runs (outcome) WHERE outcome = 'running';
