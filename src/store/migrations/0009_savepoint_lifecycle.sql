-- weir store, schema version 9: the savepoint lifecycle (see src/store/lifecycle.rs).
--
-- Additive only: the `savepoints` table and its kinds stay as they were, so a savepoint an apply
-- took reads exactly as before.

-- Every savepoint operation weir runs outside an apply, written BEFORE Flink is asked (the
-- intent) and completed after: `trigger` (a periodic or manual savepoint of a running job) and
-- `dispose` (retention removing a savepoint through Flink's `POST /savepoint-disposal`).
-- A row still pending after a crash says exactly what was in flight: a trigger with its Flink
-- request id is polled again and its savepoint recorded; a disposal is run again. A savepoint is
-- forgotten (left out of retention and listed as disposed) only once a `dispose` row of its path
-- ended `succeeded`; a failed disposal leaves it known.
CREATE TABLE savepoint_operations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL CHECK (kind IN ('trigger', 'dispose')),
    -- trigger: 'periodic' (the daemon's schedule) or 'manual' (`weir savepoint JOB`);
    -- dispose: 'retention' (daemon) or 'manual' (`weir savepoints prune`).
    origin         TEXT    NOT NULL CHECK (origin IN ('periodic', 'manual', 'retention')),
    job            TEXT    NOT NULL,
    cluster        TEXT    NOT NULL,
    flink_job_id   TEXT,
    -- dispose: the savepoint disposed; trigger: where the savepoint was written, once known.
    path           TEXT,
    -- Flink's trigger id, once Flink answered.
    request_id     TEXT,
    actor          TEXT,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT CHECK (outcome IN ('succeeded', 'failed')),
    error          TEXT,
    CHECK ((finished_at_ms IS NULL) = (outcome IS NULL)),
    CHECK (kind = 'trigger' OR path IS NOT NULL)
) STRICT;

CREATE INDEX savepoint_operations_by_job ON savepoint_operations (job, id);
CREATE INDEX savepoint_operations_by_path ON savepoint_operations (path, id);
CREATE INDEX savepoint_operations_pending ON savepoint_operations (id) WHERE finished_at_ms IS NULL;

CREATE TRIGGER savepoint_operations_fixed_columns
BEFORE UPDATE OF id, kind, origin, job, cluster, flink_job_id, actor, started_at_ms
ON savepoint_operations
BEGIN SELECT RAISE(ABORT, 'weir: a savepoint operation''s intent is immutable'); END;
CREATE TRIGGER savepoint_operations_finish_once BEFORE UPDATE ON savepoint_operations
WHEN OLD.finished_at_ms IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'weir: savepoint operation is already finished'); END;
CREATE TRIGGER savepoint_operations_no_delete BEFORE DELETE ON savepoint_operations
BEGIN SELECT RAISE(ABORT, 'weir: savepoint operations are append-only'); END;

-- Savepoints a user pinned (`weir savepoints pin JOB PATH`): never disposed while pinned.
-- Mutable: `unpin` deletes the row.
CREATE TABLE savepoint_pins (
    path      TEXT    NOT NULL PRIMARY KEY,
    job       TEXT    NOT NULL,
    actor     TEXT,
    at_ms     INTEGER NOT NULL
) STRICT;
