-- weir store, schema version 7: runs of batch jobs (see src/store/runs.rs).
--
-- Audit, like the journal: one row per submission of a batch job (by `weir apply`, a daemon
-- reconcile or the daemon's scheduler) and per scheduled run that was skipped because the
-- previous run still ran. `weir runs JOB` and GET /api/v1/jobs/{name}/runs list them. The
-- outcome of a submitted run is filled in when weir sees the Flink job end.

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job            TEXT    NOT NULL,
    cluster        TEXT    NOT NULL,
    -- NULL for a skipped run (nothing was submitted).
    flink_job_id   TEXT    UNIQUE,
    -- apply | schedule | catch-up
    trigger_kind   TEXT    NOT NULL,
    -- The schedule's fire time the run is for (schedule and catch-up runs).
    due_ms         INTEGER,
    started_at_ms  INTEGER NOT NULL,
    ended_at_ms    INTEGER,
    -- running | finished | failed | canceled | skipped | unknown
    outcome        TEXT    NOT NULL,
    detail         TEXT
) STRICT;

CREATE INDEX runs_by_job ON runs (job, started_at_ms);
CREATE INDEX runs_open ON runs (outcome) WHERE outcome = 'running';
