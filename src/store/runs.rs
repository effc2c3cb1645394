//! Runs of batch jobs (schema version 7, `migrations/0007_runs.sql`): every submission of a
//! batch job and every scheduled run skipped while the previous one ran, with its outcome once
//! the Flink job ended. The scheduler reads the fire time of its last decision from here, so a
//! restarted daemon knows which fire times it missed.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunTrigger {
    /// A plan submitted the job (`weir apply`, a daemon reconcile).
    Apply,
    /// The job's schedule fired.
    Schedule,
    /// A fire time missed while the daemon was down, started once at start-up.
    CatchUp,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Apply => "apply",
            RunTrigger::Schedule => "schedule",
            RunTrigger::CatchUp => "catch-up",
        }
    }

    fn parse(s: &str) -> RunTrigger {
        match s {
            "schedule" => RunTrigger::Schedule,
            "catch-up" => RunTrigger::CatchUp,
            _ => RunTrigger::Apply,
        }
    }
}

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    Running,
    Finished,
    Failed,
    Canceled,
    /// Not started: the previous run still ran at the fire time.
    Skipped,
    /// Flink no longer lists the job and weir never saw it end.
    Unknown,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Finished => "finished",
            RunOutcome::Failed => "failed",
            RunOutcome::Canceled => "canceled",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> RunOutcome {
        match s {
            "running" => RunOutcome::Running,
            "finished" => RunOutcome::Finished,
            "failed" => RunOutcome::Failed,
            "canceled" => RunOutcome::Canceled,
            "skipped" => RunOutcome::Skipped,
            _ => RunOutcome::Unknown,
        }
    }
}

/// One run, as `weir runs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub job: String,
    pub cluster: String,
    /// The Flink job id; absent for a skipped run.
    pub job_id: Option<String>,
    pub trigger: RunTrigger,
    /// The schedule's fire time the run was for.
    pub due_ms: Option<i64>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// How long the run took, once it ended.
    pub duration_ms: Option<i64>,
    pub outcome: RunOutcome,
    /// Why a run was skipped.
    pub detail: Option<String>,
}

impl RunRecord {
    /// How long the run took, once it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.duration_ms
    }
}

/// A run to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub job: &'a str,
    pub cluster: &'a str,
    pub trigger: RunTrigger,
    pub due_ms: Option<i64>,
    pub at_ms: i64,
}

impl Store {
    /// Records the submission of Flink job `job_id` as a run. Idempotent: a resumed apply
    /// recording the same submission again changes nothing.
    pub async fn record_run(&self, run: NewRun<'_>, job_id: &str) -> Result<(), StoreError> {
        const OP: &str = "record_run";
        sqlx::query(
            "INSERT INTO runs (job, cluster, flink_job_id, trigger_kind, due_ms, started_at_ms,
                 outcome) VALUES ($1, $2, $3, $4, $5, $6, 'running')
             ON CONFLICT (flink_job_id) DO NOTHING",
        )
        .bind(run.job)
        .bind(run.cluster)
        .bind(job_id)
        .bind(run.trigger.as_str())
        .bind(run.due_ms)
        .bind(run.at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// Records a scheduled run that was not started, and why.
    pub async fn record_skipped_run(&self, run: NewRun<'_>, why: &str) -> Result<(), StoreError> {
        const OP: &str = "record_skipped_run";
        sqlx::query(
            "INSERT INTO runs (job, cluster, trigger_kind, due_ms, started_at_ms, ended_at_ms,
                 outcome, detail) VALUES ($1, $2, $3, $4, $5, $5, 'skipped', $6)",
        )
        .bind(run.job)
        .bind(run.cluster)
        .bind(run.trigger.as_str())
        .bind(run.due_ms)
        .bind(run.at_ms)
        .bind(why)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// Sets the outcome of the run of Flink job `job_id` (only while it is recorded running).
    pub async fn settle_run(
        &self,
        job_id: &str,
        outcome: RunOutcome,
        ended_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        const OP: &str = "settle_run";
        sqlx::query(
            "UPDATE runs SET outcome = $2, ended_at_ms = $3
             WHERE flink_job_id = $1 AND outcome = 'running'",
        )
        .bind(job_id)
        .bind(outcome.as_str())
        .bind(ended_at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// The runs still recorded as running (on every job).
    pub async fn open_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(
            "open_runs",
            "WHERE outcome = 'running' ORDER BY id",
            None,
            i64::MAX,
        )
        .await
    }

    /// The runs of `job`, newest first, at most `limit`.
    pub async fn runs(&self, job: &str, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(
            "runs",
            "WHERE job = $1 ORDER BY started_at_ms DESC, id DESC",
            Some(job),
            limit,
        )
        .await
    }

    /// The fire time of the scheduler's last decision (a run or a skip) for `job`.
    pub async fn last_fire_ms(&self, job: &str) -> Result<Option<i64>, StoreError> {
        const OP: &str = "last_fire_ms";
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(due_ms) FROM runs WHERE job = $1 AND trigger_kind IN ('schedule', 'catch-up')",
        )
        .bind(job)
        .fetch_one(&self.pool)
        .await
        .map_err(self.query(OP))
    }

    async fn select_runs(
        &self,
        op: &'static str,
        filter: &str,
        job: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT job, cluster, flink_job_id, trigger_kind, due_ms, started_at_ms, ended_at_ms,
                 outcome, detail FROM runs {filter} LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(job) = job {
            q = q.bind(job);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(self.query(op))?;
        rows.iter()
            .map(|r| {
                let started_at_ms: i64 = r.try_get("started_at_ms")?;
                let ended_at_ms: Option<i64> = r.try_get("ended_at_ms")?;
                Ok(RunRecord {
                    job: r.try_get("job")?,
                    cluster: r.try_get("cluster")?,
                    job_id: r.try_get("flink_job_id")?,
                    trigger: RunTrigger::parse(r.try_get::<&str, _>("trigger_kind")?),
                    due_ms: r.try_get("due_ms")?,
                    started_at_ms,
                    ended_at_ms,
                    duration_ms: ended_at_ms.map(|end| (end - started_at_ms).max(0)),
                    outcome: RunOutcome::parse(r.try_get::<&str, _>("outcome")?),
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.query(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(trigger: RunTrigger, due_ms: Option<i64>, at_ms: i64) -> NewRun<'static> {
        NewRun {
            job: "nightly",
            cluster: "local",
            trigger,
            due_ms,
            at_ms,
        }
    }

    #[tokio::test]
    async fn runs_are_recorded_settled_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.last_fire_ms("nightly").await.unwrap(), None);
        store
            .record_run(run(RunTrigger::Apply, None, 1_000), "aa")
            .await
            .unwrap();
        // Recording the same submission again (a resumed apply) adds nothing.
        store
            .record_run(run(RunTrigger::Apply, None, 1_500), "aa")
            .await
            .unwrap();
        store
            .record_run(run(RunTrigger::Schedule, Some(5_000), 5_100), "bb")
            .await
            .unwrap();
        store
            .record_skipped_run(
                run(RunTrigger::Schedule, Some(6_000), 6_050),
                "run bb is still running",
            )
            .await
            .unwrap();
        assert_eq!(store.open_runs().await.unwrap().len(), 2);
        store
            .settle_run("aa", RunOutcome::Finished, Some(4_000))
            .await
            .unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let runs = store.runs("nightly", 10).await.unwrap();
        let summary: Vec<(Option<&str>, RunOutcome, Option<i64>)> = runs
            .iter()
            .map(|r| (r.job_id.as_deref(), r.outcome, r.duration_ms()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, RunOutcome::Skipped, Some(0)),
                (Some("bb"), RunOutcome::Running, None),
                (Some("aa"), RunOutcome::Finished, Some(3_000)),
            ]
        );
        assert_eq!(runs[0].detail.as_deref(), Some("run bb is still running"));
        assert_eq!(store.last_fire_ms("nightly").await.unwrap(), Some(6_000));
        assert_eq!(store.runs("nightly", 1).await.unwrap().len(), 1);
        assert!(store.runs("other", 10).await.unwrap().is_empty());
    }
}
