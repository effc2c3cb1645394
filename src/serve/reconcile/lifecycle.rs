//! The lifecycle timer of `weir serve`: periodic savepoints (`spec.savepoint.periodic`),
//! retention (`spec.savepoint.retain`) and job health, on a task of its own next to the
//! reconcile worker.
//!
//! It works on the desired state of the last good load and never on a job an apply holds: while
//! it takes a savepoint of a job it holds that job in [`InFlight`] too, so the worker leaves the
//! job alone until the savepoint is recorded. Every savepoint operation goes through the store's
//! operations journal ([`crate::lifecycle`]), so a crash never loses one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::{info, warn};

use super::in_flight::{InFlight, lock};
use super::shared::Shared;
use super::status::JobStatus;
use crate::clock::now_ms;
use crate::desired::{DesiredJob, DesiredState};
use crate::engine::{self, Clients};
use crate::flink::{FlinkClient, JobState};
use crate::identity::JobId;
use crate::lifecycle::health::{self, HealthReport, Thresholds};
use crate::lifecycle::{self, LifecycleError, SavepointTarget, Waits};
use crate::notify::EventKind;
use crate::serve::config::LifecycleConfig;
use crate::store::SavepointKind;
use crate::store::lifecycle::OperationOrigin;

/// Fills the health columns of `jobs` from the last health round.
pub(super) fn attach_health(shared: &Shared, jobs: &mut [JobStatus]) {
    let reports = shared.job_health.lock().unwrap_or_else(|e| e.into_inner());
    for j in jobs {
        if let Some(r) = reports.get(j.name.as_str()) {
            j.job_health = Some(r.health);
            j.job_health_reasons = r.reasons.clone();
        }
    }
}

/// Runs the timer until shutdown.
pub(super) async fn run(shared: Arc<Shared>, in_flight: Arc<Mutex<InFlight>>) {
    let cfg = shared.cfg.lifecycle.clone();
    let tick = Duration::from_secs(cfg.tick_seconds.max(1));
    let mut timer = Timer::default();
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let desired = shared
            .desired
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(desired) = desired else { continue };
        let Ok(clients) = engine::clients(&desired) else {
            continue;
        };
        let round = Round {
            shared: &shared,
            in_flight: &in_flight,
            desired: &desired,
            clients: &clients,
            cfg: &cfg,
        };
        timer.round(&round).await;
    }
}

struct Round<'a> {
    shared: &'a Shared,
    in_flight: &'a Mutex<InFlight>,
    desired: &'a DesiredState,
    clients: &'a Clients,
    cfg: &'a LifecycleConfig,
}

#[derive(Default)]
struct Timer {
    resumed: bool,
    next_health_ms: i64,
    next_retention_ms: i64,
    /// Where the next health round starts in the job list (rounds are bounded).
    health_cursor: usize,
    /// The last health report of each Flink job (events fire on changes).
    reports: BTreeMap<String, HealthReport>,
    /// The Flink job last read for each definition (its readings are dropped when it changes).
    read_job: BTreeMap<String, String>,
    /// Earlier (time, failed checkpoints) readings of each Flink job.
    samples: BTreeMap<String, Vec<(i64, u64)>>,
    /// A job's periodic savepoint failed: not tried again before this time.
    backoff_until: BTreeMap<String, i64>,
}

/// When a job's periodic savepoint is due (`spec.savepoint.periodic`).
enum Periodic {
    /// A duration after the last savepoint.
    Every(i64),
    /// A fire time of the cron expression after the last savepoint.
    Cron(Box<crate::schedule::Parsed>),
}

impl Periodic {
    /// Whether a savepoint is due at `now` when the last one was taken at `last_ms`.
    fn is_due(&self, last_ms: i64, now: i64) -> bool {
        match self {
            Periodic::Every(every) => now - last_ms >= *every,
            Periodic::Cron(cron) => cron.next_after(last_ms).is_some_and(|t| t <= now),
        }
    }

    /// How long to wait after a failed series of attempts: five minutes, or the period when
    /// shorter.
    fn retry_after_ms(&self) -> i64 {
        match self {
            Periodic::Every(every) => (*every).min(300_000),
            Periodic::Cron(_) => 300_000,
        }
    }
}

/// Holds a job in [`InFlight`] while the timer works on it.
struct Hold<'a> {
    in_flight: &'a Mutex<InFlight>,
    job: String,
}

const HOLDER: &str = "lifecycle";

impl<'a> Hold<'a> {
    fn take(in_flight: &'a Mutex<InFlight>, job: &str) -> Option<Hold<'a>> {
        let mut f = lock(in_flight);
        if f.jobs.contains_key(job) {
            return None;
        }
        f.jobs.insert(job.to_string(), HOLDER.to_string());
        Some(Hold {
            in_flight,
            job: job.to_string(),
        })
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        lock(self.in_flight).release_job(&self.job, HOLDER);
    }
}

impl Timer {
    async fn round(&mut self, r: &Round<'_>) {
        let store = &r.shared.store;
        if !self.resumed {
            let client_of = |c: &str| r.clients.get(c).map(|c| FlinkClient::clone(c));
            match lifecycle::resume_pending(store, client_of).await {
                Ok(done) => {
                    for d in done {
                        info!(operation = d.operation, job = %d.job, "interrupted savepoint operation: {}", d.result);
                    }
                    self.resumed = true;
                }
                Err(e) => warn!("lifecycle: {}", crate::text::error_chain(&e)),
            }
        }
        for job in &r.desired.jobs {
            let due = match (&job.lifecycle.periodic_ms, &job.lifecycle.periodic_cron) {
                (Some(every), _) => Some(Periodic::Every(*every)),
                (None, Some(cron)) => crate::schedule::Parsed::new(cron, None)
                    .ok()
                    .map(|p| Periodic::Cron(Box::new(p))),
                (None, None) => None,
            };
            if let Some(due) = due {
                self.periodic(r, job, due).await;
            }
        }
        let now = now_ms();
        if now >= self.next_retention_ms {
            self.next_retention_ms = now + secs_ms(r.cfg.retention_interval_seconds);
            retention(r).await;
        }
        if now >= self.next_health_ms {
            self.next_health_ms = now + secs_ms(r.cfg.health_interval_seconds);
            self.health(r).await;
        }
    }

    /// Takes a savepoint of `job` when its last one is old enough for `due`.
    async fn periodic(&mut self, r: &Round<'_>, job: &DesiredJob, due: Periodic) {
        let now = now_ms();
        if self
            .backoff_until
            .get(job.name.as_str())
            .is_some_and(|t| now < *t)
        {
            return;
        }
        let Some((target, client)) = running_target(r, job).await else {
            return;
        };
        let store = &r.shared.store;
        let disposed = store
            .disposed_savepoints(&job.name)
            .await
            .unwrap_or_default();
        let last = store
            .savepoints(&job.name)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.kind == SavepointKind::Savepoint && !disposed.contains(&s.path))
            .map(|s| s.at_ms)
            .max();
        if last.is_some_and(|at| !due.is_due(at, now)) {
            return;
        }
        let Some(_hold) = Hold::take(r.in_flight, &job.name) else {
            return;
        };
        let waits = Waits {
            timeout: Duration::from_secs(r.shared.cfg.apply.savepoint_timeout_seconds),
            poll_interval: Duration::from_secs(1),
        };
        let attempts = r.cfg.savepoint_attempts.max(1);
        let take = || async {
            lifecycle::take_savepoint(
                store,
                &client,
                &target,
                OperationOrigin::Periodic,
                Some("weir serve".into()),
                waits,
                |_| {},
            )
            .await
        };
        let taken = take
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(r.cfg.savepoint_retry_seconds.max(1)))
                    .with_max_times(attempts - 1),
            )
            // A store error or a savepoint still in progress is not helped by another trigger.
            .when(|e| matches!(e, LifecycleError::Savepoint { .. }))
            .notify(|e, after| {
                warn!(job = %job.name, "periodic savepoint failed, retrying in {after:?}: {}", crate::text::error_chain(e));
            })
            .await;
        match taken {
            Ok(sp) => {
                r.shared.metrics.savepoint_operation("trigger", "succeeded");
                info!(job = %job.name, path = %sp.path, "periodic savepoint recorded");
            }
            Err(e) => {
                r.shared.metrics.savepoint_operation("trigger", "failed");
                let why = crate::text::error_chain(&e);
                warn!(job = %job.name, "periodic savepoint failed: {why}");
                // Wait a while (at most a period) before the next series of attempts.
                self.backoff_until
                    .insert(job.name.to_string(), now_ms() + due.retry_after_ms());
                let event = r
                    .shared
                    .event_of(
                        EventKind::SavepointFailed,
                        Some(&job.name),
                        None,
                        format!("periodic savepoint failed after {attempts} attempt(s): {why}"),
                    )
                    .cluster(job.cluster.clone());
                r.shared.send(event);
            }
        }
    }

    /// Reads the health of up to `healthJobsPerRound` running jobs.
    async fn health(&mut self, r: &Round<'_>) {
        let jobs = &r.desired.jobs;
        if jobs.is_empty() {
            return;
        }
        let thresholds = Thresholds::from(&r.desired.config.health.clone().unwrap_or_default());
        let per_round = r.cfg.health_jobs_per_round.max(1).min(jobs.len());
        let start = self.health_cursor % jobs.len();
        self.health_cursor = start + per_round;
        let names: BTreeSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        for i in 0..per_round {
            let job = &jobs[(start + i) % jobs.len()];
            self.health_of(r, job, &thresholds).await;
        }
        // Forget reports of definitions that are gone.
        r.shared
            .job_health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| names.contains(name.as_str()));
        r.shared.update(|s| attach_health(r.shared, &mut s.jobs));
    }

    async fn health_of(&mut self, r: &Round<'_>, job: &DesiredJob, t: &Thresholds) {
        let report = match current_job(r, job).await {
            Some((id, state, client)) => {
                let key = id.to_string();
                if let Some(old) = self.read_job.insert(job.name.to_string(), key.clone())
                    && old != key
                {
                    self.samples.remove(&old);
                    self.reports.remove(&old);
                }
                let samples = self.samples.entry(key).or_default();
                lifecycle::health_of(&client, &id, &state, t, samples)
                    .await
                    .ok()
                    .flatten()
                    .map(|rep| (id, rep))
            }
            None => None,
        };
        let Some((id, report)) = report else {
            r.shared
                .job_health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(job.name.as_str());
            return;
        };
        r.shared
            .metrics
            .set_job_health(&job.name, &job.cluster, report.health.gauge());
        let key = id.to_string();
        for kind in health::events(self.reports.get(&key), &report, t) {
            let message = match kind {
                EventKind::CheckpointRecovered => "checkpoints complete again".to_string(),
                EventKind::JobRestarting => format!(
                    "the job restarted ({} restart(s) in the last {} min)",
                    report.restarts,
                    t.window_ms / 60_000
                ),
                _ => report.reasons.join("; "),
            };
            let event = r
                .shared
                .event_of(kind, Some(&job.name), None, message)
                .cluster(job.cluster.clone());
            r.shared.send(event);
        }
        r.shared
            .job_health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.name.to_string(), report.clone());
        self.reports.insert(key, report);
    }
}

/// Applies each job's retention policy; a failed disposal is reported (and retried next round).
async fn retention(r: &Round<'_>) {
    let waits = Waits {
        timeout: Duration::from_secs(120),
        poll_interval: Duration::from_secs(1),
    };
    for job in &r.desired.jobs {
        let Some(policy) = job.lifecycle.retain.filter(|p| p.is_set()) else {
            continue;
        };
        let Some(client) = r.clients.get(job.cluster.as_str()) else {
            continue;
        };
        let Some(_hold) = Hold::take(r.in_flight, &job.name) else {
            continue;
        };
        let pruned = lifecycle::prune_job(
            &r.shared.store,
            client,
            &job.name,
            &policy,
            false,
            OperationOrigin::Retention,
            Some("weir serve".into()),
            waits,
        )
        .await;
        let pruned = match pruned {
            Ok(p) => p,
            Err(e) => {
                warn!(job = %job.name, "retention: {}", crate::text::error_chain(&e));
                continue;
            }
        };
        for p in pruned.iter().filter(|p| p.decision.disposes()) {
            let outcome = if p.failed { "failed" } else { "succeeded" };
            r.shared.metrics.savepoint_operation("dispose", outcome);
            let result = p.result.clone().unwrap_or_default();
            if p.failed {
                warn!(job = %job.name, path = %p.decision.path, "retention: {result}");
                let event = r
                    .shared
                    .event_of(
                        EventKind::SavepointFailed,
                        Some(&job.name),
                        None,
                        format!("{result} (the savepoint stays recorded; retried next round)"),
                    )
                    .cluster(job.cluster.clone());
                r.shared.send(event);
            } else {
                info!(job = %job.name, path = %p.decision.path, "retention: disposed");
            }
        }
    }
}

/// The Flink job weir runs for `job`, its state and the cluster's client.
async fn current_job(r: &Round<'_>, job: &DesiredJob) -> Option<(JobId, JobState, FlinkClient)> {
    let record = r.shared.store.job(&job.name).await.ok()??;
    if record.deleted || record.cluster != job.cluster {
        return None;
    }
    let id: JobId = record.current_job_id?.parse().ok()?;
    let client = FlinkClient::clone(r.clients.get(job.cluster.as_str())?);
    let state = client.job_state(&id).await.ok()??;
    Some((id, state, client))
}

/// The savepoint target of `job` when its Flink job runs.
async fn running_target(r: &Round<'_>, job: &DesiredJob) -> Option<(SavepointTarget, FlinkClient)> {
    let (id, state, client) = current_job(r, job).await?;
    if state != JobState::Running {
        return None;
    }
    let target = SavepointTarget {
        job: job.name.to_string(),
        cluster: job.cluster.to_string(),
        flink_job_id: id,
        savepoint_dir: job.savepoint_dir.clone(),
    };
    Some((target, client))
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod periodic_tests {
    use super::Periodic;

    #[test]
    fn a_duration_is_due_after_it_passed_and_a_cron_after_its_next_fire_time() {
        let hour = 3_600_000;
        let every = Periodic::Every(6 * hour);
        assert!(!every.is_due(0, 5 * hour));
        assert!(every.is_due(0, 6 * hour));
        // Every six hours on the hour (UTC): last at 01:00 → due at 06:00, not before.
        let cron = Periodic::Cron(Box::new(
            crate::schedule::Parsed::new("0 */6 * * *", None).unwrap(),
        ));
        assert!(!cron.is_due(hour, 5 * hour + 59 * 60_000));
        assert!(cron.is_due(hour, 6 * hour));
    }
}
