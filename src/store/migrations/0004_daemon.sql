-- weir store, schema version 4: what the daemon must remember across restarts (see
-- src/store/daemon.rs).
--
-- Unlike the audit tables this is working state, overwritten in place: one JSON document per key,
-- e.g. `reconcile` holds the self-heal attempts per job and the revisions whose apply failed, so a
-- restart neither resets the self-heal attempt limit nor retries a failed revision.

CREATE TABLE daemon_state (
    key           TEXT    NOT NULL PRIMARY KEY,
    value_json    TEXT    NOT NULL CHECK (json_valid(value_json)),
    updated_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
