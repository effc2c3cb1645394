//! The reconcile loop: one worker task runs every reconcile and every apply, so there is never
//! more than one apply at a time (the store lock also keeps `weir apply` out meanwhile).
//!
//! Triggers (poll timer, `POST /api/v1/sync`, webhooks, an apply after which the status should be
//! refreshed) only wake the worker through a [`Notify`], whose single stored permit coalesces a
//! burst into one reconcile; a trigger that arrives during a reconcile schedules exactly one more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{DaemonConfig, SyncPolicy};
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
        info!(event = ?kind, job, message, "weir event");
        let mut e = Event::new(kind, now_ms()).message(message);
        if let Some(job) = job {
            e = e.job(job);
        }
        if let Some(commit) = self.status().repo.commit {
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
    /// A revision whose apply failed; not retried until the revision or the cluster state changes.
    pub blocked: Option<BlockedInfo>,
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedInfo {
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
#[derive(Debug, Clone)]
struct Heal {
    attempts: u32,
    last_attempt_ms: i64,
    next_at_ms: i64,
}

/// A revision whose apply failed, with the cluster states seen around the failure.
struct Blocked {
    digest: String,
    fingerprints: BTreeSet<String>,
    info: BlockedInfo,
}

/// What one reconcile loaded.
struct Loaded {
    commit: String,
    source: RepoSource,
    outcome: LoadOutcome,
}

pub struct Worker {
    shared: Arc<Shared>,
    mirror: Arc<Mirror>,
    settings: ApplySettings,
    commit: Option<String>,
    fetch_failures: u32,
    blocked: Option<Blocked>,
    heal: BTreeMap<String, Heal>,
    heal_digest: Option<String>,
    /// (revision digest, observation fingerprint) of the pending manual plan.
    pending_key: Option<(String, String)>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, mirror: Arc<Mirror>) -> Worker {
        let a = &shared.cfg.apply;
        let settings = ApplySettings {
            parallel: a.parallel.max(1),
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
            blocked: None,
            heal: BTreeMap::new(),
            heal_digest: None,
            pending_key: None,
        }
    }

    /// Runs until the cancellation token fires. A reconcile or apply in progress is finished
    /// first (the caller bounds how long it waits).
    pub async fn run(mut self, mut apply_rx: mpsc::Receiver<ApplyRequest>) {
        let cancel = self.shared.cancel.clone();
        let poll = self.shared.cfg.poll_interval();
        self.shared.trigger("startup");
        let mut next_poll = Instant::now() + poll;
        loop {
            let reasons = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
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
        self.shared
            .flush_notifications(Duration::from_secs(5))
            .await;
        info!("reconcile loop stopped");
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
        if outcome == "error" || outcome == "apply_failed" || outcome == "repo_invalid" {
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
                    "error" | "apply_failed" | "repo_invalid" | "no_revision" | "lock_busy"
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

    async fn load(&self, commit: &str) -> Result<Loaded> {
        let mirror = self.mirror.clone();
        let commit = commit.to_string();
        tokio::task::spawn_blocking(move || {
            let source = mirror.source(&commit).map_err(|e| anyhow!("{e}"))?;
            let outcome = load::load_repo(&source);
            Ok(Loaded {
                commit,
                source,
                outcome,
            })
        })
        .await
        .map_err(|e| anyhow!("loading the repo: {e}"))?
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
        if self.heal_digest.as_deref() != Some(desired.revision.digest.as_str()) {
            // A new definition: self-heal starts counting again.
            self.heal.clear();
            self.heal_digest = Some(desired.revision.digest.clone());
        }

        // Interrupted applies are finished first (at startup, and whenever one is left over).
        let store = self.shared.store.clone();
        if !store.unfinished_applies().await?.is_empty() {
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
        self.publish(
            &desired,
            &observation,
            &history,
            &plan,
            &drift,
            &invalid_jobs,
        );
        self.shared.metrics.plan(plan.has_changes());

        if !plan.has_changes() {
            self.pending_key = None;
            self.shared.update(|s| s.pending_plan = None);
            let errors = plan.errors.len();
            return Ok(if errors == 0 && drift.is_empty() {
                ("in_sync".into(), None)
            } else if errors > 0 {
                (
                    "error".into(),
                    Some(
                        plan.errors
                            .iter()
                            .map(|e| e.message.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                )
            } else {
                (
                    "drift".into(),
                    Some(
                        drift
                            .iter()
                            .map(|(j, d)| format!("{j}: {d}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                )
            });
        }

        // The cluster state of the jobs this plan touches (other jobs on a shared cluster may
        // come and go without making the plan stale).
        let fingerprint = scoped_fingerprint(&observation, &plan);
        let digest = desired.revision.digest.clone();
        let only_recovers = plan.changes.iter().all(|c| c.action == Action::Recover);
        if let Some(b) = &self.blocked {
            if b.digest == digest && b.fingerprints.contains(&fingerprint) && !only_recovers {
                let info = b.info.clone();
                self.shared.update(|s| s.blocked = Some(info.clone()));
                return Ok((
                    "blocked".into(),
                    Some(format!(
                        "revision {} failed to apply ({}): not retried until the revision or the cluster state changes",
                        info.revision, info.error
                    )),
                ));
            }
            self.blocked = None;
            self.shared.update(|s| s.blocked = None);
        }

        let trigger = format!("serve:{}", triggers.join(","));
        if self.shared.cfg.sync.policy == SyncPolicy::Manual {
            let key = (digest, fingerprint);
            if self.pending_key.as_ref() != Some(&key) {
                engine::record_plan(&store, &plan, &trigger).await?;
                self.pending_key = Some(key);
                let info = plan_info(&plan);
                self.shared.update(|s| {
                    s.pending_plan = Some(info.clone());
                    s.last_plan = Some(info);
                });
                self.shared.event(
                    EventKind::PlanReady,
                    None,
                    Some(&plan),
                    format!("waiting for approval: {}", plan.summary.line()),
                );
            }
            return Ok(("waiting_for_approval".into(), Some(plan.summary.line())));
        }
        if self.shared.cancel.is_cancelled() {
            return Ok(("error".into(), Some("shutting down".into())));
        }
        engine::record_plan(&store, &plan, &trigger).await?;
        self.shared.update(|s| s.last_plan = Some(plan_info(&plan)));
        self.shared
            .event(EventKind::PlanReady, None, Some(&plan), plan.summary.line());
        let apply_id = engine::new_id("apply");
        self.run_apply(
            plan,
            loaded.source,
            clients,
            apply_id,
            &trigger,
            fingerprint,
        )
        .await
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
        plan.changes.retain(|c| {
            if invalid_jobs.contains_key(&c.job) {
                return false;
            }
            if invalid_files && c.action == Action::Delete {
                return false;
            }
            if c.action != Action::Recover {
                return true;
            }
            if !sync.self_heal {
                drift.insert(c.job.clone(), format!("{} (self-heal is off)", c.reason));
                return false;
            }
            match self.heal.get(&c.job) {
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
        plan.summary.recover = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Recover)
            .count();
        plan.summary.delete = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .count();
        // Jobs healthy again for longer than the backoff cap start counting from zero.
        let cap_ms = (sync.self_heal_max_backoff_seconds * 1000) as i64;
        let changed: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
        self.heal.retain(|job, h| {
            changed.contains(job.as_str())
                || drift.contains_key(job)
                || now - h.last_attempt_ms < cap_ms
        });
        drift
    }

    fn publish(
        &self,
        desired: &DesiredState,
        observation: &Observation,
        history: &BTreeMap<String, JobHistory>,
        plan: &Plan,
        drift: &BTreeMap<String, String>,
        invalid_jobs: &BTreeMap<String, String>,
    ) {
        let now = now_ms();
        let max = self.shared.cfg.sync.self_heal_max_attempts;
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
                    file: desired
                        .jobs
                        .iter()
                        .find(|j| j.name == r.name)
                        .map(|j| j.file.clone()),
                    self_heal: self.heal.get(&r.name).map(|h| HealInfo {
                        attempts: h.attempts,
                        next_attempt_at_ms: h.next_at_ms,
                        gave_up: h.attempts >= max,
                    }),
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
            });
        }
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for j in &jobs {
            *counts.entry(j.sync.clone()).or_default() += 1;
        }
        self.shared.metrics.set_jobs(&counts);
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
        let warnings = plan.warnings.clone();
        let errors: Vec<String> = plan.errors.iter().map(|e| e.message.clone()).collect();
        self.shared.update(|s| {
            s.jobs = jobs;
            s.clusters = clusters;
            s.warnings = warnings;
            s.plan_errors = errors;
        });
    }

    /// Applies `plan` under the store lock; records the outcome and self-heal attempts.
    async fn run_apply(
        &mut self,
        plan: Plan,
        source: RepoSource,
        clients: BTreeMap<String, Arc<FlinkClient>>,
        apply_id: String,
        trigger: &str,
        fingerprint: String,
    ) -> Result<(String, Option<String>)> {
        let store = self.shared.store.clone();
        let _lock = match engine::lock_store(&store) {
            Ok(l) => l,
            Err(e) => return Ok(("lock_busy".into(), Some(e.to_string()))),
        };
        let now = now_ms();
        let sync = &self.shared.cfg.sync;
        for c in plan.changes.iter().filter(|c| c.action == Action::Recover) {
            let h = self.heal.entry(c.job.clone()).or_insert(Heal {
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
        let recovered: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Recover)
            .map(|c| c.job.clone())
            .collect();
        self.shared.update(|s| {
            s.last_apply = Some(ApplyInfo {
                id: apply_id.clone(),
                plan_id: plan.id.clone(),
                outcome: "running".into(),
                error: None,
            })
        });
        self.shared.event(
            EventKind::ApplyStarted,
            None,
            Some(&plan),
            format!("{apply_id}: {}", plan.summary.line()),
        );
        info!(%apply_id, plan = %plan.id, "applying: {}", plan.summary.line());
        let applier = engine::applier(
            &store,
            clients.clone(),
            source,
            &self.settings,
            progress(),
            trigger,
        );
        let result = applier.apply(&plan, &apply_id).await;
        let error = match &result {
            Ok(outcomes) => {
                let failed: Vec<String> = outcomes
                    .iter()
                    .filter(|o| !o.ok)
                    .map(|o| format!("{}: {}", o.job, o.message))
                    .collect();
                for o in outcomes.iter().filter(|o| o.ok) {
                    if recovered.contains(&o.job) {
                        self.shared.event(
                            EventKind::JobRecovered,
                            Some(&o.job),
                            Some(&plan),
                            o.message.clone(),
                        );
                    }
                }
                (!failed.is_empty()).then(|| failed.join("; "))
            }
            Err(e) => Some(e.to_string()),
        };
        // Refresh the status with the state the apply left.
        self.shared.trigger("after-apply");
        match error {
            None => {
                self.shared.metrics.apply("succeeded");
                self.shared.event(
                    EventKind::ApplySucceeded,
                    None,
                    Some(&plan),
                    format!("{apply_id}: {}", plan.summary.line()),
                );
                self.shared.update(|s| {
                    if let Some(a) = &mut s.last_apply {
                        a.outcome = "succeeded".into();
                    }
                });
                Ok((
                    "applied".into(),
                    Some(format!("{apply_id}: {}", plan.summary.line())),
                ))
            }
            Some(err) => {
                self.shared.metrics.apply("failed");
                self.shared.event(
                    EventKind::ApplyFailed,
                    None,
                    Some(&plan),
                    format!("{apply_id}: {err}"),
                );
                // Not retried while the revision and the cluster state stay as they were before
                // the apply or as the failure left them.
                let after = scoped_fingerprint(&observe::observe(&clients).await, &plan);
                let info = BlockedInfo {
                    revision: plan.revision.to_string(),
                    apply_id: apply_id.clone(),
                    error: err.clone(),
                };
                self.blocked = Some(Blocked {
                    digest: plan.revision.digest.clone(),
                    fingerprints: [fingerprint, after].into_iter().collect(),
                    info: info.clone(),
                });
                self.shared.update(|s| {
                    if let Some(a) = &mut s.last_apply {
                        a.outcome = "failed".into();
                        a.error = Some(err.clone());
                    }
                    s.blocked = Some(info);
                });
                Ok(("apply_failed".into(), Some(format!("{apply_id}: {err}"))))
            }
        }
    }

    /// Applies a waiting plan, refusing it when stale (the revision or the clusters changed).
    async fn manual_apply(&mut self, req: ApplyRequest) {
        let checked = self.check_manual(&req.plan_id).await;
        let (plan, source, clients, fingerprint) = match checked {
            Ok(x) => x,
            Err(refusal) => {
                let _ = req.reply.send(Err(refusal));
                return;
            }
        };
        let apply_id = engine::new_id("apply");
        let _ = req.reply.send(Ok(apply_id.clone()));
        self.pending_key = None;
        self.shared.update(|s| s.pending_plan = None);
        let started = now_ms();
        let result = self
            .run_apply(plan, source, clients, apply_id, "serve:api", fingerprint)
            .await;
        let (outcome, message) =
            result.unwrap_or_else(|e| ("error".into(), Some(format!("{e:#}"))));
        self.shared.update(|s| {
            s.last_reconcile = Some(ReconcileInfo {
                started_at_ms: started,
                finished_at_ms: now_ms(),
                triggers: vec!["api:apply".into()],
                outcome,
                message,
            })
        });
    }

    #[allow(clippy::type_complexity)]
    async fn check_manual(
        &mut self,
        plan_id: &str,
    ) -> Result<(Plan, RepoSource, BTreeMap<String, Arc<FlinkClient>>, String), ApplyRefusal> {
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
        let fingerprint = scoped_fingerprint(&observation, &plan);
        plan.attach(&desired)
            .map_err(|e| ApplyRefusal::Stale(e.to_string()))?;
        if plan.changes.is_empty() {
            return Err(ApplyRefusal::Stale("the plan has no changes".into()));
        }
        Ok((plan, loaded.source, clients, fingerprint))
    }
}

/// Jobs that the store knows and whose definition file is invalid now: name → file. Their jobs
/// keep running their last applied spec and are never touched.
fn invalid_jobs(
    desired: &DesiredState,
    history: &BTreeMap<String, JobHistory>,
    invalid_files: &[String],
) -> BTreeMap<String, String> {
    history
        .iter()
        .filter(|(name, _)| !desired.jobs.iter().any(|j| &j.name == *name))
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
    let mut mine: Vec<_> = jobs
        .iter()
        .filter(|j| j.identity.is_some_and(|i| i.name_hash == hash))
        .collect();
    mine.sort_by_key(|j| {
        (
            !observe::is_active(&j.state),
            std::cmp::Reverse(j.start_time_ms),
        )
    });
    match mine.first() {
        Some(j) => (j.state.to_string(), j.id.to_string()),
        None => ("-".into(), "-".into()),
    }
}

/// A digest of the observed state of the jobs `plan` changes: per change its cluster's
/// reachability and the id and state of every managed job of that definition.
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
