-- weir store, schema version 3: outbound notification deliveries (see src/store/notify.rs).
--
-- One row per event and route, written once when its delivery ended (delivered, or failed after
-- its last attempt); suppressed duplicates are not recorded. Append-only like the audit tables of
-- version 1: triggers refuse every update and delete. `url` is the redacted URL
-- (scheme://host/path, no query, token-like segments masked) and `error` is scrubbed of secrets.
-- Times are unix epoch milliseconds.

CREATE TABLE notification_deliveries (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    job            TEXT,
    cluster        TEXT,
    revision       TEXT,
    url            TEXT    NOT NULL,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    attempts       INTEGER NOT NULL CHECK (attempts BETWEEN 1 AND 1000),
    status_code    INTEGER CHECK (status_code BETWEEN 100 AND 599),
    error          TEXT,
    event_at_ms    INTEGER NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    UNIQUE (event_id, route),
    CHECK ((outcome = 'delivered') = (error IS NULL)),
    CHECK (outcome = 'failed' OR status_code BETWEEN 200 AND 299)
) STRICT;

CREATE INDEX notification_deliveries_by_time ON notification_deliveries (finished_at_ms, id);
CREATE INDEX notification_deliveries_by_route ON notification_deliveries (route, finished_at_ms);

-- Append-only enforcement.

CREATE TRIGGER notification_deliveries_no_update BEFORE UPDATE ON notification_deliveries
BEGIN SELECT RAISE(ABORT, 'weir: notification_deliveries are append-only'); END;
CREATE TRIGGER notification_deliveries_no_delete BEFORE DELETE ON notification_deliveries
BEGIN SELECT RAISE(ABORT, 'weir: notification_deliveries are append-only'); END;
