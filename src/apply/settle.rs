//! Finishing what a dead process started: settling a step whose intent was journaled but whose
//! outcome was not, and resuming unfinished applies from their journal.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Applier, ApplyError, Carry, POLL, StepError};
use crate::clock::now_ms;
use crate::flink::{FlinkClient, FlinkError, JobState};
use crate::identity::JobId;
use crate::plan::{self, Change, Plan, Step};
use crate::store::audit::{ApplyEvent, ApplyEventKind};
use crate::store::{ApplyOutcome, JournalEntry, StepDetail, StepKind, StepResult, StopDetail};

/// How the changes of one resumed apply ended, or why it could not be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// The change was completed (`ok`) or failed, with its message.
    Change {
        apply_id: String,
        job: String,
        ok: bool,
        message: String,
    },
    /// The apply's plan could not be loaded for the current repo: the apply was recorded as
    /// interrupted, nothing was done.
    PlanUnavailable { apply_id: String, message: String },
}

impl Resumed {
    /// Whether this part of the resume ended well.
    pub fn ok(&self) -> bool {
        matches!(self, Resumed::Change { ok: true, .. })
    }
}

impl std::fmt::Display for Resumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resumed::Change {
                apply_id,
                job,
                ok,
                message,
            } => write!(
                f,
                "apply {apply_id}: {job} {}: {message}",
                if *ok { "completed" } else { "failed" }
            ),
            Resumed::PlanUnavailable { message, .. } => f.write_str(message),
        }
    }
}

impl Applier {
    /// Determines the outcome of a step whose intent was journaled but whose result was not
    /// (the process died in between), records it, and carries its result on.
    pub(super) async fn settle(
        &self,
        change: &Change,
        step: &Step,
        entry: &JournalEntry,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let flink = Applier::flink(job);
        match step {
            Step::StopWithSavepoint { job_id, target_dir } => {
                let request_id = match entry.detail() {
                    Some(StepDetail::StopWithSavepoint(d)) => d.request_id,
                    _ => None,
                };
                let detail = StopDetail {
                    job_id: *job_id,
                    request_id,
                    target_dir: target_dir.clone(),
                };
                self.settle_lost_stop(change, entry.id, detail, client, carry)
                    .await
            }
            Step::Cancel { job_id } => {
                if let Some(state) = client.job_state(job_id).await.map_err(&flink)?
                    && crate::observe::is_active(&state)
                {
                    client.cancel(job_id).await.map_err(&flink)?;
                }
                self.finish_cancel(change, entry.id, job_id, client, carry)
                    .await
            }
            Step::Submit { .. } => self.settle_submit(change, entry, client, carry).await,
            Step::AwaitRunning => {
                let id = carry
                    .new_job_id
                    .ok_or_else(|| ApplyError::step(job, StepError::NothingSubmitted))?;
                self.finish_await(change, entry.id, id, client).await
            }
            Step::Forget => {
                self.forget(change).await?;
                self.journal_done(entry.id, StepKind::Forget, StepResult::Forgotten)
                    .await
            }
        }
    }

    /// Where an interrupted stop's savepoint is, finding out whether the stop was sent.
    pub(super) async fn settle_stop(
        &self,
        change: &Change,
        entry: i64,
        mut detail: StopDetail,
        client: &FlinkClient,
    ) -> Result<Result<String, FlinkError>, ApplyError> {
        let job_id = detail.job_id;
        let state = client
            .job_state(&job_id)
            .await
            .map_err(Applier::flink(&change.job))?;
        if let Some(request) = &detail.request_id {
            // Flink knows the request: its outcome is the truth.
            return Ok(self.await_savepoint(change, client, &job_id, request).await);
        }
        // The stop may have been sent without its request id being recorded, or never sent. A
        // stop in flight ends the job within seconds, so wait a little before deciding it was
        // never sent.
        let state = if state == Some(JobState::Running) {
            self.say(&format!(
                "{}: the interrupted stop of {job_id} may still be on its way; watching the job for \
                 up to 15 s before sending the stop again",
                change.job
            ));
            self.wait_while_running(client, &job_id, Duration::from_secs(15))
                .await?
        } else {
            state
        };
        let mut location = Err(FlinkError::SavepointFailed {
            job: job_id,
            cause: "not attempted".into(),
        });
        if state == Some(JobState::Running) {
            location = match client
                .stop_with_savepoint(&job_id, detail.target_dir.as_deref())
                .await
            {
                Ok(request) => {
                    detail.request_id = Some(request.clone());
                    self.store
                        .journal_progress(entry, &StepDetail::StopWithSavepoint(detail), now_ms())
                        .await?;
                    self.await_savepoint(change, client, &job_id, &request)
                        .await
                }
                Err(e) => Err(e),
            };
        }
        if location.is_err() {
            // Stopped (or stopping) already: the savepoint it stopped with.
            self.say(&format!(
                "{}: waiting up to 30 s for {job_id} to end, to read the savepoint it stopped with",
                change.job
            ));
            let stopped = client
                .wait_for_state(
                    &job_id,
                    &[JobState::Finished, JobState::Canceled, JobState::Failed],
                    Duration::from_secs(30),
                    POLL,
                    |_, _| {},
                )
                .await;
            if stopped.is_ok() {
                location = self.stopped_savepoint(client, &job_id).await;
            }
        }
        Ok(location)
    }

    /// Settles an interrupted submission by asking Flink for the journaled job id; resubmits
    /// the same id only if Flink never saw it and the definition still produces that id.
    async fn settle_submit(
        &self,
        change: &Change,
        entry: &JournalEntry,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let flink = Applier::flink(job);
        let Some(StepDetail::Submit(detail)) = entry.detail() else {
            return Err(ApplyError::step(job, StepError::NoSubmittedId));
        };
        let new_id = detail.job_id;
        let restore_path = detail.savepoint_path;
        let sent = match client.job_state(&new_id).await.map_err(&flink)? {
            Some(_) => Ok(new_id),
            None => {
                self.resubmit(change, new_id, restore_path.clone(), client)
                    .await?
            }
        };
        self.finish_submit(change, entry.id, new_id, restore_path, sent, client, carry)
            .await
    }

    /// Sends a submission that never reached Flink again, with the same id, but only if the
    /// definition still produces that id.
    async fn resubmit(
        &self,
        change: &Change,
        new_id: JobId,
        restore_path: Option<String>,
        client: &FlinkClient,
    ) -> Result<Result<JobId, FlinkError>, ApplyError> {
        let job = change.job.as_str();
        let desired = change
            .desired
            .as_ref()
            .ok_or_else(|| ApplyError::step(job, StepError::NoDefinition))?;
        let ident = crate::identity::Identity::decode(&new_id);
        let expected = ident.map(|i| plan::submission_identity(desired, i.nonce).job_id());
        if expected != Some(new_id) {
            return Err(ApplyError::step(
                job,
                StepError::DefinitionChanged {
                    job_id: new_id,
                    savepoint: restore_path,
                },
            ));
        }
        let jar_id = self.ensure_jar(job, client, desired).await?;
        let request = super::jars::run_request(desired, new_id, restore_path)
            .map_err(|e| ApplyError::step(job, StepError::Secret(e.into())))?;
        Ok(client
            .run_jar_within(&jar_id, &request, self.run_timeout)
            .await)
    }

    /// Finishes every apply an earlier process left unfinished. Changes that had started are
    /// completed from their journal (a pending step is settled against the cluster first);
    /// changes that had not started are left to the next plan. Returns one entry per change.
    pub async fn resume(
        &self,
        load_plan: impl Fn(&str) -> Option<Plan>,
    ) -> Result<Vec<Resumed>, ApplyError> {
        let mut report = Vec::new();
        for apply in self.store.unfinished_applies().await? {
            let entries = self.store.journal(&apply.id).await?;
            let mut journals: BTreeMap<String, Vec<JournalEntry>> = BTreeMap::new();
            for e in entries {
                journals.entry(e.job.clone()).or_default().push(e);
            }
            let Some(mut plan) = load_plan(&apply.plan_id) else {
                let message = format!(
                    "apply {} (plan {}) was interrupted and its plan cannot be loaded for the current repo; \
                     journal: {}",
                    apply.id,
                    apply.plan_id,
                    describe_journal(&journals)
                );
                self.store
                    .finish_apply(
                        &apply.id,
                        ApplyOutcome::Interrupted,
                        Some(&message),
                        now_ms(),
                    )
                    .await?;
                report.push(Resumed::PlanUnavailable {
                    apply_id: apply.id.clone(),
                    message,
                });
                continue;
            };
            self.say(&format!(
                "resuming interrupted apply {} of plan {}",
                apply.id, plan.id
            ));
            self.store
                .insert_apply_event(&ApplyEvent {
                    apply_id: apply.id.clone(),
                    at_ms: now_ms(),
                    kind: ApplyEventKind::Resumed,
                    message: format!(
                        "the process running the apply stopped before finishing it; a later apply \
                         (trigger {}) resumed it from the journal ({} change(s) had started)",
                        self.trigger,
                        journals.len()
                    ),
                })
                .await?;
            plan.changes.retain(|c| journals.contains_key(&c.job));
            let outcomes = self.run_changes(&plan, &apply.id, &journals).await;
            report.extend(outcomes.iter().map(|o| Resumed::Change {
                apply_id: apply.id.clone(),
                job: o.job.clone(),
                ok: o.ok,
                message: o.message.clone(),
            }));
            self.finish(&apply.id, &outcomes).await?;
        }
        Ok(report)
    }

    /// Repeats the bookkeeping of a step that was journaled as done just before a crash.
    pub(super) async fn rerecord(
        &self,
        change: &Change,
        step: &Step,
        entry: &JournalEntry,
        carry: &Carry,
    ) -> Result<(), ApplyError> {
        match step {
            Step::StopWithSavepoint { job_id, .. } => {
                if let Some(path) = &carry.stop_savepoint {
                    self.record_stop(change, job_id, path, &carry.apply_id)
                        .await?;
                }
            }
            Step::Submit { .. } => {
                if let Some(id) = carry.new_job_id {
                    let restore = match entry.result() {
                        Some(StepResult::Submitted { savepoint_path, .. }) => savepoint_path,
                        _ => None,
                    };
                    self.record_submit(change, id, restore.as_deref(), &carry.apply_id)
                        .await?;
                }
            }
            Step::Forget => self.forget(change).await?,
            Step::Cancel { .. } | Step::AwaitRunning => {}
        }
        Ok(())
    }
}

fn describe_journal(journals: &BTreeMap<String, Vec<JournalEntry>>) -> String {
    journals
        .iter()
        .map(|(job, entries)| {
            let last = entries
                .last()
                .map(|e| format!("step {} {} {:?}", e.seq + 1, e.kind, e.status))
                .unwrap_or_default();
            format!("{job}: {last}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Carries on what a step that completed before the crash produced.
pub(super) fn absorb_result(carry: &mut Carry, entry: &JournalEntry) {
    match entry.result() {
        Some(StepResult::Stopped { savepoint }) => {
            carry.stop_savepoint = Some(savepoint);
            carry.stopped = true;
        }
        Some(StepResult::Cancelled { latest_checkpoint }) => {
            carry.latest_checkpoint = latest_checkpoint;
            carry.stopped = true;
        }
        Some(StepResult::Submitted { job_id, .. }) => carry.new_job_id = Some(job_id),
        _ => {}
    }
}
