-- PostgreSQL twin of ../0006_preflight.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE preflight_cache (
    cluster        TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    flink_version  TEXT    NOT NULL,
    graph_json     TEXT    NOT NULL CHECK ((graph_json::jsonb IS NOT NULL)),
    checked_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (cluster, fingerprint, flink_version)
);
