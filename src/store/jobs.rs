//! What weir knows about each job (the one mutable view) and the savepoint lineage.

use std::collections::BTreeMap;

use super::{JobRecord, Rejection, SavepointRecord, SavepointRestore, Store, StoreError};

const JOB_SELECT: &str = "SELECT name, cluster, current_job_id, spec_json, suspended,
    last_savepoint, last_savepoint_at_ms, updated_at_ms, deleted FROM jobs";

const SAVEPOINT_SELECT: &str =
    "SELECT path, job, kind, flink_job_id, produced_by_apply, at_ms FROM savepoints";

/// A restore, with the savepoint it started from.
#[derive(sqlx::FromRow)]
struct RestoreRow {
    path: String,
    #[sqlx(flatten)]
    restore: SavepointRestore,
}

impl Store {
    // ---- current knowledge per job -----------------------------------------------------------

    /// Inserts or replaces what is known about a job.
    pub async fn upsert_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        const OP: &str = "upsert_job";
        sqlx::query(
            "INSERT INTO jobs (name, cluster, current_job_id, spec_json, suspended, last_savepoint,
                               last_savepoint_at_ms, updated_at_ms, deleted)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET
                 cluster = excluded.cluster,
                 current_job_id = excluded.current_job_id,
                 spec_json = excluded.spec_json,
                 suspended = excluded.suspended,
                 last_savepoint = excluded.last_savepoint,
                 last_savepoint_at_ms = excluded.last_savepoint_at_ms,
                 updated_at_ms = excluded.updated_at_ms,
                 deleted = excluded.deleted",
        )
        .bind(&j.name)
        .bind(&j.cluster)
        .bind(&j.current_job_id)
        .bind(&j.spec_json)
        .bind(i64::from(j.suspended))
        .bind(&j.last_savepoint)
        .bind(j.last_savepoint_at_ms)
        .bind(j.updated_at_ms)
        .bind(i64::from(j.deleted))
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    pub async fn job(&self, name: &str) -> Result<Option<JobRecord>, StoreError> {
        sqlx::query_as::<_, JobRecord>(&format!("{JOB_SELECT} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query("job"))
    }

    /// Every job record (including deleted ones), by name.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        sqlx::query_as::<_, JobRecord>(&format!("{JOB_SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query("jobs"))
    }

    // ---- savepoint lineage -------------------------------------------------------------------

    /// Records a savepoint or retained checkpoint (and any `restores` it carries). Recording the
    /// same path again with the same values is a no-op, so a resumed apply may repeat it; with
    /// different values it is refused.
    pub async fn insert_savepoint(&self, s: &SavepointRecord) -> Result<(), StoreError> {
        const OP: &str = "insert_savepoint";
        let mut tx = self.begin_immediate(OP).await?;
        let inserted = sqlx::query(
            "INSERT INTO savepoints (path, job, kind, flink_job_id, produced_by_apply, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(&s.path)
        .bind(&s.job)
        .bind(s.kind)
        .bind(&s.flink_job_id)
        .bind(&s.produced_by_apply)
        .bind(s.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        if inserted.rows_affected() == 0 {
            let existing = sqlx::query_as::<_, SavepointRecord>(&format!(
                "{SAVEPOINT_SELECT} WHERE path = $1"
            ))
            .bind(&s.path)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.query(OP))?;
            let same = existing.job == s.job
                && existing.kind == s.kind
                && existing.flink_job_id == s.flink_job_id
                && existing.produced_by_apply == s.produced_by_apply
                && existing.at_ms == s.at_ms;
            if !same {
                return Err(self.rejected(
                    OP,
                    Rejection::SavepointConflict {
                        path: s.path.clone(),
                    },
                ));
            }
            return Ok(());
        }
        for r in &s.restores {
            sqlx::query(
                "INSERT INTO savepoint_restores (path, apply_id, job_id, at_ms)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&s.path)
            .bind(&r.apply_id)
            .bind(&r.job_id)
            .bind(r.at_ms)
            .execute(&mut *tx)
            .await
            .map_err(self.query(OP))?;
        }
        tx.commit().await.map_err(self.query(OP))
    }

    /// Records that `restored_by_apply` started Flink job `restored_job_id` from the savepoint
    /// at `path`. A savepoint may be restored any number of times.
    pub async fn mark_savepoint_restored(
        &self,
        path: &str,
        restored_by_apply: &str,
        restored_job_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark_savepoint_restored";
        let done = sqlx::query(
            "INSERT INTO savepoint_restores (path, apply_id, job_id, at_ms)
             SELECT $1, $2, $3, $4
             WHERE EXISTS (SELECT 1 FROM savepoints WHERE path = $1)
               AND EXISTS (SELECT 1 FROM applies WHERE id = $2)",
        )
        .bind(path)
        .bind(restored_by_apply)
        .bind(restored_job_id)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let savepoint = sqlx::query_scalar::<_, i64>("SELECT 1 FROM savepoints WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))?;
        let rejection = match savepoint {
            None => Rejection::NotFound {
                what: "savepoint",
                id: path.to_string(),
            },
            Some(_) => Rejection::NotFound {
                what: "apply",
                id: restored_by_apply.to_string(),
            },
        };
        Err(self.rejected(OP, rejection))
    }

    /// A job's savepoints and retained checkpoints, newest first.
    /// The lineage of every job in one query (newest first per job), for the planner's history:
    /// without their `restores` (left empty: not read). A query per job cost the daemon a
    /// third of a second per reconcile at 1,000 jobs.
    pub async fn savepoints_by_job(
        &self,
    ) -> Result<BTreeMap<String, Vec<SavepointRecord>>, StoreError> {
        let rows = sqlx::query_as::<_, SavepointRecord>(&format!(
            "{SAVEPOINT_SELECT} ORDER BY job, at_ms DESC, rowid DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("savepoints_by_job"))?;
        let mut out: BTreeMap<String, Vec<SavepointRecord>> = BTreeMap::new();
        for row in rows {
            out.entry(row.job.clone()).or_default().push(row);
        }
        Ok(out)
    }

    pub async fn savepoints(&self, job: &str) -> Result<Vec<SavepointRecord>, StoreError> {
        const OP: &str = "savepoints";
        let mut out = sqlx::query_as::<_, SavepointRecord>(&format!(
            "{SAVEPOINT_SELECT} WHERE job = $1 ORDER BY at_ms DESC, rowid DESC"
        ))
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let restores = sqlx::query_as::<_, RestoreRow>(
            "SELECT r.path, r.apply_id, r.job_id, r.at_ms
             FROM savepoint_restores r JOIN savepoints s ON s.path = r.path
             WHERE s.job = $1 ORDER BY r.id",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let mut by_path: BTreeMap<String, Vec<SavepointRestore>> = BTreeMap::new();
        for row in restores {
            by_path.entry(row.path).or_default().push(row.restore);
        }
        for s in &mut out {
            s.restores = by_path.remove(&s.path).unwrap_or_default();
        }
        Ok(out)
    }
}
