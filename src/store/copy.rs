//! `weir store copy`: every record of one store into another, empty one (e.g. SQLite to
//! PostgreSQL), ids preserved, in one transaction of the target.
//!
//! The target's append-only triggers stay on: rows are only inserted, except that an apply's
//! ending (`finished_at_ms`, `outcome`, `error`) is written after its journal and changes —
//! the one update the schema allows — because the triggers refuse journal entries and changes
//! for an apply already finished.
//!
//! Every table of the schema must be listed in [`TABLES`] (a test compares the list with the
//! SQLite schema, so a new migration's table cannot be forgotten).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError};

/// A column and whether it holds an integer (`true`) or text.
type Column = (&'static str, bool);

const I: bool = true;
const T: bool = false;

/// Tables in an order that satisfies the foreign keys, with the order rows are copied in.
pub(super) const TABLES: &[(&str, &[Column], &str)] = &[
    (
        "plans",
        &[
            ("id", T),
            ("created_at_ms", I),
            ("revision", T),
            ("triggered_by", T),
            ("summary", T),
            ("plan_json", T),
        ],
        "created_at_ms, id",
    ),
    ("plan_jobs", &[("plan_id", T), ("job", T)], "plan_id, job"),
    (
        "applies",
        &[
            ("id", T),
            ("plan_id", T),
            ("started_at_ms", I),
            ("revision", T),
            ("triggered_by", T),
        ],
        "started_at_ms, id",
    ),
    (
        "apply_jobs",
        &[("apply_id", T), ("job", T)],
        "apply_id, job",
    ),
    (
        "journal",
        &[
            ("id", I),
            ("apply_id", T),
            ("job", T),
            ("seq", I),
            ("kind", T),
            ("status", T),
            ("intent_json", T),
            ("detail_json", T),
            ("result_json", T),
            ("created_at_ms", I),
            ("progress_at_ms", I),
            ("finished_at_ms", I),
        ],
        "id",
    ),
    (
        "jobs",
        &[
            ("name", T),
            ("cluster", T),
            ("current_job_id", T),
            ("spec_json", T),
            ("suspended", I),
            ("last_savepoint", T),
            ("last_savepoint_at_ms", I),
            ("updated_at_ms", I),
            ("deleted", I),
        ],
        "name",
    ),
    (
        "savepoints",
        &[
            ("path", T),
            ("job", T),
            ("kind", T),
            ("flink_job_id", T),
            ("produced_by_apply", T),
            ("at_ms", I),
        ],
        // Insertion order breaks ties of at_ms (the newest savepoint of a job is the last).
        "rowid",
    ),
    (
        "savepoint_restores",
        &[
            ("id", I),
            ("path", T),
            ("apply_id", T),
            ("job_id", T),
            ("at_ms", I),
        ],
        "id",
    ),
    (
        "record_origins",
        &[
            ("record_id", T),
            ("kind", T),
            ("actor", T),
            ("commit_sha", T),
            ("dirty", I),
            ("author_name", T),
            ("author_email", T),
            ("authored_at_ms", I),
            ("message", T),
            ("recorded_at_ms", I),
        ],
        "record_id",
    ),
    (
        "apply_changes",
        &[
            ("apply_id", T),
            ("job", T),
            ("action", T),
            ("ok", I),
            ("message", T),
            ("new_job_id", T),
            ("savepoint", T),
            ("at_ms", I),
        ],
        "apply_id, job",
    ),
    (
        "apply_events",
        &[
            ("id", I),
            ("apply_id", T),
            ("at_ms", I),
            ("kind", T),
            ("message", T),
        ],
        "id",
    ),
    (
        "notification_deliveries",
        &[
            ("id", I),
            ("event_id", T),
            ("route", T),
            ("event", T),
            ("job", T),
            ("cluster", T),
            ("revision", T),
            ("url", T),
            ("outcome", T),
            ("attempts", I),
            ("status_code", I),
            ("error", T),
            ("event_at_ms", I),
            ("started_at_ms", I),
            ("finished_at_ms", I),
        ],
        "id",
    ),
    (
        "daemon_state",
        &[("key", T), ("value_json", T), ("updated_at_ms", I)],
        "key",
    ),
    (
        "prunes",
        &[
            ("id", I),
            ("at_ms", I),
            ("cutoff_ms", I),
            ("trigger", T),
            ("actor", T),
            ("records", I),
            ("counts_json", T),
        ],
        "id",
    ),
    (
        "preflight_cache",
        &[
            ("cluster", T),
            ("fingerprint", T),
            ("flink_version", T),
            ("graph_json", T),
            ("checked_at_ms", I),
        ],
        "cluster, fingerprint, flink_version",
    ),
    (
        "runs",
        &[
            ("id", I),
            ("job", T),
            ("cluster", T),
            ("flink_job_id", T),
            ("trigger_kind", T),
            ("due_ms", I),
            ("started_at_ms", I),
            ("ended_at_ms", I),
            ("outcome", T),
            ("detail", T),
        ],
        "id",
    ),
    (
        "rollback_targets",
        &[
            ("apply_id", T),
            ("job", T),
            ("cluster", T),
            ("previous_job_id", T),
            ("previous_spec_json", T),
            ("created_at_ms", I),
            ("rolled_back_fingerprint", T),
            ("rolled_back_parallelism", I),
            ("reason", T),
            ("rolled_back_at_ms", I),
        ],
        "apply_id, job",
    ),
    (
        "savepoint_operations",
        &[
            ("id", I),
            ("kind", T),
            ("origin", T),
            ("job", T),
            ("cluster", T),
            ("flink_job_id", T),
            ("path", T),
            ("request_id", T),
            ("actor", T),
            ("started_at_ms", I),
            ("finished_at_ms", I),
            ("outcome", T),
            ("error", T),
        ],
        "id",
    ),
    (
        "savepoint_pins",
        &[("path", T), ("job", T), ("actor", T), ("at_ms", I)],
        "path",
    ),
];

/// Tables that hold no records (a prune's guard row lives only inside its transaction).
#[cfg(test)]
pub(super) const NOT_COPIED: &[&str] = &["prune_in_progress"];

/// How many rows of each table a copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Why a copy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyRefusal {
    #[error(
        "the target store already holds records ({0} plans, applies or jobs); copy into an empty store"
    )]
    TargetNotEmpty(i64),
}

impl Store {
    /// Copies every record of `self` into `target`, which must be empty (see the module
    /// documentation). Nothing is written to `target` unless everything is.
    pub async fn copy_into(&self, target: &Store) -> Result<CopyReport, StoreError> {
        const OP: &str = "copy";
        let mut tx = target.begin_immediate(OP).await?;
        let held: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM plans) + (SELECT COUNT(*) FROM applies)
                  + (SELECT COUNT(*) FROM jobs)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(target.query(OP))?;
        if held > 0 {
            return Err(StoreError::Rejected {
                path: target.path_buf(),
                op: OP,
                source: super::Rejection::Copy(CopyRefusal::TargetNotEmpty(held)),
            });
        }
        let mut report = CopyReport::default();
        for &(table, columns, order) in TABLES {
            let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
            let rows: Vec<AnyRow> = sqlx::query(&format!(
                "SELECT {} FROM {table} ORDER BY {order}",
                names.join(", ")
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query(OP))?;
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            );
            for row in &rows {
                let mut q = sqlx::query(&insert);
                for (i, &(_, integer)) in columns.iter().enumerate() {
                    q = if integer {
                        q.bind(row.try_get::<Option<i64>, _>(i).map_err(self.query(OP))?)
                    } else {
                        q.bind(
                            row.try_get::<Option<String>, _>(i)
                                .map_err(self.query(OP))?,
                        )
                    };
                }
                q.execute(&mut *tx).await.map_err(target.query(OP))?;
            }
            report.tables.push((table.to_string(), rows.len() as u64));
        }
        // Each apply's ending last: the triggers refuse journal entries of a finished apply.
        let endings = sqlx::query_as::<_, (String, i64, String, Option<String>)>(
            "SELECT id, finished_at_ms, outcome, error FROM applies
             WHERE finished_at_ms IS NOT NULL ORDER BY started_at_ms, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        for (id, finished, outcome, error) in endings {
            sqlx::query(
                "UPDATE applies SET finished_at_ms = $2, outcome = $3, error = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(finished)
            .bind(outcome)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(target.query(OP))?;
        }
        if target.backend == Backend::Postgres {
            // Ids were copied explicitly: move each sequence past them.
            for (table, column) in [
                ("journal", "id"),
                ("savepoints", "rowid"),
                ("savepoint_restores", "id"),
                ("apply_events", "id"),
                ("notification_deliveries", "id"),
                ("prunes", "id"),
                ("runs", "id"),
                ("savepoint_operations", "id"),
            ] {
                sqlx::query(&format!(
                    "SELECT 1 FROM (SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                         COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)) AS s"
                ))
                .execute(&mut *tx)
                .await
                .map_err(target.query(OP))?;
            }
        }
        tx.commit().await.map_err(target.query(OP))?;
        Ok(report)
    }
}
