//! Plan previews of pull requests (GitHub) and merge requests (GitLab).
//!
//! A signed delivery (`pull_request` opened/synchronize/reopened, or a merge request hook's
//! open/reopen/update-with-new-commits) for a pull request into the followed branch queues a
//! preview; closed and merged pull requests are never previewed again unless reopened. A
//! preview fetches the pull request's head (`refs/pull/N/head`, `refs/merge-requests/N/head`)
//! and the branch into the mirror, plans the result of merging the head into the branch against
//! the live clusters and the store's history, records the plan (trigger `pull_request`), and
//! writes one comment per pull request (found again by the hidden marker of
//! [`crate::preview`], updated in place) and a `weir/plan` commit status on the head.
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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::config::{PreviewsConfig, ProjectId};
use super::engine;
use super::reconcile::Shared;
use super::source::Mirror;
use crate::apply::now_ms;
use crate::audit;
use crate::desired::DesiredState;
use crate::diagnostic::Diagnostic;
use crate::forge::{self, CommitState, Forge, ForgeError};
use crate::git::RepoSource;
use crate::load::REPO_CONFIG_FILE;
use crate::load::clusters::{clusters_of, load_with_clusters};
use crate::observe;
use crate::plan::{self, Plan, PlanInput};
use crate::preview::{self, Preview};
use crate::store::Trigger;
use crate::store::audit::RecordKind;

/// The context of weir's commit status.
pub const STATUS_CONTEXT: &str = "weir/plan";
/// How often a pull request's ref is fetched again when it does not (yet) hold the delivered
/// head commit (the forge may update the ref just after sending the event).
const FETCH_ATTEMPTS: u32 = 3;
const FETCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Where a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    GitHub,
    GitLab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
        }
    }

    /// The ref the forge keeps at the head of pull request `number`.
    pub fn head_ref(self, number: u64) -> String {
        match self {
            ForgeKind::GitHub => format!("refs/pull/{number}/head"),
            ForgeKind::GitLab => format!("refs/merge-requests/{number}/head"),
        }
    }
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Plan the head (opened, new commits, reopened).
    Preview { reopened: bool },
    /// Closed or merged: stop previewing.
    Stop,
    /// Nothing to do, and why.
    Ignore(String),
}

/// A pull-request (merge-request) delivery, reduced to what previews need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    pub forge: ForgeKind,
    /// GitHub: `owner/name`; GitLab: the project path.
    pub repo: String,
    /// GitLab: the numeric project id.
    pub project_id: Option<u64>,
    /// The pull request number (GitLab: the merge request iid).
    pub number: u64,
    pub action: String,
    pub intent: Intent,
    /// The branch the pull request merges into.
    pub base_branch: String,
    pub head_sha: String,
    /// Who opened the pull request (the actor of the recorded plan).
    pub author: Option<String>,
}

#[derive(Deserialize)]
struct GhDelivery {
    action: String,
    pull_request: GhPull,
    repository: GhRepo,
}

#[derive(Deserialize)]
struct GhPull {
    number: u64,
    state: String,
    head: GhRef,
    base: GhRef,
    #[serde(default)]
    user: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhRef {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

#[derive(Deserialize)]
struct GhRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
}

/// Reads a GitHub `pull_request` delivery.
pub fn parse_github(body: &[u8]) -> Result<PullEvent, String> {
    let d: GhDelivery = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let open = d.pull_request.state == "open";
    let intent = match d.action.as_str() {
        "opened" | "synchronize" | "reopened" if open => Intent::Preview {
            reopened: d.action == "reopened",
        },
        "opened" | "synchronize" | "reopened" => {
            Intent::Ignore(format!("the pull request is {}", d.pull_request.state))
        }
        "closed" => Intent::Stop,
        other => Intent::Ignore(format!("action `{other}` needs no preview")),
    };
    Ok(PullEvent {
        forge: ForgeKind::GitHub,
        repo: d.repository.full_name,
        project_id: None,
        number: d.pull_request.number,
        action: d.action,
        intent,
        base_branch: d.pull_request.base.name,
        head_sha: d.pull_request.head.sha,
        author: d.pull_request.user.map(|u| u.login),
    })
}

#[derive(Deserialize)]
struct GlDelivery {
    object_kind: String,
    #[serde(default)]
    user: Option<GlUser>,
    project: GlProject,
    object_attributes: GlAttributes,
}

#[derive(Deserialize)]
struct GlUser {
    username: String,
}

#[derive(Deserialize)]
struct GlProject {
    id: u64,
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct GlAttributes {
    iid: u64,
    #[serde(default)]
    action: Option<String>,
    state: String,
    target_branch: String,
    #[serde(default)]
    last_commit: Option<GlCommit>,
    /// Set on `update` when the update pushed commits.
    #[serde(default)]
    oldrev: Option<String>,
}

#[derive(Deserialize)]
struct GlCommit {
    id: String,
}

/// Reads a GitLab merge request hook delivery.
pub fn parse_gitlab(body: &[u8]) -> Result<PullEvent, String> {
    let d: GlDelivery = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if d.object_kind != "merge_request" {
        return Err(format!(
            "object_kind `{}`, not merge_request",
            d.object_kind
        ));
    }
    let a = d.object_attributes;
    let action = a.action.unwrap_or_default();
    let open = a.state == "opened";
    let intent = match action.as_str() {
        "open" | "reopen" if open => Intent::Preview {
            reopened: action == "reopen",
        },
        "update" if open && a.oldrev.as_deref().is_some_and(|r| !r.is_empty()) => {
            Intent::Preview { reopened: false }
        }
        "update" if open => Intent::Ignore("the update pushed no commits".into()),
        "open" | "reopen" | "update" => Intent::Ignore(format!("the merge request is {}", a.state)),
        "close" | "merge" => Intent::Stop,
        other => Intent::Ignore(format!("action `{other}` needs no preview")),
    };
    Ok(PullEvent {
        forge: ForgeKind::GitLab,
        repo: d.project.path_with_namespace,
        project_id: Some(d.project.id),
        number: a.iid,
        action,
        intent,
        base_branch: a.target_branch,
        head_sha: a.last_commit.map(|c| c.id).unwrap_or_default(),
        author: d.user.map(|u| u.username),
    })
}

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
                let message = self.scrubbed(&format!("{:#}", failure.error));
                let brief = self.scrubbed(&brief(&failure.error));
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
        let mut out = text.to_string();
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
        let branch = self.shared.cfg.repo.branch.clone();
        let fetched = self.fetch(key, ev).await.map_err(Failure::before_fetch)?;
        let head = fetched.head.clone();
        let fail = |error: anyhow::Error| Failure {
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
        let b = branch.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&mirror, &fetched, &b, number))
            .await
            .map_err(|e| fail(anyhow!("loading the pull request: {e}")))?
            .map_err(fail)?;

        let store = &self.shared.store;
        let plan = match &prepared.desired {
            None => None,
            Some(desired) => {
                let mut plan = self.plan(desired, &prepared).await.map_err(fail)?;
                plan.warnings.extend(prepared.warnings.iter().cloned());
                engine::record_plan(store, &plan, &Trigger::PullRequest.to_string())
                    .await
                    .map_err(fail)?;
                let actor = ev
                    .author
                    .as_ref()
                    .map(|a| format!("{}:{a}", key.forge.as_str()));
                audit::record_origin(
                    store,
                    RecordKind::Plan,
                    &plan.id,
                    &prepared.source,
                    &plan.revision,
                    actor,
                    now_ms(),
                )
                .await
                .map_err(|e| fail(e.into()))?;
                Some(plan)
            }
        };

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
        let footer = footer(
            &prepared,
            &head,
            &branch,
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
        let comment = self
            .upsert(target, key, &body)
            .await
            .map_err(|e| fail(e.into()))?;
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

    /// Observes the base branch's clusters and plans `desired` against them and the history.
    async fn plan(&self, desired: &DesiredState, prepared: &Prepared) -> Result<Plan> {
        let clients = engine::clients(desired)?;
        let observation = observe::observe(&clients).await;
        let history = engine::history_map(&self.shared.store).await?;
        Ok(plan::plan(&PlanInput {
            plan_id: engine::new_id("plan"),
            created_at_ms: now_ms(),
            desired,
            invalid_files: &prepared.invalid_files,
            observation: &observation,
            history: &history,
        }))
    }

    fn plan_url(&self, id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/api/v1/plans/{id}"))
    }

    /// Fetches the head and the branch; again (briefly) while the head ref lags the delivery.
    async fn fetch(&self, key: PullKey, ev: &PullEvent) -> Result<Fetched> {
        let kind = key.forge.as_str();
        let n = key.number;
        let head_local = format!("refs/weir/previews/{kind}/{n}/head");
        let base_local = format!("refs/weir/previews/{kind}/{n}/base");
        let head_remote = key.forge.head_ref(n);
        let base_remote = format!("refs/heads/{}", self.shared.cfg.repo.branch);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mirror = self.mirror.clone();
            let (hr, hl, br, bl) = (
                head_remote.clone(),
                head_local.clone(),
                base_remote.clone(),
                base_local.clone(),
            );
            let wanted = ev.head_sha.clone();
            let (ids, has_wanted) = tokio::task::spawn_blocking(move || {
                let ids = mirror.fetch_refs(&[(&hr, &hl), (&br, &bl)])?;
                let has = contains(mirror.path(), &ids[0], &wanted);
                Ok::<_, anyhow::Error>((ids, has))
            })
            .await
            .map_err(|e| anyhow!("fetching the pull request: {e}"))??;
            if has_wanted || attempt >= FETCH_ATTEMPTS {
                if !has_wanted {
                    warn!(
                        forge = kind,
                        number = n,
                        "{head_remote} is at {} and does not contain the delivered head {}; previewing {}",
                        short(&ids[0]),
                        short(&ev.head_sha),
                        short(&ids[0])
                    );
                }
                return Ok(Fetched {
                    head: ids[0].clone(),
                    base: ids[1].clone(),
                });
            }
            tokio::time::sleep(FETCH_RETRY_DELAY).await;
        }
    }

    /// Updates weir's comment (the oldest one starting with the marker) or creates it.
    async fn upsert(&self, target: &Target, key: PullKey, body: &str) -> Result<u64, ForgeError> {
        let mine = |b: &str| is_preview_comment(b);
        match target.forge.find_comment(key.number, &mine).await? {
            Some(c) if c.body == body => Ok(c.id),
            Some(c) => Ok(target
                .forge
                .update_comment(key.number, c.id, body)
                .await?
                .id),
            None => Ok(target.forge.create_comment(key.number, body).await?.id),
        }
    }

    async fn set_status(
        &self,
        target: &Target,
        key: PullKey,
        sha: &str,
        state: CommitState,
        description: &str,
        target_url: Option<&str>,
    ) {
        if self.closed(key) || sha.is_empty() {
            return;
        }
        let description = self.scrubbed(description);
        let status = forge::Status {
            sha,
            state,
            context: STATUS_CONTEXT,
            description: &description,
            target_url,
        };
        if let Err(e) = target.forge.set_status(&status).await {
            warn!(
                forge = key.forge.as_str(),
                number = key.number,
                "setting the commit status: {}",
                self.scrubbed(&forge::error_chain(&e))
            );
        }
    }

    /// Tells the pull request that weir could not preview it: an `error` status and the comment.
    async fn report_failure(
        &self,
        target: &Target,
        key: PullKey,
        head: &str,
        message: &str,
        brief: &str,
    ) -> Option<u64> {
        if self.closed(key) {
            return None;
        }
        let description = format!("weir could not plan this commit: {brief}");
        self.set_status(target, key, head, CommitState::Error, &description, None)
            .await;
        let body = self.scrubbed(&failure_comment(head, message));
        match self.upsert(target, key, &body).await {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(
                    forge = key.forge.as_str(),
                    number = key.number,
                    "writing the preview comment: {}",
                    self.scrubbed(&forge::error_chain(&e))
                );
                None
            }
        }
    }
}

/// The gist of a failure, for a status description (140 characters on GitHub): for a fetch, the
/// cause without the URL; otherwise the innermost error.
fn brief(e: &anyhow::Error) -> String {
    match e.downcast_ref::<super::source::FetchError>() {
        Some(f) => f.cause.clone(),
        None => e.root_cause().to_string(),
    }
}

fn fill_key(r: &mut PreviewRecord, key: PullKey) {
    r.forge = key.forge.as_str().into();
    r.number = key.number;
}

/// Whether a comment is weir's preview (its first line is the marker of a whole preview or of
/// its first part).
pub fn is_preview_comment(body: &str) -> bool {
    matches!(preview::parse_marker(body), Some((1, _)))
}

/// A failed preview: the error, and the head commit when it was known.
struct Failure {
    head: Option<String>,
    error: anyhow::Error,
}

impl Failure {
    fn before_fetch(error: anyhow::Error) -> Failure {
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

/// Commits fetched for a preview.
struct Fetched {
    head: String,
    base: String,
}

/// How the planned tree relates to the pull request and the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// The head contains the branch: the head is what merging gives.
    UpToDate,
    /// The branch already contains the head.
    AlreadyMerged,
    /// The head merged into the branch (a commit made in the mirror only).
    Merged,
    /// The merge conflicts: the head as it is.
    Conflict,
}

/// The loaded pull request, with cluster settings from the branch.
struct Prepared {
    base: String,
    planned: String,
    basis: Basis,
    source: RepoSource,
    desired: Option<DesiredState>,
    diagnostics: Vec<Diagnostic>,
    invalid_files: Vec<String>,
    /// Added to the plan's warnings.
    warnings: Vec<String>,
}

/// Whether `wanted` is `tip` or an ancestor of it in the mirror.
fn contains(mirror: &Path, tip: &str, wanted: &str) -> bool {
    let Ok(repo) = git2::Repository::open_bare(mirror) else {
        return false;
    };
    let (Ok(tip), Ok(wanted)) = (git2::Oid::from_str(tip), git2::Oid::from_str(wanted)) else {
        return false;
    };
    tip == wanted || repo.graph_descendant_of(tip, wanted).unwrap_or(false)
}

/// The commit to plan: `head` merged into `base` (see [`Basis`]).
fn merge_head(
    repo: &git2::Repository,
    base: &str,
    head: &str,
    number: u64,
) -> Result<(String, Basis)> {
    let base_id = git2::Oid::from_str(base)?;
    let head_id = git2::Oid::from_str(head)?;
    if base_id == head_id || repo.graph_descendant_of(head_id, base_id)? {
        return Ok((head.to_string(), Basis::UpToDate));
    }
    if repo.graph_descendant_of(base_id, head_id)? {
        return Ok((base.to_string(), Basis::AlreadyMerged));
    }
    let base_c = repo.find_commit(base_id)?;
    let head_c = repo.find_commit(head_id)?;
    let mut index = repo.merge_commits(&base_c, &head_c, None)?;
    if index.has_conflicts() {
        return Ok((head.to_string(), Basis::Conflict));
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    // Same inputs, same commit id: repeated previews of one head add no objects.
    let sig = git2::Signature::new("weir", "weir@localhost", &head_c.committer().when())?;
    let message = format!("weir preview of pull request {number}: {head} merged into {base}\n");
    let id = repo.commit(None, &sig, &sig, &message, &tree, &[&base_c, &head_c])?;
    Ok((id.to_string(), Basis::Merged))
}

/// Merges, then loads the pull request with the cluster settings of `base` (blocking).
fn prepare(mirror: &Path, fetched: &Fetched, branch: &str, number: u64) -> Result<Prepared> {
    let (planned, basis) = {
        let repo = git2::Repository::open_bare(mirror)
            .with_context(|| format!("opening the mirror {}", mirror.display()))?;
        merge_head(&repo, &fetched.base, &fetched.head, number)
            .with_context(|| format!("merging the pull request into `{branch}`"))?
    };
    let base_source = RepoSource::git_tree(mirror, &fetched.base).map_err(|e| anyhow!("{e}"))?;
    let Some(base_clusters) = clusters_of(&base_source) else {
        bail!(
            "{REPO_CONFIG_FILE} of `{branch}` ({}) does not load; previews take the cluster \
             settings from it",
            short(&fetched.base)
        );
    };
    let source = RepoSource::git_tree(mirror, &planned).map_err(|e| anyhow!("{e}"))?;
    let (outcome, changed) = load_with_clusters(&source, &base_clusters);
    let mut warnings = Vec::new();
    if changed {
        warnings.push(format!(
            "This pull request changes `clusters` in {REPO_CONFIG_FILE}. Previews use the cluster \
             settings of `{branch}` (a pull request cannot point weir at other endpoints); the new \
             settings take effect once merged."
        ));
    }
    if basis == Basis::Conflict {
        warnings.push(format!(
            "The pull request conflicts with `{branch}`: its head was planned as it is, not the \
             result of merging it."
        ));
    }
    Ok(Prepared {
        base: fetched.base.clone(),
        planned,
        basis,
        source,
        desired: outcome.desired,
        diagnostics: outcome.diagnostics,
        invalid_files: outcome.invalid_files,
        warnings,
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The last line of a comment: what was planned and where the cluster settings came from.
fn footer(p: &Prepared, head: &str, branch: &str, plan_id: Option<&str>) -> String {
    let code = preview::code;
    let what = match p.basis {
        Basis::UpToDate => format!(
            "head {} (up to date with {})",
            code(short(head)),
            code(branch)
        ),
        Basis::AlreadyMerged => format!(
            "head {} (already in {} at {})",
            code(short(head)),
            code(branch),
            code(short(&p.base))
        ),
        Basis::Merged => format!(
            "head {} merged into {} at {} (as {})",
            code(short(head)),
            code(branch),
            code(short(&p.base)),
            code(short(&p.planned))
        ),
        Basis::Conflict => format!(
            "head {} as it is (it conflicts with {})",
            code(short(head)),
            code(branch)
        ),
    };
    let plan = plan_id
        .map(|id| format!(" · plan {}", code(id)))
        .unwrap_or_default();
    format!(
        "---\n<sub>weir serve · {what} · cluster settings of {}{plan}</sub>\n",
        code(branch)
    )
}

/// Where the whole plan can be read when the comment holds only its beginning.
#[derive(Clone, Copy)]
struct FullPlan<'a> {
    id: &'a str,
    url: Option<&'a str>,
}

/// Room kept for the note of a cut preview.
const CUT_NOTE_ROOM: usize = 600;

/// The preview as one comment of at most `limit` characters, `footer` included: whole, or its
/// first part with a note that the rest is in the daemon (`GET /api/v1/plans/{id}`).
fn single_comment(
    preview: &Preview,
    limit: usize,
    footer: &str,
    full: Option<FullPlan<'_>>,
) -> String {
    let footer_len = footer.chars().count() + 2;
    let budget = limit.saturating_sub(footer_len + CUT_NOTE_ROOM);
    let parts = preview.split(budget);
    let total = parts.len();
    let first = parts.into_iter().next().unwrap_or_default();
    // The blank line keeps `---` a rule (right after a paragraph it would underline a heading).
    let with_footer = |body: &str| format!("{}\n\n{footer}", body.trim_end());
    if total == 1 {
        return with_footer(&first);
    }
    // The first part of a split says it continues in more comments: a daemon preview is one
    // comment, so that note becomes a pointer to the whole plan.
    let rest = first.split_once('\n').map(|(_, r)| r).unwrap_or("");
    let where_ = match full {
        Some(FullPlan { url: Some(url), .. }) => format!("[the whole plan]({url})"),
        Some(FullPlan { id, .. }) => format!(
            "the whole plan from the daemon: `GET /api/v1/plans/{}`",
            id.replace('`', "")
        ),
        None => "the whole plan with `weir plan`".into(),
    };
    let note = format!(
        "> [!NOTE]\n> This preview is too long for one comment: only its beginning is shown. \
         See {where_}.\n\n"
    );
    let continued = continuation_note(total);
    let body = if rest.contains(&continued) {
        rest.replacen(&continued, &note, 1)
    } else {
        format!("{note}{rest}")
    };
    with_footer(&format!("{}{body}", preview::marker(1, 1)))
}

/// The note [`Preview::split`] puts in the first of `total` parts.
fn continuation_note(total: usize) -> String {
    let n = total - 1;
    format!(
        "> [!NOTE]\n> This preview is long: it continues in the next {n} {} (part 1 of {total}).\n\n",
        if n == 1 { "comment" } else { "comments" }
    )
}

/// The comment when a preview failed.
fn failure_comment(head: &str, message: &str) -> String {
    format!(
        "{}### weir plan\n\n**weir could not plan {}:** {}\n\nThe next push to the pull request \
         tries again.\n",
        preview::marker(1, 1),
        preview::code(short(head)),
        preview::inline(message)
    )
}

#[cfg(test)]
mod tests;
