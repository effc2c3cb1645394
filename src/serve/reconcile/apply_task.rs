//! One apply on a task of its own: it takes the per-job locks (and the store lock with the first
//! apply in flight), counts self-heal attempts, and records how it ended: status, metrics,
//! events, and a block for every job whose change failed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use tracing::{info, warn};

use super::in_flight::{ChangeFailure, InFlightGuard, change_done, lock};
use futures::StreamExt;

use super::memory::{self, Memory};
use super::policy;
use super::progress;
use super::shared::Shared;
use super::status::{ApplyInfo, ApplyProgress};
use super::worker::Worker;
use crate::apply::{Applier, ChangeOutcome};
use crate::clock::now_ms;
use crate::engine::{self, Clients, LockError};
use crate::git::RepoSource;
use crate::notify::EventKind;
use crate::observe::{self, Observation};
use crate::plan::{Action, Plan};
use crate::store::{JournalEntry, JournalStatus, StepKind, Trigger};

/// What an apply starts from.
pub(super) struct Start<'a> {
    pub plan: Plan,
    pub source: RepoSource,
    pub clients: Clients,
    pub apply_id: String,
    /// The trigger recorded with the apply (`serve:...`).
    pub trigger: Trigger,
    /// What the plan was made from (each job's fingerprint is remembered if its change fails).
    pub observation: &'a Observation,
}

impl Worker {
    /// Starts applying `plan` on its own task: takes the per-job locks (and the store lock with
    /// the first apply in flight), counts self-heal attempts, and returns; the task records the
    /// outcome. Errs when `weir apply` holds the store.
    pub(super) async fn start_apply(&mut self, start: Start<'_>) -> Result<(), LockError> {
        let Start {
            plan,
            source,
            clients,
            apply_id,
            trigger,
            observation,
        } = start;
        lock(&self.in_flight).take(&self.shared.store, &plan, &apply_id)?;
        let guard = InFlightGuard {
            in_flight: self.in_flight.clone(),
            apply_id: apply_id.clone(),
        };
        let counted = policy::count_attempts(
            &mut self.memory.borrow_mut().heal,
            &plan,
            &self.shared.cfg.sync,
            now_ms(),
        );
        for job in &counted {
            self.shared.metrics.recover_attempt(job);
        }
        if !counted.is_empty() {
            self.save_memory().await;
        }
        let before: BTreeMap<String, String> = plan
            .changes
            .iter()
            .map(|c| {
                (
                    c.job.clone(),
                    observation.job_fingerprint(&c.cluster, &c.job),
                )
            })
            .collect();
        self.announce_start(&plan, &apply_id);
        let author = plan
            .revision
            .commit
            .as_deref()
            .and_then(|c| source.commit_info(c))
            .map(|i| format!("{} <{}>", i.author_name, i.author_email));
        let task = ApplyTask {
            shared: self.shared.clone(),
            memory: self.memory.clone(),
            guard,
            author,
        };
        let mut applier = engine::applier(
            &self.shared.store,
            clients.clone(),
            source,
            &self.settings,
            progress(),
            trigger,
        );
        // A job is free again as soon as its own change has ended, not when the whole apply
        // has; a failed one once its block is recorded (by the task, as the failure happens).
        let (failures, failed_rx) = tokio::sync::mpsc::unbounded_channel();
        applier.on_change_done = Some(change_done(
            self.in_flight.clone(),
            apply_id.clone(),
            failures,
        ));
        let ran = Ran {
            plan,
            apply_id,
            clients,
            before,
        };
        self.tasks.spawn_local(task.run(applier, ran, failed_rx));
        Ok(())
    }

    /// The status and the event of an apply that starts.
    fn announce_start(&self, plan: &Plan, apply_id: &str) {
        let touched: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
        self.shared.update(|s| {
            s.last_apply = Some(ApplyInfo {
                id: apply_id.to_string(),
                plan_id: plan.id.clone(),
                outcome: ApplyProgress::Running,
                error: None,
            });
            for j in s
                .jobs
                .iter_mut()
                .filter(|j| touched.contains(j.name.as_str()))
            {
                j.applying = Some(apply_id.to_string());
            }
        });
        self.shared.event(
            EventKind::ApplyStarted,
            None,
            Some(plan),
            format!("{apply_id}: {}", plan.summary.line()),
        );
        info!(%apply_id, plan = %plan.id, "applying: {}", plan.summary.line());
    }
}

/// What an apply task runs and what it was made from.
struct Ran {
    plan: Plan,
    apply_id: String,
    clients: Clients,
    /// Each job's fingerprint before the apply.
    before: BTreeMap<String, String>,
}

/// One apply running on its own task; it owns the per-job locks until it ends.
struct ApplyTask {
    shared: Arc<Shared>,
    memory: Rc<RefCell<Memory>>,
    guard: InFlightGuard,
    /// Who made the plan's revision, for the notifications.
    author: Option<String>,
}

impl ApplyTask {
    async fn run(
        self,
        applier: Applier,
        ran: Ran,
        mut failed_rx: tokio::sync::mpsc::UnboundedReceiver<ChangeFailure>,
    ) {
        let Ran {
            plan,
            apply_id,
            clients,
            before,
        } = ran;
        // Each failed change is blocked as it fails, while the others go on.
        let mut blocked_early: BTreeSet<String> = BTreeSet::new();
        // The blocks are written while the apply goes on, never with the apply paused: it may
        // be holding the store's write lock at that moment (a block written from inside the
        // select's handler waited out the store's busy timeout and was lost).
        let mut blocking = futures::stream::FuturesUnordered::new();
        let result = {
            let apply = applier.apply(&plan, &apply_id);
            tokio::pin!(apply);
            loop {
                tokio::select! {
                    result = &mut apply => break result,
                    Some((job, why)) = failed_rx.recv() => {
                        blocked_early.insert(job.clone());
                        blocking.push(self.block_now(&plan, &apply_id, job, why, &clients, &before));
                    }
                    Some(()) = blocking.next(), if !blocking.is_empty() => {}
                }
            }
        };
        while let Ok((job, why)) = failed_rx.try_recv() {
            blocked_early.insert(job.clone());
            blocking.push(self.block_now(&plan, &apply_id, job, why, &clients, &before));
        }
        while blocking.next().await.is_some() {}
        drop(blocking);
        let journal = match self.shared.store.journal(&apply_id).await {
            Ok(j) => j,
            Err(e) => {
                warn!("reading the journal of {apply_id}: {e}");
                Vec::new()
            }
        };
        self.record_step_durations(&journal);
        // Jobs whose change failed, with the reason.
        let failed: BTreeMap<String, String> = match &result {
            Ok(outcomes) => {
                self.announce_recovered(&plan, outcomes);
                self.announce_rolled_back(&plan, outcomes);
                outcomes
                    .iter()
                    .filter(|o| !o.ok)
                    .map(|o| (o.job.clone(), o.message.clone()))
                    .collect()
            }
            Err(e) => plan
                .changes
                .iter()
                .map(|c| (c.job.clone(), e.to_string()))
                .collect(),
        };
        if failed.is_empty() {
            let savepoints = result.iter().flatten().filter_map(|o| o.savepoint.clone());
            self.succeeded(&plan, &apply_id, savepoints.collect());
        } else {
            let late: BTreeMap<String, String> = failed
                .iter()
                .filter(|(job, _)| !blocked_early.contains(*job))
                .map(|(j, m)| (j.clone(), m.clone()))
                .collect();
            self.failed(
                &plan, &apply_id, &journal, &failed, &late, &clients, &before,
            )
            .await;
        }
        drop(self.guard);
        self.shared.update(|s| {
            for j in s.jobs.iter_mut() {
                if j.applying.as_deref() == Some(apply_id.as_str()) {
                    j.applying = None;
                }
            }
        });
        // Refresh the status with the state the apply left.
        self.shared.trigger("after-apply");
    }

    /// `job.recovered` for every recover that succeeded.
    fn announce_recovered(&self, plan: &Plan, outcomes: &[ChangeOutcome]) {
        let recovered: BTreeSet<&str> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Recover)
            .map(|c| c.job.as_str())
            .collect();
        for o in outcomes.iter().filter(|o| o.ok) {
            if recovered.contains(o.job.as_str()) {
                self.shared.event(
                    EventKind::JobRecovered,
                    Some(&o.job),
                    Some(plan),
                    o.message.clone(),
                );
            }
        }
    }

    /// `apply.rolledBack` for every change whose new job did not become healthy and was
    /// replaced by its previous definition (the apply as a whole is also `apply.failed`).
    fn announce_rolled_back(&self, plan: &Plan, outcomes: &[ChangeOutcome]) {
        for o in outcomes.iter().filter(|o| o.rolled_back.is_some()) {
            self.shared.event(
                EventKind::ApplyRolledBack,
                Some(&o.job),
                Some(plan),
                o.message.clone(),
            );
        }
    }

    fn succeeded(&self, plan: &Plan, apply_id: &str, savepoints: Vec<String>) {
        self.shared.metrics.apply(ApplyProgress::Succeeded.as_str());
        let mut e = self.shared.event_of(
            EventKind::ApplySucceeded,
            None,
            Some(plan),
            format!("{apply_id}: {}", plan.summary.line()),
        );
        if let Some(a) = &self.author {
            e = e.author(a.clone());
        }
        for sp in savepoints {
            e = e.savepoint(sp);
        }
        self.shared.send(e);
        self.set_outcome(apply_id, ApplyProgress::Succeeded, None);
        info!(%apply_id, "apply succeeded");
    }

    /// Records the block of `job`, whose change just failed, before its lock is released.
    async fn block_now(
        &self,
        plan: &Plan,
        apply_id: &str,
        job: String,
        why: String,
        clients: &Clients,
        before: &BTreeMap<String, String>,
    ) {
        let after = observe::observe(clients).await;
        let failed = BTreeMap::from([(job.clone(), why)]);
        policy::block_failed(
            &mut self.memory.borrow_mut().blocked,
            plan,
            apply_id,
            &failed,
            before,
            &after,
        );
        memory::save(&self.shared.store, &self.memory).await;
        let blocked = self.memory.borrow().blocked_infos();
        self.shared.update(|s| s.blocked = blocked);
        lock(&self.guard.in_flight).release_job(&job, apply_id);
    }

    /// `failed`: every job whose change failed; `unblocked`: those not blocked yet.
    #[allow(clippy::too_many_arguments)]
    async fn failed(
        &self,
        plan: &Plan,
        apply_id: &str,
        journal: &[JournalEntry],
        failed: &BTreeMap<String, String>,
        unblocked: &BTreeMap<String, String>,
        clients: &Clients,
        before: &BTreeMap<String, String>,
    ) {
        let err = failed
            .iter()
            .map(|(j, m)| format!("{j}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        warn!(%apply_id, error = %err, "apply failed");
        self.shared.metrics.apply(ApplyProgress::Failed.as_str());
        let mut e = self.shared.event_of(
            EventKind::ApplyFailed,
            None,
            Some(plan),
            format!("{apply_id}: {err}"),
        );
        if let Some(a) = &self.author {
            e = e.author(a.clone());
        }
        self.shared.send(e);
        self.announce_failed_savepoints(plan, apply_id, journal);
        // Not retried while the revision and the cluster state of the job stay as they were
        // before the apply or as the failure left them.
        if !unblocked.is_empty() {
            let after = observe::observe(clients).await;
            policy::block_failed(
                &mut self.memory.borrow_mut().blocked,
                plan,
                apply_id,
                unblocked,
                before,
                &after,
            );
            memory::save(&self.shared.store, &self.memory).await;
        }
        let blocked = self.memory.borrow().blocked_infos();
        self.shared.update(|s| s.blocked = blocked);
        self.set_outcome(apply_id, ApplyProgress::Failed, Some(err));
    }

    /// Step durations of the apply, from its journal, into the metrics.
    fn record_step_durations(&self, journal: &[JournalEntry]) {
        for e in journal {
            if let Some(end) = e.finished_at_ms {
                let seconds = (end - e.created_at_ms).max(0) as f64 / 1000.0;
                self.shared.metrics.step(e.kind, e.status.as_str(), seconds);
            }
        }
    }

    /// `savepoint.failed` for every stop-with-savepoint step of the apply that failed (the job
    /// keeps running: Flink does not stop a job whose savepoint failed).
    fn announce_failed_savepoints(&self, plan: &Plan, apply_id: &str, journal: &[JournalEntry]) {
        for entry in journal
            .iter()
            .filter(|e| e.kind == StepKind::StopWithSavepoint && e.status == JournalStatus::Failed)
        {
            let cause = entry.result_json.clone().unwrap_or_default();
            let mut e = self.shared.event_of(
                EventKind::SavepointFailed,
                Some(&entry.job),
                Some(plan),
                format!(
                    "{apply_id}: the savepoint of `{}` failed: {cause}",
                    entry.job
                ),
            );
            if let Some(a) = &self.author {
                e = e.author(a.clone());
            }
            self.shared.send(e);
        }
    }

    fn set_outcome(&self, apply_id: &str, outcome: ApplyProgress, error: Option<String>) {
        self.shared.update(|s| {
            if let Some(a) = &mut s.last_apply
                && a.id == apply_id
            {
                a.outcome = outcome;
                a.error = error;
            }
        });
    }
}
