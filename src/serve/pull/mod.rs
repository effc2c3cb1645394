//! Plan previews of pull requests (GitHub) and merge requests (GitLab).
//!
//! A signed delivery (`pull_request` opened/synchronize/reopened, or a merge request hook's
//! open/reopen/update-with-new-commits) for a pull request into the followed branch queues a
//! preview; closed and merged pull requests are never previewed again unless reopened. A
//! preview fetches the pull request's head (`refs/pull/N/head`, `refs/merge-requests/N/head`)
//! and the branch into the mirror, plans the result of merging the head into the branch against
//! the live clusters and the store's history, records the plan (trigger `pull_request`), and
//! writes one comment per pull request (found again by the hidden marker of
//! `crate::render::markdown`, updated in place) and a `weir/plan` commit status on the head.
//!
//! **Cluster settings come from the branch, never from the pull request.** `clusters` in
//! `weir.yaml` (URLs, token and header environment variables, savepoint directories) are taken
//! from the followed branch, so a pull request cannot make the daemon call another endpoint or
//! send it a credential; job definitions come from the pull request. A pull request that
//! changes `clusters` is planned with the branch's settings and told so in a warning.
//!
//! Previews never apply anything and never wait for the reconcile worker: they run on their own
//! tasks, at most `previews.concurrency` at once. Deliveries for a pull request that is being
//! previewed coalesce: one more preview runs afterwards, of the newest head.

mod comment;
mod delivery;
mod error;
mod forge_io;
mod merge;
mod preflight;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::config::{PreviewsConfig, ProjectId};
use super::reconcile::Shared;
use super::source::Mirror;
use crate::clock::now_ms;
use crate::engine;
use crate::forge::{self, CommitState, Forge};
use crate::plan::Plan;
use crate::render::markdown::{self as preview, Preview};
use crate::store::Trigger;

use super::short;
pub use comment::is_preview_comment;
use comment::{FullPlan, single_comment};
pub use delivery::{DeliveryError, ForgeKind, Intent, PullEvent, parse_github, parse_gitlab};
pub use error::PreviewError;
use merge::{Prepared, prepare};

/// The context of weir's commit status.
pub const STATUS_CONTEXT: &str = "weir/plan";
/// How often a pull request's ref is fetched again when it does not (yet) hold the delivered
/// head commit (the forge may update the ref just after sending the event).
const FETCH_ATTEMPTS: u32 = 3;
const FETCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One pull request of one forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PullKey {
    pub forge: ForgeKind,
    pub number: u64,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Queued,
    Stopped,
    Ignored(String),
}

/// The last thing a pull request's previews did (`GET /api/v1/previews`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRecord {
    pub forge: String,
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    /// `queued`, `running`, `success`, `failure` (the change is wrong), `error` (weir failed).
    pub outcome: String,
    /// The head commit of the last preview.
    pub head: Option<String>,
    /// The commit that was planned: the head merged into the branch, or the head itself.
    pub planned: Option<String>,
    pub plan_id: Option<String>,
    pub summary: Option<String>,
    pub comment_id: Option<u64>,
    pub message: Option<String>,
    /// Previews run for this pull request since start.
    pub runs: u64,
    pub updated_at_ms: i64,
}

#[derive(Default)]
struct Slot {
    pending: Option<PullEvent>,
    running: bool,
    closed: bool,
    record: PreviewRecord,
}

/// A configured forge and the repository whose pull requests it previews.
struct Target {
    forge: Forge,
    repo: RepoMatch,
}

enum RepoMatch {
    GitHub(String),
    GitLab(ProjectId),
}

impl RepoMatch {
    fn matches(&self, ev: &PullEvent) -> bool {
        match self {
            RepoMatch::GitHub(r) => r.eq_ignore_ascii_case(&ev.repo),
            RepoMatch::GitLab(ProjectId::Id(id)) => ev.project_id == Some(*id),
            RepoMatch::GitLab(ProjectId::Path(p)) => p.eq_ignore_ascii_case(&ev.repo),
        }
    }
}

/// The preview service: per pull request a queue of one, and the tasks that work them off.
pub struct Previews {
    shared: Arc<Shared>,
    mirror: Arc<Mirror>,
    github: Option<Target>,
    gitlab: Option<Target>,
    slots: Mutex<BTreeMap<PullKey, Slot>>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Secrets that must never reach a comment or a status (replaced if they ever show up).
    scrub: Vec<String>,
    public_url: Option<String>,
}

/// Tokens of the configured forges.
pub struct ForgeTokens {
    pub github: Option<String>,
    pub gitlab: Option<String>,
}

impl Previews {
    /// `None` when no forge is configured. `scrub` lists every secret the daemon holds.
    pub fn new(
        cfg: &PreviewsConfig,
        tokens: ForgeTokens,
        shared: Arc<Shared>,
        mirror: Arc<Mirror>,
        tracker: TaskTracker,
        mut scrub: Vec<String>,
    ) -> Result<Option<Arc<Previews>>> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let github = match (&cfg.github, tokens.github) {
            (Some(g), Some(token)) => {
                let forge =
                    forge::GitHub::new(&g.api_url, &token, &g.repo).context("previews.github")?;
                scrub.push(token);
                Some(Target {
                    forge: Forge::GitHub(forge),
                    repo: RepoMatch::GitHub(g.repo.clone()),
                })
            }
            (Some(_), None) => bail!("previews.github.token: no token"),
            _ => None,
        };
        let gitlab = match (&cfg.gitlab, tokens.gitlab) {
            (Some(g), Some(token)) => {
                let forge = forge::GitLab::new(&g.api_url, &token, &g.project_id.to_string())
                    .context("previews.gitlab")?;
                scrub.push(token);
                Some(Target {
                    forge: Forge::GitLab(forge),
                    repo: RepoMatch::GitLab(g.project_id.clone()),
                })
            }
            (Some(_), None) => bail!("previews.gitlab.token: no token"),
            _ => None,
        };
        // Short values would blank out ordinary words; real secrets are longer.
        scrub.retain(|s| s.len() >= 8);
        scrub.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Some(Arc::new(Previews {
            shared,
            mirror,
            github,
            gitlab,
            slots: Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            tracker,
            scrub,
            public_url: cfg
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
        })))
    }

    fn target(&self, kind: ForgeKind) -> Option<&Target> {
        match kind {
            ForgeKind::GitHub => self.github.as_ref(),
            ForgeKind::GitLab => self.gitlab.as_ref(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<PullKey, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the mirror's refs of a closed pull request (its head, base and merge), so that the
    /// mirror does not keep every pull request's commits reachable forever. A reopened pull
    /// request fetches them again.
    fn forget_refs(&self, key: PullKey) {
        let prefix = format!("refs/weir/previews/{}/{}/", key.forge.as_str(), key.number);
        let path = self.mirror.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let result = git2::Repository::open_bare(&path).and_then(|repo| {
                let names: Vec<String> = repo
                    .references_glob(&format!("{prefix}*"))?
                    .names()
                    .filter_map(|n| n.ok().map(str::to_string))
                    .collect();
                for name in &names {
                    repo.find_reference(name)?.delete()?;
                }
                Ok(names.len())
            });
            match result {
                Ok(n) => info!(
                    refs = n,
                    "{prefix}: refs of the closed pull request removed"
                ),
                Err(e) => warn!("{prefix}: removing the refs: {}", e.message()),
            }
        });
    }

    /// Every pull request seen since start, with its last preview.
    pub fn records(&self) -> Vec<PreviewRecord> {
        self.slots().values().map(|s| s.record.clone()).collect()
    }

    /// Handles a verified delivery: queues a preview, stops previewing, or ignores it.
    pub fn submit(self: &Arc<Self>, ev: PullEvent) -> Submitted {
        let Some(target) = self.target(ev.forge) else {
            return Submitted::Ignored(format!(
                "previews are not configured for {}",
                ev.forge.as_str()
            ));
        };
        if !target.repo.matches(&ev) {
            return Submitted::Ignored(format!(
                "pull requests of `{}` are not previewed here",
                ev.repo
            ));
        }
        let branch = &self.shared.cfg.repo.branch;
        let key = PullKey {
            forge: ev.forge,
            number: ev.number,
        };
        let reopened = match &ev.intent {
            Intent::Ignore(why) => return Submitted::Ignored(why.clone()),
            Intent::Stop => {
                let mut slots = self.slots();
                let slot = slots.entry(key).or_default();
                slot.closed = true;
                slot.pending = None;
                slot.record.state = "closed".into();
                slot.record.updated_at_ms = now_ms();
                fill_key(&mut slot.record, key);
                info!(forge = key.forge.as_str(), number = key.number, action = %ev.action, "pull request closed: previews stop");
                drop(slots);
                self.forget_refs(key);
                return Submitted::Stopped;
            }
            Intent::Preview { reopened } => *reopened,
        };
        if &ev.base_branch != branch {
            return Submitted::Ignored(format!(
                "the pull request merges into `{}`, not `{branch}`",
                ev.base_branch
            ));
        }
        let spawn = {
            let mut slots = self.slots();
            let slot = slots.entry(key).or_default();
            if reopened {
                slot.closed = false;
            }
            if slot.closed {
                return Submitted::Ignored("the pull request was closed".into());
            }
            fill_key(&mut slot.record, key);
            slot.record.state = "open".into();
            if !slot.running {
                slot.record.outcome = "queued".into();
            }
            slot.pending = Some(ev);
            let spawn = !slot.running;
            slot.running = true;
            spawn
        };
        if spawn {
            let me = self.clone();
            self.tracker.spawn(async move { me.drive(key).await });
        }
        Submitted::Queued
    }

    /// Works off one pull request's queue: the newest delivery each time, one preview at a time.
    async fn drive(self: Arc<Self>, key: PullKey) {
        let cancel = self.shared.cancel.clone();
        loop {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => p,
                _ = cancel.cancelled() => break,
            };
            let Ok(_permit) = permit else { break };
            // Taken only now: deliveries that came while waiting for a permit coalesce.
            let ev = {
                let mut slots = self.slots();
                let slot = slots.entry(key).or_default();
                match slot.pending.take() {
                    Some(ev) if !slot.closed => {
                        slot.record.outcome = "running".into();
                        slot.record.runs += 1;
                        ev
                    }
                    _ => {
                        slot.running = false;
                        return;
                    }
                }
            };
            tokio::select! {
                _ = self.run(key, &ev) => {}
                _ = cancel.cancelled() => break,
            }
        }
        self.slots().entry(key).or_default().running = false;
    }

    fn closed(&self, key: PullKey) -> bool {
        self.slots().get(&key).is_some_and(|s| s.closed)
    }

    fn record(&self, key: PullKey, f: impl FnOnce(&mut PreviewRecord)) {
        let mut slots = self.slots();
        let r = &mut slots.entry(key).or_default().record;
        f(r);
        r.updated_at_ms = now_ms();
    }

    /// One preview: fetch, plan, comment, status. Failures are reported on the pull request.
    async fn run(&self, key: PullKey, ev: &PullEvent) {
        let Some(target) = self.target(key.forge) else {
            return;
        };
        let started = std::time::Instant::now();
        match self.preview(target, key, ev).await {
            Ok(done) => {
                info!(
                    forge = key.forge.as_str(),
                    number = key.number,
                    head = %short(&done.head),
                    plan = done.plan_id.as_deref().unwrap_or("-"),
                    outcome = done.state.as_str(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "pull request preview: {}",
                    done.summary
                );
                self.record(key, |r| {
                    r.outcome = if done.written {
                        done.state.as_str().into()
                    } else {
                        "closed".into()
                    };
                    r.head = Some(done.head.clone());
                    r.planned = done.planned.clone();
                    r.plan_id = done.plan_id.clone();
                    r.summary = Some(done.summary.clone());
                    r.comment_id = done.comment_id.or(r.comment_id);
                    r.message = done.problem.clone();
                });
            }
            Err(failure) => {
                let message = self.scrubbed(&crate::text::error_chain(&failure.error));
                let brief = self.scrubbed(&failure.error.brief());
                warn!(
                    forge = key.forge.as_str(),
                    number = key.number,
                    "pull request preview failed: {message}"
                );
                let head = failure.head.unwrap_or_else(|| ev.head_sha.clone());
                let comment = self
                    .report_failure(target, key, &head, &message, &brief)
                    .await;
                self.record(key, |r| {
                    r.outcome = "error".into();
                    r.head = Some(head.clone());
                    r.message = Some(message.clone());
                    r.comment_id = comment.or(r.comment_id);
                });
            }
        }
    }

    fn scrubbed(&self, text: &str) -> String {
        // Credential patterns and every secret value the process knows (tokens, the
        // definitions' own secrets), then the forge tokens of this service.
        let mut out = crate::redact::text(text);
        for s in &self.scrub {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), crate::redact::REDACTED);
            }
        }
        out
    }

    async fn preview(
        &self,
        target: &Target,
        key: PullKey,
        ev: &PullEvent,
    ) -> Result<Done, Failure> {
        let fetched = self.fetch(key, ev).await.map_err(Failure::before_fetch)?;
        let head = fetched.head.clone();
        let fail = |error: PreviewError| Failure {
            head: Some(head.clone()),
            error,
        };
        self.set_status(
            target,
            key,
            &head,
            CommitState::Pending,
            "weir is planning this commit",
            None,
        )
        .await;
        let mirror = self.mirror.path().to_path_buf();
        let number = key.number;
        let branch = self.shared.cfg.repo.branch.clone();
        let prepared =
            tokio::task::spawn_blocking(move || prepare(&mirror, &fetched, &branch, number))
                .await
                .map_err(|source| {
                    fail(PreviewError::Task {
                        what: "loading the pull request",
                        source,
                    })
                })?
                .map_err(&fail)?;
        let plan = self
            .plan(&prepared, key, ev)
            .await
            .map_err(|e| fail(e.into()))?;
        self.write(target, key, head.clone(), prepared, plan)
            .await
            .map_err(|e| fail(e.into()))
    }

    /// Plans the loaded pull request against the branch's clusters and the store's history, and
    /// records the plan (trigger `pull_request`, the pull request's author as the actor). `None`
    /// when `weir.yaml` does not load.
    async fn plan(
        &self,
        prepared: &Prepared,
        key: PullKey,
        ev: &PullEvent,
    ) -> Result<Option<Plan>, crate::engine::EngineError> {
        let Some(desired) = &prepared.desired else {
            return Ok(None);
        };
        let store = &self.shared.store;
        let mut planned = engine::plan(store, desired.clone(), &prepared.invalid_files).await?;
        let opts = preflight::options(
            self.shared.cfg.previews.preflight.as_ref(),
            ev.from_fork,
            self.shared.cfg.artifact_settings(),
        );
        engine::preflight(store, &mut planned, &prepared.source, &opts).await;
        let mut plan = planned.plan;
        plan.warnings.extend(prepared.warnings.iter().cloned());
        let actor = ev
            .author
            .as_ref()
            .map(|a| format!("{}:{a}", key.forge.as_str()));
        engine::record_plan(store, &plan, Trigger::PullRequest, &prepared.source, actor).await?;
        Ok(Some(plan))
    }

    /// Writes the comment and the commit status of a planned pull request.
    async fn write(
        &self,
        target: &Target,
        key: PullKey,
        head: String,
        prepared: Prepared,
        plan: Option<Plan>,
    ) -> Result<Done, forge::ForgeError> {
        let branch = &self.shared.cfg.repo.branch;
        let invalid = prepared.invalid_files.len();
        let summary = preview::summary_line(plan.as_ref(), invalid).replace('`', "");
        let ok =
            prepared.diagnostics.is_empty() && plan.as_ref().is_some_and(|p| p.errors.is_empty());
        let state = if ok {
            CommitState::Success
        } else {
            CommitState::Failure
        };
        let rendered = Preview::new(plan.as_ref(), &prepared.diagnostics);
        let footer = comment::footer(
            &prepared,
            &head,
            branch,
            plan.as_ref().map(|p| p.id.as_str()),
        );
        let plan_url = plan.as_ref().and_then(|p| self.plan_url(&p.id));
        let hint = plan.as_ref().map(|p| FullPlan {
            id: &p.id,
            url: plan_url.as_deref(),
        });
        let body = self.scrubbed(&single_comment(
            &rendered,
            target.forge.comment_limit(),
            &footer,
            hint,
        ));
        if self.closed(key) {
            return Ok(Done::closed(head, prepared.planned, plan, summary));
        }
        let comment = self.upsert(target, key, &body).await?;
        let problem = (!ok).then(|| summary.clone());
        self.set_status(target, key, &head, state, &summary, plan_url.as_deref())
            .await;
        Ok(Done {
            head,
            planned: Some(prepared.planned),
            plan_id: plan.map(|p| p.id),
            summary,
            state,
            comment_id: Some(comment),
            problem,
            written: true,
        })
    }

    fn plan_url(&self, id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/api/v1/plans/{id}"))
    }
}

fn fill_key(r: &mut PreviewRecord, key: PullKey) {
    r.forge = key.forge.as_str().into();
    r.number = key.number;
}

/// A failed preview: the error, and the head commit when it was known.
struct Failure {
    head: Option<String>,
    error: PreviewError,
}

impl Failure {
    fn before_fetch(error: PreviewError) -> Failure {
        Failure { head: None, error }
    }
}

/// A finished preview.
struct Done {
    head: String,
    planned: Option<String>,
    plan_id: Option<String>,
    summary: String,
    state: CommitState,
    comment_id: Option<u64>,
    /// Why the status is a failure.
    problem: Option<String>,
    /// False when the pull request was closed while planning.
    written: bool,
}

impl Done {
    /// Planned, but the pull request was closed meanwhile: nothing was written.
    fn closed(head: String, planned: String, plan: Option<Plan>, summary: String) -> Done {
        Done {
            head,
            planned: Some(planned),
            plan_id: plan.map(|p| p.id),
            summary,
            state: CommitState::Pending,
            comment_id: None,
            problem: Some("closed while planning: nothing was written".into()),
            written: false,
        }
    }
}

#[cfg(test)]
mod tests;
