//! The plan and its parts: what the planner returns, what is saved, rendered and applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredJob, DesiredState, Revision};
use crate::identity::JobId;
use crate::observe::{JobState, Observation};
use crate::spec::UpgradeMode;

/// What weir remembers of a job from earlier applies (from the store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHistory {
    pub cluster: String,
    pub current_job_id: Option<JobId>,
    /// The definition last applied, for field-level diffs.
    pub spec: Option<DesiredJob>,
    /// weir itself suspended the job (as opposed to it stopping on its own or behind weir's back).
    pub suspended: bool,
    pub last_savepoint: Option<String>,
    /// The savepoint weir itself took of each Flink job it stopped (from the savepoint
    /// lineage), newest per job. A job found FINISHED with an entry here was stopped by weir; the
    /// path is that job's own final state, which `last_savepoint` is not always (it may name the
    /// savepoint the job was started from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stopped_by_weir: BTreeMap<JobId, String>,
    /// The last rollback of this job, when the definition it rolled back from is still the one
    /// the store's rollback record names (see `store::rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
    /// Every savepoint path the lineage records for the job (a `restoreFrom` outside it is
    /// warned about).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub known_savepoints: std::collections::BTreeSet<String>,
}

/// A change of a job that an apply rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    /// The code fingerprint (hex) of the definition that was rolled back.
    pub fingerprint: String,
    /// The parallelism of that definition (a rescale can be rolled back too).
    pub parallelism: u32,
    /// Why it was rolled back.
    pub reason: String,
    pub apply_id: String,
}

pub struct PlanInput<'a> {
    pub plan_id: String,
    pub created_at_ms: i64,
    pub desired: &'a DesiredState,
    /// Files that failed to load. While any exist, nothing is deleted: an unparsable file may
    /// well be the definition of a job that looks orphaned.
    pub invalid_files: &'a [String],
    pub observation: &'a Observation,
    pub history: &'a BTreeMap<String, JobHistory>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub id: String,
    pub created_at_ms: i64,
    pub revision: Revision,
    /// Digest of the observed state the plan was computed from (stale-plan check).
    pub observed_fingerprint: String,
    pub changes: Vec<Change>,
    pub errors: Vec<PlanError>,
    pub warnings: Vec<String>,
    pub unmanaged: Vec<UnmanagedJob>,
    pub summary: Summary,
    /// The Flink version of each cluster that answered (`GET /config`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flink_versions: BTreeMap<String, String>,
    /// The pre-flight of each change that submits a program (see `engine::preflight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<super::JobPreflight>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Redeploy,
    Rescale,
    Suspend,
    Resume,
    Recover,
    Delete,
    /// Stop the extra active copies of a definition with a savepoint, keeping the one weir
    /// considers current (the one the store names, else the newest).
    #[serde(rename = "stop-duplicate")]
    StopDuplicate,
    /// A scheduled run of a batch job (`spec.schedule`), started by the daemon's scheduler.
    Run,
    /// Move a running job to another cluster (`spec.cluster` changed): stop it with a
    /// savepoint on the old cluster ([`Change::from_cluster`]), start it from that savepoint on
    /// the new one.
    Migrate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Redeploy => "redeploy",
            Action::Rescale => "rescale",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Recover => "recover",
            Action::Delete => "delete",
            Action::StopDuplicate => "stop-duplicate",
            Action::Run => "run",
            Action::Migrate => "migrate",
        }
    }

    /// The change starts a job (so it restores state from somewhere).
    pub fn starts_a_job(self) -> bool {
        !matches!(
            self,
            Action::Suspend | Action::Delete | Action::StopDuplicate
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How severe a field change is; a job's change takes the maximum over its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Recorded by weir, nothing happens on Flink (e.g. upgradeMode).
    RecordOnly,
    /// Parallelism.
    Rescale,
    /// The program or its configuration.
    Redeploy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub job: String,
    pub cluster: String,
    pub action: Action,
    pub reason: String,
    pub upgrade_mode: UpgradeMode,
    pub steps: Vec<Step>,
    pub diff: Vec<FieldDiff>,
    /// The Flink job this change stops or replaces, if any.
    pub current_job: Option<CurrentJob>,
    pub restore: Restore,
    /// The definition to submit (absent for delete and suspend). Never serialized: it may hold
    /// secrets, and a saved plan is re-attached to the same definitions by reloading the repo at
    /// the plan's revision (see [`Plan::attach`]).
    #[serde(skip)]
    pub desired: Option<DesiredJob>,
    pub warnings: Vec<String>,
    /// Why the job's state may not survive this change (also described in `warnings`); what
    /// previews flag as "state may not be restorable".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_risks: Vec<StateRisk>,
    /// Set on the change the daemon's scheduler makes for a scheduled batch job's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_run: Option<ScheduledRun>,
    /// For a migrate: the cluster the job runs on now (its stop step acts there; the change's
    /// `cluster` is where it is started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cluster: Option<String>,
    /// An earlier apply rolled this very definition back (it did not become healthy): which
    /// apply and why. The change is still pending (weir never fights Git), but the daemon does
    /// not retry it until the job's definition changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
}

impl Change {
    /// The cluster the job this change replaces runs on: a migrate's old one, else its own.
    pub fn running_on(&self) -> &str {
        self.from_cluster.as_deref().unwrap_or(&self.cluster)
    }

    /// The cluster a step acts on: a migrate stops (or cancels) the job on its old cluster.
    pub fn step_cluster(&self, step: &Step) -> &str {
        match (step, &self.from_cluster) {
            (Step::StopWithSavepoint { .. } | Step::Cancel { .. }, Some(from)) => from,
            _ => &self.cluster,
        }
    }
}

/// A run of a scheduled batch job: why it starts and the fire time it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    /// `schedule` or `catch-up`.
    pub trigger: String,
    /// The fire time (epoch ms) the run is for.
    pub due_ms: i64,
}

/// A reason the state of a job may be lost or only partly restored by a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateRisk {
    /// `upgradeMode: stateless` while the job has state: a running job is cancelled without a
    /// savepoint, or a known savepoint/checkpoint is ignored.
    StatelessDropsState,
    /// `savepoint.allowNonRestoredState` is on: state no operator claims is silently dropped.
    NonRestoredStateAllowed,
    /// A recover or resume with no savepoint or retained checkpoint known: it starts empty.
    NoKnownState,
    /// The new job graph lacks vertices of the old one (pre-flight state check): their state
    /// is dropped (allowed by `allowNonRestoredState`).
    OperatorStateDropped,
}

impl StateRisk {
    pub fn describe(self) -> &'static str {
        match self {
            StateRisk::StatelessDropsState => {
                "upgradeMode is stateless: the state the job has is not carried over"
            }
            StateRisk::NonRestoredStateAllowed => {
                "allowNonRestoredState is on: state no operator claims is silently dropped"
            }
            StateRisk::NoKnownState => "no savepoint or retained checkpoint is known",
            StateRisk::OperatorStateDropped => {
                "the new job graph lacks operators of the running job: their state is dropped"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentJob {
    pub job_id: JobId,
    pub state: JobState,
}

/// Where the submitted job's state comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Restore {
    /// No state: a fresh start.
    None,
    /// A known savepoint or retained checkpoint.
    Path { path: String },
    /// The savepoint produced by this change's stop-with-savepoint step.
    StopSavepoint,
    /// The latest completed checkpoint of the cancelled job, looked up at apply time.
    LatestCheckpoint,
}

/// One side effect of a change; applied in order, each journaled before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    #[serde(rename_all = "camelCase")]
    StopWithSavepoint {
        job_id: JobId,
        target_dir: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Cancel {
        job_id: JobId,
    },
    #[serde(rename_all = "camelCase")]
    Submit {
        parallelism: u32,
        restore: Restore,
    },
    AwaitRunning,
    /// Drop the job from weir's records (after a delete).
    Forget,
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::StopWithSavepoint { job_id, target_dir } => match target_dir {
                Some(d) => format!("stop {job_id} with a savepoint into {d}"),
                None => format!("stop {job_id} with a savepoint (cluster default directory)"),
            },
            Step::Cancel { job_id } => format!("cancel {job_id}"),
            Step::Submit {
                parallelism,
                restore,
            } => match restore {
                Restore::None => format!("submit with parallelism {parallelism}, without state"),
                Restore::Path { path } => {
                    format!("submit with parallelism {parallelism}, restoring {path}")
                }
                Restore::StopSavepoint => format!(
                    "submit with parallelism {parallelism}, restoring the savepoint taken above"
                ),
                Restore::LatestCheckpoint => format!(
                    "submit with parallelism {parallelism}, restoring the latest retained checkpoint"
                ),
            },
            Step::AwaitRunning => "wait until the job is RUNNING".into(),
            Step::Forget => "forget the job in weir's records".into(),
        }
    }
}

/// A changed field; multi-line values (SQL, configuration) are diffed line by line when rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    pub field: String,
    pub severity: Severity,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanError {
    pub job: Option<String>,
    pub cluster: String,
    pub message: String,
    /// The error is drift on the cluster (two active copies of the job), which the daemon
    /// announces like other drift.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
}

impl PlanError {
    /// An error of the definition `desired` on its own cluster (not drift).
    pub fn of(desired: &crate::desired::DesiredJob, message: String) -> PlanError {
        PlanError {
            job: Some(desired.name.to_string()),
            cluster: desired.cluster.to_string(),
            message,
            drift: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnmanagedJob {
    pub cluster: String,
    pub job_id: JobId,
    pub flink_name: String,
    pub state: JobState,
    /// For jobs weir submitted whose definition is gone: the definition name, when known.
    pub weir_job: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub redeploy: usize,
    pub rescale: usize,
    pub suspend: usize,
    pub resume: usize,
    pub recover: usize,
    pub delete: usize,
    /// Changes that stop an extra copy of a job. Absent from JSON when zero, so plans of
    /// earlier versions read back unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stop_duplicate: usize,
    /// Scheduled runs of batch jobs (daemon only); absent from JSON when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run: usize,
    pub errors: usize,
    /// Changes that move a job to another cluster; absent from JSON when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub migrate: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// Counts `changes` by action.
    pub fn of(changes: &[Change], errors: usize) -> Summary {
        let mut summary = Summary {
            errors,
            ..Summary::default()
        };
        for c in changes {
            match c.action {
                Action::Create => summary.create += 1,
                Action::Redeploy => summary.redeploy += 1,
                Action::Rescale => summary.rescale += 1,
                Action::Suspend => summary.suspend += 1,
                Action::Resume => summary.resume += 1,
                Action::Recover => summary.recover += 1,
                Action::Delete => summary.delete += 1,
                Action::StopDuplicate => summary.stop_duplicate += 1,
                Action::Run => summary.run += 1,
                Action::Migrate => summary.migrate += 1,
            }
        }
        summary
    }

    pub fn total_changes(&self) -> usize {
        self.create
            + self.redeploy
            + self.rescale
            + self.suspend
            + self.resume
            + self.recover
            + self.delete
            + self.stop_duplicate
            + self.run
            + self.migrate
    }

    /// `Plan: 1 to create, 2 to redeploy, 0 to delete.` with other actions named when present.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{} to create", self.create)];
        parts.push(format!("{} to redeploy", self.redeploy));
        for (n, word) in [
            (self.rescale, "rescale"),
            (self.suspend, "suspend"),
            (self.resume, "resume"),
            (self.recover, "recover"),
            (self.run, "run on schedule"),
            (self.migrate, "migrate"),
        ] {
            if n > 0 {
                parts.push(format!("{n} to {word}"));
            }
        }
        parts.push(format!("{} to delete", self.delete));
        if self.stop_duplicate > 0 {
            parts.push(format!(
                "{} extra cop{} to stop",
                self.stop_duplicate,
                if self.stop_duplicate == 1 { "y" } else { "ies" }
            ));
        }
        let mut line = format!("Plan: {}.", parts.join(", "));
        if self.errors > 0 {
            line.push_str(&format!(
                " {} error{}.",
                self.errors,
                if self.errors == 1 { "" } else { "s" }
            ));
        }
        line
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Keeps the changes `keep` accepts and recounts the summary.
    pub fn retain_changes(&mut self, keep: impl FnMut(&Change) -> bool) {
        self.changes.retain(keep);
        self.summary = Summary::of(&self.changes, self.errors.len());
    }

    /// Moves the changes `take` accepts into a new plan with id `id` (same revision, observed
    /// fingerprint, errors and warnings); both summaries are recounted.
    pub fn split_off(&mut self, id: String, mut take: impl FnMut(&Change) -> bool) -> Plan {
        let (taken, kept): (Vec<Change>, Vec<Change>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|c| take(c));
        self.changes = kept;
        self.summary = Summary::of(&self.changes, self.errors.len());
        Plan {
            id,
            summary: Summary::of(&taken, self.errors.len()),
            changes: taken,
            ..self.clone()
        }
    }

    /// Re-attaches the definitions to a plan read back from JSON. The caller has checked that
    /// `desired` has the plan's revision digest, so every job the plan submits is present.
    pub fn attach(&mut self, desired: &DesiredState) -> Result<(), AttachError> {
        for change in &mut self.changes {
            let submits = change
                .steps
                .iter()
                .any(|s| matches!(s, Step::Submit { .. }));
            if !submits {
                continue;
            }
            let job = desired
                .jobs
                .iter()
                .find(|j| j.name == change.job)
                .ok_or_else(|| AttachError::Undefined {
                    job: change.job.clone(),
                })?;
            change.desired = Some(job.clone());
        }
        Ok(())
    }
}

/// A saved plan that no longer fits the repo it is re-attached to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the plan submits `{job}`, which the repo does not define")]
    Undefined { job: String },
}
