//! Plans and applies (the audit log's spine) and the history that lists them.

use std::collections::BTreeSet;

use sqlx::{Any, Transaction};

use super::audit::HistoryFilter;
use super::{
    ApplyOutcome, ApplyRecord, HistoryEntry, NewApply, PlanRecord, Rejection, Store, StoreError,
};

/// Inserts the jobs a plan or apply touches, as a set (`insert` binds the record id and a job).
async fn insert_jobs(
    tx: &mut Transaction<'static, Any>,
    insert: &str,
    id: &str,
    jobs: &[String],
) -> Result<(), sqlx::Error> {
    for job in jobs.iter().collect::<BTreeSet<_>>() {
        sqlx::query(insert)
            .bind(id)
            .bind(job)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) const APPLY_SELECT: &str = "SELECT id, plan_id, started_at_ms, revision, triggered_by,
    finished_at_ms, outcome, error FROM applies";

impl Store {
    // ---- plans -------------------------------------------------------------------------------

    /// Records a plan and the jobs it touches.
    pub async fn insert_plan(&self, p: &PlanRecord) -> Result<(), StoreError> {
        const OP: &str = "insert_plan";
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::query(
            "INSERT INTO plans (id, created_at_ms, revision, triggered_by, summary, plan_json)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(p.created_at_ms)
        .bind(&p.revision)
        .bind(&p.trigger)
        .bind(&p.summary)
        // Diffs are redacted by the planner; warnings and errors may quote Flink or a known
        // secret value (the strings are scrubbed, the document stays the same JSON).
        .bind(crate::redact::json_text(&p.plan_json))
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        insert_jobs(
            &mut tx,
            "INSERT INTO plan_jobs (plan_id, job) VALUES ($1, $2)",
            &p.id,
            &p.job_names,
        )
        .await
        .map_err(self.query(OP))?;
        tx.commit().await.map_err(self.query(OP))
    }

    pub async fn plan(&self, id: &str) -> Result<Option<PlanRecord>, StoreError> {
        const OP: &str = "plan";
        let plan = sqlx::query_as::<_, PlanRecord>(
            "SELECT id, created_at_ms, revision, triggered_by, summary, plan_json
             FROM plans WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let Some(mut plan) = plan else {
            return Ok(None);
        };
        plan.job_names = self
            .names(
                "SELECT job FROM plan_jobs WHERE plan_id = $1 ORDER BY job",
                id,
                OP,
            )
            .await?;
        Ok(Some(plan))
    }

    // ---- applies -----------------------------------------------------------------------------

    /// Records the start of an apply. Its plan must exist.
    pub async fn insert_apply(&self, a: &NewApply) -> Result<(), StoreError> {
        const OP: &str = "insert_apply";
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::query(
            "INSERT INTO applies (id, plan_id, started_at_ms, revision, triggered_by)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&a.id)
        .bind(&a.plan_id)
        .bind(a.started_at_ms)
        .bind(&a.revision)
        .bind(&a.trigger)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        insert_jobs(
            &mut tx,
            "INSERT INTO apply_jobs (apply_id, job) VALUES ($1, $2)",
            &a.id,
            &a.job_names,
        )
        .await
        .map_err(self.query(OP))?;
        tx.commit().await.map_err(self.query(OP))
    }

    /// Records how an apply ended. Refused when the apply is unknown or already finished.
    pub async fn finish_apply(
        &self,
        id: &str,
        outcome: ApplyOutcome,
        error: Option<&str>,
        finished_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.finish_apply_with_changes(id, outcome, error, &[], finished_at_ms)
            .await
    }

    pub async fn apply(&self, id: &str) -> Result<Option<ApplyRecord>, StoreError> {
        const OP: &str = "apply";
        let apply = sqlx::query_as::<_, ApplyRecord>(&format!("{APPLY_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))?;
        match apply {
            None => Ok(None),
            Some(apply) => Ok(Some(self.with_jobs(apply, OP).await?)),
        }
    }

    /// Applies that never finished, oldest first: after a crash, recovery walks their journals.
    pub async fn unfinished_applies(&self) -> Result<Vec<ApplyRecord>, StoreError> {
        const OP: &str = "unfinished_applies";
        let applies = sqlx::query_as::<_, ApplyRecord>(&format!(
            "{APPLY_SELECT} WHERE finished_at_ms IS NULL ORDER BY started_at_ms, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let mut out = Vec::with_capacity(applies.len());
        for apply in applies {
            out.push(self.with_jobs(apply, OP).await?);
        }
        Ok(out)
    }

    /// The applies of one plan, oldest first (without their job names).
    pub async fn applies_of_plan(&self, plan_id: &str) -> Result<Vec<ApplyRecord>, StoreError> {
        sqlx::query_as::<_, ApplyRecord>(&format!(
            "{APPLY_SELECT} WHERE plan_id = $1 ORDER BY started_at_ms, id"
        ))
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("applies_of_plan"))
    }

    async fn with_jobs(
        &self,
        mut apply: ApplyRecord,
        op: &'static str,
    ) -> Result<ApplyRecord, StoreError> {
        apply.job_names = self
            .names(
                "SELECT job FROM apply_jobs WHERE apply_id = $1 ORDER BY job",
                &apply.id,
                op,
            )
            .await?;
        Ok(apply)
    }

    pub(super) async fn apply_rejection(
        &self,
        id: &str,
        op: &'static str,
    ) -> Result<Rejection, StoreError> {
        let finished = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT finished_at_ms FROM applies WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(op))?;
        Ok(match finished {
            None => Rejection::NotFound {
                what: "apply",
                id: id.to_string(),
            },
            Some(_) => Rejection::ApplyFinished { id: id.to_string() },
        })
    }

    // ---- history -----------------------------------------------------------------------------

    /// Plans and applies touching `job` (or all of them), newest first, at most `limit`.
    pub async fn history(
        &self,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history_filtered(&HistoryFilter {
            job: job.map(str::to_string),
            limit: Some(limit),
            ..HistoryFilter::default()
        })
        .await
    }

    /// Plans and applies as [`Store::history`] lists them, filtered by job and time, newest
    /// first (or oldest first).
    pub async fn history_filtered(
        &self,
        filter: &HistoryFilter,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let (plans, applies) = match filter.job {
            Some(_) => (
                "FROM plan_jobs pj JOIN plans p ON p.id = pj.plan_id WHERE pj.job = $1",
                "FROM apply_jobs aj JOIN applies a ON a.id = aj.apply_id WHERE aj.job = $1",
            ),
            None => (
                "FROM plans p WHERE $1 IS NULL",
                "FROM applies a WHERE $1 IS NULL",
            ),
        };
        let order = if filter.oldest_first {
            "at_ms ASC, sort_rank ASC, id ASC"
        } else {
            "at_ms DESC, sort_rank DESC, id DESC"
        };
        let sql = format!(
            "SELECT 'plan' AS kind, p.id AS id, p.created_at_ms AS at_ms, p.revision AS revision,
                    p.triggered_by AS triggered_by, p.summary AS summary_or_outcome,
                    NULL AS error, NULL AS plan_id, NULL AS finished_at_ms, 0 AS sort_rank
             {plans} AND ($2 IS NULL OR p.created_at_ms >= $2)
             UNION ALL
             SELECT 'apply', a.id, a.started_at_ms, a.revision, a.triggered_by,
                    COALESCE(a.outcome, 'unfinished'), a.error, a.plan_id, a.finished_at_ms, 1
             {applies} AND ($2 IS NULL OR a.started_at_ms >= $2)
             ORDER BY {order}
             LIMIT $3"
        );
        let limit = filter
            .limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(i64::MAX);
        sqlx::query_as::<_, HistoryEntry>(&sql)
            .bind(filter.job.as_deref())
            .bind(filter.since_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.query("history_filtered"))
    }
}
