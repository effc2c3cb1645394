-- weir store, schema version 5: retention (see src/store/retention.rs).
--
-- The audit tables stay append-only with one exception: `Store::prune` may delete whole old
-- plan/apply records. Every delete trigger now allows a delete only while a row exists in
-- `prune_in_progress`; the prune inserts that row and removes it again inside its own
-- transaction, so no other connection ever sees it and a crash rolls it back with the rest.
-- Outside that transaction every DELETE (and, as before, every UPDATE) is refused.
--
-- Some rows are refused even while pruning, so that a bug in the prune cannot lose what weir
-- needs to recover and to plan: an unfinished apply and its journal, the savepoint a job record
-- names as its last one, and the newest savepoint/checkpoint of each job.
--
-- Each prune is recorded in `prunes` (append-only without exception).

CREATE TABLE prune_in_progress (
    one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1)
) STRICT;

CREATE TABLE prunes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    cutoff_ms   INTEGER NOT NULL,
    -- `cli` (weir prune) or `retention` (the daemon's audit.retentionDays).
    trigger     TEXT    NOT NULL,
    actor       TEXT,
    -- Plans plus applies deleted.
    records     INTEGER NOT NULL CHECK (records >= 0),
    -- Every count, by table (see `PruneCounts`).
    counts_json TEXT    NOT NULL
) STRICT;

CREATE TRIGGER prunes_no_update BEFORE UPDATE ON prunes
BEGIN SELECT RAISE(ABORT, 'weir: prunes are append-only'); END;
CREATE TRIGGER prunes_no_delete BEFORE DELETE ON prunes
BEGIN SELECT RAISE(ABORT, 'weir: prunes are append-only'); END;

-- Deletes only inside a prune.

DROP TRIGGER plans_no_delete;
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: plans are append-only'); END;

DROP TRIGGER plan_jobs_no_delete;
CREATE TRIGGER plan_jobs_no_delete BEFORE DELETE ON plan_jobs
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: plan_jobs are append-only'); END;

DROP TRIGGER applies_no_delete;
CREATE TRIGGER applies_no_delete BEFORE DELETE ON applies
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: applies are append-only'); END;
CREATE TRIGGER applies_keep_unfinished BEFORE DELETE ON applies
WHEN OLD.finished_at_ms IS NULL
BEGIN SELECT RAISE(ABORT, 'weir: an unfinished apply is never deleted'); END;

DROP TRIGGER apply_jobs_no_delete;
CREATE TRIGGER apply_jobs_no_delete BEFORE DELETE ON apply_jobs
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: apply_jobs are append-only'); END;

DROP TRIGGER journal_no_delete;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: the journal is append-only'); END;
CREATE TRIGGER journal_keep_unfinished BEFORE DELETE ON journal
WHEN (SELECT finished_at_ms FROM applies WHERE id = OLD.apply_id) IS NULL
BEGIN SELECT RAISE(ABORT, 'weir: the journal of an unfinished apply is never deleted'); END;

DROP TRIGGER savepoints_no_delete;
CREATE TRIGGER savepoints_no_delete BEFORE DELETE ON savepoints
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: savepoints are append-only'); END;
CREATE TRIGGER savepoints_keep_last BEFORE DELETE ON savepoints
WHEN EXISTS (SELECT 1 FROM jobs WHERE last_savepoint = OLD.path)
  OR NOT EXISTS (
      SELECT 1 FROM savepoints s
      WHERE s.job = OLD.job
        AND (s.at_ms > OLD.at_ms OR (s.at_ms = OLD.at_ms AND s.rowid > OLD.rowid)))
BEGIN SELECT RAISE(ABORT, 'weir: the newest savepoint of a job is never deleted'); END;

DROP TRIGGER savepoint_restores_no_delete;
CREATE TRIGGER savepoint_restores_no_delete BEFORE DELETE ON savepoint_restores
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: savepoint_restores are append-only'); END;

DROP TRIGGER record_origins_no_delete;
CREATE TRIGGER record_origins_no_delete BEFORE DELETE ON record_origins
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: record_origins are append-only'); END;

DROP TRIGGER apply_changes_no_delete;
CREATE TRIGGER apply_changes_no_delete BEFORE DELETE ON apply_changes
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: apply_changes are append-only'); END;

DROP TRIGGER apply_events_no_delete;
CREATE TRIGGER apply_events_no_delete BEFORE DELETE ON apply_events
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: apply_events are append-only'); END;

DROP TRIGGER notification_deliveries_no_delete;
CREATE TRIGGER notification_deliveries_no_delete BEFORE DELETE ON notification_deliveries
WHEN NOT EXISTS (SELECT 1 FROM prune_in_progress)
BEGIN SELECT RAISE(ABORT, 'weir: notification_deliveries are append-only'); END;
