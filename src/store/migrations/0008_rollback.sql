-- weir store, schema version 8: automatic rollback (see src/store/rollback.rs).
--
-- Before a change stops a running job that it may have to roll back, the exact definition that
-- job runs (as stored in jobs.spec_json, checked against the running job's id) is recorded here,
-- in its own transaction, before the stop is journaled (safety invariant 1): a crash anywhere in
-- the change or its rollback finds the definition to put back here, even after the job record
-- already names the new definition. When a rollback happened, the row says which definition was
-- rolled back and why, so that the planner marks that change and the daemon does not retry it.

CREATE TABLE rollback_targets (
    apply_id                TEXT    NOT NULL REFERENCES applies (id),
    job                     TEXT    NOT NULL,
    -- The cluster the previous definition ran on (for a migrate: the old cluster).
    cluster                 TEXT    NOT NULL,
    previous_job_id         TEXT    NOT NULL,
    previous_spec_json      TEXT    NOT NULL CHECK (json_valid(previous_spec_json)),
    created_at_ms           INTEGER NOT NULL,
    -- Set once, when the change was rolled back.
    rolled_back_fingerprint TEXT,
    rolled_back_parallelism INTEGER,
    reason                  TEXT,
    rolled_back_at_ms       INTEGER,
    PRIMARY KEY (apply_id, job)
) STRICT, WITHOUT ROWID;

CREATE INDEX rollback_targets_by_job ON rollback_targets (job, created_at_ms);
