-- PostgreSQL twin of ../0008_rollback.sql: the definition to put back when a change is rolled
-- back, recorded before the stop; the same columns and guarantees.

CREATE TABLE rollback_targets (
    apply_id                TEXT    NOT NULL REFERENCES applies (id),
    job                     TEXT    NOT NULL,
    cluster                 TEXT    NOT NULL,
    previous_job_id         TEXT    NOT NULL,
    previous_spec_json      TEXT    NOT NULL CHECK ((previous_spec_json::jsonb IS NOT NULL)),
    created_at_ms           BIGINT  NOT NULL,
    rolled_back_fingerprint TEXT,
    rolled_back_parallelism BIGINT,
    reason                  TEXT,
    rolled_back_at_ms       BIGINT,
    PRIMARY KEY (apply_id, job)
);

CREATE INDEX rollback_targets_by_job ON rollback_targets (job, created_at_ms);
