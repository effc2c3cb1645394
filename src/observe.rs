//! The actual state: what runs on each Flink cluster, as seen through its REST API.
//!
//! Observing costs one `/jobs/overview` call per cluster; only managed jobs that are no longer
//! running and are the newest of their definition get one more call (their checkpoints), because a
//! recover needs to know which savepoint or retained checkpoint to restore from.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::flink::JobState;
use crate::identity::{Identity, JobId};

/// Every configured cluster, observed at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observation {
    pub clusters: BTreeMap<String, ClusterObservation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum ClusterObservation {
    #[serde(rename_all = "camelCase")]
    Reachable {
        url: String,
        flink_version: Option<String>,
        jobs: Vec<ObservedJob>,
    },
    #[serde(rename_all = "camelCase")]
    Unreachable { url: String, error: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedJob {
    pub id: JobId,
    /// The name Flink shows (chosen by the program, not by weir).
    pub name: String,
    pub state: JobState,
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    /// Decoded from the job id; `None` for jobs weir did not submit.
    pub identity: Option<Identity>,
    /// Newest completed savepoint of this job, when it was looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_savepoint: Option<String>,
    /// Newest completed checkpoint (or savepoint) of this job, when it was looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_checkpoint: Option<String>,
}

/// Whether a job still occupies the cluster (anything but a terminal state).
pub fn is_active(state: &JobState) -> bool {
    !state.is_terminal()
}

impl Observation {
    /// The one observed-state fingerprint, of one job: its cluster's reachability and the id and
    /// state of every weir job of that definition on it. Every staleness rule is built on it (the
    /// daemon also stores it, with a failed revision, in `daemon_state`: keep its format).
    pub fn job_fingerprint(&self, cluster: &str, job: &str) -> String {
        let mut h = Sha256::new();
        h.update(format!("{cluster}/{job}:"));
        match self.clusters.get(cluster) {
            Some(ClusterObservation::Reachable { jobs, .. }) => {
                let hash = crate::identity::name_hash(job);
                let mut mine: Vec<String> = jobs
                    .iter()
                    .filter(|j| j.identity.is_some_and(|i| i.name_hash == hash))
                    .map(|j| format!("{}={}", j.id, j.state))
                    .collect();
                mine.sort();
                h.update(mine.join(","));
            }
            Some(ClusterObservation::Unreachable { .. }) => h.update("unreachable"),
            None => h.update("unobserved"),
        }
        hex::encode(h.finalize())
    }

    /// [`Observation::job_fingerprint`] of a set of jobs, (cluster, job name) each, in one
    /// digest. Jobs of other repos sharing a cluster are not in the set, so they do not count.
    pub fn scope_fingerprint<'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        let keys: BTreeSet<(&str, &str)> = jobs.into_iter().collect();
        let mut h = Sha256::new();
        for (cluster, job) in keys {
            h.update(self.job_fingerprint(cluster, job));
            h.update("\n");
        }
        hex::encode(h.finalize())
    }
}

/// Observes every cluster concurrently: one `/jobs/overview` call each, plus one checkpoints call
/// for each definition whose newest managed job has stopped (a recover needs its latest state).
pub async fn observe(
    clients: &BTreeMap<String, std::sync::Arc<crate::flink::FlinkClient>>,
) -> Observation {
    let futures = clients
        .iter()
        .map(|(name, client)| async move { (name.clone(), observe_cluster(client).await) });
    Observation {
        clusters: futures::future::join_all(futures)
            .await
            .into_iter()
            .collect(),
    }
}

async fn observe_cluster(client: &crate::flink::FlinkClient) -> ClusterObservation {
    let url = client.url().to_string();
    // The version is observed with the jobs, once per observation (one `GET /config`): the plan
    // shows it, pre-flight results are cached by it, and `weir status` reports it.
    let (overview, version) = futures::join!(client.jobs_overview(), client.flink_version());
    let overview = match overview {
        Ok(jobs) => jobs,
        Err(e) => {
            return ClusterObservation::Unreachable {
                url,
                error: e.to_string(),
            };
        }
    };
    let mut jobs: Vec<ObservedJob> = overview
        .into_iter()
        .map(|j| ObservedJob {
            identity: Identity::decode(&j.id),
            id: j.id,
            name: j.name,
            state: j.state,
            start_time_ms: j.start_time_ms,
            end_time_ms: j.end_time_ms,
            latest_savepoint: None,
            latest_checkpoint: None,
        })
        .collect();
    // Newest managed job per definition; look up state only where none of them is active.
    let mut newest: BTreeMap<u64, usize> = BTreeMap::new();
    let mut active: std::collections::BTreeSet<u64> = Default::default();
    for (i, j) in jobs.iter().enumerate() {
        let Some(ident) = j.identity else { continue };
        if is_active(&j.state) {
            active.insert(ident.name_hash);
        }
        let e = newest.entry(ident.name_hash).or_insert(i);
        if jobs[*e].start_time_ms < j.start_time_ms {
            *e = i;
        }
    }
    let lookups: Vec<usize> = newest
        .iter()
        .filter(|(h, _)| !active.contains(h))
        .map(|(_, i)| *i)
        .collect();
    let found = futures::future::join_all(lookups.iter().map(|&i| {
        let id = jobs[i].id;
        async move { (i, client.checkpoints(&id).await) }
    }))
    .await;
    for (i, result) in found {
        if let Ok(summary) = result {
            jobs[i].latest_savepoint = summary.savepoint.and_then(|s| s.external_path);
            jobs[i].latest_checkpoint = summary
                .completed
                .filter(|c| !c.discarded)
                .and_then(|s| s.external_path);
        }
    }
    ClusterObservation::Reachable {
        url,
        flink_version: version.ok(),
        jobs,
    }
}
