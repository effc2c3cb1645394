-- PostgreSQL twin of ../0005_retention.sql: the same tables, columns and guarantees.
-- INTEGER is BIGINT, AUTOINCREMENT is BIGSERIAL; SQLite triggers are plpgsql triggers.

CREATE TABLE prune_in_progress (
    one BIGINT  NOT NULL PRIMARY KEY CHECK (one = 1)
);

CREATE TABLE prunes (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT  NOT NULL,
    cutoff_ms   BIGINT  NOT NULL,
    trigger     TEXT    NOT NULL,
    actor       TEXT,
    records     BIGINT  NOT NULL CHECK (records >= 0),
    counts_json TEXT    NOT NULL
);

-- Deletes are allowed only inside a prune's transaction (a row in prune_in_progress, which
-- no other transaction can see); some rows are refused even then (see ../0005_retention.sql).
CREATE FUNCTION weir_refuse_unless_pruning() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM prune_in_progress) THEN
        RAISE EXCEPTION '%', TG_ARGV[0];
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION weir_applies_keep_unfinished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.finished_at_ms IS NULL THEN
        RAISE EXCEPTION 'weir: an unfinished apply is never deleted';
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION weir_journal_keep_unfinished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT finished_at_ms FROM applies WHERE id = OLD.apply_id) IS NULL THEN
        RAISE EXCEPTION 'weir: the journal of an unfinished apply is never deleted';
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION weir_savepoints_keep_last() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM jobs WHERE last_savepoint = OLD.path)
       OR NOT EXISTS (
           SELECT 1 FROM savepoints s
           WHERE s.job = OLD.job
             AND (s.at_ms > OLD.at_ms OR (s.at_ms = OLD.at_ms AND s.rowid > OLD.rowid)))
    THEN
        RAISE EXCEPTION 'weir: the newest savepoint of a job is never deleted';
    END IF;
    RETURN OLD;
END $$;

DROP TRIGGER plans_no_delete ON plans;
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: plans are append-only');
DROP TRIGGER plan_jobs_no_delete ON plan_jobs;
CREATE TRIGGER plan_jobs_no_delete BEFORE DELETE ON plan_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: plan_jobs are append-only');
DROP TRIGGER applies_no_delete ON applies;
CREATE TRIGGER applies_no_delete BEFORE DELETE ON applies
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: applies are append-only');
DROP TRIGGER apply_jobs_no_delete ON apply_jobs;
CREATE TRIGGER apply_jobs_no_delete BEFORE DELETE ON apply_jobs
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: apply_jobs are append-only');
DROP TRIGGER journal_no_delete ON journal;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: the journal is append-only');
DROP TRIGGER savepoints_no_delete ON savepoints;
CREATE TRIGGER savepoints_no_delete BEFORE DELETE ON savepoints
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: savepoints are append-only');
DROP TRIGGER savepoint_restores_no_delete ON savepoint_restores;
CREATE TRIGGER savepoint_restores_no_delete BEFORE DELETE ON savepoint_restores
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: savepoint_restores are append-only');
DROP TRIGGER record_origins_no_delete ON record_origins;
CREATE TRIGGER record_origins_no_delete BEFORE DELETE ON record_origins
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: record_origins are append-only');
DROP TRIGGER apply_changes_no_delete ON apply_changes;
CREATE TRIGGER apply_changes_no_delete BEFORE DELETE ON apply_changes
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: apply_changes are append-only');
DROP TRIGGER apply_events_no_delete ON apply_events;
CREATE TRIGGER apply_events_no_delete BEFORE DELETE ON apply_events
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: apply_events are append-only');
DROP TRIGGER notification_deliveries_no_delete ON notification_deliveries;
CREATE TRIGGER notification_deliveries_no_delete BEFORE DELETE ON notification_deliveries
FOR EACH ROW EXECUTE FUNCTION weir_refuse_unless_pruning('weir: notification_deliveries are append-only');

CREATE TRIGGER applies_keep_unfinished BEFORE DELETE ON applies
FOR EACH ROW EXECUTE FUNCTION weir_applies_keep_unfinished();
CREATE TRIGGER journal_keep_unfinished BEFORE DELETE ON journal
FOR EACH ROW EXECUTE FUNCTION weir_journal_keep_unfinished();
CREATE TRIGGER savepoints_keep_last BEFORE DELETE ON savepoints
FOR EACH ROW EXECUTE FUNCTION weir_savepoints_keep_last();

CREATE TRIGGER prunes_no_update BEFORE UPDATE ON prunes
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: prunes are append-only');
CREATE TRIGGER prunes_no_delete BEFORE DELETE ON prunes
FOR EACH ROW EXECUTE FUNCTION weir_refuse('weir: prunes are append-only');
