//! Publication: what a reconcile saw becomes the status (`GET /api/v1/status`), the metrics and
//! the events about drift and failed jobs.

use std::collections::BTreeMap;

use super::memory::Memory;
use super::policy::Drift;
use super::status::{ClusterStatus, HealInfo, JobStatus};
use super::worker::Worker;
use crate::clock::now_ms;
use crate::desired::DesiredState;
use crate::engine::History;
use crate::notify::EventKind;
use crate::observe::{ClusterObservation, Observation};
use crate::plan::Plan;
use crate::serve::config::SyncConfig;

/// What a reconcile saw, after [`super::policy::admit`].
pub(super) struct Seen<'a> {
    pub desired: &'a DesiredState,
    pub observation: &'a Observation,
    pub history: &'a History,
    pub plan: &'a Plan,
    pub drift: &'a Drift,
    /// Job → its invalid file.
    pub invalid_jobs: &'a BTreeMap<String, String>,
    /// Job → the apply in flight on it.
    pub busy: &'a BTreeMap<String, String>,
}

impl Worker {
    pub(super) fn publish(&self, seen: Seen<'_>) {
        let now = now_ms();
        let mut jobs = job_statuses(&seen, &self.shared.cfg.sync, &self.memory.borrow());
        super::lifecycle::attach_health(&self.shared, &mut jobs);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut health: BTreeMap<String, i64> = BTreeMap::new();
        for j in &jobs {
            *counts.entry(j.sync.to_string()).or_default() += 1;
            *health.entry(j.health.to_string()).or_default() += 1;
        }
        self.shared.metrics.set_jobs(&counts);
        self.shared.metrics.set_health(&health);
        let clusters = self.cluster_statuses(&seen, &jobs, now);
        for (job, why) in seen.drift {
            self.shared
                .event(EventKind::DriftDetected, Some(job), None, why.clone());
        }
        // Drift that the plan refuses to act on (two copies of a job) is announced too.
        for e in seen.plan.errors.iter().filter(|e| e.drift) {
            if let Some(job) = &e.job {
                self.shared
                    .event(EventKind::DriftDetected, Some(job), None, e.message.clone());
            }
        }
        self.announce_failed_jobs(&jobs);
        let warnings = seen.plan.warnings.clone();
        let errors: Vec<String> = seen.plan.errors.iter().map(|e| e.message.clone()).collect();
        self.shared.update(|s| {
            s.jobs = jobs;
            s.clusters = clusters;
            s.warnings = warnings;
            s.plan_errors = errors;
        });
    }

    /// Per cluster: reachability, and when it was last seen in sync.
    fn cluster_statuses(
        &self,
        seen: &Seen<'_>,
        jobs: &[JobStatus],
        now: i64,
    ) -> BTreeMap<String, ClusterStatus> {
        let mut clusters = BTreeMap::new();
        let previous = self.shared.status().clusters;
        for (name, c) in &seen.observation.clusters {
            let in_sync = !seen.plan.changes.iter().any(|ch| &ch.cluster == name)
                && !seen.plan.errors.iter().any(|e| &e.cluster == name)
                && !jobs.iter().any(|j| j.cluster == name && j.drift.is_some());
            let last_sync = if in_sync && matches!(c, ClusterObservation::Reachable { .. }) {
                self.shared.metrics.synced(name, now);
                Some(now)
            } else {
                previous.get(name).and_then(|p| p.last_sync_at_ms)
            };
            let status = match c {
                ClusterObservation::Reachable { url, .. } => ClusterStatus {
                    url: url.clone(),
                    reachable: true,
                    error: None,
                    last_sync_at_ms: last_sync,
                },
                ClusterObservation::Unreachable { url, error } => ClusterStatus {
                    url: url.clone(),
                    reachable: false,
                    error: Some(error.clone()),
                    last_sync_at_ms: last_sync,
                },
            };
            clusters.insert(name.clone(), status);
        }
        clusters
    }

    /// `job.failed` once per failed Flink job.
    fn announce_failed_jobs(&self, jobs: &[JobStatus]) {
        let failed: BTreeMap<&str, (&str, &str)> = jobs
            .iter()
            .filter(|j| j.health == "FAILED")
            .map(|j| (j.job_id.as_str(), (j.name.as_str(), j.cluster.as_str())))
            .collect();
        let mut reported = self.failed_reported.borrow_mut();
        for (id, (name, cluster)) in &failed {
            if reported.insert(id.to_string()) {
                let e = self
                    .shared
                    .event_of(
                        EventKind::JobFailed,
                        Some(name),
                        None,
                        format!("Flink job {id} of `{name}` is FAILED"),
                    )
                    .cluster(cluster.to_string());
                self.shared.send(e);
            }
        }
        // Forget jobs no longer failed, so the set stays small.
        reported.retain(|id| failed.contains_key(id.as_str()));
    }
}

/// A status line per job: the defined ones, then those whose file is invalid; sorted by name.
fn job_statuses(seen: &Seen<'_>, sync: &SyncConfig, memory: &Memory) -> Vec<JobStatus> {
    let max = sync.self_heal_max_attempts;
    let defined: BTreeMap<&str, &crate::desired::DesiredJob> = seen
        .desired
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j))
        .collect();
    let rows = crate::status::rows(seen.desired, seen.observation, seen.history, seen.plan);
    let mut jobs: Vec<JobStatus> = rows
        .into_iter()
        .map(|r| {
            let drifted = seen.drift.get(&r.name).cloned();
            JobStatus {
                sync: if drifted.is_some() {
                    "OutOfSync".into()
                } else {
                    r.sync.into()
                },
                file: defined.get(r.name.as_str()).map(|j| j.file.as_str().into()),
                labels: defined
                    .get(r.name.as_str())
                    .map(|j| j.labels.clone())
                    .unwrap_or_default(),
                self_heal: memory.heal.get(&r.name).map(|h| HealInfo {
                    attempts: h.attempts,
                    next_attempt_at_ms: h.next_at_ms,
                    gave_up: h.attempts >= max,
                }),
                policy: Some(sync.for_job(&r.name, &r.cluster)),
                applying: seen.busy.get(&r.name).cloned(),
                name: r.name.into(),
                cluster: r.cluster.into(),
                health: r.flink_state.into(),
                job_id: r.job_id.into(),
                last_savepoint: r.last_savepoint.into(),
                drift: drifted,
                flink_version: r.flink_version.map(Into::into),
                job_health: None,
                job_health_reasons: Vec::new(),
            }
        })
        .collect();
    for (name, file) in seen.invalid_jobs {
        let h = &seen.history[name];
        let (health, job_id) = newest_job(seen.observation, &h.cluster, name);
        jobs.push(JobStatus {
            name: name.into(),
            cluster: h.cluster.as_str().into(),
            sync: "InvalidDefinition".into(),
            health: health.into(),
            job_id: job_id.into(),
            last_savepoint: h.last_savepoint.as_deref().unwrap_or("-").into(),
            drift: None,
            file: Some(file.into()),
            self_heal: None,
            policy: Some(sync.for_job(name, &h.cluster)),
            applying: seen.busy.get(name).cloned(),
            flink_version: match seen.observation.clusters.get(&h.cluster) {
                Some(ClusterObservation::Reachable { flink_version, .. }) => {
                    flink_version.as_deref().map(Into::into)
                }
                _ => None,
            },
            labels: Default::default(),
            job_health: None,
            job_health_reasons: Vec::new(),
        });
    }
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    jobs
}

/// The Flink state and id of the newest job of `name` on `cluster`.
fn newest_job(observation: &Observation, cluster: &str, name: &str) -> (String, String) {
    let Some(ClusterObservation::Reachable { jobs, .. }) = observation.clusters.get(cluster) else {
        return ("unreachable".into(), "-".into());
    };
    let hash = crate::identity::name_hash(name);
    let mine = jobs
        .iter()
        .filter(|j| j.identity.is_some_and(|i| i.name_hash == hash));
    match crate::status::newest(mine) {
        Some(j) => (j.state.to_string(), j.id.to_string()),
        None => ("-".into(), "-".into()),
    }
}
