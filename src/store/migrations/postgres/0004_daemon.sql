-- PostgreSQL twin of ../0004_daemon.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE daemon_state (
    key           TEXT    NOT NULL PRIMARY KEY,
    value_json    TEXT    NOT NULL CHECK ((value_json::jsonb IS NOT NULL)),
    updated_at_ms BIGINT  NOT NULL
);
