//! The state the reconcile worker shares with the HTTP handlers, and the events it announces.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::manual::ApplyRequest;
use super::status::Status;
use crate::desired::DesiredState;
use crate::notify::{
    Event, EventKind, Notifier, NotifierOptions, PlanInfo as NotifyPlan, RouteSummary,
};
use crate::plan::Plan;
use crate::serve::config::DaemonConfig;
use crate::serve::leader::Leadership;
use crate::serve::metrics::Metrics;
use crate::store::Store;

/// State shared by the worker and the HTTP handlers.
pub struct Shared {
    pub cfg: DaemonConfig,
    pub store: Store,
    pub metrics: Metrics,
    pub status: RwLock<Status>,
    pub cancel: CancellationToken,
    pub apply_tx: mpsc::Sender<ApplyRequest>,
    pub(super) wake: Notify,
    /// Whether this daemon leads (always, on a SQLite store); see `serve::leader`.
    pub leadership: Arc<Leadership>,
    reasons: Mutex<BTreeSet<String>>,
    notifier: RwLock<Notifier>,
    notifier_key: Mutex<Option<String>>,
    /// Why routes of the current `weir.yaml` were left out (e.g. an unset variable).
    notifier_problems: Mutex<Vec<String>>,
    /// The desired state of the last good load, for the lifecycle timer.
    pub(super) desired: RwLock<Option<SharedDesired>>,
    /// The latest health of each job the lifecycle timer read, by job name.
    pub(super) job_health: Mutex<BTreeMap<String, crate::lifecycle::health::HealthReport>>,
}

impl Shared {
    pub fn new(
        cfg: DaemonConfig,
        store: Store,
        status: Status,
        cancel: CancellationToken,
    ) -> (Arc<Shared>, mpsc::Receiver<ApplyRequest>) {
        Shared::with_leadership(cfg, store, status, cancel, Arc::new(Leadership::single()))
    }

    /// [`Shared::new`] for one of several daemons on a PostgreSQL store.
    pub fn with_leadership(
        cfg: DaemonConfig,
        store: Store,
        status: Status,
        cancel: CancellationToken,
        leadership: Arc<Leadership>,
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
            leadership,
            reasons: Mutex::new(BTreeSet::new()),
            notifier: RwLock::new(Notifier::disabled()),
            notifier_key: Mutex::new(None),
            notifier_problems: Mutex::new(Vec::new()),
            desired: RwLock::new(None),
            job_health: Mutex::new(BTreeMap::new()),
        });
        (shared, apply_rx)
    }

    /// Asks for a reconcile. Bursts coalesce; a trigger during a reconcile schedules one more.
    pub fn trigger(&self, reason: &str) {
        if !self.leadership.is_leader() {
            // A follower never reconciles: the leader takes the trigger from the store.
            self.forward_to_leader(reason, None);
            return;
        }
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reason.to_string());
        self.wake.notify_one();
    }

    /// Records `trigger` (and a pull-request delivery's verified body) for the leader, which
    /// takes it within a lease renewal (see `serve::leader`).
    pub fn forward_to_leader(&self, trigger: &str, payload: Option<String>) {
        let store = self.store.clone();
        let (trigger, me) = (trigger.to_string(), self.leadership.holder());
        tokio::spawn(async move {
            let at = crate::clock::now_ms();
            let recorded = store
                .record_pending_trigger(&trigger, payload.as_deref(), &me, at)
                .await;
            if let Err(e) = recorded {
                warn!(
                    "recording {trigger} for the leader: {:#}",
                    anyhow::Error::from(e)
                );
            }
        });
    }

    pub(super) fn take_reasons(&self) -> Vec<String> {
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

    pub(super) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Logs an event and hands it to the notifier (routes from `notifications` in `weir.yaml`
    /// of the last good revision), which delivers it in the background.
    pub(super) fn event(
        &self,
        kind: EventKind,
        job: Option<&str>,
        plan: Option<&Plan>,
        message: String,
    ) {
        self.send(self.event_of(kind, job, plan, message));
    }

    /// An event about `job` and `plan` (the revision is the plan's, else the last fetched one).
    pub(super) fn event_of(
        &self,
        kind: EventKind,
        job: Option<&str>,
        plan: Option<&Plan>,
        message: String,
    ) -> Event {
        let mut e = Event::new(kind, crate::clock::now_ms()).message(message);
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
    pub(super) fn send(&self, e: Event) {
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
    pub(super) fn configure_notifier(&self, desired: &DesiredState) {
        let Some(config) = &desired.config.notifications else {
            *self.notifier.write().unwrap_or_else(|e| e.into_inner()) = Notifier::disabled();
            self.notifier_problems
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
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
        for e in &errors {
            warn!("notifications: {e}");
        }
        *self
            .notifier_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = errors
            .iter()
            .map(|e| crate::redact::text(&crate::text::error_chain(e)))
            .collect();
        *self.notifier.write().unwrap_or_else(|e| e.into_inner()) = notifier;
        *current = Some(key);
    }

    /// The routes notifications go to (masked) and why others were left out.
    pub fn notification_routes(&self) -> (Vec<RouteSummary>, Vec<String>) {
        let routes = self
            .notifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .summaries();
        let problems = self
            .notifier_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (routes, problems)
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

/// The desired state of a load, shared without copying it (a copy of 1,000 definitions cost a
/// reconcile several milliseconds and held them twice).
#[derive(Clone)]
pub(super) struct SharedDesired(Arc<crate::load::LoadOutcome>);

impl SharedDesired {
    /// `None` when the load has no desired state.
    pub fn of(outcome: &Arc<crate::load::LoadOutcome>) -> Option<SharedDesired> {
        outcome
            .desired
            .as_ref()
            .map(|_| SharedDesired(outcome.clone()))
    }
}

impl std::ops::Deref for SharedDesired {
    type Target = DesiredState;

    fn deref(&self) -> &DesiredState {
        self.0
            .desired
            .as_ref()
            .expect("SharedDesired::of holds loads with a desired state only")
    }
}
