//! The store's view of what an apply did: job records (current job id, definition, last
//! savepoint) and savepoint lineage. Every write here is idempotent, because a resumed apply
//! repeats it for a step journaled as done just before a crash.

use super::{Applier, ApplyError};
use crate::clock::now_ms;
use crate::identity::JobId;
use crate::plan::{Action, Change};
use crate::store::runs::{NewRun, RunTrigger};
use crate::store::{JobRecord, SavepointKind, SavepointRecord};

impl Applier {
    /// Records the savepoint a stop produced: in the lineage and as the job's last savepoint.
    /// Idempotent, because a resumed apply repeats it for a stop journaled just before a crash.
    pub(super) async fn record_stop(
        &self,
        change: &Change,
        job_id: &JobId,
        path: &str,
        apply_id: &str,
    ) -> Result<(), ApplyError> {
        self.insert_savepoint_once(SavepointRecord {
            job: change.job.clone(),
            path: path.to_string(),
            kind: SavepointKind::Savepoint,
            flink_job_id: job_id.to_string(),
            produced_by_apply: Some(apply_id.to_string()),
            at_ms: now_ms(),
            restores: Vec::new(),
        })
        .await?;
        let mut record = self.job_record(change).await?;
        if change.action == Action::StopDuplicate {
            // The extra copy's savepoint stays in the lineage only: the definition's state is
            // the kept copy's, which is now the job weir records as current.
            record.current_job_id = change.current_job.as_ref().map(|c| c.job_id.to_string());
            self.store.upsert_job(&record).await?;
            return Ok(());
        }
        if record.last_savepoint.as_deref() != Some(path) {
            record.last_savepoint = Some(path.to_string());
            record.last_savepoint_at_ms = Some(now_ms());
        }
        if change.action == Action::Suspend {
            record.suspended = true;
        }
        self.store.upsert_job(&record).await?;
        Ok(())
    }

    /// Records a submission: the job's current Flink job id and definition, and the restore in
    /// the savepoint lineage. Idempotent like [`Self::record_stop`].
    pub(super) async fn record_submit(
        &self,
        change: &Change,
        new_id: JobId,
        restore_path: Option<&str>,
        apply_id: &str,
    ) -> Result<(), ApplyError> {
        let mut record = self.job_record(change).await?;
        record.current_job_id = Some(new_id.to_string());
        // A migrate's job now lives on the new cluster.
        record.cluster = change.cluster.clone();
        if let Some(d) = &change.desired {
            record.spec_json = Some(serde_json::to_string(&d.redacted()).unwrap_or_default());
        }
        record.suspended = false;
        record.deleted = false;
        self.store.upsert_job(&record).await?;
        if change.desired.as_ref().is_some_and(|d| d.is_batch()) {
            self.record_run(change, new_id).await?;
        }
        if let Some(path) = restore_path {
            // A recover or resume restores the state its stopped predecessor left: a path weir
            // did not take itself is that job's own (found on the cluster), so the lineage
            // names the job that produced it.
            let produced_by = match change.action {
                Action::Recover | Action::Resume => change.current_job.as_ref().map(|c| c.job_id),
                _ => None,
            };
            self.note_restore(&change.job, path, apply_id, new_id, produced_by)
                .await?;
        }
        Ok(())
    }

    /// A batch job's submission is a run (`weir runs`): started by a plan, or by the schedule.
    async fn record_run(&self, change: &Change, new_id: JobId) -> Result<(), ApplyError> {
        let (trigger, due_ms) = match &change.scheduled_run {
            Some(r) if r.trigger == RunTrigger::CatchUp.as_str() => {
                (RunTrigger::CatchUp, Some(r.due_ms))
            }
            Some(r) => (RunTrigger::Schedule, Some(r.due_ms)),
            None => (RunTrigger::Apply, None),
        };
        let run = NewRun {
            job: &change.job,
            cluster: &change.cluster,
            trigger,
            due_ms,
            at_ms: now_ms(),
        };
        self.store.record_run(run, &new_id.to_string()).await?;
        Ok(())
    }

    /// Savepoint lineage: which job was started from `path`. Paths weir did not take itself
    /// (an initial savepoint, a checkpoint found on the cluster) are recorded on first use.
    async fn note_restore(
        &self,
        job: &str,
        path: &str,
        apply_id: &str,
        new_id: JobId,
        produced_by: Option<JobId>,
    ) -> Result<(), ApplyError> {
        self.insert_savepoint_once(SavepointRecord {
            job: job.into(),
            path: path.into(),
            kind: if path.contains("/chk-") {
                SavepointKind::Checkpoint
            } else {
                SavepointKind::Savepoint
            },
            flink_job_id: produced_by.map(|id| id.to_string()).unwrap_or_default(),
            produced_by_apply: None,
            at_ms: now_ms(),
            restores: Vec::new(),
        })
        .await?;
        self.store
            .mark_savepoint_restored(path, apply_id, &new_id.to_string(), now_ms())
            .await?;
        Ok(())
    }

    /// Records a savepoint in the lineage unless its path is there already (from the first run
    /// of a step that a resumed apply repeats, with another time).
    async fn insert_savepoint_once(&self, savepoint: SavepointRecord) -> Result<(), ApplyError> {
        let known = self
            .store
            .savepoints(&savepoint.job)
            .await?
            .iter()
            .any(|s| s.path == savepoint.path);
        if !known {
            self.store.insert_savepoint(&savepoint).await?;
        }
        Ok(())
    }

    pub(super) async fn forget(&self, change: &Change) -> Result<(), ApplyError> {
        let mut record = self.job_record(change).await?;
        record.deleted = true;
        record.current_job_id = None;
        self.store.upsert_job(&record).await?;
        Ok(())
    }

    async fn job_record(&self, change: &Change) -> Result<JobRecord, ApplyError> {
        Ok(self
            .store
            .job(&change.job)
            .await?
            .unwrap_or_else(|| JobRecord {
                name: change.job.clone(),
                cluster: change.cluster.clone(),
                current_job_id: None,
                spec_json: None,
                suspended: false,
                last_savepoint: None,
                last_savepoint_at_ms: None,
                updated_at_ms: now_ms(),
                deleted: false,
            }))
        .map(|mut r| {
            r.updated_at_ms = now_ms();
            r
        })
    }
}
