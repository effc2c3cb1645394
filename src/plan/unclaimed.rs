//! Managed jobs that no definition claims: deleted when `prune` allows it, else left alone with
//! a warning.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity;
use crate::observe::{ClusterObservation, ObservedJob, is_active};
use crate::spec::UpgradeMode;

use super::{Action, Change, CurrentJob, JobHistory, PlanInput, Restore, Step, UnmanagedJob};

/// What the plan does about jobs that are not claimed by a definition.
#[derive(Default)]
pub(super) struct Unclaimed {
    pub deletes: Vec<Change>,
    pub warnings: Vec<String>,
    pub unmanaged: Vec<UnmanagedJob>,
}

/// The active jobs of `input`'s reachable clusters that no `(cluster, name hash)` in `claimed`
/// covers: foreign jobs, and weir's jobs whose definition is gone.
pub(super) fn unclaimed(input: &PlanInput<'_>, claimed: &BTreeSet<(String, u64)>) -> Unclaimed {
    let mut out = Unclaimed::default();
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
    let siblings = other_environments(input);
    let prune = input.desired.config.prune;
    for (cluster, obs) in &input.observation.clusters {
        let ClusterObservation::Reachable { jobs, .. } = obs else {
            continue;
        };
        for job in jobs.iter().filter(|j| is_active(&j.state)) {
            let Some(id) = &job.identity else {
                out.unmanaged.push(unmanaged(cluster, job, None));
                continue;
            };
            let key = (cluster.clone(), id.name_hash);
            if claimed.contains(&key) || siblings.contains(&id.name_hash) {
                continue;
            }
            let known_name = names_by_hash.get(&key).copied();
            match known_name {
                Some(name) if prune && input.invalid_files.is_empty() => {
                    out.deletes
                        .push(delete_change(name, cluster, job, input.history.get(name)));
                }
                _ => {
                    out.warnings
                        .push(left_alone(known_name, prune, cluster, job));
                    out.unmanaged.push(unmanaged(cluster, job, known_name));
                }
            }
        }
    }
    out
}

/// The name hashes of this repo's jobs in its other environments: on a cluster two environments
/// share, the other one's jobs are neither foreign nor deleted.
fn other_environments(input: &PlanInput<'_>) -> BTreeSet<u64> {
    let desired = input.desired;
    let names: BTreeSet<&str> = desired
        .jobs
        .iter()
        .map(|j| j.name.as_str())
        .chain(desired.jobs_elsewhere.iter().map(String::as_str))
        .chain(input.history.keys().map(String::as_str))
        .collect();
    desired
        .config
        .environments
        .keys()
        .filter(|e| desired.environment.as_ref() != Some(*e))
        .flat_map(|e| {
            names
                .iter()
                .map(move |n| identity::name_hash_in(Some(e), n))
        })
        .collect()
}

fn unmanaged(cluster: &str, job: &ObservedJob, weir_job: Option<&str>) -> UnmanagedJob {
    UnmanagedJob {
        cluster: cluster.to_string(),
        job_id: job.id,
        flink_name: job.name.clone(),
        state: job.state.clone(),
        weir_job: weir_job.map(str::to_string),
    }
}

/// Why an unclaimed job of weir's (named `known_name` in the store, if at all) is not deleted.
fn left_alone(known_name: Option<&str>, prune: bool, cluster: &str, job: &ObservedJob) -> String {
    match known_name {
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
