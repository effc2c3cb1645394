//! The worker: one task that fetches, loads, observes, plans and hands changes to applies.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::in_flight::{InFlight, lock};
use super::manual::ApplyRequest;
use super::memory::{self, Memory};
use super::policy;
use super::schedule::{Facts, Scheduler};
use super::shared::Shared;
use super::status::{ErrorInfo, Outcome, ReconcileInfo, Reconciled, plan_info};
use super::{ReconcileError, progress, short};
use crate::clock::{new_id, now_ms};
use crate::desired::DesiredState;
use crate::engine::{self, ApplySettings, Scope};
use crate::git::RepoSource;
use crate::load::{self, LoadOutcome};
use crate::notify::EventKind;
use crate::plan::Plan;
use crate::serve::source::Mirror;
use crate::store::Trigger;

/// The trigger of a reconcile the observation timer asked for.
const OBSERVE: &str = "observe";

/// Whether a reconcile is for what the observation timer saw alone (no Git fetch then).
fn observe_only(reasons: &[String]) -> bool {
    !reasons.is_empty() && reasons.iter().all(|r| r == OBSERVE)
}

/// What one reconcile loaded.
pub(super) struct Loaded {
    pub commit: String,
    pub source: RepoSource,
    pub outcome: Arc<LoadOutcome>,
}

pub struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) mirror: Arc<Mirror>,
    pub(super) settings: ApplySettings,
    pub(super) commit: Option<String>,
    fetch_failures: u32,
    pub(super) memory: Rc<RefCell<Memory>>,
    pub(super) in_flight: Arc<Mutex<InFlight>>,
    pub(super) tasks: JoinSet<()>,
    /// Flink job ids already announced as `job.failed` (each failure is announced once).
    pub(super) failed_reported: RefCell<std::collections::BTreeSet<String>>,
    /// The commit last loaded and what its load produced.
    last_load: RefCell<Option<(String, Arc<LoadOutcome>)>>,
    /// The parsed job files of the last load, by blob id: a new commit parses only the job
    /// files it changed.
    parse_cache: Arc<load::ParseCache>,
    /// (revision digest, observed fingerprint) of the pending manual plan.
    pub(super) pending_key: Option<(String, String)>,
    /// Runs of scheduled batch jobs.
    scheduler: Scheduler,
    /// The managed jobs and their states as last seen (see `observe_tick`).
    observed: RefCell<Option<String>>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, mirror: Arc<Mirror>) -> Worker {
        let a = &shared.cfg.apply;
        let parallel = a.parallel.max(1);
        let settings = ApplySettings {
            parallel,
            slots: Some(Arc::new(tokio::sync::Semaphore::new(parallel))),
            savepoint_timeout: Duration::from_secs(a.savepoint_timeout_seconds),
            start_timeout: Duration::from_secs(a.start_timeout_seconds),
            artifacts: shared.cfg.artifact_settings(),
            run_timeout: Duration::from_secs(a.run_timeout_seconds.max(1)),
        };
        let commit = mirror.last_fetched();
        Worker {
            shared,
            mirror,
            settings,
            commit,
            fetch_failures: 0,
            memory: Rc::default(),
            in_flight: Arc::default(),
            tasks: JoinSet::new(),
            failed_reported: RefCell::default(),
            last_load: RefCell::default(),
            parse_cache: Arc::default(),
            pending_key: None,
            scheduler: Scheduler::default(),
            observed: RefCell::default(),
        }
    }

    /// Runs until the cancellation token fires. Applies in progress are finished first (the
    /// caller bounds how long it waits).
    pub async fn run(mut self, mut apply_rx: mpsc::Receiver<ApplyRequest>) {
        *self.memory.borrow_mut() = memory::load(&self.shared.store).await;
        let cancel = self.shared.cancel.clone();
        let poll = self.shared.cfg.poll_interval();
        self.shared.trigger("startup");
        let mut next_poll = Instant::now() + poll;
        let observe = self.shared.cfg.observe_interval();
        let mut next_observe = Instant::now() + observe;
        // On the worker's thread (a LocalSet), like the applies: see serve::Tasks.
        tokio::task::spawn_local(super::lifecycle::run(
            self.shared.clone(),
            self.in_flight.clone(),
        ));
        loop {
            let reasons = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = done {
                        warn!("an apply task ended abnormally: {e}");
                    }
                    continue;
                }
                Some(req) = apply_rx.recv() => {
                    self.manual_apply(req).await;
                    continue;
                }
                _ = self.shared.wake.notified() => self.shared.take_reasons(),
                _ = tokio::time::sleep_until(next_poll) => vec!["poll".to_string()],
                _ = tokio::time::sleep_until(next_observe) => {
                    next_observe = Instant::now() + observe;
                    if !self.observe_tick().await {
                        continue;
                    }
                    vec![OBSERVE.to_string()]
                }
            };
            let reasons = if reasons.is_empty() {
                vec!["poll".to_string()]
            } else {
                reasons
            };
            let fetched = !observe_only(&reasons);
            self.reconcile(reasons).await;
            crate::memory::release_freed();
            next_observe = Instant::now() + observe;
            // A reconcile for drift alone did not poll Git: the poll stays due.
            if fetched {
                next_poll = Instant::now() + self.next_delay(poll);
            }
            // Wake up for the next fire time of a schedule (a reconcile starts its run).
            if let Some(ms) = self.scheduler.until_next_ms(now_ms()) {
                next_poll = next_poll.min(Instant::now() + Duration::from_millis(ms));
            }
        }
        self.drain().await;
    }

    /// Waits for the applies in progress, then for the notifications still being delivered.
    async fn drain(&mut self) {
        if !self.tasks.is_empty() {
            info!(
                applies = self.tasks.len(),
                "waiting for the applies in progress"
            );
        }
        while self.tasks.join_next().await.is_some() {}
        self.shared
            .flush_notifications(Duration::from_secs(5))
            .await;
        info!("reconcile loop stopped");
    }

    /// One look at the clusters (`GET /jobs/overview` each): true when a managed job changed
    /// state, appeared or vanished since the last reconcile or look.
    async fn observe_tick(&self) -> bool {
        let desired = self
            .shared
            .desired
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(desired) = desired else {
            return false;
        };
        let Ok(clients) = engine::clients(&desired) else {
            return false;
        };
        let managed = super::observe::Managed::of(&desired);
        let now = super::observe::look(&clients, &managed).await;
        let mut observed = self.observed.borrow_mut();
        let changed = observed.as_deref().is_some_and(|before| before != now);
        *observed = Some(now);
        changed
    }

    /// The poll interval, or a shorter exponential backoff while the remote is unreachable.
    fn next_delay(&self, poll: Duration) -> Duration {
        if self.fetch_failures == 0 {
            return poll;
        }
        let cap = poll.min(Duration::from_secs(300));
        let exp = Duration::from_secs(1u64 << self.fetch_failures.min(10).saturating_sub(1));
        exp.min(cap)
    }

    async fn reconcile(&mut self, triggers: Vec<String>) {
        let started = now_ms();
        let Reconciled { outcome, message } = match self.reconcile_inner(&triggers).await {
            Ok(r) => r,
            Err(e) => Reconciled::new(Outcome::Error, crate::text::error_chain(&e)),
        };
        self.shared.metrics.reconcile(outcome.as_str());
        let finished = now_ms();
        if matches!(outcome, Outcome::Error | Outcome::RepoInvalid) {
            warn!(
                outcome = outcome.as_str(),
                message = message.as_deref().unwrap_or(""),
                "reconcile"
            );
        } else {
            info!(outcome = outcome.as_str(), ?triggers, "reconcile");
        }
        self.shared.update(|s| {
            s.reconciles += 1;
            if let Some(m) = &message
                && outcome.is_failure()
            {
                s.last_error = Some(ErrorInfo {
                    at_ms: finished,
                    message: m.clone(),
                });
            }
            s.last_reconcile = Some(ReconcileInfo {
                started_at_ms: started,
                finished_at_ms: finished,
                triggers,
                outcome,
                message,
            });
        });
    }

    async fn fetch(&mut self) {
        let mirror = self.mirror.clone();
        let fetched = tokio::task::spawn_blocking(move || mirror.fetch()).await;
        let now = now_ms();
        match fetched {
            Ok(Ok(commit)) => {
                if self.fetch_failures > 0 {
                    info!(%commit, "the remote is reachable again");
                }
                self.fetch_failures = 0;
                self.commit = Some(commit.clone());
                self.shared.update(|s| {
                    s.repo.commit = Some(commit);
                    s.repo.fetched_at_ms = Some(now);
                    s.repo.error = None;
                    s.repo.error_host = None;
                    s.repo.consecutive_failures = 0;
                });
            }
            Ok(Err(e)) => {
                self.fetch_failures += 1;
                self.shared.metrics.fetch_errors.inc();
                warn!(host = %e.host, cause = %e.cause, "fetch failed; keeping the last good desired state");
                if self.fetch_failures == 1 {
                    self.shared
                        .event(EventKind::RepoUnreachable, None, None, e.to_string());
                }
                let failures = self.fetch_failures;
                let commit = self.commit.clone();
                self.shared.update(|s| {
                    s.repo.commit = commit;
                    s.repo.error = Some(e.to_string());
                    s.repo.error_host = Some(e.host.clone());
                    s.repo.consecutive_failures = failures;
                    s.last_error = Some(ErrorInfo {
                        at_ms: now,
                        message: e.to_string(),
                    });
                });
            }
            Err(join) => {
                self.fetch_failures += 1;
                warn!("fetch task failed: {join}");
            }
        }
    }

    /// Loads the tree of `commit`. A load depends on nothing but the tree (no clock, network or
    /// environment), so the outcome of the last commit is kept and reused while the branch does
    /// not move: steady-state reconciles only observe and plan.
    pub(super) async fn load(&self, commit: &str) -> Result<Loaded, ReconcileError> {
        let mirror = self.mirror.clone();
        let cached = self
            .last_load
            .borrow()
            .as_ref()
            .filter(|(c, _)| c == commit)
            .map(|(_, o)| o.clone());
        let commit = commit.to_string();
        let parse_cache = self.parse_cache.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let source = mirror.source(&commit)?;
            let outcome = match cached {
                Some(o) => o,
                None => Arc::new(load::load_repo_cached(&source, &parse_cache)),
            };
            Ok::<_, ReconcileError>(Loaded {
                commit,
                source,
                outcome,
            })
        })
        .await
        .map_err(ReconcileError::Join)??;
        *self.last_load.borrow_mut() = Some((loaded.commit.clone(), loaded.outcome.clone()));
        Ok(loaded)
    }

    /// Fetches and loads; publishes what the load found. `Err` carries the outcome when there is
    /// nothing to plan.
    async fn fetch_and_load(
        &mut self,
        fetch: bool,
    ) -> Result<Result<(Loaded, DesiredState), Reconciled>, ReconcileError> {
        if fetch || self.commit.is_none() {
            let started = std::time::Instant::now();
            self.fetch().await;
            debug!(fetch_ms = started.elapsed().as_secs_f64() * 1e3, "fetched");
        }
        let Some(commit) = self.commit.clone() else {
            let msg = self
                .shared
                .status()
                .repo
                .error
                .unwrap_or_else(|| "no revision fetched yet".into());
            return Ok(Err(Reconciled::new(Outcome::NoRevision, msg)));
        };
        let loaded = self.load(&commit).await?;
        let outcome = &loaded.outcome;
        let diagnostics: Vec<String> = outcome.diagnostics.iter().map(|d| d.to_string()).collect();
        let invalid = outcome.invalid_files.clone();
        self.shared.update(|s| {
            s.invalid_files = invalid.clone();
            s.diagnostics = diagnostics.clone();
        });
        if let Some(desired) = &outcome.desired {
            self.shared.configure_notifier(desired);
        }
        if !outcome.invalid_files.is_empty() {
            self.shared.event(
                EventKind::RepoInvalid,
                None,
                None,
                format!("{} at {}", diagnostics.join("; "), short(&commit)),
            );
        }
        let Some(desired) = outcome.desired.clone() else {
            return Ok(Err(Reconciled::new(
                Outcome::RepoInvalid,
                format!(
                    "weir.yaml does not load at {}; nothing was planned: {}",
                    short(&commit),
                    diagnostics.join("; ")
                ),
            )));
        };
        *self
            .shared
            .desired
            .write()
            .unwrap_or_else(|e| e.into_inner()) = super::shared::SharedDesired::of(&loaded.outcome);
        self.shared.update(|s| {
            s.revision = Some(desired.revision.to_string());
            s.revision_digest = Some(desired.revision.digest.clone());
        });
        let new_definition = self
            .memory
            .borrow_mut()
            .new_definition(&desired.revision.digest);
        if new_definition {
            self.save_memory().await;
        }
        Ok(Ok((loaded, desired)))
    }

    /// Interrupted applies are finished first (at startup, and whenever one is left over by
    /// another process). Applies this process runs are unfinished too while they run. `Some`
    /// when the store lock is taken by another process.
    async fn resume(&self, loaded: &Loaded) -> Result<Option<Reconciled>, ReconcileError> {
        let store = &self.shared.store;
        let idle = lock(&self.in_flight).idle();
        if !idle || store.unfinished_applies().await?.is_empty() {
            return Ok(None);
        }
        let _lock = match engine::lock_store(store) {
            Ok(l) => l,
            Err(e) => {
                let why = crate::text::error_chain(&e);
                return Ok(Some(Reconciled::new(Outcome::LockBusy, why)));
            }
        };
        let source = self.mirror.source(&loaded.commit)?;
        info!("finishing interrupted applies");
        let report = engine::resume_interrupted(
            store,
            source,
            &self.settings,
            progress(),
            Trigger::Other("serve".into()),
        )
        .await?;
        for line in report.lines() {
            info!("{line}");
        }
        Ok(None)
    }

    /// Returns how the reconcile ended.
    async fn reconcile_inner(&mut self, triggers: &[String]) -> Result<Reconciled, ReconcileError> {
        let started = std::time::Instant::now();
        let (loaded, desired) = match self.fetch_and_load(!observe_only(triggers)).await? {
            Ok(x) => x,
            Err(quiet) => return Ok(quiet),
        };
        let loaded_at = started.elapsed();
        if let Some(busy) = self.resume(&loaded).await? {
            return Ok(busy);
        }
        let invalid_files = &loaded.outcome.invalid_files;
        let (
            engine::Planned {
                mut plan,
                desired,
                snapshot,
            },
            preflight_blocks,
        ) = plan_preflighted(
            &self.shared,
            &self.memory,
            desired,
            invalid_files,
            &loaded.source,
        )
        .await?;
        let planned_at = started.elapsed();
        let managed = super::observe::Managed::of(&desired);
        *self.observed.borrow_mut() =
            Some(super::observe::fingerprint(&snapshot.observation, &managed));
        let invalid_jobs = policy::invalid_jobs(&desired, &snapshot.history, invalid_files);
        let drift = policy::admit(
            &mut plan,
            &invalid_jobs,
            &self.shared.cfg.sync,
            &mut self.memory.borrow_mut().heal,
            now_ms(),
        );
        let busy = lock(&self.in_flight).jobs.clone();
        self.publish(super::publish::Seen {
            desired: &desired,
            observation: &snapshot.observation,
            history: &snapshot.history,
            plan: &plan,
            drift: &drift,
            invalid_jobs: &invalid_jobs,
            busy: &busy,
        });
        self.shared.metrics.plan(plan.has_changes());
        // Jobs with an apply in flight are left to it; the reconcile after it looks again.
        plan.retain_changes(|c| !busy.contains_key(&c.job));
        let blocked = self
            .hold_blocked(&mut plan, &snapshot.observation, &desired, preflight_blocks)
            .await;

        let mut manual = policy::split_manual(&mut plan, &self.shared.cfg.sync, new_id("plan"));
        // The part answers for its own jobs only (the staleness rule's scope for it).
        engine::stale::stamp(
            &mut manual,
            Scope::Changes,
            &desired,
            &snapshot.history,
            &snapshot.observation,
        );
        let trigger = policy::trigger_of(triggers);
        let waiting = self
            .hold_for_approval(&manual, &loaded.source, &trigger)
            .await?;
        self.add_scheduled_runs(&mut plan, &desired, &snapshot.observation, &busy)
            .await?;
        if !plan.has_changes() {
            if let Some(w) = waiting {
                return Ok(Reconciled::new(Outcome::WaitingForApproval, w));
            }
            return Ok(policy::quiet_outcome(&plan, &drift, &blocked, &busy));
        }
        if self.shared.cancel.is_cancelled() {
            return Ok(Reconciled::new(Outcome::Error, "shutting down"));
        }
        self.record(&plan, &loaded.source, &trigger).await?;
        log_stages(loaded_at, planned_at, started.elapsed());
        self.shared.update(|s| s.last_plan = Some(plan_info(&plan)));
        self.shared
            .event(EventKind::PlanReady, None, Some(&plan), plan.summary.line());
        let start = super::apply_task::Start {
            plan,
            source: loaded.source,
            clients: snapshot.clients,
            apply_id: new_id("apply"),
            trigger: Trigger::Serve(triggers.to_vec()),
            observation: &snapshot.observation,
        };
        Ok(self.apply_planned(start, waiting).await)
    }

    /// Starts the apply of a recorded plan; how the reconcile ended.
    async fn apply_planned(
        &mut self,
        start: super::apply_task::Start<'_>,
        waiting: Option<String>,
    ) -> Reconciled {
        let apply_id = start.apply_id.clone();
        let summary = start.plan.summary.line();
        let started = self.start_apply(start).await;
        if let Err(e) = started {
            return Reconciled::new(Outcome::LockBusy, crate::text::error_chain(&e));
        }
        let mut message = format!("{apply_id}: {summary}");
        if let Some(w) = waiting {
            message.push_str(&format!("; waiting for approval: {w}"));
        }
        Reconciled::new(Outcome::Applying, message)
    }

    /// Settles the outcomes of batch runs from what the clusters report, then adds the runs of
    /// scheduled batch jobs that are due to `plan` (they wait for no approval: the schedule in
    /// the followed branch is the approved definition).
    async fn add_scheduled_runs(
        &mut self,
        plan: &mut Plan,
        desired: &DesiredState,
        observation: &crate::observe::Observation,
        busy: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ReconcileError> {
        let store = &self.shared.store;
        let now = now_ms();
        if let Err(e) = engine::runs::settle_runs(store, observation, now).await {
            warn!("settling batch runs: {}", crate::text::error_chain(&e));
        }
        let facts = Facts {
            desired,
            observation,
            busy,
            now_ms: now,
        };
        let runs = self.scheduler.due_runs(store, &facts).await?;
        if !runs.is_empty() {
            plan.changes.extend(runs);
            plan.retain_changes(|_| true);
        }
        Ok(())
    }

    /// Records a plan made by the daemon with where it came from (commit author and message).
    async fn record(
        &self,
        plan: &Plan,
        source: &RepoSource,
        trigger: &Trigger,
    ) -> Result<(), ReconcileError> {
        engine::record_plan(
            &self.shared.store,
            plan,
            trigger.clone(),
            source,
            Some("weir-serve".into()),
        )
        .await?;
        Ok(())
    }

    /// The changes waiting for a person (`policy: manual`): recorded once per revision and
    /// observed state of their jobs (the fingerprint stamped on `manual`), then announced.
    /// Returns the waiting plan's summary, if any.
    async fn hold_for_approval(
        &mut self,
        manual: &Plan,
        source: &RepoSource,
        trigger: &Trigger,
    ) -> Result<Option<String>, ReconcileError> {
        if !manual.has_changes() {
            self.pending_key = None;
            self.shared.update(|s| s.pending_plan = None);
            return Ok(None);
        }
        let key = (
            manual.revision.digest.clone(),
            manual.observed_fingerprint.clone(),
        );
        if self.pending_key.as_ref() != Some(&key) {
            self.record(manual, source, trigger).await?;
            self.pending_key = Some(key);
            let info = plan_info(manual);
            self.shared.update(|s| {
                s.pending_plan = Some(info.clone());
                s.last_plan = Some(info);
            });
            self.shared.event(
                EventKind::PlanReady,
                None,
                Some(manual),
                format!("waiting for approval: {}", manual.summary.line()),
            );
        }
        Ok(Some(manual.summary.line()))
    }

    /// Takes out of `plan` what must not be retried: changes an apply rolled back (they wait
    /// for a new definition of their job; they stay in the published plan, out of sync with
    /// the reason), jobs whose apply failed at this revision, and programs refused at
    /// pre-flight. Returns the blocks in force (also published).
    async fn hold_blocked(
        &self,
        plan: &mut crate::plan::Plan,
        observation: &crate::observe::Observation,
        desired: &DesiredState,
        preflight: PreflightBlocks,
    ) -> Vec<super::status::BlockedInfo> {
        let rolled_back = policy::hold_rolled_back(plan);
        let (mut blocked, changed) = policy::drop_blocked(
            &mut self.memory.borrow_mut().blocked,
            plan,
            observation,
            &desired.revision.digest,
        );
        if changed || preflight.changed {
            self.save_memory().await;
        }
        blocked.extend(preflight.held);
        blocked.extend(rolled_back);
        self.shared.update(|s| s.blocked = blocked.clone());
        blocked
    }

    pub(super) async fn save_memory(&self) {
        memory::save(&self.shared.store, &self.memory).await;
    }
}

/// Where a reconcile that applies spends its time before the apply starts (for operators and
/// the daemon benchmark; WEIR_LOG=weir=debug).
fn log_stages(loaded: Duration, planned: Duration, recorded: Duration) {
    debug!(
        fetched_and_loaded_ms = loaded.as_secs_f64() * 1e3,
        planned_ms = planned.as_secs_f64() * 1e3,
        recorded_ms = recorded.as_secs_f64() * 1e3,
        "reconcile stages"
    );
}

/// Plans the followed branch and pre-flights its programs on their clusters (it is reviewed
/// code): a program the cluster refuses is a plan error of its job, never applied, so never
/// retried until the revision changes; each is announced as `apply.failed` of its job (the
/// notifier's de-duplication keeps a repeated reconcile of the same revision quiet).
async fn plan_preflighted(
    shared: &Shared,
    memory: &std::cell::RefCell<memory::Memory>,
    desired: crate::desired::DesiredState,
    invalid_files: &[String],
    source: &crate::git::RepoSource,
) -> Result<(engine::Planned, PreflightBlocks), crate::engine::EngineError> {
    let store = &shared.store;
    let mut planned = engine::plan(store, desired, invalid_files).await?;
    // A program refused at this revision is not pre-flighted again (its main() would run on the
    // cluster at every reconcile) until the revision changes.
    let digest = planned.desired.revision.digest.clone();
    let held = policy::hold_preflight_refused(&memory.borrow().blocked, &mut planned.plan, &digest);
    let preflight = engine::PreflightOptions::everywhere(shared.cfg.artifact_settings());
    engine::preflight(store, &mut planned, source, &preflight).await;
    let changed = policy::block_preflight_refused(
        &mut memory.borrow_mut().blocked,
        &planned.plan,
        &planned.snapshot.observation,
    );
    let plan = &planned.plan;
    for e in &plan.errors {
        let failed = plan.preflight.iter().any(|p| {
            Some(&p.job) == e.job.as_ref() && p.status == crate::plan::PreflightStatus::Failed
        });
        if failed {
            let message = format!("pre-flight failed, nothing was changed: {}", e.message);
            shared.event(
                EventKind::ApplyFailed,
                e.job.as_deref(),
                Some(plan),
                message,
            );
        }
    }
    Ok((planned, PreflightBlocks { held, changed }))
}

/// Jobs held back because the cluster refused their program at pre-flight at this revision.
struct PreflightBlocks {
    /// Blocks of jobs whose changes were taken out of the plan before pre-flight.
    held: Vec<super::status::BlockedInfo>,
    /// The memory has new blocks (to save).
    changed: bool,
}
