//! Executing a plan: one change per job, its steps in order, every side effect journaled.
//!
//! Architecture invariant (safety): before any call that changes a cluster, the store holds a
//! committed journal entry saying what is about to happen (for a submission: the exact job id);
//! after it, the outcome (for a stop: the savepoint path) is committed before the next step starts.
//! A crash at any instant therefore leaves either an entry whose outcome can be read back from
//! Flink (see [`Applier::resume`]) or a completed one. Submissions use caller-chosen job ids,
//! which Flink refuses to run twice, so settling a half-done submission never starts a second copy.
//!
//! Modules: `steps` runs one step (intent, call, outcome); `settle` finishes what a dead process
//! started (a pending step, unfinished applies); `jars` uploads jars once and builds run
//! requests; `records` keeps job records and savepoint lineage; `crash` is the fault-injection
//! hook of the crash tests. The journal's types live in [`crate::store::journal`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::flink::{FlinkClient, FlinkError};
use crate::git::RepoSource;
use crate::identity::JobId;
use crate::plan::{Action, Change, Plan, Step};
use crate::store::audit::{ChangeResult, RecordKind, cli_actor, record_origin};
use crate::store::{
    ApplyOutcome, JournalEntry, JournalStatus, NewApply, StepKind, Store, StoreError, Trigger,
};

mod crash;
mod jars;
mod lease;
#[cfg(test)]
mod migrate_tests;
mod records;
mod rollback;
#[cfg(test)]
mod rollback_tests;
mod settle;
mod steps;
#[cfg(test)]
mod tests;

pub use jars::{JarError, JarStage, plan_request, run_request};
pub use settle::Resumed;

use crate::clock::now_ms;

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
    #[error("{job}: {source}")]
    Step {
        job: String,
        #[source]
        source: StepError,
    },
    #[error("{job}: cannot read jar {jar}: {source}")]
    Jar {
        job: String,
        jar: String,
        #[source]
        source: Box<JarError>,
    },
    #[error("no client for cluster `{cluster}`")]
    NoCluster { cluster: String },
    /// A call that changes the cluster was sent and its answer was lost: whether Flink acted is
    /// unknown. The journal entry stays pending and the apply unfinished, so the next apply
    /// settles it from Flink's state before anything else.
    #[error("{job}: {}", unsettled(.what, .source))]
    Unsettled {
        job: String,
        what: String,
        #[source]
        source: Box<FlinkError>,
    },
    /// The new job did not become healthy and the previous definition was put back.
    #[error("{job}: {}", rolled_back(.reason, .job_id.as_ref(), .savepoint.as_deref()))]
    RolledBack {
        job: String,
        reason: String,
        /// The job the previous definition runs as again (none for a first deploy).
        job_id: Option<JobId>,
        savepoint: Option<String>,
    },
    /// The new job did not become healthy, and putting the previous definition back failed.
    #[error("{job}: {reason}; the rollback to the previous definition failed: {}", .source.detail())]
    RollbackFailed {
        job: String,
        reason: String,
        #[source]
        source: Box<ApplyError>,
    },
    /// A step after the stop failed: the job this change stopped is not running again.
    #[error("{job}: {}", left_stopped(.source, .savepoint.as_deref()))]
    LeftStopped {
        job: String,
        /// The savepoint (or retained checkpoint) the stop left, which the next apply restores.
        savepoint: Option<String>,
        #[source]
        source: Box<ApplyError>,
    },
}

/// `<what>; Flink did not answer (…). The outcome is unknown: run `weir apply` again …`.
fn unsettled(what: &str, source: &FlinkError) -> String {
    format!(
        "{what}; Flink did not answer ({source}). The outcome is unknown: run `weir apply` again \
         to settle it from Flink's state"
    )
}

/// `rolled back: <why>; the previous definition runs again as <id> (from <savepoint>)`.
fn rolled_back(reason: &str, job_id: Option<&JobId>, savepoint: Option<&str>) -> String {
    let from = savepoint.map(|s| format!(" from {s}")).unwrap_or_default();
    match job_id {
        Some(id) => format!(
            "rolled back: {reason}; the previous definition runs again as {id}{from}. The \
             change stays pending in the plan"
        ),
        None => format!(
            "rolled back: {reason}; the new job was cancelled and nothing was resubmitted (it \
             had no previous definition)"
        ),
    }
}

/// `<why>; the job is left stopped (savepoint …): run `weir apply` again …`.
fn left_stopped(source: &ApplyError, savepoint: Option<&str>) -> String {
    let state = match savepoint {
        Some(sp) => format!("its state is in {sp}, which the next apply restores"),
        None => "it has no savepoint".to_string(),
    };
    format!(
        "{}; the job is left stopped ({state}): fix the definition (or the cause above) and run \
         `weir apply` again",
        source.detail()
    )
}

/// Whether `e` leaves it open whether Flink acted on a call: no answer (a timeout, a dropped
/// connection), as opposed to an answer that refused it.
pub(crate) fn answer_lost(e: &FlinkError) -> bool {
    matches!(
        e,
        FlinkError::Timeout { .. }
            | FlinkError::Unreachable { .. }
            | FlinkError::WaitTimeout { .. }
    )
}

/// How long, after a submission whose answer was lost, weir looks for its job id before it
/// leaves the outcome unknown (for the next apply to settle).
pub const SUBMIT_SETTLE: Duration = Duration::from_secs(60);

/// Why a step cannot go on (weir's own refusals, as opposed to Flink's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("the plan has no definition to submit")]
    NoDefinition,
    #[error("nothing was submitted to wait for")]
    NothingSubmitted,
    #[error("no savepoint was produced by the stop step")]
    NoStopSavepoint,
    #[error(
        "upgradeMode last-state needs a completed, retained checkpoint and the cancelled job has \
         none; refusing to start without its state (use upgradeMode savepoint)"
    )]
    NoRetainedCheckpoint,
    #[error(
        "upgradeMode last-state: job {0} has no completed checkpoint; refusing to cancel it and \
         lose its state (enable checkpointing or use upgradeMode savepoint)"
    )]
    NoCompletedCheckpoint(JobId),
    #[error(
        "upgradeMode last-state: job {0} deletes its checkpoints on cancellation; refusing to \
         cancel it and lose its state. Set `upgradeMode: savepoint` for this change (a stop with \
         a savepoint keeps the state whatever the running job's settings); to use last-state \
         later, also set execution.checkpointing.externalized-checkpoint-retention: \
         RETAIN_ON_CANCELLATION, which applies to the job this change starts, not to the running \
         one"
    )]
    CheckpointsDeletedOnCancel(JobId),
    /// A resumed apply found the step journaled as failed by the earlier run.
    #[error("step {} ({kind}) had failed: {result}", seq + 1)]
    HadFailed {
        seq: u32,
        kind: StepKind,
        /// The journaled result, as stored.
        result: String,
    },
    #[error("journal entry for submit has no job id")]
    NoSubmittedId,
    #[error(
        "another copy of this definition, job {0}, is already active on the cluster (another weir \
         process or store applied it since the plan was made); not submitting a second copy. Run \
         `weir plan` again"
    )]
    AnotherCopyActive(JobId),
    #[error(
        "another weir apply ({holder}) is changing this job on the cluster right now; its lease \
         ends at {} unless it finishes first. Nothing was done; run `weir plan` again when it \
         has finished",
        crate::clock::rfc3339(*until_ms)
    )]
    LeaseHeld { holder: String, until_ms: i64 },
    #[error(
        "the interrupted submission {job_id} was never started and the definition has changed \
         since; not resubmitting it. Last savepoint: {}. Run `weir plan` again.",
        savepoint.as_deref().unwrap_or("none")
    )]
    DefinitionChanged {
        job_id: JobId,
        savepoint: Option<String>,
    },
    /// A `${env:NAME}` secret of the definition is not set in weir's environment.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

impl ApplyError {
    /// The error without the job's name, for texts that name the job already (a change's
    /// outcome, `job: FAILED: …`).
    pub fn detail(&self) -> String {
        match self {
            ApplyError::Flink { source, .. } => source.to_string(),
            ApplyError::Step { source, .. } => source.to_string(),
            ApplyError::Jar { jar, source, .. } => format!("cannot read jar {jar}: {source}"),
            ApplyError::LeftStopped {
                savepoint, source, ..
            } => left_stopped(source, savepoint.as_deref()),
            ApplyError::Unsettled { what, source, .. } => unsettled(what, source),
            ApplyError::RolledBack {
                reason,
                job_id,
                savepoint,
                ..
            } => rolled_back(reason, job_id.as_ref(), savepoint.as_deref()),
            ApplyError::RollbackFailed { reason, source, .. } => format!(
                "{reason}; the rollback to the previous definition failed: {}",
                source.detail()
            ),
            ApplyError::Store(_) | ApplyError::NoCluster { .. } => self.to_string(),
        }
    }

    fn step(job: &str, source: StepError) -> ApplyError {
        ApplyError::Step {
            job: job.to_string(),
            source,
        }
    }
}

/// A callback told of each change's outcome as it ends.
pub type ChangeDone = Arc<dyn Fn(&ChangeOutcome) + Send + Sync>;

/// The id of each jar on each cluster, found or uploaded once per apply: (cluster, jar name) →
/// a slot that the first submission fills while the others wait for it.
pub type JarIds =
    Arc<std::sync::Mutex<BTreeMap<(String, String), Arc<tokio::sync::Mutex<Option<String>>>>>>;

/// Each cluster's `/jobs/overview` as last read by a submission's second-copy check, shared by
/// the submissions of an apply that run within [`OVERVIEW_FRESH`] of it (so that creating many
/// jobs does not read the whole overview once per job).
pub type Overviews = Arc<
    tokio::sync::Mutex<BTreeMap<String, (std::time::Instant, Arc<Vec<crate::flink::JobOverview>>)>>,
>;

/// How long a cached overview serves the second-copy check.
const OVERVIEW_FRESH: Duration = Duration::from_secs(1);

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
    /// How long a submission's answer may take: Flink runs the program's main() inside
    /// `POST /jars/{id}/run`, so a slow main() outlasts the per-request timeout.
    pub run_timeout: Duration,
    /// After a submission whose answer was lost, how long to look for its job id before the
    /// outcome is left unknown (the apply then stays unfinished and the next one settles it).
    pub submit_settle: Duration,
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// Called as each change ends (before the apply as a whole is recorded).
    pub on_change_done: Option<ChangeDone>,
    /// Jars this apply found or uploaded (concurrent submissions of one jar list and upload it
    /// once, instead of each listing the cluster's jars and racing to upload duplicates).
    pub jar_ids: JarIds,
    /// Overviews read by the second-copy check before each submission.
    pub overviews: Overviews,
    pub trigger: Trigger,
    /// How URL jars are fetched and where they are kept.
    pub artifacts: crate::artifact::ArtifactSettings,
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
    /// Whether Flink acted on the change's last call is unknown ([`ApplyError::Unsettled`]):
    /// the apply stays unfinished and the next one settles it.
    #[serde(default)]
    pub unsettled: bool,
    /// The change was rolled back (its new job did not become healthy): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// The journal kind of a planned step.
pub fn step_kind(step: &Step) -> StepKind {
    match step {
        Step::StopWithSavepoint { .. } => StepKind::StopWithSavepoint,
        Step::Cancel { .. } => StepKind::Cancel,
        Step::Submit { .. } => StepKind::Submit,
        Step::AwaitRunning => StepKind::AwaitRunning,
        Step::Forget => StepKind::Forget,
    }
}

/// How often Flink is polled while waiting.
const POLL: Duration = Duration::from_millis(250);

/// A change's turn to act: one of the apply's `concurrency` turns and, in the daemon, one of the
/// process-wide slots; released while the change only watches its new job.
pub(crate) struct Turn {
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What earlier steps of one change produced, for the steps after them.
#[derive(Default)]
struct Carry {
    apply_id: String,
    stop_savepoint: Option<String>,
    latest_checkpoint: Option<String>,
    new_job_id: Option<JobId>,
    /// The job this change replaces was stopped or cancelled (by this run or an earlier one).
    stopped: bool,
    /// The journal seq of the first step (non-zero for the steps of a rollback, which follow
    /// the change's own).
    seq_base: u32,
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

    /// Progress for people: repo names and Flink's text, scrubbed of secrets (control
    /// characters are escaped where it is printed).
    fn say(&self, msg: &str) {
        (self.progress)(&crate::redact::text(msg));
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
            let actor = (self.trigger == Trigger::Cli).then(cli_actor).flatten();
            record_origin(
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

    /// Records how the apply ended, unless a change's outcome is unknown: then the apply stays
    /// unfinished (like one whose process died), and the next apply resumes it, settling the
    /// pending step from Flink's state before it plans anything new.
    async fn finish(&self, apply_id: &str, outcomes: &[ChangeOutcome]) -> Result<(), ApplyError> {
        if outcomes.iter().any(|o| o.unsettled) {
            self.say(&format!(
                "apply {apply_id} is left unfinished: Flink did not answer a call that changes \
                 the cluster; the next `weir apply` settles it first"
            ));
            return Ok(());
        }
        self.record_finish(apply_id, outcomes).await
    }

    async fn record_finish(
        &self,
        apply_id: &str,
        outcomes: &[ChangeOutcome],
    ) -> Result<(), ApplyError> {
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
        // `concurrency` changes act at once; a change watching its new job for the health
        // window gives its turn (and its process-wide slot) back, so that watches of many jobs
        // overlap instead of queueing.
        let turns = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        futures::stream::iter(plan.changes.iter())
            .map(|change| {
                let journal = journals.get(&change.job).unwrap_or(&empty);
                let turns = turns.clone();
                async move {
                    let turn = turns.acquire_owned().await.ok();
                    let slot = match &self.slots {
                        Some(slots) => slots.clone().acquire_owned().await.ok(),
                        None => None,
                    };
                    let mut turn = Some(Turn {
                        _turn: turn,
                        _slot: slot,
                    });
                    // Boxed: every change of the plan waits here at once, and the steps' state
                    // is ~10 KiB; only the changes that run hold it (BENCHMARKS.md, issue 14,
                    // seventh pass: 9.5 MiB of a daemon's startup heap at 1,000 jobs).
                    let result =
                        Box::pin(self.run_change(change, apply_id, journal, &mut turn)).await;
                    let outcome = match result {
                        Ok((carry, message)) => ChangeOutcome {
                            job: change.job.clone(),
                            action: change.action,
                            ok: true,
                            message,
                            new_job_id: carry.new_job_id,
                            savepoint: carry.stop_savepoint,
                            unsettled: false,
                            rolled_back: None,
                        },
                        Err(e) => {
                            // The job is named once: the error's own text names it too.
                            self.say(&format!("{}: FAILED: {}", change.job, e.detail()));
                            ChangeOutcome {
                                job: change.job.clone(),
                                action: change.action,
                                ok: false,
                                unsettled: matches!(e, ApplyError::Unsettled { .. }),
                                message: e.detail(),
                                new_job_id: match &e {
                                    ApplyError::RolledBack { job_id, .. } => *job_id,
                                    _ => None,
                                },
                                savepoint: None,
                                rolled_back: match &e {
                                    ApplyError::RolledBack { reason, .. } => Some(reason.clone()),
                                    _ => None,
                                },
                            }
                        }
                    };
                    if let Some(done) = &self.on_change_done {
                        done(&outcome);
                    }
                    outcome
                }
            })
            .buffer_unordered(plan.changes.len().max(1))
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
        turn: &mut Option<Turn>,
    ) -> Result<(Carry, String), ApplyError> {
        let mut carry = Carry {
            apply_id: apply_id.to_string(),
            ..Carry::default()
        };
        // Nothing is touched for a definition whose secrets cannot be put in (the plan made
        // with them set, applied where they are not).
        if let Some(desired) = &change.desired {
            crate::secrets::check_as_planned(desired)
                .map_err(|e| ApplyError::step(&change.job, StepError::Secret(e)))?;
        }
        // No side effect before this definition's lease on the cluster is ours.
        let client = self.client(&change.cluster)?;
        let lease = self.acquire_lease(change, apply_id, &client).await?;
        // A migrate acts on its old cluster too: the job's lease there as well.
        let old_lease = match &change.from_cluster {
            Some(from) => {
                let old = self.client(from)?;
                match self.acquire_lease(change, apply_id, &old).await {
                    Ok(lease) => Some((old, lease)),
                    Err(e) => {
                        self.release_lease(&client, lease).await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let result = match self.rollback_target(change, apply_id, journal).await {
            Ok(target) => {
                let result = self.run_steps(change, journal, &mut carry).await;
                self.guard(change, journal, &mut carry, target, result, turn)
                    .await
            }
            Err(e) => Err(e),
        };
        self.release_lease(&client, lease).await;
        if let Some((old, lease)) = old_lease {
            self.release_lease(&old, lease).await;
        }
        match result {
            Ok(message) => Ok((carry, message)),
            // A failure after the running job was stopped leaves nothing running: say so, with
            // the state the next apply starts from.
            Err(e)
                if carry.stopped
                    && !matches!(
                        e,
                        ApplyError::Unsettled { .. } | ApplyError::RolledBack { .. }
                    ) =>
            {
                Err(ApplyError::LeftStopped {
                    job: change.job.clone(),
                    savepoint: carry.stop_savepoint.or(carry.latest_checkpoint),
                    source: Box::new(e),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn run_steps(
        &self,
        change: &Change,
        journal: &[JournalEntry],
        carry: &mut Carry,
    ) -> Result<String, ApplyError> {
        let apply_id = carry.apply_id.clone();
        let apply_id = apply_id.as_str();
        let job = change.job.as_str();
        self.stage_jar(
            change,
            journal,
            carry.seq_base,
            &*self.client(&change.cluster)?,
        )
        .await?;
        for (seq, step) in change.steps.iter().enumerate() {
            let seq = carry.seq_base + seq as u32;
            // A migrate's stop acts on the old cluster, the rest on the new one.
            let client = self.client(change.step_cluster(step))?;
            let previous = journal.iter().rev().find(|e| e.seq == seq);
            if let Some(entry) = previous {
                match entry.status {
                    JournalStatus::Succeeded => {
                        settle::absorb_result(carry, entry);
                        self.rerecord(change, step, entry, carry).await?;
                        continue;
                    }
                    JournalStatus::Failed => {
                        let failed = StepError::HadFailed {
                            seq,
                            kind: step_kind(step),
                            result: entry.result_json.clone().unwrap_or_default(),
                        };
                        return Err(ApplyError::step(job, failed));
                    }
                    JournalStatus::Pending => {
                        self.say(&format!(
                            "{job}: resuming interrupted step {} ({})",
                            seq + 1,
                            step_kind(step)
                        ));
                        self.settle(change, step, entry, &client, carry).await?;
                        continue;
                    }
                }
            }
            self.run_step(change, apply_id, seq, step, &client, carry)
                .await?;
        }
        let message = match (&carry.new_job_id, &carry.stop_savepoint) {
            (Some(id), _) => format!("{} done: running as {id}", change.action),
            (None, Some(sp)) => format!("{} done: savepoint {sp}", change.action),
            _ => format!("{} done", change.action),
        };
        if carry.seq_base == 0 {
            self.say(&format!("{job}: {message}"));
        }
        Ok(message)
    }

    /// Fetches and uploads the jar a change will submit before its first step, so that a jar
    /// that cannot be had (unreachable URL, wrong digest, too large) fails the change while the
    /// running job is still untouched, not after it was stopped.
    async fn stage_jar(
        &self,
        change: &Change,
        journal: &[JournalEntry],
        seq_base: u32,
        client: &FlinkClient,
    ) -> Result<(), ApplyError> {
        let submits = change.steps.iter().enumerate().any(|(seq, step)| {
            matches!(step, Step::Submit { .. })
                && !journal
                    .iter()
                    .any(|e| e.seq == seq_base + seq as u32 && e.status == JournalStatus::Succeeded)
        });
        match (&change.desired, submits) {
            (Some(desired), true) => self
                .ensure_jar(&change.job, client, desired)
                .await
                .map(drop),
            _ => Ok(()),
        }
    }

    /// The Flink error of `job` as an apply error.
    fn flink(job: &str) -> impl Fn(FlinkError) -> ApplyError + '_ {
        move |source| ApplyError::Flink {
            job: job.to_string(),
            source: Box::new(source),
        }
    }
}
