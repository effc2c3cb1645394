-- weir store, schema version 2: the audit trail's context (see src/store/audit.rs).
--
-- Like the audit tables of version 1 these are append-only: triggers refuse every update and
-- delete. Times are unix epoch milliseconds.

-- Where a plan or an apply came from: the commit it was made from (author, message), whether the
-- files differed from that commit, and who was behind the trigger (the local user for `cli`, a
-- token's name for `api`, ...). One row per plan or apply, written when it is created. There is
-- no foreign key: an apply's origin is written just before the apply row itself.
CREATE TABLE record_origins (
    record_id      TEXT    NOT NULL PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('plan', 'apply')),
    actor          TEXT,
    commit_sha     TEXT,
    dirty          INTEGER NOT NULL CHECK (dirty IN (0, 1)),
    author_name    TEXT,
    author_email   TEXT,
    authored_at_ms INTEGER,
    message        TEXT,
    recorded_at_ms INTEGER NOT NULL
) STRICT;

-- How each change of an apply ended; written in the transaction that records the apply's outcome,
-- so never after it.
CREATE TABLE apply_changes (
    apply_id   TEXT    NOT NULL REFERENCES applies (id),
    job        TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    message    TEXT    NOT NULL,
    new_job_id TEXT,
    savepoint  TEXT,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (apply_id, job)
) STRICT, WITHOUT ROWID;

-- What happened to an apply as a whole besides its steps, e.g. `resumed`: the process running it
-- died and a later one finished it from the journal.
CREATE TABLE apply_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    apply_id TEXT    NOT NULL REFERENCES applies (id),
    at_ms    INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    message  TEXT    NOT NULL
) STRICT;

CREATE INDEX apply_events_by_apply ON apply_events (apply_id, id);

-- Append-only enforcement.

CREATE TRIGGER record_origins_no_update BEFORE UPDATE ON record_origins
BEGIN SELECT RAISE(ABORT, 'weir: record_origins are append-only'); END;
CREATE TRIGGER record_origins_no_delete BEFORE DELETE ON record_origins
BEGIN SELECT RAISE(ABORT, 'weir: record_origins are append-only'); END;

CREATE TRIGGER apply_changes_before_finish BEFORE INSERT ON apply_changes
WHEN (SELECT finished_at_ms FROM applies WHERE id = NEW.apply_id) IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'weir: apply is already finished'); END;
CREATE TRIGGER apply_changes_no_update BEFORE UPDATE ON apply_changes
BEGIN SELECT RAISE(ABORT, 'weir: apply_changes are append-only'); END;
CREATE TRIGGER apply_changes_no_delete BEFORE DELETE ON apply_changes
BEGIN SELECT RAISE(ABORT, 'weir: apply_changes are append-only'); END;

CREATE TRIGGER apply_events_no_update BEFORE UPDATE ON apply_events
BEGIN SELECT RAISE(ABORT, 'weir: apply_events are append-only'); END;
CREATE TRIGGER apply_events_no_delete BEFORE DELETE ON apply_events
BEGIN SELECT RAISE(ABORT, 'weir: apply_events are append-only'); END;
