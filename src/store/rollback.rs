//! Rollback targets (schema version 8, `migrations/0008_rollback.sql`): the definition a change
//! puts back when its new job does not become healthy, recorded before the change stops the
//! running job, and the outcome of the rollback.

use super::{Store, StoreError};

/// The definition a change of `job` in `apply_id` rolls back to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RollbackTarget {
    pub apply_id: String,
    pub job: String,
    pub cluster: String,
    pub previous_job_id: String,
    /// The previous definition (`DesiredJob` JSON; checked to be exactly what ran).
    pub previous_spec_json: String,
    pub created_at_ms: i64,
    pub rolled_back_fingerprint: Option<String>,
    pub rolled_back_parallelism: Option<i64>,
    pub reason: Option<String>,
    pub rolled_back_at_ms: Option<i64>,
}

const SELECT: &str = "SELECT apply_id, job, cluster, previous_job_id, previous_spec_json,
    created_at_ms, rolled_back_fingerprint, rolled_back_parallelism, reason, rolled_back_at_ms
    FROM rollback_targets";

impl Store {
    /// Records what a change rolls back to (idempotent: a resumed change keeps the first record).
    pub async fn insert_rollback_target(&self, t: &RollbackTarget) -> Result<(), StoreError> {
        const OP: &str = "insert_rollback_target";
        sqlx::query(
            "INSERT INTO rollback_targets (apply_id, job, cluster, previous_job_id,
                 previous_spec_json, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (apply_id, job) DO NOTHING",
        )
        .bind(&t.apply_id)
        .bind(&t.job)
        .bind(&t.cluster)
        .bind(&t.previous_job_id)
        .bind(&t.previous_spec_json)
        .bind(t.created_at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// The rollback target of `job` in `apply_id`, if the change recorded one.
    pub async fn rollback_target(
        &self,
        apply_id: &str,
        job: &str,
    ) -> Result<Option<RollbackTarget>, StoreError> {
        sqlx::query_as::<_, RollbackTarget>(&format!("{SELECT} WHERE apply_id = $1 AND job = $2"))
            .bind(apply_id)
            .bind(job)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query("rollback_target"))
    }

    /// Records that the change was rolled back: which definition (code fingerprint, hex, and
    /// parallelism) and why. The first record stands (a resumed rollback repeats it).
    pub async fn mark_rolled_back(
        &self,
        apply_id: &str,
        job: &str,
        fingerprint: &str,
        parallelism: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark_rolled_back";
        sqlx::query(
            "UPDATE rollback_targets SET rolled_back_fingerprint = $3,
                 rolled_back_parallelism = $4, reason = $5, rolled_back_at_ms = $6
             WHERE apply_id = $1 AND job = $2 AND reason IS NULL",
        )
        .bind(apply_id)
        .bind(job)
        .bind(fingerprint)
        .bind(i64::from(parallelism))
        .bind(crate::redact::text(reason))
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// [`Store::latest_rollback`] of every job that has a rollback target, in one query.
    pub async fn latest_rollbacks(
        &self,
    ) -> Result<std::collections::BTreeMap<String, RollbackTarget>, StoreError> {
        let rows = sqlx::query_as::<_, RollbackTarget>(&format!(
            "{SELECT} t WHERE NOT EXISTS (SELECT 1 FROM rollback_targets n
                 WHERE n.job = t.job AND (n.created_at_ms > t.created_at_ms
                     OR (n.created_at_ms = t.created_at_ms AND n.apply_id > t.apply_id)))"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("latest_rollbacks"))?;
        Ok(rows.into_iter().map(|t| (t.job.clone(), t)).collect())
    }

    /// The newest rollback target of `job` (rolled back or not): the newest change that could
    /// be rolled back says whether the job's last change was.
    pub async fn latest_rollback(&self, job: &str) -> Result<Option<RollbackTarget>, StoreError> {
        sqlx::query_as::<_, RollbackTarget>(&format!(
            "{SELECT} WHERE job = $1 ORDER BY created_at_ms DESC, apply_id DESC LIMIT 1"
        ))
        .bind(job)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query("latest_rollback"))
    }
}
