-- PostgreSQL twin of ../0003_notify.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE notification_deliveries (
    id             BIGSERIAL PRIMARY KEY,
    event_id       TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    job            TEXT,
    cluster        TEXT,
    revision       TEXT,
    url            TEXT    NOT NULL,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    attempts       BIGINT  NOT NULL CHECK (attempts BETWEEN 1 AND 1000),
    status_code    BIGINT  CHECK (status_code BETWEEN 100 AND 599),
    error          TEXT,
    event_at_ms    BIGINT  NOT NULL,
    started_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT  NOT NULL,
    UNIQUE (event_id, route),
    CHECK ((outcome = 'delivered') = (error IS NULL)),
    CHECK (outcome = 'failed' OR status_code BETWEEN 200 AND 299)
);

CREATE INDEX notification_deliveries_by_time ON notification_deliveries (finished_at_ms, id);

CREATE INDEX notification_deliveries_by_route ON notification_deliveries (route, finished_at_ms);

CREATE TRIGGER notification_deliveries_no_update BEFORE UPDATE ON notification_deliveries
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: notification_deliveries are append-only');
CREATE TRIGGER notification_deliveries_no_delete BEFORE DELETE ON notification_deliveries
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: notification_deliveries are append-only');
