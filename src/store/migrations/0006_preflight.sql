-- weir store, schema version 6: pre-flight results (see src/store/preflight.rs).
--
-- Working state like daemon_state, not audit: a program that the cluster planned once is not
-- planned again while its cluster, its program fingerprint and the cluster's Flink version stay
-- the same. Only successful pre-flights are kept (a refusal may depend on the cluster's catalog
-- and is asked again), with the job graph the cluster returned (for state checks).

CREATE TABLE preflight_cache (
    cluster        TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    flink_version  TEXT    NOT NULL,
    graph_json     TEXT    NOT NULL CHECK (json_valid(graph_json)),
    checked_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (cluster, fingerprint, flink_version)
) STRICT, WITHOUT ROWID;
