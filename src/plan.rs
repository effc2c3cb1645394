//! The planner: desired state + observed state + history in, a plan out.
//!
//! Architecture invariant: this module is pure. No IO, no clock, no randomness: the plan id and
//! time are passed in. The same inputs always give the same plan, which is what makes plans
//! testable, reproducible and previewable on a pull request.
//!
//! Identity comes from the Flink job id (see [`crate::identity`]), so the plan is right even when
//! the store is empty: the store only adds history (previous spec for field diffs, savepoints).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredJob, DesiredState, JarLocation, JarRef, Program, Revision};
use crate::identity::{self, Identity, JobId};
use crate::observe::{ClusterObservation, JobState, Observation, ObservedJob, is_active};
use crate::redact;
use crate::spec::{RunState, UpgradeMode};

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
        }
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
    pub errors: usize,
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
        ] {
            if n > 0 {
                parts.push(format!("{n} to {word}"));
            }
        }
        parts.push(format!("{} to delete", self.delete));
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
    pub fn attach(&mut self, desired: &DesiredState) -> Result<(), String> {
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
                .ok_or_else(|| {
                    format!(
                        "the plan submits `{}`, which the repo does not define",
                        change.job
                    )
                })?;
            change.desired = Some(job.clone());
        }
        Ok(())
    }
}

/// Computes the plan. Pure: see the module docs.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut unmanaged = Vec::new();

    // Managed jobs per cluster, grouped by name hash, newest first.
    let mut by_hash: BTreeMap<(&str, u64), Vec<&ObservedJob>> = BTreeMap::new();
    for (cluster, obs) in &input.observation.clusters {
        if let ClusterObservation::Reachable { jobs, .. } = obs {
            for job in jobs {
                if let Some(id) = &job.identity {
                    by_hash
                        .entry((cluster.as_str(), id.name_hash))
                        .or_default()
                        .push(job);
                }
            }
        }
    }
    for jobs in by_hash.values_mut() {
        jobs.sort_by_key(|j| std::cmp::Reverse((j.start_time_ms.unwrap_or(0), j.id)));
    }

    let mut claimed: BTreeSet<(String, u64)> = BTreeSet::new();
    for desired in &input.desired.jobs {
        let key = (desired.cluster.clone(), identity::name_hash(&desired.name));
        claimed.insert(key.clone());
        let observed = match input.observation.clusters.get(&desired.cluster) {
            Some(ClusterObservation::Reachable { .. }) => by_hash
                .get(&(desired.cluster.as_str(), key.1))
                .cloned()
                .unwrap_or_default(),
            Some(ClusterObservation::Unreachable { url, error }) => {
                let at = if error.contains(url.as_str()) {
                    String::new()
                } else {
                    format!(" at {url}")
                };
                errors.push(PlanError {
                    job: Some(desired.name.clone()),
                    cluster: desired.cluster.clone(),
                    message: format!(
                        "cannot plan `{}`: cluster `{}`{at} is unreachable: {error}",
                        desired.name, desired.cluster
                    ),
                });
                continue;
            }
            None => {
                errors.push(PlanError {
                    job: Some(desired.name.clone()),
                    cluster: desired.cluster.clone(),
                    message: format!("cluster `{}` was not observed", desired.cluster),
                });
                continue;
            }
        };
        let history = input.history.get(&desired.name);
        if let Some(change) = plan_job(desired, &observed, history, &mut warnings) {
            changes.push(change);
        }
    }

    // Managed jobs that no definition claims.
    let names_by_hash: BTreeMap<(String, u64), &str> = input
        .history
        .iter()
        .map(|(name, h)| {
            (
                (h.cluster.clone(), identity::name_hash(name)),
                name.as_str(),
            )
        })
        .collect();
    let prune = input.desired.config.prune;
    for (cluster, obs) in &input.observation.clusters {
        let ClusterObservation::Reachable { jobs, .. } = obs else {
            continue;
        };
        for job in jobs.iter().filter(|j| is_active(&j.state)) {
            let Some(id) = &job.identity else {
                unmanaged.push(UnmanagedJob {
                    cluster: cluster.clone(),
                    job_id: job.id,
                    flink_name: job.name.clone(),
                    state: job.state.clone(),
                    weir_job: None,
                });
                continue;
            };
            let key = (cluster.clone(), id.name_hash);
            if claimed.contains(&key) {
                continue;
            }
            let known_name = names_by_hash.get(&key).copied();
            match known_name {
                Some(name) if prune && input.invalid_files.is_empty() => {
                    changes.push(delete_change(name, cluster, job, input.history.get(name)));
                }
                _ => {
                    let message = match known_name {
                        Some(name) if !prune => format!(
                            "`{name}` ({}) still runs on cluster `{cluster}` but its definition was \
                             deleted; it is left alone because `prune` is off",
                            job.id
                        ),
                        Some(name) => format!(
                            "`{name}` ({}) still runs on cluster `{cluster}` but its definition was \
                             deleted; it is not pruned while files in the repo are invalid",
                            job.id
                        ),
                        None => format!(
                            "job {} (Flink name `{}`) on cluster `{cluster}` was submitted by weir, \
                             but no definition here and no record in this store claims it; it may \
                             belong to another repo and is left alone",
                            job.id, job.name
                        ),
                    };
                    warnings.push(message);
                    unmanaged.push(UnmanagedJob {
                        cluster: cluster.clone(),
                        job_id: job.id,
                        flink_name: job.name.clone(),
                        state: job.state.clone(),
                        weir_job: known_name.map(str::to_string),
                    });
                }
            }
        }
    }

    changes.sort_by(|a, b| a.job.cmp(&b.job).then(a.cluster.cmp(&b.cluster)));
    let summary = Summary::of(&changes, errors.len());

    Plan {
        id: input.plan_id.clone(),
        created_at_ms: input.created_at_ms,
        revision: input.desired.revision.clone(),
        observed_fingerprint: observed_fingerprint(input.desired, input.history, input.observation),
        changes,
        errors,
        warnings,
        unmanaged,
        summary,
    }
}

fn plan_job(
    desired: &DesiredJob,
    observed: &[&ObservedJob],
    history: Option<&JobHistory>,
    warnings: &mut Vec<String>,
) -> Option<Change> {
    let active: Vec<&ObservedJob> = observed
        .iter()
        .copied()
        .filter(|j| is_active(&j.state))
        .collect();
    if active.len() > 1 {
        let ids: Vec<String> = active.iter().map(|j| j.id.to_string()).collect();
        warnings.push(format!(
            "`{}` has {} active Flink jobs ({}); weir acts on the newest only",
            desired.name,
            active.len(),
            ids.join(", ")
        ));
    }
    let fingerprint = desired.code_fingerprint();
    let desired_code = identity::code_hash(&fingerprint);
    let base = |action: Action, reason: String| Change {
        job: desired.name.clone(),
        cluster: desired.cluster.clone(),
        action,
        reason,
        upgrade_mode: desired.upgrade_mode,
        steps: Vec::new(),
        diff: Vec::new(),
        current_job: None,
        restore: Restore::None,
        desired: Some(desired.clone()),
        warnings: Vec::new(),
        state_risks: Vec::new(),
    };

    if let Some(current) = active.first() {
        let ident = current.identity.expect("managed jobs have an identity");
        let current_job = Some(CurrentJob {
            job_id: current.id,
            state: current.state.clone(),
        });
        if desired.state == RunState::Suspended {
            let mut c = base(Action::Suspend, "spec.state is `suspended`".into());
            c.current_job = current_job;
            c.steps = vec![stop_step(desired, current.id)];
            if matches!(c.steps[0], Step::Cancel { .. }) {
                c.warnings.push(
                    "upgradeMode is stateless: the job is cancelled without a savepoint".into(),
                );
                c.state_risks.push(StateRisk::StatelessDropsState);
            }
            c.desired = None;
            c.diff = vec![FieldDiff {
                field: "state".into(),
                severity: Severity::RecordOnly,
                before: Some("running".into()),
                after: Some("suspended".into()),
            }];
            return Some(c);
        }
        let code_changed = ident.code_hash != desired_code;
        let parallelism_changed = u32::from(ident.parallelism) != desired.parallelism;
        if !code_changed && !parallelism_changed {
            return None;
        }
        let previous = history.and_then(|h| h.spec.as_ref());
        let mut diff = previous
            .map(|p| field_diffs(p, desired))
            .unwrap_or_default();
        let action = if code_changed {
            Action::Redeploy
        } else {
            Action::Rescale
        };
        let reason = if code_changed {
            let redeploy_fields: Vec<&str> = diff
                .iter()
                .filter(|d| d.severity == Severity::Redeploy)
                .map(|d| d.field.as_str())
                .collect();
            if redeploy_fields.is_empty() {
                "the running job was submitted from a different definition (weir has no record of \
                 the previous one)"
                    .to_string()
            } else {
                format!("{} changed", redeploy_fields.join(", "))
            }
        } else {
            format!(
                "parallelism {} → {}; in-place rescaling needs Flink's adaptive scheduler, so the \
                 job restarts with the new parallelism",
                ident.parallelism, desired.parallelism
            )
        };
        if parallelism_changed && !diff.iter().any(|d| d.field == "parallelism") {
            diff.push(FieldDiff {
                field: "parallelism".into(),
                severity: Severity::Rescale,
                before: Some(ident.parallelism.to_string()),
                after: Some(desired.parallelism.to_string()),
            });
        }
        diff.sort_by_key(|d| std::cmp::Reverse(d.severity));
        let mut c = base(action, reason);
        c.current_job = current_job;
        c.diff = diff;
        let (first, restore) = match desired.upgrade_mode {
            UpgradeMode::Savepoint => (stop_step(desired, current.id), Restore::StopSavepoint),
            UpgradeMode::LastState => (
                Step::Cancel { job_id: current.id },
                Restore::LatestCheckpoint,
            ),
            UpgradeMode::Stateless => (Step::Cancel { job_id: current.id }, Restore::None),
        };
        if current.state != JobState::Running && desired.upgrade_mode == UpgradeMode::Savepoint {
            c.warnings.push(format!(
                "the current job is {}, not RUNNING: Flink can only take a savepoint of a running job",
                current.state
            ));
        }
        add_restore_warnings(desired, &restore, &mut c.warnings);
        // The running job has state of its own; stateless drops it.
        add_state_risks(desired, &restore, true, &mut c.state_risks);
        c.steps = vec![
            first,
            Step::Submit {
                parallelism: desired.parallelism,
                restore: restore.clone(),
            },
            Step::AwaitRunning,
        ];
        c.restore = restore;
        return Some(c);
    }

    // Nothing is running for this definition.
    if desired.state == RunState::Suspended {
        return None;
    }
    let newest = observed.first();
    let known_savepoint = history.and_then(|h| h.last_savepoint.clone());
    let (action, reason, restore) = match (newest, history) {
        (None, None) => (
            Action::Create,
            "new definition".to_string(),
            desired
                .initial_savepoint
                .clone()
                .map(|path| Restore::Path { path })
                .unwrap_or(Restore::None),
        ),
        (None, Some(h)) if h.current_job_id.is_none() => (
            Action::Create,
            "new definition".to_string(),
            desired
                .initial_savepoint
                .clone()
                .map(|path| Restore::Path { path })
                .unwrap_or(Restore::None),
        ),
        (None, Some(h)) if h.suspended => (
            Action::Resume,
            "spec.state is `running` and the job is suspended".to_string(),
            restore_path(known_savepoint),
        ),
        (None, Some(h)) => (
            Action::Recover,
            format!(
                "job {} is missing from the cluster",
                h.current_job_id.map(|i| i.to_string()).unwrap_or_default()
            ),
            restore_path(known_savepoint),
        ),
        (Some(job), h) => {
            let own_savepoint = h
                .filter(|h| h.current_job_id == Some(job.id))
                .and_then(|h| h.last_savepoint.clone());
            let newest_state = match job.state {
                // A FINISHED job was stopped with a savepoint and its checkpoints are gone: the
                // savepoint weir recorded for it, else the one Flink reports.
                JobState::Finished => own_savepoint
                    .or(job.latest_savepoint.clone())
                    .or(known_savepoint),
                // FAILED or CANCELED: the job's newest retained checkpoint (or savepoint) is at
                // least as recent as anything the store remembers.
                _ => job
                    .latest_checkpoint
                    .clone()
                    .or(job.latest_savepoint.clone())
                    .or(known_savepoint),
            };
            let suspended_by_weir =
                h.is_some_and(|h| h.suspended && h.current_job_id == Some(job.id));
            if suspended_by_weir {
                (
                    Action::Resume,
                    "spec.state is `running` and the job is suspended".to_string(),
                    restore_path(newest_state),
                )
            } else {
                let how = match job.state {
                    JobState::Failed => "FAILED".to_string(),
                    JobState::Canceled => "CANCELED outside weir".to_string(),
                    JobState::Finished => "FINISHED (stopped outside weir)".to_string(),
                    ref other => other.to_string(),
                };
                (
                    Action::Recover,
                    format!("job {} is {how}", job.id),
                    restore_path(newest_state),
                )
            }
        }
    };
    // Stateless ignores a known savepoint or checkpoint: that state is dropped.
    let ignores_state = desired.upgrade_mode == UpgradeMode::Stateless
        && action != Action::Create
        && restore != Restore::None;
    let restore = match desired.upgrade_mode {
        UpgradeMode::Stateless if action != Action::Create => Restore::None,
        _ => restore,
    };
    let mut c = base(action, reason);
    if action == Action::Create {
        c.diff = creation_diff(desired);
    } else if let Some(previous) = history.and_then(|h| h.spec.as_ref()) {
        c.diff = field_diffs(previous, desired);
    }
    if let Some(job) = newest {
        c.current_job = Some(CurrentJob {
            job_id: job.id,
            state: job.state.clone(),
        });
    }
    if matches!(action, Action::Recover | Action::Resume)
        && restore == Restore::None
        && desired.upgrade_mode != UpgradeMode::Stateless
    {
        c.warnings.push(
            "no savepoint or retained checkpoint is known for this job: it restarts without state"
                .into(),
        );
    }
    add_restore_warnings(desired, &restore, &mut c.warnings);
    add_state_risks(desired, &restore, ignores_state, &mut c.state_risks);
    if matches!(action, Action::Recover | Action::Resume)
        && restore == Restore::None
        && desired.upgrade_mode != UpgradeMode::Stateless
    {
        c.state_risks.push(StateRisk::NoKnownState);
    }
    c.steps = vec![
        Step::Submit {
            parallelism: desired.parallelism,
            restore: restore.clone(),
        },
        Step::AwaitRunning,
    ];
    c.restore = restore;
    Some(c)
}

fn add_restore_warnings(desired: &DesiredJob, restore: &Restore, warnings: &mut Vec<String>) {
    if desired.allow_non_restored_state && *restore != Restore::None {
        warnings.push(
            "allowNonRestoredState is on: state that no operator claims is silently dropped".into(),
        );
    }
    if desired.upgrade_mode == UpgradeMode::Stateless {
        warnings.push("upgradeMode is stateless: the job restarts without its state".into());
    }
}

/// `has_state`: the job has state that a stateless upgrade would drop.
fn add_state_risks(
    desired: &DesiredJob,
    restore: &Restore,
    has_state: bool,
    risks: &mut Vec<StateRisk>,
) {
    if desired.upgrade_mode == UpgradeMode::Stateless && has_state {
        risks.push(StateRisk::StatelessDropsState);
    }
    if desired.allow_non_restored_state && *restore != Restore::None {
        risks.push(StateRisk::NonRestoredStateAllowed);
    }
}

fn restore_path(path: Option<String>) -> Restore {
    match path {
        Some(path) => Restore::Path { path },
        None => Restore::None,
    }
}

fn stop_step(desired: &DesiredJob, job_id: JobId) -> Step {
    if desired.upgrade_mode == UpgradeMode::Stateless {
        Step::Cancel { job_id }
    } else {
        Step::StopWithSavepoint {
            job_id,
            target_dir: desired.savepoint_dir.clone(),
        }
    }
}

fn delete_change(
    name: &str,
    cluster: &str,
    job: &ObservedJob,
    history: Option<&JobHistory>,
) -> Change {
    let (upgrade_mode, target_dir) = history
        .and_then(|h| h.spec.as_ref())
        .map(|s| (s.upgrade_mode, s.savepoint_dir.clone()))
        .unwrap_or((UpgradeMode::Savepoint, None));
    let (first, warning) = if upgrade_mode == UpgradeMode::Stateless {
        (
            Step::Cancel { job_id: job.id },
            "the job will be cancelled (upgradeMode stateless): no final savepoint is taken",
        )
    } else {
        (
            Step::StopWithSavepoint {
                job_id: job.id,
                target_dir,
            },
            "the job will be stopped; its final savepoint is recorded",
        )
    };
    Change {
        job: name.to_string(),
        cluster: cluster.to_string(),
        action: Action::Delete,
        reason: "its definition file was deleted and `prune` is on".into(),
        upgrade_mode,
        steps: vec![first, Step::Forget],
        diff: Vec::new(),
        current_job: Some(CurrentJob {
            job_id: job.id,
            state: job.state.clone(),
        }),
        restore: Restore::None,
        desired: None,
        warnings: vec![warning.into()],
        state_risks: Vec::new(),
    }
}

/// The value of each diffable field, rendered for humans (secrets redacted).
fn fields(job: &DesiredJob) -> Vec<(&'static str, Severity, Option<String>)> {
    let (jar, entry, args, sql) = match &job.program {
        Program::Jar {
            jar,
            entry_class,
            args,
        } => (
            Some(jar_label(jar)),
            entry_class.clone(),
            Some(redact::args(args).join("\n")),
            None,
        ),
        Program::Sql { script, runner, .. } => (
            Some(jar_label(runner)),
            None,
            None,
            Some(redact::sql(script)),
        ),
    };
    let config = if job.flink_configuration.is_empty() {
        None
    } else {
        Some(
            job.flink_configuration
                .iter()
                .map(|(k, v)| format!("{k}: {}", redact::config_value(k, v)))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    vec![
        ("jar", Severity::Redeploy, jar),
        ("entryClass", Severity::Redeploy, entry),
        ("args", Severity::Redeploy, args.filter(|a| !a.is_empty())),
        ("sql", Severity::Redeploy, sql),
        ("flinkConfiguration", Severity::Redeploy, config),
        (
            "restartNonce",
            Severity::Redeploy,
            Some(job.restart_nonce.to_string()),
        ),
        (
            "parallelism",
            Severity::Rescale,
            Some(job.parallelism.to_string()),
        ),
        (
            "upgradeMode",
            Severity::RecordOnly,
            Some(upgrade_mode_str(job.upgrade_mode).into()),
        ),
        (
            "savepoint.allowNonRestoredState",
            Severity::RecordOnly,
            Some(job.allow_non_restored_state.to_string()),
        ),
        (
            "savepoint.directory",
            Severity::RecordOnly,
            job.savepoint_dir.clone(),
        ),
    ]
}

/// A jar as shown in diffs: its file name (without a URL's query or fragment, where presigned
/// URLs carry credentials) and the start of its SHA-256.
fn jar_label(jar: &JarRef) -> String {
    let name = match &jar.location {
        JarLocation::Url { url } => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            path.rsplit('/').next().unwrap_or(path)
        }
        JarLocation::Repo { .. } => jar.file_name(),
    };
    format!(
        "{name} (sha256 {})",
        &jar.sha256[..jar.sha256.len().min(12)]
    )
}

pub fn upgrade_mode_str(m: UpgradeMode) -> &'static str {
    match m {
        UpgradeMode::Savepoint => "savepoint",
        UpgradeMode::LastState => "last-state",
        UpgradeMode::Stateless => "stateless",
    }
}

/// Field-level differences between two definitions, most severe first.
pub fn field_diffs(before: &DesiredJob, after: &DesiredJob) -> Vec<FieldDiff> {
    let mut out: Vec<FieldDiff> = fields(before)
        .into_iter()
        .zip(fields(after))
        .filter(|((_, _, b), (_, _, a))| a != b)
        .map(|((field, severity, b), (_, _, a))| FieldDiff {
            field: field.into(),
            severity,
            before: b,
            after: a,
        })
        .collect();
    // Two secrets that both render as redacted still differ when the fingerprints do.
    if before.code_fingerprint() != after.code_fingerprint()
        && !out.iter().any(|d| d.severity == Severity::Redeploy)
    {
        out.push(FieldDiff {
            field: "flinkConfiguration".into(),
            severity: Severity::Redeploy,
            before: Some("(redacted values)".into()),
            after: Some("(redacted values changed)".into()),
        });
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.severity));
    out
}

/// For a create: every field as an addition.
fn creation_diff(job: &DesiredJob) -> Vec<FieldDiff> {
    fields(job)
        .into_iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(field, severity, after)| FieldDiff {
            field: field.into(),
            severity,
            before: None,
            after,
        })
        .collect()
}

/// The stale-plan fingerprint of `observation`, over the jobs this repo and store claim.
pub fn observed_fingerprint(
    desired: &DesiredState,
    history: &BTreeMap<String, JobHistory>,
    observation: &Observation,
) -> String {
    let relevant: BTreeSet<(String, u64)> = desired
        .jobs
        .iter()
        .map(|j| (j.cluster.clone(), identity::name_hash(&j.name)))
        .chain(
            history
                .iter()
                .map(|(name, h)| (h.cluster.clone(), identity::name_hash(name))),
        )
        .collect();
    observation.fingerprint(&relevant)
}

/// The identity a submission of `desired` carries, with a caller-chosen nonce.
pub fn submission_identity(desired: &DesiredJob, nonce: u32) -> Identity {
    Identity::new(
        &desired.name,
        &desired.code_fingerprint(),
        desired.parallelism,
        nonce,
    )
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
