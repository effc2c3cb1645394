//! The scheduler: runs of scheduled batch jobs (`spec.schedule`), decided at every reconcile.
//!
//! Which fire time is due is decided by the pure [`crate::schedule::decide`]; this part brings
//! the facts: the fire time of the last decision (the runs table, so a restarted daemon knows
//! what it missed and starts a missed run once), whether a run is still active (then the fire is
//! recorded as skipped), and when the next fire time is (the worker's timer wakes up for it).
//! A run is a change of the reconcile's plan submitting the job without state; it goes through
//! the journal like every other submission and is recorded as a run when submitted.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use crate::desired::{DesiredJob, DesiredState};
use crate::identity;
use crate::observe::{ClusterObservation, Observation, is_active};
use crate::plan::{Action, Change, Restore, ScheduledRun, Step};
use crate::schedule::{self, Decision, Fire};
use crate::store::runs::{NewRun, RunTrigger};
use crate::store::{Store, StoreError};

#[derive(Default)]
pub struct Scheduler {
    /// Job → when this process first saw its schedule: earlier fire times of a job that never
    /// ran on a schedule are not missed runs.
    known_since: BTreeMap<String, i64>,
    /// Job → the fire time this process last started a run for: a submission that failed is
    /// not retried for the same fire time (it is not recorded as a run).
    attempted: BTreeMap<String, i64>,
    /// The earliest next fire time over every scheduled job.
    next_fire_ms: Option<i64>,
}

/// The facts of one reconcile the scheduler decides on.
pub struct Facts<'a> {
    pub desired: &'a DesiredState,
    pub observation: &'a Observation,
    /// Jobs with an apply in flight.
    pub busy: &'a BTreeMap<String, String>,
    pub now_ms: i64,
}

impl Scheduler {
    /// How long until the next fire time (zero when it passed), if any job is scheduled.
    pub fn until_next_ms(&self, now_ms: i64) -> Option<u64> {
        self.next_fire_ms
            .map(|next| u64::try_from(next - now_ms).unwrap_or(0))
    }

    /// The runs due now, as changes to apply; fire times at which a run was still active are
    /// recorded as skipped.
    pub async fn due_runs(
        &mut self,
        store: &Store,
        facts: &Facts<'_>,
    ) -> Result<Vec<Change>, StoreError> {
        let scheduled: Vec<&DesiredJob> = facts
            .desired
            .jobs
            .iter()
            .filter(|j| j.schedule.is_some() && j.state == crate::spec::RunState::Running)
            .collect();
        let names: BTreeSet<&str> = scheduled.iter().map(|j| j.name.as_str()).collect();
        self.known_since.retain(|k, _| names.contains(k.as_str()));
        self.next_fire_ms = None;
        let mut runs = Vec::new();
        for job in scheduled {
            if let Some(change) = self.decide_job(store, job, facts).await? {
                runs.push(change);
            }
        }
        Ok(runs)
    }

    async fn decide_job(
        &mut self,
        store: &Store,
        job: &DesiredJob,
        facts: &Facts<'_>,
    ) -> Result<Option<Change>, StoreError> {
        let Some(spec) = &job.schedule else {
            return Ok(None);
        };
        let parsed = match schedule::Parsed::of(spec) {
            Ok(p) => p,
            // The loader refuses these; never here.
            Err(e) => {
                warn!(job = %job.name, "schedule: {e}");
                return Ok(None);
            }
        };
        let known_since = *self
            .known_since
            .entry(job.name.to_string())
            .or_insert(facts.now_ms);
        let recorded = store.last_fire_ms(&job.name).await?;
        let last = recorded.max(self.attempted.get(job.name.as_str()).copied());
        let (due_ms, fire) = match schedule::decide(&parsed, last, known_since, facts.now_ms) {
            Decision::Wait { next_ms } => {
                self.note_next(next_ms);
                return Ok(None);
            }
            Decision::Due { due_ms, fire } => (due_ms, fire),
        };
        self.note_next(parsed.next_after(facts.now_ms));
        let trigger = match fire {
            Fire::Schedule => RunTrigger::Schedule,
            Fire::CatchUp => RunTrigger::CatchUp,
        };
        if let Some(why) = still_running(job, facts) {
            info!(job = %job.name, due_ms, "scheduled run skipped: {why}");
            let run = NewRun {
                job: &job.name,
                cluster: &job.cluster,
                trigger,
                due_ms: Some(due_ms),
                at_ms: facts.now_ms,
            };
            store.record_skipped_run(run, &why).await?;
            return Ok(None);
        }
        info!(job = %job.name, due_ms, trigger = fire.as_str(), "scheduled run");
        self.attempted.insert(job.name.to_string(), due_ms);
        Ok(Some(run_change(job, fire, due_ms)))
    }

    fn note_next(&mut self, next_ms: Option<i64>) {
        if let Some(next) = next_ms {
            self.next_fire_ms = Some(self.next_fire_ms.map_or(next, |n| n.min(next)));
        }
    }
}

/// Why a run of `job` cannot start now (its previous run is active), if so.
fn still_running(job: &DesiredJob, facts: &Facts<'_>) -> Option<String> {
    if let Some(apply) = facts.busy.get(job.name.as_str()) {
        return Some(format!(
            "apply {apply} of the previous run is still in progress"
        ));
    }
    let Some(ClusterObservation::Reachable { jobs, .. }) =
        facts.observation.clusters.get(job.cluster.as_str())
    else {
        return Some(format!("cluster `{}` could not be observed", job.cluster));
    };
    let hash = identity::name_hash(&job.name);
    jobs.iter()
        .find(|j| is_active(&j.state) && j.identity.is_some_and(|i| i.name_hash == hash))
        .map(|j| format!("the previous run {} is still {}", j.id, j.state))
}

/// The change that submits a run of `job` for fire time `due_ms`.
fn run_change(job: &DesiredJob, fire: Fire, due_ms: i64) -> Change {
    let when = crate::clock::rfc3339(due_ms);
    let reason = match fire {
        Fire::Schedule => format!("scheduled run ({}) due at {when}", job_schedule(job)),
        Fire::CatchUp => format!(
            "catch-up run ({}): the run due at {when} was missed while weir serve was not running",
            job_schedule(job)
        ),
    };
    Change {
        job: job.name.to_string(),
        cluster: job.cluster.to_string(),
        action: Action::Run,
        reason,
        upgrade_mode: job.upgrade_mode,
        steps: vec![
            Step::Submit {
                parallelism: job.parallelism,
                restore: Restore::None,
            },
            Step::AwaitRunning,
        ],
        diff: Vec::new(),
        current_job: None,
        restore: Restore::None,
        desired: Some(job.clone()),
        warnings: Vec::new(),
        state_risks: Vec::new(),
        scheduled_run: Some(ScheduledRun {
            trigger: fire.as_str().to_string(),
            due_ms,
        }),
        from_cluster: None,
        rolled_back: None,
    }
}

fn job_schedule(job: &DesiredJob) -> String {
    match &job.schedule {
        Some(s) => match &s.time_zone {
            Some(tz) => format!("`{}` in {tz}", s.cron),
            None => format!("`{}`", s.cron),
        },
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
