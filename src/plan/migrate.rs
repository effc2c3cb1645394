//! Moving a running job to another cluster (`spec.cluster` changed): one `migrate` change that
//! stops the job with a savepoint on its old cluster and starts it from that savepoint on the
//! new one, so that two copies never run and no state since an older savepoint is lost. And the
//! note a change carries when an earlier apply rolled the very same definition back.

use std::collections::BTreeMap;

use crate::desired::DesiredJob;
use crate::identity;
use crate::observe::{ClusterObservation, JobState, Observation, ObservedJob, is_active};
use crate::spec::{RunState, UpgradeMode};

use super::job::{base_change, current_job};
use super::restore::{add_restore_warnings, add_state_risks, stop_step};
use super::{Action, Change, FieldDiff, JobHistory, PlanError, Restore, Severity, Step};

/// The cluster `desired` runs on now and its job there, when it runs on another cluster than
/// `desired.cluster` (and nowhere on `desired.cluster`: `observed_here` has no active job). Only
/// a job weir records on another cluster (or any, when the store knows nothing of the job) is
/// moved. An error when weir cannot tell whether the job still runs on its old cluster, or it
/// runs there more than once.
pub(super) fn source<'o>(
    desired: &DesiredJob,
    observed_here: &[&ObservedJob],
    history: Option<&JobHistory>,
    observation: &Observation,
    by_hash: &BTreeMap<(&str, u64), Vec<&'o ObservedJob>>,
) -> Result<Option<(String, &'o ObservedJob)>, PlanError> {
    let here_active = observed_here.iter().any(|j| is_active(&j.state));
    let recorded_elsewhere = history.is_none_or(|h| h.cluster != desired.cluster);
    if here_active || desired.state == RunState::Suspended || !recorded_elsewhere {
        return Ok(None);
    }
    if let Some(h) = history
        && let Some(ClusterObservation::Unreachable { error, .. }) =
            observation.clusters.get(&h.cluster)
    {
        return Err(PlanError::of(
            desired,
            format!(
                "cannot move `{}` from cluster `{}` to `{}`: `{}` is unreachable ({error}), and \
                 weir starts the job on `{}` only after it stopped it on `{}` (never two copies)",
                desired.name, h.cluster, desired.cluster, h.cluster, desired.cluster, h.cluster
            ),
        ));
    }
    let hash = identity::name_hash(&desired.name);
    let mut found: Vec<(&str, &'o ObservedJob)> = Vec::new();
    for cluster in observation.clusters.keys() {
        if *cluster == desired.cluster {
            continue;
        }
        let jobs = by_hash.get(&(cluster.as_str(), hash));
        for job in jobs.into_iter().flatten().filter(|j| is_active(&j.state)) {
            found.push((cluster.as_str(), job));
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [(cluster, job)] => Ok(Some((cluster.to_string(), *job))),
        many => Err(PlanError {
            job: Some(desired.name.to_string()),
            cluster: desired.cluster.to_string(),
            message: format!(
                "cannot move `{}` to cluster `{}`: it runs {} times elsewhere ({}); stop the \
                 extra copies with a savepoint, then plan again",
                desired.name,
                desired.cluster,
                many.len(),
                many.iter()
                    .map(|(c, j)| format!("{} on `{c}`", j.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            drift: true,
        }),
    }
}

/// The migrate of `desired` from cluster `from`, where `current` runs.
pub(super) fn change(
    desired: &DesiredJob,
    from: &str,
    current: &ObservedJob,
    history: Option<&JobHistory>,
    observation: &Observation,
) -> Change {
    let to = desired.cluster.as_str();
    let mut c = base_change(
        desired,
        Action::Migrate,
        format!("spec.cluster changed: `{from}` → `{to}`"),
    );
    c.from_cluster = Some(from.to_string());
    c.current_job = Some(current_job(current));
    let mut diff = history
        .and_then(|h| h.spec.as_ref())
        .map(|p| super::field_diffs(p, desired))
        .unwrap_or_default();
    diff.retain(|d| d.field != "cluster");
    diff.insert(
        0,
        FieldDiff {
            field: "cluster".into(),
            severity: Severity::Redeploy,
            before: Some(from.to_string()),
            after: Some(to.to_string()),
        },
    );
    c.diff = diff;
    let (first, restore) = match desired.upgrade_mode {
        UpgradeMode::Savepoint => (stop_step(desired, current.id), Restore::StopSavepoint),
        UpgradeMode::LastState => (
            Step::Cancel { job_id: current.id },
            Restore::LatestCheckpoint,
        ),
        UpgradeMode::Stateless => (Step::Cancel { job_id: current.id }, Restore::None),
    };
    let version = |cluster: &str| match observation.clusters.get(cluster) {
        Some(ClusterObservation::Reachable { flink_version, .. }) => flink_version.clone(),
        _ => None,
    };
    if let (Some(old), Some(new)) = (version(from), version(to))
        && old != new
    {
        c.warnings.push(format!(
            "the job moves across Flink versions ({old} on `{from}` → {new} on `{to}`): Flink \
             does not promise that every savepoint restores on another version"
        ));
    }
    if restore != Restore::None {
        c.warnings.push(format!(
            "the {} is written on `{from}` and read on `{to}`: its directory must be reachable \
             from both clusters",
            if restore == Restore::StopSavepoint {
                "savepoint"
            } else {
                "checkpoint"
            }
        ));
    }
    if current.state != JobState::Running && desired.upgrade_mode == UpgradeMode::Savepoint {
        c.warnings.push(format!(
            "the current job is {}, not RUNNING: Flink can only take a savepoint of a running job",
            current.state
        ));
    }
    add_restore_warnings(desired, &restore, &mut c.warnings);
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
    c
}

/// Marks `change` when an earlier apply rolled back this very definition (same program and
/// parallelism): the change stays in the plan (weir never fights Git), with the reason.
pub(super) fn note_rollback(
    change: &mut Change,
    desired: &DesiredJob,
    history: Option<&JobHistory>,
) {
    let Some(rb) = history.and_then(|h| h.rolled_back.as_ref()) else {
        return;
    };
    let same = rb.fingerprint == hex::encode(desired.code_fingerprint())
        && rb.parallelism == desired.parallelism;
    if !same || !change.action.starts_a_job() {
        return;
    }
    change.rolled_back = Some(rb.clone());
    change.warnings.push(format!(
        "apply {} rolled this change back ({}); the job runs its previous definition. `weir \
         serve` does not try this definition again; `weir apply` does",
        rb.apply_id, rb.reason
    ));
}
