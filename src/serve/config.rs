//! The daemon's own configuration (`weir serve --config FILE`), separate from the jobs repo.
//!
//! Secrets (Git token, API tokens, webhook secrets) are never written in the file: the file names
//! an environment variable (`env:`) or a file (`file:`, e.g. a mounted Kubernetes Secret) holding
//! each one, and they are read once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

mod lifecycle;
pub use lifecycle::LifecycleConfig;

/// Largest accepted daemon config file.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonConfig {
    pub repo: RepoConfig,
    /// Seconds between polls of the remote (default 60).
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    /// Address of the HTTP API (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Directory for the store (`state.db`) and the Git mirror (`mirror.git`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub apply: ApplyConfig,
    /// Development: reconcile as soon as a local jobs repo changes (see `serve::watch`).
    #[serde(default)]
    pub watch: Option<WatchConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Seconds to let an in-flight apply finish after SIGTERM/SIGINT (default 60); after that the
    /// process exits and the journal lets the next start finish the apply.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Plan previews on pull requests (GitHub) and merge requests (GitLab); off when absent.
    #[serde(default)]
    pub previews: PreviewsConfig,
    /// URL jars: which directories `file://` URLs may read (none by default).
    #[serde(default)]
    pub artifacts: ArtifactsConfig,
    /// The store: a SQLite file (default `stateDir/state.db`) or `postgres://USER@HOST/DB` for
    /// several daemons with one leader (password from `PGPASSWORD` or `WEIR_PG_PASSWORD_FILE`,
    /// never in the URL). `--state` / `WEIR_STATE` take precedence.
    #[serde(default)]
    pub store: Option<String>,
    /// The environment of the jobs repo (a key of its `environments`) this daemon reconciles and
    /// previews; required when the repo defines environments.
    #[serde(default)]
    pub environment: Option<String>,
    /// Seconds between looks at the clusters (one `GET /jobs/overview` each) between Git
    /// polls (default 10): a job that failed or was cancelled is noticed within this interval
    /// and, with `selfHeal`, healed without fetching the repo.
    #[serde(default = "default_observe")]
    pub observe_interval_seconds: u64,
    /// Periodic savepoints, savepoint retention and job health.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
}

fn default_observe() -> u64 {
    10
}

impl DaemonConfig {
    /// How the daemon fetches URL jars: `file://` only below `artifacts.allowFileUrls`, verified
    /// jars cached in the state directory.
    pub fn artifact_settings(&self) -> crate::artifact::ArtifactSettings {
        crate::artifact::ArtifactSettings {
            policy: crate::artifact::FetchPolicy {
                file_roots: self.artifacts.allow_file_urls.clone(),
                ..Default::default()
            },
            cache: self.state_dir.join("artifacts"),
        }
    }
}

/// `artifacts`: what URL jars may be fetched from. Kept in the daemon's config, not the jobs
/// repo: a pull request must not be able to let its own jar URLs read the daemon host's files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// Directories below which `file://` jar URLs may be read.
    #[serde(default)]
    pub allow_file_urls: Vec<PathBuf>,
}

/// `previews`: which forges get a plan comment and a commit status on their pull requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviewsConfig {
    #[serde(default)]
    pub github: Option<GitHubPreviews>,
    #[serde(default)]
    pub gitlab: Option<GitLabPreviews>,
    /// Previews planned at once (default 2); more wait. Applies never wait for previews.
    #[serde(default = "default_preview_concurrency")]
    pub concurrency: usize,
    /// The daemon's URL as reviewers reach it (e.g. `https://weir.example.com`): commit statuses
    /// link to the plan (`/api/v1/plans/{id}`) when set.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where pull requests are pre-flighted. Off when absent: pre-flight runs the program's
    /// `main()` on a JobManager, i.e. unreviewed code of the pull request on a cluster.
    #[serde(default)]
    pub preflight: Option<PreviewPreflight>,
}

/// `previews.preflight`: the clusters (of the followed branch's `weir.yaml`) that may run the
/// programs of pull requests. Pull requests from forks are never pre-flighted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviewPreflight {
    /// Programs for these clusters are pre-flighted on the cluster itself.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Programs for the key's cluster are pre-flighted on the value's cluster instead (a sandbox
    /// session cluster of the same Flink version; a different version is not used).
    #[serde(default)]
    pub sandboxes: std::collections::BTreeMap<String, String>,
}

impl Default for PreviewsConfig {
    fn default() -> Self {
        PreviewsConfig {
            github: None,
            gitlab: None,
            concurrency: default_preview_concurrency(),
            public_url: None,
            preflight: None,
        }
    }
}

impl PreviewsConfig {
    pub fn enabled(&self) -> bool {
        self.github.is_some() || self.gitlab.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHubPreviews {
    /// REST API base: `https://api.github.com` (default), or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// A token allowed to write pull-request comments and commit statuses.
    pub token: SecretRef,
    /// `owner/name` of the repository whose pull requests are previewed.
    pub repo: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitLabPreviews {
    /// REST API base: `https://gitlab.com/api/v4` (default), or `https://HOST/api/v4`.
    #[serde(default = "default_gitlab_api")]
    pub api_url: String,
    /// A token with the `api` scope (Developer role or higher on the project).
    pub token: SecretRef,
    /// The project: its numeric id or its path (`group/project`).
    pub project_id: ProjectId,
}

/// A GitLab project, by numeric id or by path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ProjectId {
    Id(u64),
    Path(String),
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectId::Id(n) => write!(f, "{n}"),
            ProjectId::Path(p) => f.write_str(p),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoConfig {
    /// `https://...`, `ssh://user@host[:port]/path`, scp-like `user@host:path`, `file:///...` or
    /// a local path to a Git repository.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// User name sent with the token over HTTPS (default `x-access-token`, which GitHub and GitLab
    /// accept for tokens).
    #[serde(default)]
    pub username: Option<String>,
    /// HTTPS token (or password).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// SSH private key (required for SSH URLs).
    #[serde(default)]
    pub ssh_key: Option<SshKeyConfig>,
    /// OpenSSH `known_hosts` file the server's host key must be in (required for SSH URLs).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// PEM file of CA certificates trusted for HTTPS in addition to the system's (for Git servers
    /// with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds a fetch may take (default 120).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshKeyConfig {
    /// Path of the private key (OpenSSH or PEM format), e.g. a mounted Kubernetes Secret.
    pub file: PathBuf,
    /// The key's passphrase, if it has one.
    #[serde(default)]
    pub passphrase: Option<SecretRef>,
}

impl RepoConfig {
    /// Whether the URL is fetched over SSH (`ssh://`, `git+ssh://` or scp-like `host:path`).
    pub fn is_ssh(&self) -> bool {
        crate::serve::source::ssh_target(&self.url).is_some()
    }

    fn check(&self) -> Result<()> {
        if self.is_ssh() {
            if self.known_hosts.is_none() {
                bail!(
                    "repo.url `{}` is an SSH URL: repo.knownHosts (an OpenSSH known_hosts file \
                     with the server's host key, e.g. from `ssh-keyscan -p PORT HOST` checked \
                     against the server's fingerprint) is required; weir never trusts an unknown \
                     host key",
                    self.url
                );
            }
            if self.ssh_key.is_none() {
                bail!(
                    "repo.url `{}` is an SSH URL: repo.sshKey {{file: PATH}} (the private key) is \
                     required",
                    self.url
                );
            }
            if self.token.is_some() {
                bail!("repo.token is for HTTPS; an SSH URL authenticates with repo.sshKey");
            }
        } else if self.token.is_some() && self.url.starts_with("http://") {
            bail!(
                "repo.token with an http:// URL would send the token in clear text; use https://"
            );
        } else if self.ssh_key.is_some() || self.known_hosts.is_some() {
            bail!(
                "repo.sshKey and repo.knownHosts are for SSH URLs (ssh://… or user@host:path); \
                 repo.url is `{}`",
                self.url
            );
        }
        Ok(())
    }
}

/// Where a secret comes from: an environment variable or a file (trailing newline trimmed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretRef {
    pub fn resolve(&self, what: &str) -> Result<String> {
        match (&self.env, &self.file) {
            (Some(var), None) => {
                let v = std::env::var(var)
                    .map_err(|_| anyhow!("{what}: environment variable {var} is not set"))?;
                non_empty(v, what)
            }
            (None, Some(path)) => {
                let v = std::fs::read_to_string(path)
                    .with_context(|| format!("{what}: reading {}", path.display()))?;
                non_empty(v.trim_end_matches(['\r', '\n']).to_string(), what)
            }
            _ => bail!("{what}: give exactly one of `env` and `file`"),
        }
    }
}

fn non_empty(v: String, what: &str) -> Result<String> {
    if v.is_empty() {
        bail!("{what}: the secret is empty");
    }
    Ok(v)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens accepted by the API. Mutating endpoints always need one; with no token
    /// configured they are refused.
    #[serde(default)]
    pub tokens: Vec<SecretRef>,
    /// Also require a token on read endpoints (status, plans, metrics).
    #[serde(default)]
    pub require_token_for_reads: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Secret of GitHub's `X-Hub-Signature-256`.
    #[serde(default)]
    pub github: Option<SecretRef>,
    /// Value of GitLab's `X-Gitlab-Token`.
    #[serde(default)]
    pub gitlab: Option<SecretRef>,
    /// Secret of the generic receiver's `X-Weir-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub generic: Option<SecretRef>,
    /// Largest accepted delivery body (default 1 MiB).
    #[serde(default = "default_webhook_bytes")]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchConfig {
    /// The directory to watch (default: `repo.url` when it is a local path or `file://` URL).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Quiet time after the last change before the reconcile starts (default 300 ms).
    #[serde(default = "default_debounce")]
    pub debounce_milliseconds: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            path: None,
            debounce_milliseconds: default_debounce(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Apply every plan at once.
    Auto,
    /// Plans wait for `POST /api/v1/plans/{id}/apply` (or `weir apply`).
    Manual,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(default = "default_policy")]
    pub policy: SyncPolicy,
    /// Recover managed jobs found FAILED, CANCELED or missing (otherwise: report drift).
    #[serde(default)]
    pub self_heal: bool,
    /// Recover attempts per job before giving up (until the job is healthy again or the
    /// definition changes).
    #[serde(default = "default_heal_attempts")]
    pub self_heal_max_attempts: u32,
    /// First wait between recover attempts; doubles each attempt.
    #[serde(default = "default_heal_backoff")]
    pub self_heal_backoff_seconds: u64,
    /// Cap of the wait between recover attempts.
    #[serde(default = "default_heal_backoff_max")]
    pub self_heal_max_backoff_seconds: u64,
    /// Policy and self-heal per cluster (a key of `clusters` in `weir.yaml`), over the defaults.
    #[serde(default)]
    pub clusters: BTreeMap<String, SyncOverride>,
    /// Policy and self-heal per job name, over its cluster's and the defaults.
    #[serde(default)]
    pub jobs: BTreeMap<String, SyncOverride>,
}

/// A per-cluster or per-job setting; what it leaves out comes from the level above.
///
/// These live in the daemon's config, not in the jobs repo, on purpose: whether a change may go
/// live without a person approving it is the operators' decision, and a pull request to the jobs
/// repo must not be able to switch its own job to `auto`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncOverride {
    #[serde(default)]
    pub policy: Option<SyncPolicy>,
    #[serde(default)]
    pub self_heal: Option<bool>,
}

/// The sync settings that hold for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSync {
    pub policy: SyncPolicy,
    pub self_heal: bool,
}

impl SyncConfig {
    /// The settings of `job` on `cluster`: the job's own, else its cluster's, else the defaults.
    pub fn for_job(&self, job: &str, cluster: &str) -> EffectiveSync {
        let levels = [self.jobs.get(job), self.clusters.get(cluster)];
        EffectiveSync {
            policy: levels
                .iter()
                .flatten()
                .find_map(|o| o.policy)
                .unwrap_or(self.policy),
            self_heal: levels
                .iter()
                .flatten()
                .find_map(|o| o.self_heal)
                .unwrap_or(self.self_heal),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            policy: default_policy(),
            self_heal: false,
            self_heal_max_attempts: default_heal_attempts(),
            self_heal_backoff_seconds: default_heal_backoff(),
            self_heal_max_backoff_seconds: default_heal_backoff_max(),
            clusters: BTreeMap::new(),
            jobs: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyConfig {
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    #[serde(default = "default_savepoint_timeout")]
    pub savepoint_timeout_seconds: u64,
    #[serde(default = "default_start_timeout")]
    pub start_timeout_seconds: u64,
    /// How long a submission (`POST /jars/{id}/run`, which runs main() before answering) may
    /// take before weir stops waiting for the answer and settles it by the job id.
    #[serde(default = "default_run_timeout")]
    pub run_timeout_seconds: u64,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            parallel: default_parallel(),
            savepoint_timeout_seconds: default_savepoint_timeout(),
            start_timeout_seconds: default_start_timeout(),
            run_timeout_seconds: default_run_timeout(),
        }
    }
}

fn default_debounce() -> u64 {
    300
}
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// Delete plan and apply records older than this many days, at start and then once a day
    /// (like `weir prune --older-than Nd`). Absent: keep everything.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl AuditConfig {
    /// How old a record may get before the daemon prunes it, if it prunes.
    pub fn retention(&self) -> Option<Duration> {
        self.retention_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400))
    }
}

fn default_poll() -> u64 {
    60
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/weir")
}
fn default_branch() -> String {
    "main".into()
}
fn default_fetch_timeout() -> u64 {
    120
}
fn default_grace() -> u64 {
    60
}
fn default_webhook_bytes() -> usize {
    1024 * 1024
}
fn default_policy() -> SyncPolicy {
    SyncPolicy::Auto
}
fn default_heal_attempts() -> u32 {
    5
}
fn default_heal_backoff() -> u64 {
    10
}
fn default_heal_backoff_max() -> u64 {
    600
}
fn default_parallel() -> usize {
    4
}
fn default_savepoint_timeout() -> u64 {
    300
}
fn default_start_timeout() -> u64 {
    180
}
fn default_run_timeout() -> u64 {
    crate::flink::DEFAULT_RUN_TIMEOUT.as_secs()
}
fn default_preview_concurrency() -> usize {
    2
}
fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_gitlab_api() -> String {
    "https://gitlab.com/api/v4".into()
}

/// Values given on the command line or through `WEIR_SERVE_*` variables; they win over the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// The daemon config file (YAML).
    #[arg(long, env = "WEIR_SERVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Git URL of the jobs repo (https://, ssh://, user@host:path, file:// or a local path).
    #[arg(long, env = "WEIR_SERVE_REPO_URL")]
    pub repo_url: Option<String>,
    /// Branch to follow.
    #[arg(long, env = "WEIR_SERVE_BRANCH")]
    pub branch: Option<String>,
    /// Seconds between polls.
    #[arg(long, env = "WEIR_SERVE_POLL_INTERVAL")]
    pub poll_interval: Option<u64>,
    /// Address of the HTTP API, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, env = "WEIR_SERVE_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the store and the Git mirror.
    #[arg(long, env = "WEIR_SERVE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Sync policy: auto or manual.
    #[arg(long, env = "WEIR_SERVE_POLICY", value_parser = ["auto", "manual"])]
    pub policy: Option<String>,
    /// Recover failed, cancelled or missing jobs (true/false).
    #[arg(long, env = "WEIR_SERVE_SELF_HEAL")]
    pub self_heal: Option<bool>,
    /// Development: reconcile as soon as the local repo at --repo-url changes (commits deploy).
    #[arg(long, env = "WEIR_SERVE_WATCH")]
    pub watch: bool,
    /// Write the bound address (host:port) to this file once listening (for scripts and tests).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
}

/// A daemon config that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or not the shape of a daemon config (the message names line and field).
    #[error(transparent)]
    Parse(serde_saphyr::Error),
}

impl DaemonConfig {
    /// Parses a daemon config (serde-saphyr).
    pub fn parse(text: &str) -> Result<DaemonConfig, ConfigError> {
        serde_saphyr::from_str(text).map_err(ConfigError::Parse)
    }

    /// Reads `--config` (if any) and applies the overrides.
    pub fn load(o: &Overrides) -> Result<DaemonConfig> {
        let mut cfg = match &o.config {
            Some(path) => read_file(path)?,
            None => {
                let url = o.repo_url.clone().ok_or_else(|| {
                    anyhow!("give --config FILE or at least --repo-url (WEIR_SERVE_REPO_URL)")
                })?;
                DaemonConfig::parse(&format!("repo: {{url: {}}}\n", yaml_quote(&url)))?
            }
        };
        if let Some(v) = &o.repo_url {
            cfg.repo.url = v.clone();
        }
        if let Some(v) = &o.branch {
            cfg.repo.branch = v.clone();
        }
        if let Some(v) = o.poll_interval {
            cfg.poll_interval_seconds = v;
        }
        if let Some(v) = &o.listen {
            cfg.listen = v.clone();
        }
        if let Some(v) = &o.state_dir {
            cfg.state_dir = v.clone();
        }
        if let Some(v) = &o.policy {
            cfg.sync.policy = if v == "manual" {
                SyncPolicy::Manual
            } else {
                SyncPolicy::Auto
            };
        }
        if let Some(v) = o.self_heal {
            cfg.sync.self_heal = v;
        }
        if o.watch && cfg.watch.is_none() {
            cfg.watch = Some(WatchConfig::default());
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        if self.poll_interval_seconds == 0 {
            bail!("pollIntervalSeconds must be at least 1");
        }
        if self.repo.branch.is_empty() || self.repo.branch.contains("..") {
            bail!("repo.branch `{}` is not a branch name", self.repo.branch);
        }
        self.listen_addr()?;
        self.watch_path()?;
        self.repo.check()?;
        if self.audit.retention_days == Some(0) {
            bail!(
                "audit.retentionDays must be at least 1 (leave it out to keep everything; \
                 `weir prune` prunes by hand)"
            );
        }
        self.check_previews()?;
        Ok(())
    }

    fn check_previews(&self) -> Result<()> {
        let p = &self.previews;
        if p.concurrency == 0 {
            bail!("previews.concurrency must be at least 1");
        }
        if let Some(g) = &p.github {
            check_api_url(&g.api_url, "previews.github.apiUrl")?;
            let parts: Vec<&str> = g.repo.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|s| s.is_empty()) {
                bail!("previews.github.repo `{}` is not `owner/name`", g.repo);
            }
            if self.webhooks.github.is_none() {
                bail!(
                    "previews.github needs webhooks.github: pull-request events arrive as signed \
                     GitHub webhook deliveries"
                );
            }
        }
        if let Some(g) = &p.gitlab {
            check_api_url(&g.api_url, "previews.gitlab.apiUrl")?;
            if matches!(&g.project_id, ProjectId::Path(s) if s.trim().is_empty()) {
                bail!("previews.gitlab.projectId is empty");
            }
            if self.webhooks.gitlab.is_none() {
                bail!(
                    "previews.gitlab needs webhooks.gitlab: merge request events arrive as GitLab \
                     webhook deliveries"
                );
            }
        }
        if let Some(u) = &p.public_url {
            check_api_url(u, "previews.publicUrl")?;
        }
        Ok(())
    }

    /// The directory to watch, when watching is on.
    pub fn watch_path(&self) -> Result<Option<PathBuf>> {
        let Some(w) = &self.watch else {
            return Ok(None);
        };
        if let Some(p) = &w.path {
            return Ok(Some(p.clone()));
        }
        local_path(&self.repo.url).map(Some).ok_or_else(|| {
            anyhow!(
                "watch: repo.url `{}` is not a local path; give watch.path",
                self.repo.url
            )
        })
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen
            .parse()
            .map_err(|e| anyhow!("listen `{}`: {e}", self.listen))
    }

    /// How often the worker looks at the clusters between polls.
    pub fn observe_interval(&self) -> Duration {
        Duration::from_secs(self.observe_interval_seconds.max(1))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_seconds)
    }
}

/// The directory behind a `file://` URL or a plain path; `None` for network URLs.
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    let scp_like = !url.starts_with('/') && url.contains(':');
    (!url.contains("://") && !scp_like).then(|| PathBuf::from(url))
}

/// An `http(s)://` URL without user info (tokens go in headers, never in URLs).
fn check_api_url(url: &str, what: &str) -> Result<()> {
    let u = reqwest::Url::parse(url).map_err(|e| anyhow!("{what} `{url}`: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        bail!("{what} `{url}`: expected an http:// or https:// URL");
    }
    if !u.username().is_empty() || u.password().is_some() {
        bail!("{what}: put no credentials in the URL; the token is configured separately");
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<DaemonConfig> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        bail!(
            "{}: {} bytes, over the limit of {MAX_CONFIG_BYTES}",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    DaemonConfig::parse(&text).with_context(|| format!("{}", path.display()))
}

fn yaml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests;
