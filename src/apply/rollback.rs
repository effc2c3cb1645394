//! Automatic rollback: a change that replaced a running job watches the new one for the job's
//! health window; when the new job is refused, does not reach RUNNING, or fails or restarts in
//! the window, the previous definition is put back from the savepoint the change took.
//!
//! Crash safety: the previous definition is recorded (`store::rollback`) before the change's
//! first step, so it is known even after the job record names the new definition. The watch is
//! a journal entry (`watch_health`) after the change's steps; the rollback is a `rollback` entry
//! followed by ordinary `cancel`, `submit` and `await_running` entries (of a rollback change
//! built from the `rollback` entry's detail, so a resumed apply rebuilds the very same steps).
//! A first deploy that does not become healthy is cancelled, nothing is resubmitted.

use std::time::{Duration, Instant};

use super::{Applier, ApplyError, Carry, POLL};
use crate::clock::now_ms;
use crate::desired::DesiredJob;
use crate::flink::{FlinkClient, JobState};
use crate::identity::{self, Identity, JobId};
use crate::plan::{Action, Change, CurrentJob, Restore, Step};
use crate::store::audit::{ApplyEvent, ApplyEventKind};
use crate::store::{
    JobRef, JournalEntry, JournalStatus, RollbackDetail, RollbackTarget, StepDetail, StepKind,
    StepResult,
};

/// The definition a change puts back, and where.
pub(super) struct Target {
    previous: DesiredJob,
    cluster: String,
}

/// Whether a failed step of the change calls for a rollback: Flink refused or ended the new
/// job (not: the outcome is unknown, another copy runs, the store failed).
fn calls_for_rollback(e: &ApplyError) -> bool {
    matches!(
        e,
        ApplyError::Flink { .. }
            | ApplyError::Step {
                source: super::StepError::HadFailed { .. },
                ..
            }
    )
}

impl Applier {
    /// What `change` would put back: recorded in the store before its first step (a fresh
    /// change), or as recorded by the interrupted run of it. `None` when the change does not
    /// replace a running job, rollback is off, or weir has no exact record of the definition
    /// the running job runs (e.g. one with secrets, which the store keeps redacted).
    pub(super) async fn rollback_target(
        &self,
        change: &Change,
        apply_id: &str,
        journal: &[JournalEntry],
    ) -> Result<Option<Target>, ApplyError> {
        let Some(desired) = &change.desired else {
            return Ok(None);
        };
        let replaces = matches!(
            change.action,
            Action::Redeploy | Action::Rescale | Action::Migrate
        );
        // A batch job finishes by design, so a health window would read its end as a failure.
        if !desired.rollback.enabled || !replaces || desired.is_batch() {
            return Ok(None);
        }
        if let Some(t) = self.store.rollback_target(apply_id, &change.job).await? {
            return Ok(serde_json::from_str(&t.previous_spec_json)
                .ok()
                .map(|previous| Target {
                    previous,
                    cluster: t.cluster,
                }));
        }
        let Some(current) = &change.current_job else {
            return Ok(None);
        };
        if !journal.is_empty() {
            // The interrupted run recorded none: it had found no exact previous definition.
            return Ok(None);
        }
        let previous: Option<DesiredJob> = self
            .store
            .job(&change.job)
            .await?
            .and_then(|r| r.spec_json)
            .and_then(|s| serde_json::from_str(&s).ok());
        let exact = |p: &DesiredJob| {
            Identity::decode(&current.job_id).is_some_and(|i| {
                i.code_hash == identity::code_hash(&p.code_fingerprint())
                    && u32::from(i.parallelism) == p.parallelism
            })
        };
        let Some(previous) = previous.filter(exact) else {
            self.say(&format!(
                "{}: weir has no exact record of the definition {} runs: no automatic rollback \
                 for this change",
                change.job, current.job_id
            ));
            return Ok(None);
        };
        let cluster = change.running_on().to_string();
        self.store
            .insert_rollback_target(&RollbackTarget {
                apply_id: apply_id.to_string(),
                job: change.job.clone(),
                cluster: cluster.clone(),
                previous_job_id: current.job_id.to_string(),
                previous_spec_json: serde_json::to_string(&previous).unwrap_or_default(),
                created_at_ms: now_ms(),
                rolled_back_fingerprint: None,
                rolled_back_parallelism: None,
                reason: None,
                rolled_back_at_ms: None,
            })
            .await?;
        Ok(Some(Target { previous, cluster }))
    }

    /// After the change's steps (`result`): the health watch, and the rollback when the new job
    /// is not healthy. Returns the change's result as the caller reports it.
    pub(super) async fn guard(
        &self,
        change: &Change,
        journal: &[JournalEntry],
        carry: &mut Carry,
        target: Option<Target>,
        result: Result<String, ApplyError>,
        turn: &mut Option<super::Turn>,
    ) -> Result<String, ApplyError> {
        let watched = target.is_some() || change.action == Action::Create;
        let enabled = change
            .desired
            .as_ref()
            .is_some_and(|d| d.rollback.enabled && !d.is_batch());
        if !watched || !enabled {
            return result;
        }
        let reason = match result {
            Ok(message) => match self.watch_health(change, journal, carry, turn).await? {
                None => return Ok(message),
                Some(reason) => reason,
            },
            // Flink refused or ended the new job after the running one was stopped.
            Err(e) if calls_for_rollback(&e) && (carry.stopped || carry.new_job_id.is_some()) => {
                e.detail()
            }
            Err(e) => return Err(e),
        };
        self.roll_back(change, target.as_ref(), journal, carry, reason)
            .await
    }

    /// Watches the change's new job for the health window (journaled); `Some(why)` when it is
    /// not healthy.
    async fn watch_health(
        &self,
        change: &Change,
        journal: &[JournalEntry],
        carry: &Carry,
        turn: &mut Option<super::Turn>,
    ) -> Result<Option<String>, ApplyError> {
        let (Some(id), Some(desired)) = (carry.new_job_id, &change.desired) else {
            return Ok(None);
        };
        let window = Duration::from_secs(u64::from(desired.rollback.health_window_seconds));
        if window.is_zero() {
            return Ok(None);
        }
        let seq = change.steps.len() as u32;
        let earlier = journal.iter().rev().find(|e| e.seq == seq);
        if let Some(StepResult::Watched { healthy, reason }) = earlier.and_then(|e| e.result()) {
            return Ok((!healthy).then(|| reason.unwrap_or_default()));
        }
        let entry = match earlier {
            Some(e) if e.status == JournalStatus::Pending => e.id,
            _ => {
                let detail = StepDetail::WatchHealth(JobRef { job_id: id });
                self.journal_intent(&carry.apply_id, &change.job, seq, detail)
                    .await?
            }
        };
        // Watching takes a poll a second or so: other changes act meanwhile.
        turn.take();
        self.say(&format!(
            "{}: watching {id} for {}s before calling it healthy",
            change.job,
            window.as_secs()
        ));
        let client = self.client(&change.cluster)?;
        let verdict = self.health(&client, &id, window).await?;
        let result = StepResult::Watched {
            healthy: verdict.is_none(),
            reason: verdict.clone(),
        };
        self.journal_done(entry, StepKind::WatchHealth, result)
            .await?;
        Ok(verdict)
    }

    /// Polls job `id` for `window`: `Some(why)` as soon as it is not RUNNING, or when it failed
    /// and restarted in between two polls (Flink keeps the exception).
    async fn health(
        &self,
        client: &FlinkClient,
        id: &JobId,
        window: Duration,
    ) -> Result<Option<String>, ApplyError> {
        let started = Instant::now();
        let cause = |state: Option<String>| match state {
            Some(c) => format!(": {c}"),
            None => String::new(),
        };
        loop {
            match client.job_state(id).await {
                Ok(Some(JobState::Running)) => {}
                Ok(Some(state)) => {
                    let why = client.root_exception(id).await.ok().flatten();
                    return Ok(Some(format!(
                        "job {id} was {state} within the health window{}",
                        cause(why)
                    )));
                }
                Ok(None) => {
                    return Ok(Some(format!(
                        "job {id} disappeared from the cluster within the health window"
                    )));
                }
                // A missed poll is no verdict; a cluster that stays silent is.
                Err(e) if super::answer_lost(&e) && started.elapsed() < window => {}
                Err(e) => return Err(Applier::flink(&id.to_string())(e)),
            }
            if started.elapsed() >= window {
                break;
            }
            tokio::time::sleep(POLL.min(window)).await;
        }
        match client.root_exception(id).await {
            Ok(Some(why)) => Ok(Some(format!(
                "job {id} failed and restarted within the health window: {why}"
            ))),
            _ => Ok(None),
        }
    }

    /// Cancels the change's new job and puts `target`'s definition back from the snapshot the
    /// change took (journaled; resumes from `journal`). Always an error for the change: rolled
    /// back, or why the rollback failed too.
    async fn roll_back(
        &self,
        change: &Change,
        target: Option<&Target>,
        journal: &[JournalEntry],
        carry: &Carry,
        reason: String,
    ) -> Result<String, ApplyError> {
        let job = change.job.as_str();
        let seq = change.steps.len() as u32 + 1;
        let marker = journal.iter().rev().find(|e| e.seq == seq);
        let detail = match marker.and_then(|e| e.detail()) {
            Some(StepDetail::Rollback(d)) => d,
            _ => RollbackDetail {
                reason,
                new_job_id: carry.new_job_id,
                savepoint_path: carry
                    .stop_savepoint
                    .clone()
                    .or(carry.latest_checkpoint.clone()),
                cluster: target
                    .map(|t| t.cluster.clone())
                    .unwrap_or_else(|| change.cluster.clone()),
                resubmit: target.is_some(),
            },
        };
        let entry = match marker {
            Some(e) if e.status != JournalStatus::Pending => None,
            Some(e) => Some(e.id),
            None => Some(
                self.journal_intent(
                    &carry.apply_id,
                    job,
                    seq,
                    StepDetail::Rollback(detail.clone()),
                )
                .await?,
            ),
        };
        self.say(&format!("{job}: rolling back: {}", detail.reason));
        let undo = rollback_change(change, target.map(|t| &t.previous), &detail);
        let mut undo_carry = Carry {
            apply_id: carry.apply_id.clone(),
            seq_base: seq + 1,
            ..Carry::default()
        };
        let later: Vec<JournalEntry> = journal.iter().filter(|e| e.seq > seq).cloned().collect();
        if let Err(e) = self.run_steps(&undo, &later, &mut undo_carry).await {
            return Err(match e {
                ApplyError::Unsettled { .. } => e,
                e => ApplyError::RollbackFailed {
                    job: job.to_string(),
                    reason: detail.reason.clone(),
                    source: Box::new(e),
                },
            });
        }
        if let Some(entry) = entry {
            let result = StepResult::RolledBack {
                job_id: undo_carry.new_job_id,
            };
            self.journal_done(entry, StepKind::Rollback, result).await?;
        }
        self.record_rollback(change, &carry.apply_id, &detail, undo_carry.new_job_id)
            .await?;
        Err(ApplyError::RolledBack {
            job: job.to_string(),
            reason: detail.reason,
            job_id: undo_carry.new_job_id,
            savepoint: detail.savepoint_path,
        })
    }

    /// The rollback in the store: which definition was rolled back and why (for the planner
    /// and the daemon), and an event of the apply.
    async fn record_rollback(
        &self,
        change: &Change,
        apply_id: &str,
        detail: &RollbackDetail,
        job_id: Option<JobId>,
    ) -> Result<(), ApplyError> {
        if let Some(d) = &change.desired {
            self.store
                .mark_rolled_back(
                    apply_id,
                    &change.job,
                    &hex::encode(d.code_fingerprint()),
                    d.parallelism,
                    &detail.reason,
                    now_ms(),
                )
                .await?;
        }
        let now = match job_id {
            Some(id) => format!("the previous definition runs again as {id}"),
            None => "nothing was resubmitted (the job had no previous definition)".into(),
        };
        let already =
            self.store.apply_events(apply_id).await?.iter().any(|e| {
                e.kind == ApplyEventKind::RolledBack && e.message.starts_with(&change.job)
            });
        if !already {
            self.store
                .insert_apply_event(&ApplyEvent {
                    apply_id: apply_id.to_string(),
                    at_ms: now_ms(),
                    kind: ApplyEventKind::RolledBack,
                    message: crate::redact::text(&format!(
                        "{}: rolled back: {}; {now}",
                        change.job, detail.reason
                    )),
                })
                .await?;
        }
        Ok(())
    }
}

/// The steps of a rollback: cancel the new job (on the cluster it was started on), then submit
/// `previous` from the snapshot on the cluster it ran on, and wait for it.
fn rollback_change(
    change: &Change,
    previous: Option<&DesiredJob>,
    detail: &RollbackDetail,
) -> Change {
    let mut steps = Vec::new();
    if let Some(id) = detail.new_job_id {
        steps.push(Step::Cancel { job_id: id });
    }
    let mut desired = None;
    if let (true, Some(previous)) = (detail.resubmit, previous) {
        let restore = match &detail.savepoint_path {
            Some(path) => Restore::Path { path: path.clone() },
            None => Restore::None,
        };
        steps.push(Step::Submit {
            parallelism: previous.parallelism,
            restore,
        });
        steps.push(Step::AwaitRunning);
        desired = Some(previous.clone());
    }
    let from = (detail.cluster != change.cluster).then(|| change.cluster.clone());
    Change {
        job: change.job.clone(),
        cluster: detail.cluster.clone(),
        action: change.action,
        reason: format!("rollback: {}", detail.reason),
        upgrade_mode: change.upgrade_mode,
        steps,
        diff: Vec::new(),
        current_job: detail.new_job_id.map(|id| CurrentJob {
            job_id: id,
            state: JobState::Failed,
        }),
        restore: Restore::None,
        desired,
        warnings: Vec::new(),
        state_risks: Vec::new(),
        from_cluster: from,
        rolled_back: None,
        scheduled_run: None,
    }
}
