//! Executing a plan: one change per job, its steps in order, every side effect journaled.
//!
//! Architecture invariant (safety): before any call that changes a cluster, the store holds a
//! committed journal entry saying what is about to happen (for a submission: the exact job id);
//! after it, the outcome (for a stop: the savepoint path) is committed before the next step starts.
//! A crash at any instant therefore leaves either an entry whose outcome can be read back from
//! Flink (see [`resume`]) or a completed one. Submissions use caller-chosen job ids, which Flink
//! refuses to run twice, so settling a half-done submission never starts a second copy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::desired::{DesiredJob, JarLocation, JarRef};
use crate::flink::{FlinkClient, FlinkError, JobState, RunJar};
use crate::git::{RepoFiles, RepoSource};
use crate::identity::JobId;
use crate::plan::{self, Action, Change, Plan, Restore, Step};
use crate::store::audit::{ApplyEvent, ChangeResult, EVENT_RESUMED, RecordKind};
use crate::store::{
    ApplyOutcome, JobRecord, JournalEntry, JournalStatus, NewApply, NewJournalEntry, SavepointKind,
    SavepointRecord, StepStatus, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{job}: {source}")]
    Flink {
        job: String,
        #[source]
        source: Box<FlinkError>,
    },
    #[error("{job}: {message}")]
    Step { job: String, message: String },
    #[error("{job}: cannot read jar {jar}: {message}")]
    Jar {
        job: String,
        jar: String,
        message: String,
    },
    #[error("no client for cluster `{cluster}`")]
    NoCluster { cluster: String },
}

/// A callback told of each change's outcome as it ends.
pub type ChangeDone = Arc<dyn Fn(&ChangeOutcome) + Send + Sync>;

/// The id of each jar on each cluster, found or uploaded once per apply: (cluster, jar name) →
/// a slot that the first submission fills while the others wait for it.
pub type JarIds =
    Arc<std::sync::Mutex<BTreeMap<(String, String), Arc<tokio::sync::Mutex<Option<String>>>>>>;

/// Settings of one apply run.
pub struct Applier {
    pub store: Store,
    pub clients: BTreeMap<String, Arc<FlinkClient>>,
    pub source: Arc<RepoSource>,
    pub concurrency: usize,
    /// Shared by every apply of a process (the daemon runs applies of independent jobs side by
    /// side): a change takes a slot for as long as it runs, so `concurrency` bounds them all.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    pub savepoint_timeout: Duration,
    pub start_timeout: Duration,
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// Called as each change ends (before the apply as a whole is recorded).
    pub on_change_done: Option<ChangeDone>,
    /// Jars this apply found or uploaded (concurrent submissions of one jar list and upload it
    /// once, instead of each listing the cluster's jars and racing to upload duplicates).
    pub jar_ids: JarIds,
    pub trigger: String,
}

/// What happened to one change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeOutcome {
    pub job: String,
    pub action: Action,
    pub ok: bool,
    pub message: String,
    pub new_job_id: Option<JobId>,
    pub savepoint: Option<String>,
}

/// Journal kinds; stable strings, they are stored.
mod kind {
    pub const STOP: &str = "stop_with_savepoint";
    pub const CANCEL: &str = "cancel";
    pub const SUBMIT: &str = "submit";
    pub const AWAIT: &str = "await_running";
    pub const FORGET: &str = "forget";
}

fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::StopWithSavepoint { .. } => kind::STOP,
        Step::Cancel { .. } => kind::CANCEL,
        Step::Submit { .. } => kind::SUBMIT,
        Step::AwaitRunning => kind::AWAIT,
        Step::Forget => kind::FORGET,
    }
}

/// Jars larger than this are refused (Flink's default upload limit is far below it).
const MAX_JAR_BYTES: u64 = 1 << 30;

const POLL: Duration = Duration::from_millis(250);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Test hook for the crash-safety tests: `WEIR_FAULT_CRASH_AT=<point>` aborts the process (no
/// destructors, no flushing: as close to `kill -9` as a process can do to itself) when `point`
/// is reached. Points are `<before|after>:<step kind>` plus `sent:<step kind>` (the call reached
/// Flink, its outcome is not yet journaled).
fn crash_point(point: &str) {
    if let Ok(wanted) = std::env::var("WEIR_FAULT_CRASH_AT")
        && wanted == point
    {
        eprintln!("weir: fault injection: aborting at {point}");
        std::process::abort();
    }
}

/// What earlier steps of one change produced, for the steps after them.
#[derive(Default)]
struct Carry {
    apply_id: String,
    stop_savepoint: Option<String>,
    latest_checkpoint: Option<String>,
    new_job_id: Option<JobId>,
}

impl Applier {
    fn client(&self, cluster: &str) -> Result<Arc<FlinkClient>, ApplyError> {
        self.clients
            .get(cluster)
            .cloned()
            .ok_or_else(|| ApplyError::NoCluster {
                cluster: cluster.to_string(),
            })
    }

    fn say(&self, msg: &str) {
        (self.progress)(msg);
    }

    /// Records the plan and an apply, runs every change (independent jobs concurrently), and
    /// records the outcome. Returns the apply id and per-change outcomes.
    pub async fn apply(
        &self,
        plan: &Plan,
        apply_id: &str,
    ) -> Result<Vec<ChangeOutcome>, ApplyError> {
        let job_names: Vec<String> = plan.changes.iter().map(|c| c.job.clone()).collect();
        // Where the apply came from (commit author and message), unless the caller recorded it
        // already (e.g. with the API token's name as the actor).
        if self.store.origin(apply_id).await?.is_none() {
            let actor = (self.trigger == crate::audit::trigger::CLI)
                .then(crate::audit::cli_actor)
                .flatten();
            crate::audit::record_origin(
                &self.store,
                RecordKind::Apply,
                apply_id,
                &self.source,
                &plan.revision,
                actor,
                now_ms(),
            )
            .await?;
        }
        self.store
            .insert_apply(&NewApply {
                id: apply_id.to_string(),
                plan_id: plan.id.clone(),
                started_at_ms: now_ms(),
                revision: plan.revision.to_string(),
                trigger: self.trigger.clone(),
                job_names,
            })
            .await?;
        let outcomes = self.run_changes(plan, apply_id, &BTreeMap::new()).await;
        self.finish(apply_id, &outcomes).await?;
        Ok(outcomes)
    }

    async fn finish(&self, apply_id: &str, outcomes: &[ChangeOutcome]) -> Result<(), ApplyError> {
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{}: {}", o.job, o.message))
            .collect();
        let (outcome, error) = if failed.is_empty() {
            (ApplyOutcome::Succeeded, None)
        } else {
            (ApplyOutcome::Failed, Some(failed.join("; ")))
        };
        // How each change ended is recorded with the outcome, for the audit trail.
        let changes: Vec<ChangeResult> = outcomes
            .iter()
            .map(|o| ChangeResult {
                job: o.job.clone(),
                action: o.action.to_string(),
                ok: o.ok,
                message: o.message.clone(),
                new_job_id: o.new_job_id.map(|id| id.to_string()),
                savepoint: o.savepoint.clone(),
            })
            .collect();
        self.store
            .finish_apply_with_changes(apply_id, outcome, error.as_deref(), &changes, now_ms())
            .await?;
        Ok(())
    }

    async fn run_changes(
        &self,
        plan: &Plan,
        apply_id: &str,
        journals: &BTreeMap<String, Vec<JournalEntry>>,
    ) -> Vec<ChangeOutcome> {
        let empty = Vec::new();
        futures::stream::iter(plan.changes.iter())
            .map(|change| {
                let journal = journals.get(&change.job).unwrap_or(&empty);
                async move {
                    let _slot = match &self.slots {
                        Some(slots) => slots.clone().acquire_owned().await.ok(),
                        None => None,
                    };
                    let result = self.run_change(change, apply_id, journal).await;
                    let outcome = match result {
                        Ok((carry, message)) => ChangeOutcome {
                            job: change.job.clone(),
                            action: change.action,
                            ok: true,
                            message,
                            new_job_id: carry.new_job_id,
                            savepoint: carry.stop_savepoint,
                        },
                        Err(e) => {
                            self.say(&format!("{}: FAILED: {e}", change.job));
                            ChangeOutcome {
                                job: change.job.clone(),
                                action: change.action,
                                ok: false,
                                message: e.to_string(),
                                new_job_id: None,
                                savepoint: None,
                            }
                        }
                    };
                    if let Some(done) = &self.on_change_done {
                        done(&outcome);
                    }
                    outcome
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await
    }

    /// Runs the steps of one change in order. `journal` holds entries of an interrupted earlier
    /// run of the same change: finished steps are skipped (their results carried over), a
    /// pending one is settled against the cluster before anything else happens.
    async fn run_change(
        &self,
        change: &Change,
        apply_id: &str,
        journal: &[JournalEntry],
    ) -> Result<(Carry, String), ApplyError> {
        let client = self.client(&change.cluster)?;
        let mut carry = Carry {
            apply_id: apply_id.to_string(),
            ..Carry::default()
        };
        let job = change.job.as_str();
        for (seq, step) in change.steps.iter().enumerate() {
            let seq = seq as u32;
            let previous = journal.iter().rev().find(|e| e.seq == seq);
            if let Some(entry) = previous {
                match entry.status {
                    JournalStatus::Succeeded => {
                        absorb_result(&mut carry, step, entry);
                        self.rerecord(change, step, entry, &carry).await?;
                        continue;
                    }
                    JournalStatus::Failed => {
                        return Err(ApplyError::Step {
                            job: job.into(),
                            message: format!(
                                "step {} ({}) had failed: {}",
                                seq + 1,
                                step_kind(step),
                                entry.result_json.as_deref().unwrap_or("")
                            ),
                        });
                    }
                    JournalStatus::Pending => {
                        self.say(&format!(
                            "{job}: resuming interrupted step {} ({})",
                            seq + 1,
                            step_kind(step)
                        ));
                        self.settle(change, step, entry, &client, &mut carry)
                            .await?;
                        continue;
                    }
                }
            }
            self.run_step(change, apply_id, seq, step, &client, &mut carry)
                .await?;
        }
        let message = match (&carry.new_job_id, &carry.stop_savepoint) {
            (Some(id), _) => format!("{} done: running as {id}", change.action),
            (None, Some(sp)) => format!("{} done: savepoint {sp}", change.action),
            _ => format!("{} done", change.action),
        };
        self.say(&format!("{job}: {message}"));
        Ok((carry, message))
    }

    async fn journal_intent(
        &self,
        apply_id: &str,
        job: &str,
        seq: u32,
        step: &Step,
        detail: serde_json::Value,
    ) -> Result<i64, ApplyError> {
        crash_point(&format!("before:{}", step_kind(step)));
        let id = self
            .store
            .journal_intent(&NewJournalEntry {
                apply_id: apply_id.into(),
                job: job.into(),
                seq,
                kind: step_kind(step).into(),
                detail_json: detail.to_string(),
                at_ms: now_ms(),
            })
            .await?;
        Ok(id)
    }

    async fn journal_done(
        &self,
        entry: i64,
        step: &Step,
        status: StepStatus,
        result: serde_json::Value,
    ) -> Result<(), ApplyError> {
        self.store
            .journal_result(entry, status, &result.to_string(), now_ms())
            .await?;
        crash_point(&format!("after:{}", step_kind(step)));
        Ok(())
    }

    /// Journals a step as failed with Flink's error and returns that error.
    async fn fail(&self, entry: i64, step: &Step, job: &str, e: FlinkError) -> ApplyError {
        let result = json!({"error": e.to_string()});
        match self
            .journal_done(entry, step, StepStatus::Failed, result)
            .await
        {
            Ok(()) => ApplyError::Flink {
                job: job.to_string(),
                source: Box::new(e),
            },
            Err(store) => store,
        }
    }

    async fn run_step(
        &self,
        change: &Change,
        apply_id: &str,
        seq: u32,
        step: &Step,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        match step {
            Step::StopWithSavepoint { job_id, target_dir } => {
                let entry = self
                    .journal_intent(
                        apply_id,
                        job,
                        seq,
                        step,
                        json!({"jobId": job_id, "targetDir": target_dir}),
                    )
                    .await?;
                self.say(&format!("{job}: stopping {job_id} with a savepoint"));
                let request = match client
                    .stop_with_savepoint(job_id, target_dir.as_deref())
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(self.fail(entry, step, &change.job, e).await);
                    }
                };
                crash_point(&format!("sent:{}", kind::STOP));
                self.store
                    .journal_progress(
                        entry,
                        &json!({"jobId": job_id, "targetDir": target_dir, "requestId": request})
                            .to_string(),
                        now_ms(),
                    )
                    .await?;
                let location = self.await_savepoint(change, client, job_id, &request).await;
                self.finish_stop(change, entry, step, job_id, location, carry)
                    .await
            }
            Step::Cancel { job_id } => {
                // last-state restores from the latest checkpoint, which must outlive the cancel.
                let needs_checkpoint = change.steps.iter().any(|s| {
                    matches!(
                        s,
                        Step::Submit {
                            restore: Restore::LatestCheckpoint,
                            ..
                        }
                    )
                });
                if needs_checkpoint {
                    self.check_retained_checkpoint(job, client, job_id).await?;
                }
                let entry = self
                    .journal_intent(apply_id, job, seq, step, json!({"jobId": job_id}))
                    .await?;
                self.say(&format!("{job}: cancelling {job_id}"));
                if let Err(e) = client.cancel(job_id).await {
                    return Err(self.fail(entry, step, &change.job, e).await);
                }
                crash_point(&format!("sent:{}", kind::CANCEL));
                self.finish_cancel(change, entry, step, job_id, client, carry)
                    .await
            }
            Step::Submit {
                parallelism,
                restore,
            } => {
                let desired = change.desired.as_ref().ok_or_else(|| ApplyError::Step {
                    job: job.into(),
                    message: "the plan has no definition to submit".into(),
                })?;
                let restore_path = self.restore_path(job, restore, carry)?;
                let jar_id = self.ensure_jar(job, client, desired.jar()).await?;
                let nonce: u32 = rand::random::<u32>() & 0x00ff_ffff;
                let ident = plan::submission_identity(desired, nonce);
                debug_assert_eq!(u32::from(ident.parallelism), *parallelism);
                let new_id = ident.job_id();
                let entry = self
                    .journal_intent(
                        apply_id,
                        job,
                        seq,
                        step,
                        json!({"jobId": new_id, "jarId": jar_id, "savepointPath": restore_path, "parallelism": parallelism}),
                    )
                    .await?;
                self.say(&format!(
                    "{job}: submitting as {new_id}{}",
                    restore_path
                        .as_ref()
                        .map(|p| format!(" from {p}"))
                        .unwrap_or_default()
                ));
                let sent = client
                    .run_jar(&jar_id, &run_request(desired, new_id, restore_path.clone()))
                    .await;
                crash_point(&format!("sent:{}", kind::SUBMIT));
                self.finish_submit(
                    change,
                    entry,
                    step,
                    new_id,
                    restore_path,
                    sent,
                    client,
                    carry,
                )
                .await
            }
            Step::AwaitRunning => {
                let id = carry.new_job_id.ok_or_else(|| ApplyError::Step {
                    job: job.into(),
                    message: "nothing was submitted to wait for".into(),
                })?;
                let entry = self
                    .journal_intent(apply_id, job, seq, step, json!({"jobId": id}))
                    .await?;
                self.finish_await(change, entry, step, id, client).await
            }
            Step::Forget => {
                let entry = self
                    .journal_intent(apply_id, job, seq, step, json!({}))
                    .await?;
                self.forget(change).await?;
                self.journal_done(entry, step, StepStatus::Succeeded, json!({}))
                    .await
            }
        }
    }

    async fn await_savepoint(
        &self,
        change: &Change,
        client: &FlinkClient,
        job_id: &JobId,
        request: &str,
    ) -> Result<String, FlinkError> {
        let job = change.job.clone();
        let progress = self.progress.clone();
        client
            .wait_for_savepoint(
                job_id,
                request,
                self.savepoint_timeout,
                POLL,
                move |waited: Duration| {
                    if waited.as_millis() % 5000 < POLL.as_millis() {
                        progress(&format!(
                            "{job}: waiting for the savepoint ({}s)",
                            waited.as_secs()
                        ))
                    }
                },
            )
            .await
    }

    async fn finish_stop(
        &self,
        change: &Change,
        entry: i64,
        step: &Step,
        job_id: &JobId,
        location: Result<String, FlinkError>,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        match location {
            Ok(path) => {
                // The savepoint is recorded before anything else happens (safety invariant 1).
                self.journal_done(
                    entry,
                    step,
                    StepStatus::Succeeded,
                    json!({"savepoint": path}),
                )
                .await?;
                self.record_stop(change, job_id, &path, &carry.apply_id)
                    .await?;
                self.say(&format!("{job}: savepoint {path}"));
                carry.stop_savepoint = Some(path);
                Ok(())
            }
            Err(e) => Err(self.fail(entry, step, &change.job, e).await),
        }
    }

    async fn finish_cancel(
        &self,
        change: &Change,
        entry: i64,
        step: &Step,
        job_id: &JobId,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let state = client
            .wait_for_state(
                job_id,
                &[JobState::Canceled, JobState::Failed, JobState::Finished],
                self.start_timeout,
                POLL,
                |_, _| {},
            )
            .await;
        if let Err(e) = state {
            return Err(self.fail(entry, step, &change.job, e).await);
        }
        let checkpoint = client
            .checkpoints(job_id)
            .await
            .ok()
            .and_then(|c| c.completed.and_then(|l| l.external_path));
        self.journal_done(
            entry,
            step,
            StepStatus::Succeeded,
            json!({"latestCheckpoint": checkpoint}),
        )
        .await?;
        if let Some(path) = &checkpoint {
            self.store
                .insert_savepoint(&SavepointRecord {
                    job: job.into(),
                    path: path.clone(),
                    kind: SavepointKind::Checkpoint,
                    flink_job_id: job_id.to_string(),
                    produced_by_apply: Some(carry.apply_id.clone()),
                    at_ms: now_ms(),
                    restores: Vec::new(),
                })
                .await?;
        }
        carry.latest_checkpoint = checkpoint;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_submit(
        &self,
        change: &Change,
        entry: i64,
        step: &Step,
        new_id: JobId,
        restore_path: Option<String>,
        sent: Result<JobId, FlinkError>,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        if let Err(e) = sent {
            // A timeout or a duplicate-id refusal can hide a submission that did happen.
            match client.job_state(&new_id).await {
                Ok(Some(state)) if crate::observe::is_active(&state) => {}
                _ => {
                    return Err(self.fail(entry, step, &change.job, e).await);
                }
            }
        }
        self.journal_done(
            entry,
            step,
            StepStatus::Succeeded,
            json!({"jobId": new_id, "savepointPath": restore_path}),
        )
        .await?;
        self.record_submit(change, new_id, restore_path.as_deref(), &carry.apply_id)
            .await?;
        carry.new_job_id = Some(new_id);
        Ok(())
    }

    async fn finish_await(
        &self,
        change: &Change,
        entry: i64,
        step: &Step,
        id: JobId,
        client: &FlinkClient,
    ) -> Result<(), ApplyError> {
        let job = change.job.clone();
        let progress = self.progress.clone();
        let job2 = job.clone();
        let state = client
            .wait_for_state(
                &id,
                &[JobState::Running],
                self.start_timeout,
                POLL,
                move |state, waited| {
                    if waited.as_millis() % 5000 < POLL.as_millis() {
                        let seen = state
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "not yet known".into());
                        progress(&format!(
                            "{job2}: waiting for RUNNING, now {seen} ({}s)",
                            waited.as_secs()
                        ))
                    }
                },
            )
            .await;
        let state = match state {
            Ok(_) => self.await_tasks(client, &id).await,
            Err(e) => Err(e),
        };
        match state {
            Ok(()) => {
                self.journal_done(
                    entry,
                    step,
                    StepStatus::Succeeded,
                    json!({"state": "RUNNING"}),
                )
                .await
            }
            Err(e) => Err(self.fail(entry, step, &change.job, e).await),
        }
    }

    /// Repeats the bookkeeping of a step that was journaled as done just before a crash.
    async fn rerecord(
        &self,
        change: &Change,
        step: &Step,
        entry: &JournalEntry,
        carry: &Carry,
    ) -> Result<(), ApplyError> {
        let result: serde_json::Value = entry
            .result_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        match step {
            Step::StopWithSavepoint { job_id, .. } => {
                if let Some(path) = &carry.stop_savepoint {
                    self.record_stop(change, job_id, path, &carry.apply_id)
                        .await?;
                }
            }
            Step::Submit { .. } => {
                if let Some(id) = carry.new_job_id {
                    let restore = result.get("savepointPath").and_then(|v| v.as_str());
                    self.record_submit(change, id, restore, &carry.apply_id)
                        .await?;
                }
            }
            Step::Forget => self.forget(change).await?,
            Step::Cancel { .. } | Step::AwaitRunning => {}
        }
        Ok(())
    }

    /// Records the savepoint a stop produced: in the lineage and as the job's last savepoint.
    /// Idempotent, because a resumed apply repeats it for a stop journaled just before a crash.
    async fn record_stop(
        &self,
        change: &Change,
        job_id: &JobId,
        path: &str,
        apply_id: &str,
    ) -> Result<(), ApplyError> {
        let known = self
            .store
            .savepoints(&change.job)
            .await?
            .iter()
            .any(|s| s.path == path);
        if !known {
            self.store
                .insert_savepoint(&SavepointRecord {
                    job: change.job.clone(),
                    path: path.to_string(),
                    kind: SavepointKind::Savepoint,
                    flink_job_id: job_id.to_string(),
                    produced_by_apply: Some(apply_id.to_string()),
                    at_ms: now_ms(),
                    restores: Vec::new(),
                })
                .await?;
        }
        let mut record = self.job_record(change).await?;
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
    async fn record_submit(
        &self,
        change: &Change,
        new_id: JobId,
        restore_path: Option<&str>,
        apply_id: &str,
    ) -> Result<(), ApplyError> {
        let mut record = self.job_record(change).await?;
        record.current_job_id = Some(new_id.to_string());
        if let Some(d) = &change.desired {
            record.spec_json = Some(serde_json::to_string(&d.redacted()).unwrap_or_default());
        }
        record.suspended = false;
        record.deleted = false;
        self.store.upsert_job(&record).await?;
        if let Some(path) = restore_path {
            self.note_restore(&change.job, path, apply_id, new_id)
                .await?;
        }
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
    ) -> Result<(), ApplyError> {
        let known = self
            .store
            .savepoints(job)
            .await?
            .iter()
            .any(|s| s.path == path);
        if !known {
            self.store
                .insert_savepoint(&SavepointRecord {
                    job: job.into(),
                    path: path.into(),
                    kind: if path.contains("/chk-") {
                        SavepointKind::Checkpoint
                    } else {
                        SavepointKind::Savepoint
                    },
                    flink_job_id: String::new(),
                    produced_by_apply: None,
                    at_ms: now_ms(),
                    restores: Vec::new(),
                })
                .await?;
        }
        self.store
            .mark_savepoint_restored(path, apply_id, &new_id.to_string(), now_ms())
            .await?;
        Ok(())
    }

    async fn forget(&self, change: &Change) -> Result<(), ApplyError> {
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

    fn restore_path(
        &self,
        job: &str,
        restore: &Restore,
        carry: &Carry,
    ) -> Result<Option<String>, ApplyError> {
        match restore {
            Restore::None => Ok(None),
            Restore::Path { path } => Ok(Some(path.clone())),
            Restore::StopSavepoint => carry.stop_savepoint.clone().map(Some).ok_or_else(|| ApplyError::Step {
                job: job.into(),
                message: "no savepoint was produced by the stop step".into(),
            }),
            Restore::LatestCheckpoint => carry.latest_checkpoint.clone().map(Some).ok_or_else(|| ApplyError::Step {
                job: job.into(),
                message: "upgradeMode last-state needs a completed, retained checkpoint and the cancelled \
                          job has none; refusing to start without its state (use upgradeMode savepoint)"
                    .into(),
            }),
        }
    }

    /// Refuses a last-state upgrade up front when cancelling would lose the state.
    async fn check_retained_checkpoint(
        &self,
        job: &str,
        client: &FlinkClient,
        job_id: &JobId,
    ) -> Result<(), ApplyError> {
        let flink = |source| ApplyError::Flink {
            job: job.to_string(),
            source: Box::new(source),
        };
        let summary = client.checkpoints(job_id).await.map_err(flink)?;
        if summary.completed.is_none() {
            return Err(ApplyError::Step {
                job: job.into(),
                message: format!(
                    "upgradeMode last-state: job {job_id} has no completed checkpoint; refusing to cancel it \
                     and lose its state (enable checkpointing or use upgradeMode savepoint)"
                ),
            });
        }
        if let Ok(Some(false)) = client.checkpoints_retained_on_cancel(job_id).await {
            return Err(ApplyError::Step {
                job: job.into(),
                message: format!(
                    "upgradeMode last-state: job {job_id} deletes its checkpoints on cancellation; refusing to \
                     cancel it (set execution.checkpointing.externalized-checkpoint-retention: \
                     RETAIN_ON_CANCELLATION or use upgradeMode savepoint)"
                ),
            });
        }
        Ok(())
    }

    /// Uploads the jar unless the cluster already has this exact content (named by its hash).
    async fn ensure_jar(
        &self,
        job: &str,
        client: &FlinkClient,
        jar: &JarRef,
    ) -> Result<String, ApplyError> {
        let name = format!("weir-{}-{}", &jar.sha256[..16], jar.file_name());
        let flink = |source| ApplyError::Flink {
            job: job.to_string(),
            source: Box::new(source),
        };
        let slot = self
            .jar_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((client.name().to_string(), name.clone()))
            .or_default()
            .clone();
        let mut known = slot.lock().await;
        if let Some(id) = known.as_ref() {
            return Ok(id.clone());
        }
        let id = match client
            .list_jars()
            .await
            .map_err(flink)?
            .into_iter()
            .find(|j| j.name == name)
        {
            Some(existing) => existing.id,
            None => {
                let bytes = self.jar_bytes(job, jar).await?;
                self.say(&format!(
                    "{job}: uploading {} ({} KiB)",
                    jar.file_name(),
                    bytes.len() / 1024
                ));
                client.upload_jar(&name, bytes).await.map_err(flink)?
            }
        };
        *known = Some(id.clone());
        Ok(id)
    }

    async fn jar_bytes(&self, job: &str, jar: &JarRef) -> Result<Vec<u8>, ApplyError> {
        let err = |message: String| ApplyError::Jar {
            job: job.into(),
            jar: jar.file_name().into(),
            message,
        };
        let bytes = match &jar.location {
            JarLocation::Repo { path } => {
                self.source
                    .read(path, MAX_JAR_BYTES)
                    .map_err(|e| err(e.to_string()))?
                    .bytes
            }
            JarLocation::Url { url } => fetch_url(url).await.map_err(err)?,
        };
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if !digest.eq_ignore_ascii_case(&jar.sha256) {
            return Err(err(format!("sha256 is {digest}, expected {}", jar.sha256)));
        }
        Ok(bytes)
    }

    /// Determines the outcome of a step whose intent was journaled but whose result was not
    /// (the process died in between), records it, and carries its result on.
    async fn settle(
        &self,
        change: &Change,
        step: &Step,
        entry: &JournalEntry,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let detail: serde_json::Value =
            serde_json::from_str(&entry.detail_json).unwrap_or_default();
        let flink = |source| ApplyError::Flink {
            job: job.to_string(),
            source: Box::new(source),
        };
        match step {
            Step::StopWithSavepoint { job_id, target_dir } => {
                let state = client.job_state(job_id).await.map_err(flink)?;
                let location = match (detail.get("requestId").and_then(|v| v.as_str()), state) {
                    // Flink knows the request: its outcome is the truth.
                    (Some(request), _) => {
                        self.await_savepoint(change, client, job_id, request).await
                    }
                    // The stop may have been sent without its request id being recorded, or
                    // never sent. A stop in flight ends the job within seconds, so wait a little
                    // before deciding it was never sent.
                    (None, state) => {
                        let state = if state == Some(JobState::Running) {
                            self.wait_while_running(client, job_id, Duration::from_secs(15))
                                .await?
                        } else {
                            state
                        };
                        let mut location = Err(FlinkError::SavepointFailed {
                            job: *job_id,
                            cause: "not attempted".into(),
                        });
                        if state == Some(JobState::Running) {
                            location = match client
                                .stop_with_savepoint(job_id, target_dir.as_deref())
                                .await
                            {
                                Ok(request) => {
                                    self.store
                                        .journal_progress(
                                            entry.id,
                                            &json!({"jobId": job_id, "targetDir": target_dir, "requestId": request})
                                                .to_string(),
                                            now_ms(),
                                        )
                                        .await?;
                                    self.await_savepoint(change, client, job_id, &request).await
                                }
                                Err(e) => Err(e),
                            };
                        }
                        if location.is_err() {
                            // Stopped (or stopping) already: the savepoint it stopped with.
                            let stopped = client
                                .wait_for_state(
                                    job_id,
                                    &[JobState::Finished, JobState::Canceled, JobState::Failed],
                                    Duration::from_secs(30),
                                    POLL,
                                    |_, _| {},
                                )
                                .await;
                            if stopped.is_ok() {
                                location = self.stopped_savepoint(client, job_id).await;
                            }
                        }
                        location
                    }
                };
                self.finish_stop(change, entry.id, step, job_id, location, carry)
                    .await
            }
            Step::Cancel { job_id } => {
                if let Some(state) = client.job_state(job_id).await.map_err(flink)?
                    && crate::observe::is_active(&state)
                {
                    client.cancel(job_id).await.map_err(flink)?;
                }
                self.finish_cancel(change, entry.id, step, job_id, client, carry)
                    .await
            }
            Step::Submit { .. } => {
                let recorded: Option<JobId> = detail
                    .get("jobId")
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok());
                let Some(new_id) = recorded else {
                    return Err(ApplyError::Step {
                        job: job.into(),
                        message: "journal entry for submit has no job id".into(),
                    });
                };
                let restore_path = detail
                    .get("savepointPath")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                let sent = match client.job_state(&new_id).await.map_err(flink)? {
                    Some(_) => Ok(new_id),
                    None => {
                        // Never reached Flink: send the same submission again, with the same id, but
                        // only if the definition still produces that id.
                        let desired = change.desired.as_ref().ok_or_else(|| ApplyError::Step {
                            job: job.into(),
                            message: "the plan has no definition to submit".into(),
                        })?;
                        let ident = crate::identity::Identity::decode(&new_id);
                        let expected =
                            ident.map(|i| plan::submission_identity(desired, i.nonce).job_id());
                        if expected != Some(new_id) {
                            return Err(ApplyError::Step {
                                job: job.into(),
                                message: format!(
                                    "the interrupted submission {new_id} was never started and the definition has \
                                     changed since; not resubmitting it. Last savepoint: {}. Run `weir plan` again.",
                                    restore_path.as_deref().unwrap_or("none")
                                ),
                            });
                        }
                        let jar_id = self.ensure_jar(job, client, desired.jar()).await?;
                        client
                            .run_jar(&jar_id, &run_request(desired, new_id, restore_path.clone()))
                            .await
                    }
                };
                self.finish_submit(
                    change,
                    entry.id,
                    step,
                    new_id,
                    restore_path,
                    sent,
                    client,
                    carry,
                )
                .await
            }
            Step::AwaitRunning => {
                let id = carry.new_job_id.ok_or_else(|| ApplyError::Step {
                    job: job.into(),
                    message: "nothing was submitted to wait for".into(),
                })?;
                self.finish_await(change, entry.id, step, id, client).await
            }
            Step::Forget => {
                self.forget(change).await?;
                self.journal_done(entry.id, step, StepStatus::Succeeded, json!({}))
                    .await
            }
        }
    }

    /// Polls the job's state until it is no longer RUNNING or `limit` passed; returns the last
    /// state seen (`None`: unknown to the cluster).
    async fn wait_while_running(
        &self,
        client: &FlinkClient,
        id: &JobId,
        limit: Duration,
    ) -> Result<Option<JobState>, ApplyError> {
        let started = Instant::now();
        loop {
            let state = client.job_state(id).await.map_err(|e| ApplyError::Flink {
                job: id.to_string(),
                source: Box::new(e),
            })?;
            if state != Some(JobState::Running) || started.elapsed() > limit {
                return Ok(state);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every task of a RUNNING job is deployed and running.
    async fn await_tasks(&self, client: &FlinkClient, id: &JobId) -> Result<(), FlinkError> {
        let started = Instant::now();
        loop {
            match client.task_progress(id).await? {
                Some((JobState::Running, true)) => return Ok(()),
                // A job that fails while its tasks start will not run: say so now, not at the
                // start timeout.
                Some((state, _)) if state.is_globally_terminal() => {
                    let cause = if state == JobState::Failed {
                        client.root_exception(id).await.ok().flatten()
                    } else {
                        None
                    };
                    return Err(FlinkError::JobTerminated {
                        job: *id,
                        state,
                        cause,
                    });
                }
                _ => {}
            }
            if started.elapsed() > self.start_timeout {
                return Err(FlinkError::WaitTimeout {
                    what: format!("all tasks of job {id} to run"),
                    after: self.start_timeout,
                    last: "some tasks are still being deployed".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The savepoint a job stopped with, read back from its checkpoint statistics. Flink
    /// updates them a few seconds after the job finished, so this polls for a while.
    async fn stopped_savepoint(
        &self,
        client: &FlinkClient,
        job_id: &JobId,
    ) -> Result<String, FlinkError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let summary = client.checkpoints(job_id).await?;
            if let Some(path) = summary.savepoint.and_then(|s| s.external_path) {
                return Ok(path);
            }
            if Instant::now() > deadline {
                return Err(FlinkError::SavepointFailed {
                    job: *job_id,
                    cause: "the job stopped but Flink reports no savepoint for it".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Finishes every apply an earlier process left unfinished. Changes that had started are
    /// completed from their journal (a pending step is settled against the cluster first);
    /// changes that had not started are left to the next plan. Returns one line per change.
    pub async fn resume(
        &self,
        load_plan: impl Fn(&str) -> Option<Plan>,
    ) -> Result<Vec<String>, ApplyError> {
        let mut report = Vec::new();
        for apply in self.store.unfinished_applies().await? {
            let entries = self.store.journal(&apply.id).await?;
            let mut journals: BTreeMap<String, Vec<JournalEntry>> = BTreeMap::new();
            for e in entries {
                journals.entry(e.job.clone()).or_default().push(e);
            }
            let Some(mut plan) = load_plan(&apply.plan_id) else {
                let msg = format!(
                    "apply {} (plan {}) was interrupted and its plan cannot be loaded for the current repo; \
                     journal: {}",
                    apply.id,
                    apply.plan_id,
                    describe_journal(&journals)
                );
                self.store
                    .finish_apply(&apply.id, ApplyOutcome::Interrupted, Some(&msg), now_ms())
                    .await?;
                report.push(msg);
                continue;
            };
            self.say(&format!(
                "resuming interrupted apply {} of plan {}",
                apply.id, plan.id
            ));
            self.store
                .insert_apply_event(&ApplyEvent {
                    apply_id: apply.id.clone(),
                    at_ms: now_ms(),
                    kind: EVENT_RESUMED.into(),
                    message: format!(
                        "the process running the apply stopped before finishing it; a later apply \
                         (trigger {}) resumed it from the journal ({} change(s) had started)",
                        self.trigger,
                        journals.len()
                    ),
                })
                .await?;
            plan.changes.retain(|c| journals.contains_key(&c.job));
            let outcomes = self.run_changes(&plan, &apply.id, &journals).await;
            for o in &outcomes {
                report.push(format!(
                    "apply {}: {} {}: {}",
                    apply.id,
                    o.job,
                    if o.ok { "completed" } else { "failed" },
                    o.message
                ));
            }
            self.finish(&apply.id, &outcomes).await?;
        }
        Ok(report)
    }
}

fn describe_journal(journals: &BTreeMap<String, Vec<JournalEntry>>) -> String {
    journals
        .iter()
        .map(|(job, entries)| {
            let last = entries
                .last()
                .map(|e| format!("step {} {} {:?}", e.seq + 1, e.kind, e.status))
                .unwrap_or_default();
            format!("{job}: {last}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn absorb_result(carry: &mut Carry, step: &Step, entry: &JournalEntry) {
    let result: serde_json::Value = entry
        .result_json
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default();
    match step {
        Step::StopWithSavepoint { .. } => {
            carry.stop_savepoint = result
                .get("savepoint")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }
        Step::Cancel { .. } => {
            carry.latest_checkpoint = result
                .get("latestCheckpoint")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }
        Step::Submit { .. } => {
            carry.new_job_id = result
                .get("jobId")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok())
        }
        Step::AwaitRunning | Step::Forget => {}
    }
}

fn run_request(desired: &DesiredJob, job_id: JobId, savepoint: Option<String>) -> RunJar {
    let mut config = desired.flink_configuration.clone();
    config
        .entry("pipeline.name".into())
        .or_insert_with(|| desired.name.clone());
    RunJar {
        entry_class: desired.entry_class().map(str::to_string),
        program_args_list: desired.program_args(),
        parallelism: Some(desired.parallelism),
        job_id: Some(job_id),
        savepoint_path: savepoint,
        allow_non_restored_state: desired.allow_non_restored_state,
        flink_configuration: config,
    }
}

async fn fetch_url(url: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = url.strip_prefix("file://") {
        return tokio::fs::read(path)
            .await
            .map_err(|e| format!("{path}: {e}"));
    }
    let response = reqwest::get(url).await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("{url}: {e}"))
}

/// Elapsed-time helper for progress lines.
pub fn since(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}
