//! Approving a waiting plan (`POST /api/v1/plans/{id}/apply`): refused when it is stale (the
//! engine's one rule, scoped to the plan's own jobs) or when an apply of one of its jobs is in
//! flight.

use tokio::sync::oneshot;

use super::ReconcileError;
use super::apply_task::Start;
use super::in_flight::lock;
use super::status::{Outcome, ReconcileInfo};
use super::worker::Worker;
use crate::clock::{new_id, now_ms};
use crate::engine::{self, Clients, Scope, Stale};
use crate::git::RepoSource;
use crate::observe::Observation;
use crate::plan::Plan;
use crate::store::Trigger;

/// `POST /api/v1/plans/{id}/apply`, handed to the worker.
pub struct ApplyRequest {
    pub plan_id: String,
    pub reply: oneshot::Sender<Result<String, ApplyRefusal>>,
}

/// Why a plan was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyRefusal {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Stale(#[from] Stale),
    /// An apply holds one of its jobs, or `weir apply` holds the store.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Failed(#[from] ReconcileError),
}

/// A plan that may be applied, with what it needs.
struct Approved {
    plan: Plan,
    source: RepoSource,
    clients: Clients,
    observation: Observation,
}

impl Worker {
    /// Applies a waiting plan, refusing it when stale (the revision or the state of its jobs
    /// changed) or when an apply of one of its jobs is in flight.
    pub(super) async fn manual_apply(&mut self, req: ApplyRequest) {
        let approved = match self.check_manual(&req.plan_id).await {
            Ok(x) => x,
            Err(refusal) => {
                let _ = req.reply.send(Err(refusal));
                return;
            }
        };
        let apply_id = new_id("apply");
        let started = now_ms();
        let summary = approved.plan.summary.line();
        let result = self
            .start_apply(Start {
                plan: approved.plan,
                source: approved.source,
                clients: approved.clients,
                apply_id: apply_id.clone(),
                trigger: Trigger::serve("api"),
                observation: &approved.observation,
            })
            .await;
        let (outcome, message) = match result {
            Ok(()) => {
                let _ = req.reply.send(Ok(apply_id.clone()));
                self.pending_key = None;
                self.shared.update(|s| s.pending_plan = None);
                (Outcome::Applying, format!("{apply_id}: {summary}"))
            }
            Err(e) => {
                let why = crate::text::error_chain(&e);
                let _ = req.reply.send(Err(ApplyRefusal::Busy(why.clone())));
                (Outcome::LockBusy, why)
            }
        };
        self.shared.update(|s| {
            s.last_reconcile = Some(ReconcileInfo {
                started_at_ms: started,
                finished_at_ms: now_ms(),
                triggers: vec!["api:apply".into()],
                outcome,
                message: Some(message),
            })
        });
    }

    async fn check_manual(&mut self, plan_id: &str) -> Result<Approved, ApplyRefusal> {
        let record = self
            .shared
            .store
            .plan(plan_id)
            .await
            .map_err(ReconcileError::from)?
            .ok_or_else(|| ApplyRefusal::NotFound(format!("no plan `{plan_id}`")))?;
        let mut plan: Plan =
            serde_json::from_str(&record.plan_json).map_err(|source| ReconcileError::PlanJson {
                id: plan_id.to_string(),
                source,
            })?;
        {
            let f = lock(&self.in_flight);
            if let Some(c) = plan.changes.iter().find(|c| f.jobs.contains_key(&c.job)) {
                return Err(ApplyRefusal::Busy(format!(
                    "apply {} of `{}` is in progress; try again when it has finished",
                    f.jobs[&c.job], c.job
                )));
            }
        }
        let commit = self.commit.clone().ok_or(Stale::NoRevision)?;
        let loaded = self.load(&commit).await?;
        let desired = loaded.outcome.desired.clone().ok_or(Stale::Invalid)?;
        engine::stale::check_revision(&plan, &desired)?;
        let snapshot = engine::snapshot(&self.shared.store, &desired)
            .await
            .map_err(ReconcileError::from)?;
        engine::stale::check(
            &plan,
            Scope::Changes,
            &desired,
            &loaded.outcome.invalid_files,
            &snapshot,
        )?;
        plan.attach(&desired).map_err(Stale::from)?;
        if plan.changes.is_empty() {
            return Err(Stale::Empty.into());
        }
        Ok(Approved {
            plan,
            source: loaded.source,
            clients: snapshot.clients,
            observation: snapshot.observation,
        })
    }
}
