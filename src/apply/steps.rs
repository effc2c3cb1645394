//! Running one step: its intent journaled first, the call to Flink, its outcome journaled before
//! the next step starts (see the safety invariant in [`super`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::crash::{self, Moment};
use super::{Applier, ApplyError, Carry, POLL, StepError};
use crate::clock::now_ms;
use crate::flink::{FlinkClient, FlinkError, JobState};
use crate::identity::JobId;
use crate::plan::{self, Change, Restore, Step};
use crate::store::{
    JobRef, NewJournalEntry, SavepointKind, SavepointRecord, StepDetail, StepKind, StepResult,
    StopDetail, SubmitDetail,
};

impl Applier {
    pub(super) async fn journal_intent(
        &self,
        apply_id: &str,
        job: &str,
        seq: u32,
        detail: StepDetail,
    ) -> Result<i64, ApplyError> {
        crash::point(Moment::Before, detail.kind());
        let id = self
            .store
            .journal_intent(&NewJournalEntry {
                apply_id: apply_id.into(),
                job: job.into(),
                seq,
                detail,
                at_ms: now_ms(),
            })
            .await?;
        Ok(id)
    }

    pub(super) async fn journal_done(
        &self,
        entry: i64,
        kind: StepKind,
        result: StepResult,
    ) -> Result<(), ApplyError> {
        self.store.journal_result(entry, &result, now_ms()).await?;
        crash::point(Moment::After, kind);
        Ok(())
    }

    /// Journals a step as failed with Flink's error and returns that error.
    pub(super) async fn fail(
        &self,
        entry: i64,
        kind: StepKind,
        job: &str,
        e: FlinkError,
    ) -> ApplyError {
        let result = StepResult::Failed {
            error: e.to_string(),
        };
        match self.journal_done(entry, kind, result).await {
            Ok(()) => Applier::flink(job)(e),
            Err(store) => store,
        }
    }

    pub(super) async fn run_step(
        &self,
        change: &Change,
        apply_id: &str,
        seq: u32,
        step: &Step,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        match step {
            Step::StopWithSavepoint { job_id, target_dir } => {
                let detail = StopDetail {
                    job_id: *job_id,
                    request_id: None,
                    target_dir: target_dir.clone(),
                };
                self.stop(change, apply_id, seq, detail, client, carry)
                    .await
            }
            Step::Cancel { job_id } => {
                self.cancel(change, apply_id, seq, *job_id, client, carry)
                    .await
            }
            Step::Submit {
                parallelism,
                restore,
            } => {
                self.submit(change, apply_id, seq, *parallelism, restore, client, carry)
                    .await
            }
            Step::AwaitRunning => {
                let id = carry
                    .new_job_id
                    .ok_or_else(|| ApplyError::step(job, StepError::NothingSubmitted))?;
                let detail = StepDetail::AwaitRunning(JobRef { job_id: id });
                let entry = self.journal_intent(apply_id, job, seq, detail).await?;
                self.finish_await(change, entry, id, client).await
            }
            Step::Forget => {
                let entry = self
                    .journal_intent(apply_id, job, seq, StepDetail::Forget)
                    .await?;
                self.forget(change).await?;
                self.journal_done(entry, StepKind::Forget, StepResult::Forgotten)
                    .await
            }
        }
    }

    async fn stop(
        &self,
        change: &Change,
        apply_id: &str,
        seq: u32,
        mut detail: StopDetail,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let job_id = detail.job_id;
        let kind = StepKind::StopWithSavepoint;
        let entry = self
            .journal_intent(
                apply_id,
                job,
                seq,
                StepDetail::StopWithSavepoint(detail.clone()),
            )
            .await?;
        self.say(&format!("{job}: stopping {job_id} with a savepoint"));
        let request = match client
            .stop_with_savepoint(&job_id, detail.target_dir.as_deref())
            .await
        {
            Ok(r) => r,
            Err(e) if super::answer_lost(&e) => {
                // The stop may have reached Flink: what the job did is the truth.
                self.say(&format!(
                    "{job}: Flink did not answer the stop of {job_id} ({e}); asking it what \
                     happened"
                ));
                return self
                    .settle_lost_stop(change, entry, detail, client, carry)
                    .await;
            }
            Err(e) => return Err(self.fail(entry, kind, job, e).await),
        };
        crash::point(Moment::Sent, kind);
        detail.request_id = Some(request.clone());
        self.store
            .journal_progress(
                entry,
                &StepDetail::StopWithSavepoint(detail.clone()),
                now_ms(),
            )
            .await?;
        let location = self
            .await_savepoint(change, client, &job_id, &request)
            .await;
        match location {
            // The savepoint's status was not learnt (its polls went unanswered, or it was still
            // in progress): the job may stop with it any moment.
            Err(e) if super::answer_lost(&e) => {
                self.stop_status_lost(change, entry, &job_id, client, carry, e)
                    .await
            }
            location => {
                self.finish_stop(change, entry, &job_id, location, carry)
                    .await
            }
        }
    }

    /// A stop whose answer was lost: settled like an interrupted one (the job's state decides;
    /// a job still RUNNING after a while is stopped again), or left pending when Flink still
    /// does not answer.
    pub(super) async fn settle_lost_stop(
        &self,
        change: &Change,
        entry: i64,
        detail: StopDetail,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job_id = detail.job_id;
        let unsettled = |source: FlinkError| ApplyError::Unsettled {
            job: change.job.clone(),
            what: format!("the stop of {job_id} with a savepoint was sent"),
            source: Box::new(source),
        };
        match self.settle_stop(change, entry, detail, client).await {
            Ok(Err(e)) if super::answer_lost(&e) => Err(unsettled(e)),
            Ok(location) => {
                self.finish_stop(change, entry, &job_id, location, carry)
                    .await
            }
            // Flink could not be asked: still unknown.
            Err(ApplyError::Flink { source, .. }) => Err(unsettled(*source)),
            Err(e) => Err(e),
        }
    }

    /// The status of a stop's savepoint was not learnt: if the job has stopped, the savepoint
    /// it stopped with; otherwise the step stays pending (the next apply waits on the request).
    async fn stop_status_lost(
        &self,
        change: &Change,
        entry: i64,
        job_id: &JobId,
        client: &FlinkClient,
        carry: &mut Carry,
        lost: FlinkError,
    ) -> Result<(), ApplyError> {
        if let Ok(Some(JobState::Finished)) = client.job_state(job_id).await
            && let Ok(path) = self.stopped_savepoint(client, job_id).await
        {
            return self
                .finish_stop(change, entry, job_id, Ok(path), carry)
                .await;
        }
        Err(ApplyError::Unsettled {
            job: change.job.clone(),
            what: format!(
                "the stop of {job_id} was accepted but its savepoint's outcome is not known"
            ),
            source: Box::new(lost),
        })
    }

    async fn cancel(
        &self,
        change: &Change,
        apply_id: &str,
        seq: u32,
        job_id: JobId,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        // last-state restores from the latest checkpoint, which must outlive the cancel.
        let needs_checkpoint = change.steps.iter().any(|s| {
            matches!(
                s,
                Step::Submit {
                    restore: Restore::LatestCheckpoint,
                    ..
                }
            )
        });
        if needs_checkpoint {
            self.check_retained_checkpoint(job, client, &job_id).await?;
        }
        let detail = StepDetail::Cancel(JobRef { job_id });
        let entry = self.journal_intent(apply_id, job, seq, detail).await?;
        self.say(&format!("{job}: cancelling {job_id}"));
        if let Err(e) = client.cancel(&job_id).await {
            return Err(self.fail(entry, StepKind::Cancel, job, e).await);
        }
        crash::point(Moment::Sent, StepKind::Cancel);
        self.finish_cancel(change, entry, &job_id, client, carry)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn submit(
        &self,
        change: &Change,
        apply_id: &str,
        seq: u32,
        parallelism: u32,
        restore: &Restore,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let desired = change
            .desired
            .as_ref()
            .ok_or_else(|| ApplyError::step(job, StepError::NoDefinition))?;
        let restore_path = self.restore_path(job, restore, carry)?;
        self.refuse_second_copy(change, client).await?;
        let jar_id = self.ensure_jar(job, client, desired).await?;
        let nonce: u32 = rand::random::<u32>() & 0x00ff_ffff;
        let ident = plan::submission_identity(desired, nonce);
        debug_assert_eq!(u32::from(ident.parallelism), parallelism);
        let new_id = ident.job_id();
        let detail = StepDetail::Submit(SubmitDetail {
            jar_id: Some(jar_id.clone()),
            job_id: new_id,
            parallelism: Some(parallelism),
            savepoint_path: restore_path.clone(),
        });
        let entry = self.journal_intent(apply_id, job, seq, detail).await?;
        self.say(&format!(
            "{job}: submitting as {new_id}{}",
            restore_path
                .as_ref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default()
        ));
        let request = super::jars::run_request(desired, new_id, restore_path.clone())
            .map_err(|e| ApplyError::step(job, StepError::Secret(e.into())))?;
        let sent = client
            .run_jar_within(&jar_id, &request, self.run_timeout)
            .await;
        crash::point(Moment::Sent, StepKind::Submit);
        self.finish_submit(change, entry, new_id, restore_path, sent, client, carry)
            .await
    }

    /// Refuses to submit while another job of the same definition is active: one that this
    /// change does not replace was started by someone else (a second weir process or store)
    /// after the plan was made, and a submission now would make two copies.
    async fn refuse_second_copy(
        &self,
        change: &Change,
        client: &FlinkClient,
    ) -> Result<(), ApplyError> {
        let hash = crate::identity::name_hash(&change.job);
        let replaced = change.current_job.as_ref().map(|c| c.job_id);
        let jobs = {
            let mut cache = self.overviews.lock().await;
            match cache.get(&change.cluster) {
                Some((at, jobs)) if at.elapsed() < super::OVERVIEW_FRESH => jobs.clone(),
                _ => {
                    let jobs = Arc::new(
                        client
                            .jobs_overview()
                            .await
                            .map_err(Applier::flink(&change.job))?,
                    );
                    cache.insert(change.cluster.clone(), (Instant::now(), jobs.clone()));
                    jobs
                }
            }
        };
        let other = jobs.iter().find(|j| {
            Some(j.id) != replaced
                && crate::observe::is_active(&j.state)
                && crate::identity::Identity::decode(&j.id).is_some_and(|i| i.name_hash == hash)
        });
        match other {
            Some(j) => Err(ApplyError::step(
                &change.job,
                StepError::AnotherCopyActive(j.id),
            )),
            None => Ok(()),
        }
    }

    pub(super) async fn await_savepoint(
        &self,
        change: &Change,
        client: &FlinkClient,
        job_id: &JobId,
        request: &str,
    ) -> Result<String, FlinkError> {
        let job = change.job.clone();
        let progress = self.progress.clone();
        client
            .wait_for_savepoint(
                job_id,
                request,
                self.savepoint_timeout,
                POLL,
                move |waited: Duration| {
                    if waited.as_millis() % 5000 < POLL.as_millis() {
                        progress(&format!(
                            "{job}: waiting for the savepoint ({}s)",
                            waited.as_secs()
                        ))
                    }
                },
            )
            .await
    }

    pub(super) async fn finish_stop(
        &self,
        change: &Change,
        entry: i64,
        job_id: &JobId,
        location: Result<String, FlinkError>,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let kind = StepKind::StopWithSavepoint;
        match location {
            Ok(path) => {
                // The savepoint is recorded before anything else happens (safety invariant 1).
                let result = StepResult::Stopped {
                    savepoint: path.clone(),
                };
                self.journal_done(entry, kind, result).await?;
                self.record_stop(change, job_id, &path, &carry.apply_id)
                    .await?;
                self.say(&format!("{job}: savepoint {path}"));
                carry.stop_savepoint = Some(path);
                carry.stopped = true;
                Ok(())
            }
            Err(e) => Err(self.fail(entry, kind, job, e).await),
        }
    }

    pub(super) async fn finish_cancel(
        &self,
        change: &Change,
        entry: i64,
        job_id: &JobId,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        let job = change.job.as_str();
        let state = client
            .wait_for_state(
                job_id,
                &[JobState::Canceled, JobState::Failed, JobState::Finished],
                self.start_timeout,
                POLL,
                |_, _| {},
            )
            .await;
        if let Err(e) = state {
            return Err(self.fail(entry, StepKind::Cancel, job, e).await);
        }
        let checkpoint = client
            .checkpoints(job_id)
            .await
            .ok()
            .and_then(|c| c.completed.and_then(|l| l.external_path));
        let result = StepResult::Cancelled {
            latest_checkpoint: checkpoint.clone(),
        };
        self.journal_done(entry, StepKind::Cancel, result).await?;
        if let Some(path) = &checkpoint {
            self.store
                .insert_savepoint(&SavepointRecord {
                    job: job.into(),
                    path: path.clone(),
                    kind: SavepointKind::Checkpoint,
                    flink_job_id: job_id.to_string(),
                    produced_by_apply: Some(carry.apply_id.clone()),
                    at_ms: now_ms(),
                    restores: Vec::new(),
                })
                .await?;
        }
        carry.latest_checkpoint = checkpoint;
        carry.stopped = true;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish_submit(
        &self,
        change: &Change,
        entry: i64,
        new_id: JobId,
        restore_path: Option<String>,
        sent: Result<JobId, FlinkError>,
        client: &FlinkClient,
        carry: &mut Carry,
    ) -> Result<(), ApplyError> {
        if let Err(e) = sent {
            // A lost answer or a duplicate-id refusal can hide a submission that did happen.
            // Flink runs main() inside the request, so after a lost answer the job may appear
            // well after it: look for its id a while, and never submit another id before the
            // outcome is known (a second copy).
            let lost = super::answer_lost(&e);
            let settle = if lost {
                self.submit_settle
            } else {
                Duration::ZERO
            };
            if lost {
                self.say(&format!(
                    "{}: Flink did not answer the submission of {new_id} ({e}); looking for the \
                     job by its id for up to {}s",
                    change.job,
                    settle.as_secs()
                ));
            }
            match self.look_for_job(client, &new_id, settle).await {
                Ok(Some(state)) if lost || crate::observe::is_active(&state) => {}
                Ok(_) if !lost => {
                    return Err(self.fail(entry, StepKind::Submit, &change.job, e).await);
                }
                Err(other) if !lost && !super::answer_lost(&other) => {
                    return Err(self.fail(entry, StepKind::Submit, &change.job, e).await);
                }
                // The entry stays pending with the id: the next apply asks Flink for that id
                // first and sends the same id again only if Flink never saw it.
                _ => {
                    return Err(ApplyError::Unsettled {
                        job: change.job.clone(),
                        what: format!(
                            "the submission of {new_id} was sent and the job has not appeared \
                             within {}s; it may still start",
                            settle.as_secs()
                        ),
                        source: Box::new(e),
                    });
                }
            }
        }
        let result = StepResult::Submitted {
            job_id: new_id,
            savepoint_path: restore_path.clone(),
        };
        self.journal_done(entry, StepKind::Submit, result).await?;
        self.record_submit(change, new_id, restore_path.as_deref(), &carry.apply_id)
            .await?;
        carry.new_job_id = Some(new_id);
        Ok(())
    }

    pub(super) async fn finish_await(
        &self,
        change: &Change,
        entry: i64,
        id: JobId,
        client: &FlinkClient,
    ) -> Result<(), ApplyError> {
        let job = change.job.clone();
        let progress = self.progress.clone();
        let state = client
            .wait_for_state(
                &id,
                &[JobState::Running],
                self.start_timeout,
                POLL,
                move |state, waited| {
                    if waited.as_millis() % 5000 < POLL.as_millis() {
                        let seen = state
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "not yet known".into());
                        progress(&format!(
                            "{job}: waiting for RUNNING, now {seen} ({}s)",
                            waited.as_secs()
                        ))
                    }
                },
            )
            .await;
        let state = match state {
            Ok(_) => self.await_tasks(client, &id).await,
            Err(e) => Err(e),
        };
        let kind = StepKind::AwaitRunning;
        match state {
            Ok(()) => self.journal_done(entry, kind, StepResult::Running).await,
            Err(e) => Err(self.fail(entry, kind, &change.job, e).await),
        }
    }

    /// Asks Flink for job `id` until it knows it or `limit` passed (one look when `limit` is
    /// zero); `None`: Flink does not know it. An error only when no look got an answer.
    async fn look_for_job(
        &self,
        client: &FlinkClient,
        id: &JobId,
        limit: Duration,
    ) -> Result<Option<JobState>, FlinkError> {
        let started = Instant::now();
        let mut answered = false;
        loop {
            let seen = client.job_state(id).await;
            match seen {
                Ok(Some(state)) => return Ok(Some(state)),
                Ok(None) => answered = true,
                Err(e) if started.elapsed() >= limit && !answered => return Err(e),
                Err(_) => {}
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the job's state until it is no longer RUNNING or `limit` passed; returns the last
    /// state seen (`None`: unknown to the cluster).
    pub(super) async fn wait_while_running(
        &self,
        client: &FlinkClient,
        id: &JobId,
        limit: Duration,
    ) -> Result<Option<JobState>, ApplyError> {
        let started = Instant::now();
        loop {
            let state = client
                .job_state(id)
                .await
                .map_err(Applier::flink(&id.to_string()))?;
            if state != Some(JobState::Running) || started.elapsed() > limit {
                return Ok(state);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every task of a RUNNING job is deployed and running.
    async fn await_tasks(&self, client: &FlinkClient, id: &JobId) -> Result<(), FlinkError> {
        let started = Instant::now();
        loop {
            match client.task_progress(id).await? {
                Some((JobState::Running, true)) => return Ok(()),
                // A job that fails while its tasks start will not run: say so now, not at the
                // start timeout.
                Some((state, _)) if state.is_globally_terminal() => {
                    let cause = if state == JobState::Failed {
                        client.root_exception(id).await.ok().flatten()
                    } else {
                        None
                    };
                    return Err(FlinkError::JobTerminated {
                        job: *id,
                        state,
                        cause,
                    });
                }
                _ => {}
            }
            if started.elapsed() > self.start_timeout {
                return Err(FlinkError::WaitTimeout {
                    what: format!("all tasks of job {id} to run"),
                    after: self.start_timeout,
                    last: "some tasks are still being deployed".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The savepoint a job stopped with, read back from its checkpoint statistics. Flink
    /// updates them a few seconds after the job finished, so this polls for a while.
    pub(super) async fn stopped_savepoint(
        &self,
        client: &FlinkClient,
        job_id: &JobId,
    ) -> Result<String, FlinkError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let summary = client.checkpoints(job_id).await?;
            if let Some(path) = summary.savepoint.and_then(|s| s.external_path) {
                return Ok(path);
            }
            if Instant::now() > deadline {
                return Err(FlinkError::SavepointFailed {
                    job: *job_id,
                    cause: "the job stopped but Flink reports no savepoint for it".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
