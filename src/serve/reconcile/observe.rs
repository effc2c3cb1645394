//! The observation timer's look at the clusters: one `GET /jobs/overview` per cluster, reduced
//! to a fingerprint of the managed jobs (id and state) that a reconcile's own observation
//! produces too. When the two differ, a job failed, was cancelled or appeared behind weir's back,
//! and the worker reconciles (without fetching Git) so that self-heal acts within
//! `observeIntervalSeconds`.

use std::collections::BTreeSet;

use crate::desired::DesiredState;
use crate::engine::Clients;
use crate::identity::{Identity, JobId, name_hash};
use crate::observe::{ClusterObservation, Observation};

/// The definitions of the repo, by (cluster, name hash): only their jobs count, not the jobs
/// other weir instances run on the same clusters.
pub(super) struct Managed(BTreeSet<(String, u64)>);

impl Managed {
    pub(super) fn of(desired: &DesiredState) -> Managed {
        Managed(
            desired
                .jobs
                .iter()
                .map(|j| (j.cluster.to_string(), name_hash(&j.name)))
                .collect(),
        )
    }

    fn contains(&self, cluster: &str, id: &JobId) -> bool {
        Identity::decode(id).is_some_and(|i| self.0.contains(&(cluster.to_string(), i.name_hash)))
    }
}

/// The fingerprint of what a reconcile observed.
pub(super) fn fingerprint(observation: &Observation, managed: &Managed) -> String {
    let mut seen = Vec::new();
    for (cluster, c) in &observation.clusters {
        match c {
            ClusterObservation::Reachable { jobs, .. } => seen.extend(
                jobs.iter()
                    .filter(|j| managed.contains(cluster, &j.id))
                    .map(|j| format!("{cluster}/{}={}", j.id, j.state)),
            ),
            ClusterObservation::Unreachable { .. } => seen.push(format!("{cluster}=unreachable")),
        }
    }
    seen.sort();
    seen.join(",")
}

/// The same fingerprint from one `GET /jobs/overview` per cluster.
pub(super) async fn look(clients: &Clients, managed: &Managed) -> String {
    let mut seen = Vec::new();
    for (cluster, client) in clients {
        match client.jobs_overview().await {
            Ok(jobs) => seen.extend(
                jobs.iter()
                    .filter(|j| managed.contains(cluster, &j.id))
                    .map(|j| format!("{cluster}/{}={}", j.id, j.state)),
            ),
            Err(_) => seen.push(format!("{cluster}=unreachable")),
        }
    }
    seen.sort();
    seen.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::JobState;
    use crate::observe::ObservedJob;

    fn observed(state: JobState) -> Observation {
        let id = crate::identity::Identity::new("orders", &[7; 32], 1, 0).job_id();
        let job = ObservedJob {
            id,
            name: "orders".into(),
            state,
            start_time_ms: None,
            end_time_ms: None,
            identity: Identity::decode(&id),
            latest_savepoint: None,
            latest_checkpoint: None,
        };
        Observation {
            clusters: [(
                "local".to_string(),
                ClusterObservation::Reachable {
                    url: "http://x".into(),
                    flink_version: None,
                    jobs: vec![job],
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_state_change_of_a_managed_job_changes_the_fingerprint() {
        let mine = Managed([("local".to_string(), name_hash("orders"))].into());
        let running = fingerprint(&observed(JobState::Running), &mine);
        assert_eq!(running, fingerprint(&observed(JobState::Running), &mine));
        assert_ne!(running, fingerprint(&observed(JobState::Canceled), &mine));
        assert!(running.ends_with("=RUNNING"), "{running}");
        // Another instance's job on the same cluster is not looked at.
        let other = Managed([("local".to_string(), name_hash("payments"))].into());
        assert_eq!(
            fingerprint(&observed(JobState::Running), &other),
            fingerprint(&observed(JobState::Canceled), &other)
        );
    }
}
