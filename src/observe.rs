//! The actual state: what runs on each Flink cluster, as seen through its REST API.
//!
//! Observing costs one `/jobs/overview` call per cluster; only managed jobs that are no longer
//! running and are the newest of their definition get one more call (their checkpoints), because a
//! recover needs to know which savepoint or retained checkpoint to restore from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
        let hash = crate::identity::name_hash(job);
        let seen = match self.clusters.get(cluster) {
            Some(ClusterObservation::Reachable { jobs, .. }) => Seen::Jobs(
                jobs.iter()
                    .filter(|j| j.identity.is_some_and(|i| i.name_hash == hash))
                    .collect(),
            ),
            Some(ClusterObservation::Unreachable { .. }) => Seen::Unreachable,
            None => Seen::Unobserved,
        };
        fingerprint(cluster, job, seen)
    }

    /// [`Observation::job_fingerprint`] of a set of jobs, (cluster, job name) each, in one
    /// digest. Jobs of other repos sharing a cluster are not in the set, so they do not count.
    /// Each cluster's jobs are grouped by definition once (not scanned once per job: that grew
    /// with the square of the jobs).
    pub fn scope_fingerprint<'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        let keys: BTreeSet<(&str, &str)> = jobs.into_iter().collect();
        let mut by_definition: HashMap<&str, HashMap<u64, Vec<&ObservedJob>>> = HashMap::new();
        let mut h = Sha256::new();
        for (cluster, job) in keys {
            let seen = match self.clusters.get(cluster) {
                Some(ClusterObservation::Reachable { jobs, .. }) => {
                    let index = by_definition.entry(cluster).or_insert_with(|| {
                        let mut index: HashMap<u64, Vec<&ObservedJob>> = HashMap::new();
                        for j in jobs {
                            if let Some(i) = j.identity {
                                index.entry(i.name_hash).or_default().push(j);
                            }
                        }
                        index
                    });
                    let hash = crate::identity::name_hash(job);
                    Seen::Jobs(index.get(&hash).cloned().unwrap_or_default())
                }
                Some(ClusterObservation::Unreachable { .. }) => Seen::Unreachable,
                None => Seen::Unobserved,
            };
            h.update(fingerprint(cluster, job, seen));
            h.update("\n");
        }
        hex::encode(h.finalize())
    }
}

/// What a fingerprint saw of one definition on its cluster.
enum Seen<'a> {
    Jobs(Vec<&'a ObservedJob>),
    Unreachable,
    Unobserved,
}

/// The digest of [`Observation::job_fingerprint`] (stored by the daemon: keep its format).
fn fingerprint(cluster: &str, job: &str, seen: Seen<'_>) -> String {
    let mut h = Sha256::new();
    h.update(format!("{cluster}/{job}:"));
    match seen {
        Seen::Jobs(jobs) => {
            let mut mine: Vec<String> = jobs
                .iter()
                .map(|j| format!("{}={}", j.id, j.state))
                .collect();
            mine.sort();
            h.update(mine.join(","));
        }
        Seen::Unreachable => h.update("unreachable"),
        Seen::Unobserved => h.update("unobserved"),
    }
    hex::encode(h.finalize())
}

/// How many clusters are observed at the same time. Each observation is one `/jobs/overview`
/// call (plus checkpoint lookups for stopped jobs); a bound keeps a fleet of clusters from opening
/// hundreds of connections and buffering hundreds of answers at once, while a slow cluster
/// occupies only one of the slots: the others go on being observed past it.
pub const MAX_CONCURRENT_CLUSTERS: usize = 16;

/// Observes every cluster concurrently (at most [`MAX_CONCURRENT_CLUSTERS`] at a time): one
/// `/jobs/overview` call each, plus one checkpoints call for each definition whose newest managed
/// job has stopped (a recover needs its latest state).
pub async fn observe(
    clients: &BTreeMap<String, std::sync::Arc<crate::flink::FlinkClient>>,
) -> Observation {
    use futures::StreamExt;
    // Collected first: a stream over a mapping closure would not be provably `Send` for the
    // daemon's spawned tasks (a higher-ranked lifetime limitation of the compiler).
    let futures: Vec<_> = clients
        .iter()
        .map(|(name, client)| async move { (name.clone(), observe_cluster(client).await) })
        .collect();
    Observation {
        clusters: futures::stream::iter(futures)
            .buffer_unordered(MAX_CONCURRENT_CLUSTERS)
            .collect()
            .await,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::flink::FlinkClient;
    use crate::spec::ClusterConfig;
    use crate::testing::fake_flink::Fake;

    const OVERVIEW: &str = "GET /jobs/overview";

    /// `n` fake clusters named `c000`, `c001`, ..., with their clients.
    async fn fleet(n: usize) -> (Vec<Arc<Fake>>, BTreeMap<String, Arc<FlinkClient>>) {
        let mut fakes = Vec::new();
        let mut clients = BTreeMap::new();
        for i in 0..n {
            let (fake, url) = Fake::serve().await;
            let name = format!("c{i:03}");
            let cfg = ClusterConfig {
                url,
                savepoint_dir: None,
                bearer_token_env: None,
                headers_from_env: BTreeMap::new(),
                timeout_seconds: None,
            };
            clients.insert(
                name.clone(),
                Arc::new(FlinkClient::new(&name, &cfg).unwrap()),
            );
            fakes.push(fake);
        }
        (fakes, clients)
    }

    /// The arrival of the one `/jobs/overview` request each cluster got.
    fn overview_arrivals(fakes: &[Arc<Fake>]) -> Vec<std::time::Instant> {
        fakes
            .iter()
            .map(|fake| {
                let calls: Vec<_> = fake
                    .since(0)
                    .into_iter()
                    .filter(|r| r.endpoint == OVERVIEW)
                    .collect();
                assert_eq!(calls.len(), 1, "one /jobs/overview per cluster");
                calls[0].at
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_cluster_does_not_hold_up_the_others() {
        let (fakes, clients) = fleet(100).await;
        // `c000` is observed first and answers only after SLOW.
        const SLOW: Duration = Duration::from_secs(3);
        fakes[0].delay(OVERVIEW, SLOW);

        let observation = observe(&clients).await;

        assert_eq!(observation.clusters.len(), 100);
        assert!(
            observation
                .clusters
                .values()
                .all(|c| matches!(c, ClusterObservation::Reachable { .. }))
        );
        let arrivals = overview_arrivals(&fakes);
        let slow_answered = arrivals[0] + SLOW;
        let late: Vec<usize> = (1..100).filter(|&i| arrivals[i] >= slow_answered).collect();
        assert!(
            late.is_empty(),
            "clusters observed only after the slow one answered: {late:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clusters_are_observed_at_most_the_bound_at_a_time() {
        let (fakes, clients) = fleet(3 * MAX_CONCURRENT_CLUSTERS).await;
        const ANSWER: Duration = Duration::from_millis(300);
        for fake in &fakes {
            fake.delay(OVERVIEW, ANSWER);
        }

        observe(&clients).await;

        // No request can start before one of the first `MAX_CONCURRENT_CLUSTERS` was answered,
        // which is at least ANSWER after the first arrival.
        let mut arrivals = overview_arrivals(&fakes);
        arrivals.sort();
        let first = arrivals[0];
        let in_first_window = arrivals.iter().filter(|&&t| t < first + ANSWER).count();
        assert!(
            in_first_window <= MAX_CONCURRENT_CLUSTERS,
            "{in_first_window} observations overlapped"
        );
    }
}
