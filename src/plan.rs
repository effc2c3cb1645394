//! The planner: desired state + observed state + history in, a plan out.
//!
//! Architecture invariant: this module is pure. No IO, no clock, no randomness: the plan id and
//! time are passed in. The same inputs always give the same plan, which is what makes plans
//! testable, reproducible and previewable on a pull request.
//!
//! Identity comes from the Flink job id (see [`crate::identity`]), so the plan is right even when
//! the store is empty: the store only adds history (previous spec for field diffs, savepoints).

//!
//! The parts: [`model`] (the plan's types), `job` (one definition against its Flink jobs),
//! `restore` (where restarted state comes from), `unclaimed` (jobs no definition claims),
//! `fields` (diffs between definitions).

mod batch;
mod fields;
mod job;
mod migrate;
mod model;
mod preflight;
mod restore;
mod unclaimed;

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{DesiredJob, DesiredState};
use crate::identity::{self, Identity};
use crate::observe::{ClusterObservation, Observation, ObservedJob};

pub use fields::{field_diffs, upgrade_mode_str};
pub use model::{
    Action, AttachError, Change, CurrentJob, FieldDiff, JobHistory, Plan, PlanError, PlanInput,
    Restore, RolledBack, ScheduledRun, Severity, StateRisk, Step, Summary, UnmanagedJob,
};
pub use preflight::{GraphDiff, JobPreflight, PreflightStatus, Rescaled, Vertex};

/// Computes the plan. Pure: see the module docs.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let by_hash = managed_jobs(input.observation);
    let mut claimed: BTreeSet<(String, u64)> = BTreeSet::new();
    for desired in &input.desired.jobs {
        let key = (
            desired.cluster.to_string(),
            identity::name_hash(&desired.name),
        );
        claimed.insert(key.clone());
        if let Some(e) = unset_secrets(desired) {
            errors.push(e);
            continue;
        }
        let observed = match observed_jobs(desired, input.observation, &by_hash) {
            Ok(observed) => observed,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let history = input.history.get(desired.name.as_str());
        let moving = match migrate::source(desired, &observed, history, input.observation, &by_hash)
        {
            Ok(moving) => moving,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let planned = match moving {
            Some((from, current)) => {
                claimed.insert((from.clone(), key.1));
                Ok(Some(migrate::change(
                    desired,
                    &from,
                    current,
                    history,
                    input.observation,
                )))
            }
            None => job::plan_job(desired, &observed, history, input.created_at_ms),
        };
        match planned {
            Ok(Some(mut change)) => {
                migrate::note_rollback(&mut change, desired, history);
                changes.push(change)
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }

    let unclaimed = unclaimed::unclaimed(input, &claimed);
    changes.extend(unclaimed.deletes);
    warnings.extend(unclaimed.warnings);

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
        unmanaged: unclaimed.unmanaged,
        summary,
        flink_versions: flink_versions(input.observation),
        preflight: Vec::new(),
    }
}

/// A plan error when a `${env:NAME}` secret of `desired` was not set in weir's environment:
/// the job is left exactly as it runs (its running copy stays claimed, so nothing deletes it).
fn unset_secrets(desired: &DesiredJob) -> Option<PlanError> {
    let unset: Vec<String> = desired
        .secrets
        .iter()
        .filter(|(_, digest)| digest.is_none())
        .map(|(name, _)| format!("`${{env:{name}}}`"))
        .collect();
    if unset.is_empty() {
        return None;
    }
    Some(PlanError::of(
        desired,
        format!(
            "cannot plan `{}`: {} not set in the environment of weir's process; the job is \
             left as it is",
            desired.name,
            if unset.len() == 1 {
                format!("secret {} is", unset[0])
            } else {
                format!("secrets {} are", unset.join(", "))
            }
        ),
    ))
}

/// The Flink version of each cluster that answered.
fn flink_versions(observation: &Observation) -> BTreeMap<String, String> {
    observation
        .clusters
        .iter()
        .filter_map(|(name, c)| match c {
            ClusterObservation::Reachable {
                flink_version: Some(v),
                ..
            } => Some((name.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// Managed jobs per `(cluster, name hash)`, newest first.
fn managed_jobs(observation: &Observation) -> BTreeMap<(&str, u64), Vec<&ObservedJob>> {
    let mut by_hash: BTreeMap<(&str, u64), Vec<&ObservedJob>> = BTreeMap::new();
    for (cluster, obs) in &observation.clusters {
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
    by_hash
}

/// The jobs of `desired`'s name on its cluster, newest first; an error when the cluster could
/// not be observed.
fn observed_jobs<'o>(
    desired: &DesiredJob,
    observation: &Observation,
    by_hash: &BTreeMap<(&str, u64), Vec<&'o ObservedJob>>,
) -> Result<Vec<&'o ObservedJob>, PlanError> {
    match observation.clusters.get(desired.cluster.as_str()) {
        Some(ClusterObservation::Reachable { .. }) => Ok(by_hash
            .get(&(desired.cluster.as_str(), identity::name_hash(&desired.name)))
            .cloned()
            .unwrap_or_default()),
        Some(ClusterObservation::Unreachable { url, error }) => {
            let at = if error.contains(url.as_str()) {
                String::new()
            } else {
                format!(" at {url}")
            };
            Err(PlanError::of(
                desired,
                format!(
                    "cannot plan `{}`: cluster `{}`{at} is unreachable: {error}",
                    desired.name, desired.cluster
                ),
            ))
        }
        None => Err(PlanError::of(
            desired,
            format!("cluster `{}` was not observed", desired.cluster),
        )),
    }
}

/// The stale-plan fingerprint of `observation`, over the jobs this repo and store claim (see
/// `engine::stale`): [`Observation::scope_fingerprint`] of those (cluster, job) pairs.
pub fn observed_fingerprint(
    desired: &DesiredState,
    history: &BTreeMap<String, JobHistory>,
    observation: &Observation,
) -> String {
    let claimed = desired
        .jobs
        .iter()
        .map(|j| (j.cluster.as_str(), j.name.as_str()))
        .chain(
            history
                .iter()
                .map(|(n, h)| (h.cluster.as_str(), n.as_str())),
        );
    observation.scope_fingerprint(claimed)
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
mod batch_tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod migrate_tests;
#[cfg(test)]
mod tests;
