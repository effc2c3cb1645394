//! The observation timer's look at the clusters: one `GET /jobs/overview` per cluster, reduced
//! to a fingerprint of the managed jobs (id and state) that a reconcile's own observation
//! produces too. When the two differ, a job failed, was cancelled or appeared behind weir's back,
//! and the worker reconciles (without fetching Git) so that self-heal acts within
//! `observeIntervalSeconds`.

use crate::engine::Clients;
use crate::identity::Identity;
use crate::observe::{ClusterObservation, Observation};

/// The fingerprint of what a reconcile observed.
pub(super) fn fingerprint(observation: &Observation) -> String {
    let mut seen = Vec::new();
    for (cluster, c) in &observation.clusters {
        match c {
            ClusterObservation::Reachable { jobs, .. } => seen.extend(
                jobs.iter()
                    .filter(|j| j.identity.is_some())
                    .map(|j| format!("{cluster}/{}={}", j.id, j.state)),
            ),
            ClusterObservation::Unreachable { .. } => seen.push(format!("{cluster}=unreachable")),
        }
    }
    seen.sort();
    seen.join(",")
}

/// The same fingerprint from one `GET /jobs/overview` per cluster.
pub(super) async fn look(clients: &Clients) -> String {
    let mut seen = Vec::new();
    for (cluster, client) in clients {
        match client.jobs_overview().await {
            Ok(jobs) => seen.extend(
                jobs.iter()
                    .filter(|j| Identity::decode(&j.id).is_some())
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
    fn a_state_change_changes_the_fingerprint() {
        let running = fingerprint(&observed(JobState::Running));
        assert_eq!(running, fingerprint(&observed(JobState::Running)));
        assert_ne!(running, fingerprint(&observed(JobState::Canceled)));
        assert!(running.ends_with("=RUNNING"), "{running}");
    }
}
