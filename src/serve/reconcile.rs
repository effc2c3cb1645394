//! The reconcile loop. One worker task fetches, loads, observes and plans; each apply it starts
//! runs on a task of its own holding per-job locks, so a long savepoint of one job does not hold
//! back the jobs next to it, and no job ever has two applies at a time. The changes of all applies
//! together share one pool of `apply.parallel` slots. While any apply runs, the process holds the
//! store lock, which keeps `weir apply` out.
//!
//! Triggers (poll timer, `POST /api/v1/sync`, webhooks, the watched directory, an apply after
//! which the status should be refreshed) only wake the worker through a [`Notify`], whose single
//! stored permit coalesces a burst into one reconcile; a trigger that arrives during a reconcile
//! schedules exactly one more.
//!
//! Self-heal attempts and the jobs whose apply failed are kept in the store (`daemon_state`), so
//! a restart neither resets the attempt limit nor retries a failed revision.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{DaemonConfig, EffectiveSync, SyncPolicy};
use super::engine::{self, ApplySettings};
use super::metrics::Metrics;
use super::source::Mirror;
use crate::apply::now_ms;
use crate::desired::DesiredState;
use crate::flink::FlinkClient;
use crate::git::RepoSource;
use crate::load::{self, LoadOutcome};
use crate::notify::{Event, EventKind, Notifier, NotifierOptions, PlanInfo as NotifyPlan};
use crate::observe::{self, ClusterObservation, Observation};
use crate::plan::{self, Action, JobHistory, Plan, PlanInput};
use crate::store::Store;

/// State shared by the worker and the HTTP handlers.
pub struct Shared {
    pub cfg: DaemonConfig,
    pub store: Store,
    pub metrics: Metrics,
    pub status: RwLock<Status>,
    pub cancel: CancellationToken,
    pub apply_tx: mpsc::Sender<ApplyRequest>,
    wake: Notify,
    reasons: Mutex<BTreeSet<String>>,
    notifier: RwLock<Notifier>,
    notifier_key: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(
        cfg: DaemonConfig,
        store: Store,
        status: Status,
        cancel: CancellationToken,
    ) -> (Arc<Shared>, mpsc::Receiver<ApplyRequest>) {
        let (apply_tx, apply_rx) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            cfg,
            store,
            metrics: Metrics::new(),
            status: RwLock::new(status),
            cancel,
            apply_tx,
            wake: Notify::new(),
            reasons: Mutex::new(BTreeSet::new()),
            notifier: RwLock::new(Notifier::disabled()),
            notifier_key: Mutex::new(None),
        });
        (shared, apply_rx)
    }

    /// Asks for a reconcile. Bursts coalesce; a trigger during a reconcile schedules one more.
    pub fn trigger(&self, reason: &str) {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reason.to_string());
        self.wake.notify_one();
    }

    fn take_reasons(&self) -> Vec<String> {
        std::mem::take(&mut *self.reasons.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Logs an event and hands it to the notifier (routes from `notifications` in `weir.yaml`
    /// of the last good revision), which delivers it in the background.
    fn event(&self, kind: EventKind, job: Option<&str>, plan: Option<&Plan>, message: String) {
        self.send(self.event_of(kind, job, plan, message));
    }

    /// An event about `job` and `plan` (the revision is the plan's, else the last fetched one).
    fn event_of(
        &self,
        kind: EventKind,
        job: Option<&str>,
        plan: Option<&Plan>,
        message: String,
    ) -> Event {
        let mut e = Event::new(kind, now_ms()).message(message);
        // A plan of one job is about that job.
        let job = job.or_else(|| match plan {
            Some(p) if p.changes.len() == 1 => Some(p.changes[0].job.as_str()),
            _ => None,
        });
        if let Some(job) = job {
            e = e.job(job);
        }
        let revision = plan.and_then(|p| p.revision.commit.clone()).or_else(|| {
            self.status
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .repo
                .commit
                .clone()
        });
        if let Some(commit) = revision {
            e = e.revision(commit);
        }
        if let Some(plan) = plan {
            e = e.plan(NotifyPlan {
                id: plan.id.clone(),
                summary: plan.summary.clone(),
            });
            if let Some(c) = plan.changes.iter().find(|c| Some(c.job.as_str()) == job) {
                e = e.cluster(c.cluster.clone());
            }
        }
        e
    }

    /// Logs an event and hands it to the notifier.
    fn send(&self, e: Event) {
        info!(event = ?e.kind, job = e.job.as_deref(), message = e.message.as_deref(), "weir event");
        let notifier = self
            .notifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if notifier.is_enabled() {
            notifier.spawn(e);
        }
    }

    /// Uses the notification routes of a newly loaded `weir.yaml` (when they changed).
    fn configure_notifier(&self, desired: &DesiredState) {
        let Some(config) = &desired.config.notifications else {
            *self.notifier.write().unwrap_or_else(|e| e.into_inner()) = Notifier::disabled();
            return;
        };
        let key = format!("{config:?}");
        let mut current = self.notifier_key.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_deref() == Some(key.as_str()) {
            return;
        }
        let (notifier, errors) = Notifier::from_config_lenient(
            config,
            Some(self.store.clone()),
            |name| std::env::var(name).ok(),
            NotifierOptions::default(),
        );
        for e in errors {
            warn!("notifications: {e}");
        }
        *self.notifier.write().unwrap_or_else(|e| e.into_inner()) = notifier;
        *current = Some(key);
    }

    /// Waits (bounded) for notifications still being delivered.
    pub async fn flush_notifications(&self, timeout: Duration) {
        let notifier = self
            .notifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _ = tokio::time::timeout(timeout, notifier.flush()).await;
    }
}

/// Everything `GET /api/v1/status` reports.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub repo: RepoStatus,
    pub policy: Option<SyncPolicy>,
    pub self_heal: bool,
    /// The revision of the last loaded desired state (commit, short).
    pub revision: Option<String>,
    pub revision_digest: Option<String>,
    /// Completed reconciles since start.
    pub reconciles: u64,
    pub last_reconcile: Option<ReconcileInfo>,
    pub last_error: Option<ErrorInfo>,
    pub invalid_files: Vec<String>,
    /// Every problem of the repo at the current revision (`path:line:col: field: message`).
    pub diagnostics: Vec<String>,
    pub jobs: Vec<JobStatus>,
    pub clusters: BTreeMap<String, ClusterStatus>,
    /// With `policy: manual`: the plan waiting for `POST /api/v1/plans/{id}/apply`.
    pub pending_plan: Option<PlanInfo>,
    pub last_plan: Option<PlanInfo>,
    pub last_apply: Option<ApplyInfo>,
    /// Jobs whose apply failed at this revision: not retried until the revision or the job's
    /// cluster state changes.
    pub blocked: Vec<BlockedInfo>,
    pub warnings: Vec<String>,
    pub plan_errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoStatus {
    pub url: String,
    pub branch: String,
    /// The commit the desired state comes from (the last one fetched successfully).
    pub commit: Option<String>,
    pub fetched_at_ms: Option<i64>,
    /// The last fetch failed: host and cause. The last good desired state is kept meanwhile.
    pub error: Option<String>,
    pub error_host: Option<String>,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileInfo {
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub triggers: Vec<String>,
    /// `in_sync`, `applied`, `apply_failed`, `waiting_for_approval`, `blocked`, `repo_invalid`,
    /// `no_revision`, `lock_busy` or `error`.
    pub outcome: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub at_ms: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub name: String,
    pub cluster: String,
    /// `Synced`, `OutOfSync`, `Unknown` (cluster unreachable) or `InvalidDefinition` (its file
    /// does not load: the job keeps running its last applied spec).
    pub sync: String,
    /// The Flink state of its newest job (`RUNNING`, `FAILED`, ... or `-`).
    pub health: String,
    pub job_id: String,
    pub last_savepoint: String,
    /// Why the job needs a recover that self-heal did not (yet) do.
    pub drift: Option<String>,
    pub file: Option<String>,
    pub self_heal: Option<HealInfo>,
    /// The sync policy and self-heal setting that hold for the job.
    pub policy: Option<EffectiveSync>,
    /// The apply in progress on the job, if any.
    pub applying: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealInfo {
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub gave_up: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub url: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub last_sync_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInfo {
    pub id: String,
    pub revision: String,
    pub summary: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyInfo {
    pub id: String,
    pub plan_id: String,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedInfo {
    pub job: String,
    pub revision: String,
    pub apply_id: String,
    pub error: String,
}

/// `POST /api/v1/plans/{id}/apply`, handed to the worker.
pub struct ApplyRequest {
    pub plan_id: String,
    pub reply: oneshot::Sender<Result<String, ApplyRefusal>>,
}

#[derive(Debug)]
pub enum ApplyRefusal {
    NotFound(String),
    Stale(String),
    Busy(String),
    Failed(String),
}

/// Self-heal bookkeeping of one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Heal {
    attempts: u32,
    last_attempt_ms: i64,
    next_at_ms: i64,
}

/// A job whose change failed at a revision, with its cluster state seen around the failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blocked {
    digest: String,
    fingerprints: BTreeSet<String>,
    info: BlockedInfo,
}

/// What the worker must not forget when the daemon restarts (stored under [`MEMORY_KEY`]): a
/// restart must neither reset the self-heal attempt limit nor retry a revision that failed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    /// The revision the self-heal counters belong to; a new definition starts them again.
    heal_digest: Option<String>,
    heal: BTreeMap<String, Heal>,
    /// By job name.
    blocked: BTreeMap<String, Blocked>,
}

const MEMORY_KEY: &str = "reconcile";

/// Applies in flight in this process: the per-job locks, and the store lock that keeps `weir
/// apply` out while any of them runs.
#[derive(Default)]
struct InFlight {
    /// Job name → the apply holding it.
    jobs: BTreeMap<String, String>,
    applies: BTreeSet<String>,
    store_lock: Option<std::fs::File>,
}

/// Releases an apply's job locks (and the store lock with the last apply) however its task
/// ends, a panic included.
struct InFlightGuard {
    in_flight: Arc<Mutex<InFlight>>,
    apply_id: String,
}

fn lock(in_flight: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut f = lock(&self.in_flight);
        let id = self.apply_id.clone();
        f.jobs.retain(|_, a| *a != id);
        f.applies.remove(&id);
        if f.applies.is_empty() {
            f.store_lock = None;
        }
    }
}

/// What one reconcile loaded.
struct Loaded {
    commit: String,
    source: RepoSource,
    outcome: Arc<LoadOutcome>,
}

pub struct Worker {
    shared: Arc<Shared>,
    mirror: Arc<Mirror>,
    settings: ApplySettings,
    commit: Option<String>,
    fetch_failures: u32,
    memory: Rc<RefCell<Memory>>,
    in_flight: Arc<Mutex<InFlight>>,
    tasks: JoinSet<()>,
    /// Flink job ids already announced as `job.failed` (each failure is announced once).
    failed_reported: RefCell<BTreeSet<String>>,
    /// The commit last loaded and what its load produced.
    last_load: RefCell<Option<(String, Arc<LoadOutcome>)>>,
    /// (revision digest, observation fingerprint) of the pending manual plan.
    pending_key: Option<(String, String)>,
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
            pending_key: None,
        }
    }

    /// Runs until the cancellation token fires. Applies in progress are finished first (the
    /// caller bounds how long it waits).
    pub async fn run(mut self, mut apply_rx: mpsc::Receiver<ApplyRequest>) {
        self.load_memory().await;
        let cancel = self.shared.cancel.clone();
        let poll = self.shared.cfg.poll_interval();
        self.shared.trigger("startup");
        let mut next_poll = Instant::now() + poll;
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
            };
            let reasons = if reasons.is_empty() {
                vec!["poll".to_string()]
            } else {
                reasons
            };
            self.reconcile(reasons).await;
            next_poll = Instant::now() + self.next_delay(poll);
        }
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

    async fn load_memory(&mut self) {
        match self.shared.store.daemon_state(MEMORY_KEY).await {
            Ok(Some(json)) => match serde_json::from_str::<Memory>(&json) {
                Ok(m) => {
                    if !m.heal.is_empty() || !m.blocked.is_empty() {
                        info!(
                            self_heal = m.heal.len(),
                            blocked = m.blocked.len(),
                            "remembered self-heal attempts and failed revisions"
                        );
                    }
                    *self.memory.borrow_mut() = m;
                }
                Err(e) => warn!("ignoring the stored reconcile memory: {e}"),
            },
            Ok(None) => {}
            Err(e) => warn!("reading the reconcile memory: {e}"),
        }
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
        let (outcome, message) = match self.reconcile_inner(&triggers).await {
            Ok((outcome, message)) => (outcome, message),
            Err(e) => ("error".to_string(), Some(format!("{e:#}"))),
        };
        self.shared.metrics.reconcile(&outcome);
        let finished = now_ms();
        if outcome == "error" || outcome == "repo_invalid" {
            warn!(
                outcome,
                message = message.as_deref().unwrap_or(""),
                "reconcile"
            );
        } else {
            info!(outcome, ?triggers, "reconcile");
        }
        self.shared.update(|s| {
            s.reconciles += 1;
            if let Some(m) = &message
                && matches!(
                    outcome.as_str(),
                    "error" | "repo_invalid" | "no_revision" | "lock_busy"
                )
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
    async fn load(&self, commit: &str) -> Result<Loaded> {
        let mirror = self.mirror.clone();
        let cached = self
            .last_load
            .borrow()
            .as_ref()
            .filter(|(c, _)| c == commit)
            .map(|(_, o)| o.clone());
        let commit = commit.to_string();
        let loaded = tokio::task::spawn_blocking(move || {
            let source = mirror.source(&commit).map_err(|e| anyhow!("{e}"))?;
            let outcome = match cached {
                Some(o) => o,
                None => Arc::new(load::load_repo(&source)),
            };
            Ok::<_, anyhow::Error>(Loaded {
                commit,
                source,
                outcome,
            })
        })
        .await
        .map_err(|e| anyhow!("loading the repo: {e}"))??;
        *self.last_load.borrow_mut() = Some((loaded.commit.clone(), loaded.outcome.clone()));
        Ok(loaded)
    }

    /// Returns (outcome, message).
    async fn reconcile_inner(&mut self, triggers: &[String]) -> Result<(String, Option<String>)> {
        self.fetch().await;
        let Some(commit) = self.commit.clone() else {
            let msg = self
                .shared
                .status()
                .repo
                .error
                .unwrap_or_else(|| "no revision fetched yet".into());
            return Ok(("no_revision".into(), Some(msg)));
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
            return Ok((
                "repo_invalid".into(),
                Some(format!(
                    "weir.yaml does not load at {}; nothing was planned: {}",
                    short(&commit),
                    diagnostics.join("; ")
                )),
            ));
        };
        self.shared.update(|s| {
            s.revision = Some(desired.revision.to_string());
            s.revision_digest = Some(desired.revision.digest.clone());
        });
        let digest = desired.revision.digest.clone();
        let new_definition = {
            let mut m = self.memory.borrow_mut();
            let new = m.heal_digest.as_deref() != Some(digest.as_str());
            if new {
                // A new definition: self-heal starts counting again.
                m.heal.clear();
                m.heal_digest = Some(digest.clone());
            }
            new
        };
        if new_definition {
            self.save_memory().await;
        }

        // Interrupted applies are finished first (at startup, and whenever one is left over by
        // another process). Applies this process runs are unfinished too while they run.
        let store = self.shared.store.clone();
        let idle = lock(&self.in_flight).applies.is_empty();
        if idle && !store.unfinished_applies().await?.is_empty() {
            let _lock = match engine::lock_store(&store) {
                Ok(l) => l,
                Err(e) => return Ok(("lock_busy".into(), Some(e.to_string()))),
            };
            let source = self
                .mirror
                .source(&loaded.commit)
                .map_err(|e| anyhow!("{e}"))?;
            info!("finishing interrupted applies");
            let report =
                engine::resume_interrupted(&store, source, &self.settings, progress(), "serve")
                    .await?;
            for line in &report.lines {
                info!("{line}");
            }
        }

        let clients = engine::clients(&desired)?;
        let observation = observe::observe(&clients).await;
        let history = engine::history_map(&store).await?;
        let mut plan = plan::plan(&PlanInput {
            plan_id: engine::new_id("plan"),
            created_at_ms: now_ms(),
            desired: &desired,
            invalid_files: &outcome.invalid_files,
            observation: &observation,
            history: &history,
        });
        let invalid_jobs = invalid_jobs(&desired, &history, &outcome.invalid_files);
        let drift = self.filter(&mut plan, &invalid_jobs);
        let busy = lock(&self.in_flight).jobs.clone();
        self.publish(
            &desired,
            &observation,
            &history,
            &plan,
            &drift,
            &invalid_jobs,
            &busy,
        );
        self.shared.metrics.plan(plan.has_changes());
        // Jobs with an apply in flight are left to it; the reconcile after it looks again.
        plan.retain_changes(|c| !busy.contains_key(&c.job));
        let blocked = self.drop_blocked(&mut plan, &observation, &digest).await;
        self.shared.update(|s| s.blocked = blocked.clone());

        let sync = self.shared.cfg.sync.clone();
        // Recovers go ahead where self-heal allows them (`filter` kept only those); every other
        // change follows the job's policy.
        let mut manual = plan.split_off(engine::new_id("plan"), |c| {
            c.action != Action::Recover
                && sync.for_job(&c.job, &c.cluster).policy == SyncPolicy::Manual
        });
        let trigger = trigger_of(triggers);
        let waiting = self
            .hold_for_approval(&mut manual, &observation, &loaded.source, &trigger)
            .await?;

        if !plan.has_changes() {
            if let Some(w) = waiting {
                return Ok(("waiting_for_approval".into(), Some(w)));
            }
            return Ok(quiet_outcome(&plan, &drift, &blocked, &busy));
        }
        if self.shared.cancel.is_cancelled() {
            return Ok(("error".into(), Some("shutting down".into())));
        }
        self.record(&plan, &loaded.source, &trigger).await?;
        self.shared.update(|s| s.last_plan = Some(plan_info(&plan)));
        self.shared
            .event(EventKind::PlanReady, None, Some(&plan), plan.summary.line());
        let apply_id = engine::new_id("apply");
        let summary = plan.summary.line();
        if let Err(e) = self
            .start_apply(
                plan,
                loaded.source,
                clients,
                apply_id.clone(),
                &format!("serve:{}", triggers.join(",")),
                &observation,
            )
            .await
        {
            return Ok(("lock_busy".into(), Some(e)));
        }
        let mut message = format!("{apply_id}: {summary}");
        if let Some(w) = waiting {
            message.push_str(&format!("; waiting for approval: {w}"));
        }
        Ok(("applying".into(), Some(message)))
    }

    /// Records a plan made by the daemon with where it came from (commit author and message).
    async fn record(&self, plan: &Plan, source: &RepoSource, trigger: &str) -> Result<()> {
        let store = &self.shared.store;
        engine::record_plan(store, plan, &format!("serve:{trigger}")).await?;
        crate::audit::record_origin(
            store,
            crate::store::audit::RecordKind::Plan,
            &plan.id,
            source,
            &plan.revision,
            Some("weir-serve".into()),
            now_ms(),
        )
        .await?;
        Ok(())
    }

    /// The changes waiting for a person (`policy: manual`): recorded once per revision and
    /// cluster state, then announced. Returns the waiting plan's summary, if any.
    async fn hold_for_approval(
        &mut self,
        manual: &mut Plan,
        observation: &Observation,
        source: &RepoSource,
        trigger: &str,
    ) -> Result<Option<String>> {
        if !manual.has_changes() {
            self.pending_key = None;
            self.shared.update(|s| s.pending_plan = None);
            return Ok(None);
        }
        let digest = manual.revision.digest.clone();
        let key = (digest, scoped_fingerprint(observation, manual));
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

    /// Drops the changes of jobs whose apply failed at this revision while their cluster state is
    /// still what it was around the failure (recovers excepted); forgets blocks that no longer
    /// hold. Returns the blocks in force.
    async fn drop_blocked(
        &mut self,
        plan: &mut Plan,
        observation: &Observation,
        digest: &str,
    ) -> Vec<BlockedInfo> {
        let (in_force, changed) = {
            let mut m = self.memory.borrow_mut();
            let before = m.blocked.len();
            let mut in_force = Vec::new();
            let mut held = BTreeSet::new();
            for c in plan.changes.iter() {
                let Some(b) = m.blocked.get(&c.job) else {
                    continue;
                };
                let now = job_fingerprint(observation, &c.cluster, &c.job);
                if b.digest == digest && b.fingerprints.contains(&now) {
                    held.insert(c.job.clone());
                    if c.action != Action::Recover {
                        in_force.push(b.info.clone());
                    }
                }
            }
            m.blocked.retain(|job, _| held.contains(job));
            (in_force, m.blocked.len() != before)
        };
        let names: BTreeSet<String> = in_force.iter().map(|b| b.job.clone()).collect();
        plan.retain_changes(|c| c.action == Action::Recover || !names.contains(&c.job));
        if changed {
            self.save_memory().await;
        }
        in_force
    }

    async fn save_memory(&self) {
        save_memory(&self.shared, &self.memory).await;
    }

    /// Drops what must not be applied: recovers that self-heal does not allow (reported as
    /// drift), and anything touching a job whose file is invalid. Returns job → drift reason.
    fn filter(
        &mut self,
        plan: &mut Plan,
        invalid_jobs: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let sync = &self.shared.cfg.sync;
        let now = now_ms();
        let mut drift = BTreeMap::new();
        let invalid_files = !invalid_jobs.is_empty();
        let mut memory = self.memory.borrow_mut();
        let heal = &mut memory.heal;
        plan.retain_changes(|c| {
            if invalid_jobs.contains_key(&c.job) {
                return false;
            }
            if invalid_files && c.action == Action::Delete {
                return false;
            }
            if c.action != Action::Recover {
                return true;
            }
            if !sync.for_job(&c.job, &c.cluster).self_heal {
                drift.insert(c.job.clone(), format!("{} (self-heal is off)", c.reason));
                return false;
            }
            match heal.get(&c.job) {
                Some(h) if h.attempts >= sync.self_heal_max_attempts => {
                    drift.insert(
                        c.job.clone(),
                        format!(
                            "{}; self-heal gave up after {} attempts",
                            c.reason, h.attempts
                        ),
                    );
                    false
                }
                Some(h) if now < h.next_at_ms => {
                    drift.insert(
                        c.job.clone(),
                        format!(
                            "{}; self-heal attempt {} in {}s",
                            c.reason,
                            h.attempts + 1,
                            (h.next_at_ms - now + 999) / 1000
                        ),
                    );
                    false
                }
                _ => true,
            }
        });
        // Jobs healthy again for longer than the backoff cap start counting from zero.
        let cap_ms = (sync.self_heal_max_backoff_seconds * 1000) as i64;
        let changed: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
        heal.retain(|job, h| {
            changed.contains(job.as_str())
                || drift.contains_key(job)
                || now - h.last_attempt_ms < cap_ms
        });
        drift
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        desired: &DesiredState,
        observation: &Observation,
        history: &BTreeMap<String, JobHistory>,
        plan: &Plan,
        drift: &BTreeMap<String, String>,
        invalid_jobs: &BTreeMap<String, String>,
        busy: &BTreeMap<String, String>,
    ) {
        let now = now_ms();
        let max = self.shared.cfg.sync.self_heal_max_attempts;
        let memory = self.memory.borrow();
        let sync = &self.shared.cfg.sync;
        let files: BTreeMap<&str, &str> = desired
            .jobs
            .iter()
            .map(|j| (j.name.as_str(), j.file.as_str()))
            .collect();
        let mut jobs: Vec<JobStatus> = crate::status::rows(desired, observation, history, plan)
            .into_iter()
            .map(|r| {
                let drifted = drift.get(&r.name).cloned();
                JobStatus {
                    sync: if drifted.is_some() {
                        "OutOfSync".into()
                    } else {
                        r.sync
                    },
                    file: files.get(r.name.as_str()).map(|f| f.to_string()),
                    self_heal: memory.heal.get(&r.name).map(|h| HealInfo {
                        attempts: h.attempts,
                        next_attempt_at_ms: h.next_at_ms,
                        gave_up: h.attempts >= max,
                    }),
                    policy: Some(sync.for_job(&r.name, &r.cluster)),
                    applying: busy.get(&r.name).cloned(),
                    name: r.name,
                    cluster: r.cluster,
                    health: r.flink_state,
                    job_id: r.job_id,
                    last_savepoint: r.last_savepoint,
                    drift: drifted,
                }
            })
            .collect();
        for (name, file) in invalid_jobs {
            let h = &history[name];
            let (health, job_id) = newest_job(observation, &h.cluster, name);
            jobs.push(JobStatus {
                name: name.clone(),
                cluster: h.cluster.clone(),
                sync: "InvalidDefinition".into(),
                health,
                job_id,
                last_savepoint: h.last_savepoint.clone().unwrap_or_else(|| "-".into()),
                drift: None,
                file: Some(file.clone()),
                self_heal: None,
                policy: Some(sync.for_job(name, &h.cluster)),
                applying: busy.get(name).cloned(),
            });
        }
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for j in &jobs {
            *counts.entry(j.sync.clone()).or_default() += 1;
        }
        self.shared.metrics.set_jobs(&counts);
        let mut health: BTreeMap<String, i64> = BTreeMap::new();
        for j in &jobs {
            *health.entry(j.health.clone()).or_default() += 1;
        }
        self.shared.metrics.set_health(&health);
        let mut clusters = BTreeMap::new();
        let previous = self.shared.status().clusters;
        for (name, c) in &observation.clusters {
            let in_sync = !plan.changes.iter().any(|ch| &ch.cluster == name)
                && !plan.errors.iter().any(|e| &e.cluster == name)
                && !jobs.iter().any(|j| &j.cluster == name && j.drift.is_some());
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
        for (job, why) in drift {
            self.shared
                .event(EventKind::DriftDetected, Some(job), None, why.clone());
        }
        let failed: BTreeMap<&str, (&str, &str)> = jobs
            .iter()
            .filter(|j| j.health == "FAILED")
            .map(|j| (j.job_id.as_str(), (j.name.as_str(), j.cluster.as_str())))
            .collect();
        {
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
        let warnings = plan.warnings.clone();
        let errors: Vec<String> = plan.errors.iter().map(|e| e.message.clone()).collect();
        self.shared.update(|s| {
            s.jobs = jobs;
            s.clusters = clusters;
            s.warnings = warnings;
            s.plan_errors = errors;
        });
    }

    /// Starts applying `plan` on its own task: takes the per-job locks (and the store lock with
    /// the first apply in flight), counts self-heal attempts, and returns; the task records the
    /// outcome. Errs (with the reason) when `weir apply` holds the store.
    async fn start_apply(
        &mut self,
        plan: Plan,
        source: RepoSource,
        clients: BTreeMap<String, Arc<FlinkClient>>,
        apply_id: String,
        trigger: &str,
        observation: &Observation,
    ) -> Result<(), String> {
        {
            let mut f = lock(&self.in_flight);
            if f.applies.is_empty() {
                f.store_lock =
                    Some(engine::lock_store(&self.shared.store).map_err(|e| e.to_string())?);
            }
            f.applies.insert(apply_id.clone());
            for c in &plan.changes {
                f.jobs.insert(c.job.clone(), apply_id.clone());
            }
        }
        let guard = InFlightGuard {
            in_flight: self.in_flight.clone(),
            apply_id: apply_id.clone(),
        };
        let now = now_ms();
        {
            let sync = &self.shared.cfg.sync;
            let mut m = self.memory.borrow_mut();
            for c in plan.changes.iter().filter(|c| c.action == Action::Recover) {
                let h = m.heal.entry(c.job.clone()).or_insert(Heal {
                    attempts: 0,
                    last_attempt_ms: now,
                    next_at_ms: now,
                });
                h.attempts += 1;
                h.last_attempt_ms = now;
                let backoff = sync
                    .self_heal_backoff_seconds
                    .saturating_mul(1u64 << (h.attempts - 1).min(20))
                    .min(sync.self_heal_max_backoff_seconds);
                h.next_at_ms = now + (backoff * 1000) as i64;
                self.shared.metrics.recover_attempt(&c.job);
            }
        }
        if plan.changes.iter().any(|c| c.action == Action::Recover) {
            self.save_memory().await;
        }
        let before: BTreeMap<String, String> = plan
            .changes
            .iter()
            .map(|c| {
                (
                    c.job.clone(),
                    job_fingerprint(observation, &c.cluster, &c.job),
                )
            })
            .collect();
        let touched: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
        self.shared.update(|s| {
            s.last_apply = Some(ApplyInfo {
                id: apply_id.clone(),
                plan_id: plan.id.clone(),
                outcome: "running".into(),
                error: None,
            });
            for j in s
                .jobs
                .iter_mut()
                .filter(|j| touched.contains(j.name.as_str()))
            {
                j.applying = Some(apply_id.clone());
            }
        });
        self.shared.event(
            EventKind::ApplyStarted,
            None,
            Some(&plan),
            format!("{apply_id}: {}", plan.summary.line()),
        );
        info!(%apply_id, plan = %plan.id, "applying: {}", plan.summary.line());
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
        let applier = engine::applier(
            &self.shared.store,
            clients.clone(),
            source,
            &self.settings,
            progress(),
            trigger,
        );
        // A job is free again as soon as its own change has ended, not when the whole apply has.
        let (in_flight, id) = (self.in_flight.clone(), apply_id.clone());
        let mut applier = applier;
        applier.on_change_done = Some(Arc::new(move |o: &crate::apply::ChangeOutcome| {
            let mut f = lock(&in_flight);
            if f.jobs.get(&o.job) == Some(&id) {
                f.jobs.remove(&o.job);
            }
        }));
        self.tasks
            .spawn_local(task.run(applier, plan, apply_id, clients, before));
        Ok(())
    }

    /// Applies a waiting plan, refusing it when stale (the revision or the clusters changed) or
    /// when an apply of one of its jobs is in flight.
    async fn manual_apply(&mut self, req: ApplyRequest) {
        let checked = self.check_manual(&req.plan_id).await;
        let (plan, source, clients, observation) = match checked {
            Ok(x) => x,
            Err(refusal) => {
                let _ = req.reply.send(Err(refusal));
                return;
            }
        };
        let apply_id = engine::new_id("apply");
        let started = now_ms();
        let summary = plan.summary.line();
        let result = self
            .start_apply(
                plan,
                source,
                clients,
                apply_id.clone(),
                "serve:api",
                &observation,
            )
            .await;
        let (outcome, message) = match result {
            Ok(()) => {
                let _ = req.reply.send(Ok(apply_id.clone()));
                self.pending_key = None;
                self.shared.update(|s| s.pending_plan = None);
                ("applying".to_string(), format!("{apply_id}: {summary}"))
            }
            Err(e) => {
                let _ = req.reply.send(Err(ApplyRefusal::Busy(e.clone())));
                ("lock_busy".to_string(), e)
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

    #[allow(clippy::type_complexity)]
    async fn check_manual(
        &mut self,
        plan_id: &str,
    ) -> Result<
        (
            Plan,
            RepoSource,
            BTreeMap<String, Arc<FlinkClient>>,
            Observation,
        ),
        ApplyRefusal,
    > {
        let failed = |e: anyhow::Error| ApplyRefusal::Failed(format!("{e:#}"));
        let record = self
            .shared
            .store
            .plan(plan_id)
            .await
            .map_err(|e| failed(e.into()))?
            .ok_or_else(|| ApplyRefusal::NotFound(format!("no plan `{plan_id}`")))?;
        let mut plan: Plan = serde_json::from_str(&record.plan_json)
            .map_err(|e| ApplyRefusal::Failed(format!("plan `{plan_id}` cannot be read: {e}")))?;
        {
            let f = lock(&self.in_flight);
            if let Some(c) = plan.changes.iter().find(|c| f.jobs.contains_key(&c.job)) {
                return Err(ApplyRefusal::Busy(format!(
                    "apply {} of `{}` is in progress; try again when it has finished",
                    f.jobs[&c.job], c.job
                )));
            }
        }
        let commit = self
            .commit
            .clone()
            .ok_or_else(|| ApplyRefusal::Stale("no revision has been fetched".into()))?;
        let loaded = self.load(&commit).await.map_err(failed)?;
        let Some(desired) = loaded.outcome.desired.clone() else {
            return Err(ApplyRefusal::Stale(
                "weir.yaml does not load at the current revision".into(),
            ));
        };
        if desired.revision.digest != plan.revision.digest {
            return Err(ApplyRefusal::Stale(format!(
                "the plan was made from revision {}, the repo is now at {}; nothing was applied",
                plan.revision, desired.revision
            )));
        }
        let clients = engine::clients(&desired).map_err(failed)?;
        let observation = observe::observe(&clients).await;
        // Stale when planning now would change anything about the plan's jobs (another job on
        // the shared cluster changing state does not matter).
        let history = engine::history_map(&self.shared.store)
            .await
            .map_err(failed)?;
        let now = plan::plan(&PlanInput {
            plan_id: plan.id.clone(),
            created_at_ms: now_ms(),
            desired: &desired,
            invalid_files: &loaded.outcome.invalid_files,
            observation: &observation,
            history: &history,
        });
        for change in &plan.changes {
            let same = now.changes.iter().any(|c| {
                c.job == change.job
                    && c.cluster == change.cluster
                    && c.action == change.action
                    && c.steps == change.steps
                    && c.current_job == change.current_job
            });
            if !same {
                return Err(ApplyRefusal::Stale(format!(
                    "the cluster state of `{}` changed since the plan was made; nothing was applied",
                    change.job
                )));
            }
        }
        plan.attach(&desired)
            .map_err(|e| ApplyRefusal::Stale(e.to_string()))?;
        if plan.changes.is_empty() {
            return Err(ApplyRefusal::Stale("the plan has no changes".into()));
        }
        Ok((plan, loaded.source, clients, observation))
    }
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
        applier: crate::apply::Applier,
        plan: Plan,
        apply_id: String,
        clients: BTreeMap<String, Arc<FlinkClient>>,
        before: BTreeMap<String, String>,
    ) {
        let recovered: BTreeSet<&str> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Recover)
            .map(|c| c.job.as_str())
            .collect();
        let result = applier.apply(&plan, &apply_id).await;
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
                for o in outcomes.iter().filter(|o| o.ok) {
                    if recovered.contains(o.job.as_str()) {
                        self.shared.event(
                            EventKind::JobRecovered,
                            Some(&o.job),
                            Some(&plan),
                            o.message.clone(),
                        );
                    }
                }
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
            self.shared.metrics.apply("succeeded");
            let mut e = self.shared.event_of(
                EventKind::ApplySucceeded,
                None,
                Some(&plan),
                format!("{apply_id}: {}", plan.summary.line()),
            );
            if let Some(a) = &self.author {
                e = e.author(a.clone());
            }
            for sp in result.iter().flatten().filter_map(|o| o.savepoint.clone()) {
                e = e.savepoint(sp);
            }
            self.shared.send(e);
            self.set_outcome(&apply_id, "succeeded", None);
            info!(%apply_id, "apply succeeded");
        } else {
            let err = failed
                .iter()
                .map(|(j, m)| format!("{j}: {m}"))
                .collect::<Vec<_>>()
                .join("; ");
            warn!(%apply_id, error = %err, "apply failed");
            self.shared.metrics.apply("failed");
            let mut e = self.shared.event_of(
                EventKind::ApplyFailed,
                None,
                Some(&plan),
                format!("{apply_id}: {err}"),
            );
            if let Some(a) = &self.author {
                e = e.author(a.clone());
            }
            self.shared.send(e);
            self.announce_failed_savepoints(&plan, &apply_id, &journal);
            // Not retried while the revision and the cluster state of the job stay as they were
            // before the apply or as the failure left them.
            let after = observe::observe(&clients).await;
            {
                let mut m = self.memory.borrow_mut();
                for c in plan.changes.iter().filter(|c| failed.contains_key(&c.job)) {
                    let fingerprints = [
                        before.get(&c.job).cloned().unwrap_or_default(),
                        job_fingerprint(&after, &c.cluster, &c.job),
                    ]
                    .into_iter()
                    .collect();
                    m.blocked.insert(
                        c.job.clone(),
                        Blocked {
                            digest: plan.revision.digest.clone(),
                            fingerprints,
                            info: BlockedInfo {
                                job: c.job.clone(),
                                revision: plan.revision.to_string(),
                                apply_id: apply_id.clone(),
                                error: failed[&c.job].clone(),
                            },
                        },
                    );
                }
            }
            save_memory(&self.shared, &self.memory).await;
            let blocked: Vec<BlockedInfo> = self
                .memory
                .borrow()
                .blocked
                .values()
                .map(|b| b.info.clone())
                .collect();
            self.shared.update(|s| s.blocked = blocked);
            self.set_outcome(&apply_id, "failed", Some(err));
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

    /// Step durations of the apply, from its journal, into the metrics.
    fn record_step_durations(&self, journal: &[crate::store::JournalEntry]) {
        for e in journal {
            if let Some(end) = e.finished_at_ms {
                let seconds = (end - e.created_at_ms).max(0) as f64 / 1000.0;
                self.shared.metrics.step(e.kind, e.status.as_str(), seconds);
            }
        }
    }

    /// `savepoint.failed` for every stop-with-savepoint step of the apply that failed (the job
    /// keeps running: Flink does not stop a job whose savepoint failed).
    fn announce_failed_savepoints(
        &self,
        plan: &Plan,
        apply_id: &str,
        journal: &[crate::store::JournalEntry],
    ) {
        for entry in journal.iter().filter(|e| {
            e.kind == crate::store::StepKind::StopWithSavepoint
                && e.status == crate::store::JournalStatus::Failed
        }) {
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

    fn set_outcome(&self, apply_id: &str, outcome: &str, error: Option<String>) {
        self.shared.update(|s| {
            if let Some(a) = &mut s.last_apply
                && a.id == apply_id
            {
                a.outcome = outcome.into();
                a.error = error;
            }
        });
    }
}

async fn save_memory(shared: &Shared, memory: &RefCell<Memory>) {
    let json = match serde_json::to_string(&*memory.borrow()) {
        Ok(j) => j,
        Err(e) => {
            warn!("serialising the reconcile memory: {e}");
            return;
        }
    };
    if let Err(e) = shared
        .store
        .put_daemon_state(MEMORY_KEY, &json, now_ms())
        .await
    {
        warn!("saving the reconcile memory: {e}");
    }
}

/// The outcome of a reconcile that started nothing.
fn quiet_outcome(
    plan: &Plan,
    drift: &BTreeMap<String, String>,
    blocked: &[BlockedInfo],
    busy: &BTreeMap<String, String>,
) -> (String, Option<String>) {
    let join = |items: Vec<String>| Some(items.join("; "));
    if !plan.errors.is_empty() {
        return (
            "error".into(),
            join(plan.errors.iter().map(|e| e.message.clone()).collect()),
        );
    }
    if !blocked.is_empty() {
        return (
            "blocked".into(),
            join(
                blocked
                    .iter()
                    .map(|b| {
                        format!(
                            "{}: revision {} failed to apply ({}): not retried until the revision or the cluster state changes",
                            b.job, b.revision, b.error
                        )
                    })
                    .collect(),
            ),
        );
    }
    if !drift.is_empty() {
        return (
            "drift".into(),
            join(drift.iter().map(|(j, d)| format!("{j}: {d}")).collect()),
        );
    }
    if !busy.is_empty() {
        let applies: BTreeSet<&String> = busy.values().collect();
        return (
            "applying".into(),
            join(
                applies
                    .into_iter()
                    .map(|a| format!("{a} in progress"))
                    .collect(),
            ),
        );
    }
    ("in_sync".into(), None)
}

/// The audit trigger of a reconcile started by `reasons`: the most specific one wins.
fn trigger_of(reasons: &[String]) -> String {
    let any = |p: &str| reasons.iter().any(|r| r.starts_with(p));
    if any("webhook:") {
        crate::store::Trigger::Push.to_string()
    } else if any("api") {
        crate::store::Trigger::Api.to_string()
    } else if any("watch") {
        "watch".into()
    } else {
        crate::store::Trigger::Poll.to_string()
    }
}

/// Jobs that the store knows and whose definition file is invalid now: name → file. Their jobs
/// keep running their last applied spec and are never touched.
fn invalid_jobs(
    desired: &DesiredState,
    history: &BTreeMap<String, JobHistory>,
    invalid_files: &[String],
) -> BTreeMap<String, String> {
    let defined: BTreeSet<&str> = desired.jobs.iter().map(|j| j.name.as_str()).collect();
    history
        .iter()
        .filter(|(name, _)| !defined.contains(name.as_str()))
        .filter_map(|(name, h)| {
            let file = &h.spec.as_ref()?.file;
            invalid_files
                .contains(file)
                .then(|| (name.clone(), file.clone()))
        })
        .collect()
}

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

/// A digest of the observed state of one job: its cluster's reachability and the id and state of
/// every managed job of that definition.
fn job_fingerprint(observation: &Observation, cluster: &str, job: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{cluster}/{job}:"));
    match observation.clusters.get(cluster) {
        Some(ClusterObservation::Reachable { jobs, .. }) => {
            let hash = crate::identity::name_hash(job);
            let mut mine: Vec<String> = jobs
                .iter()
                .filter(|j| j.identity.is_some_and(|i| i.name_hash == hash))
                .map(|j| format!("{}={}", j.id, j.state))
                .collect();
            mine.sort();
            h.update(mine.join(","));
        }
        Some(ClusterObservation::Unreachable { .. }) => h.update("unreachable"),
        None => h.update("unobserved"),
    }
    hex::encode(h.finalize())
}

/// A digest of the observed state of the jobs `plan` changes (see [`job_fingerprint`]).
fn scoped_fingerprint(observation: &Observation, plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let mut keys: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.cluster.as_str(), c.job.as_str()))
        .collect();
    keys.sort();
    let mut h = Sha256::new();
    for (cluster, job) in keys {
        h.update(job_fingerprint(observation, cluster, job));
        h.update("\n");
    }
    hex::encode(h.finalize())
}

fn plan_info(plan: &Plan) -> PlanInfo {
    PlanInfo {
        id: plan.id.clone(),
        revision: plan.revision.to_string(),
        summary: plan.summary.line(),
        created_at_ms: plan.created_at_ms,
    }
}

fn progress() -> Arc<dyn Fn(&str) + Send + Sync> {
    Arc::new(|msg: &str| info!("{msg}"))
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
