//! The jobs-repo format: what users write in `weir.yaml` and `jobs/**/*.yaml`.
//!
//! These types are the single source of truth for the format: the loader deserializes into them
//! and `schemas/*.json` is generated from them (a test fails when the committed schema is stale).
//! Every struct denies unknown fields so that a typo is an error, never a silently ignored key.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::textmap::TextMap;

mod notifications;
pub use notifications::*;

/// `weir.yaml` at the root of a jobs repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoConfig {
    /// Flink session clusters, by the name job files use in `spec.cluster` (`{}` when every
    /// environment has its own).
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// The runner jar that executes SQL jobs. Required when any job uses `sql` or `sqlFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_runner: Option<SqlRunnerConfig>,
    /// Stop (with a savepoint) and forget jobs whose definition file was deleted. Off by default:
    /// a deleted file then only yields a warning.
    #[serde(default)]
    pub prune: bool,
    /// Outbound notifications: which events are sent to which webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsConfig>,
    /// Maven repositories that `maven:` dependencies of jobs are resolved from, tried in order.
    /// There is no default repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maven_repositories: Vec<MavenRepository>,
    /// Values of `${name}` in `sql`, `sqlFile` contents, `args` and `flinkConfiguration` values.
    /// A value may itself hold `${env:NAME}` (a secret from the environment of weir's process).
    /// Environments add to and replace these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, ConfigValue>,
    /// Named environments (e.g. `staging`, `prod`) of one repo: each adds to or replaces the
    /// top-level `clusters` and `variables`. When any is defined, every command that plans needs
    /// `--env NAME` (or `WEIR_ENV`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// Defaults of every job's automatic rollback (a job's `spec.rollback` overrides them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
    /// Repo-wide savepoint defaults (a job's `spec.savepoint.retain` overrides them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoints: Option<RepoSavepoints>,
    /// Job health thresholds (`weir status` HEALTH, `/metrics`, `checkpoint.failing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
}

/// One Flink session cluster, reached through its JobManager REST endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterConfig {
    /// JobManager REST endpoint, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// Default target directory for savepoints of jobs on this cluster (e.g. `file:///...`, `s3://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_dir: Option<String>,
    /// Name of an environment variable holding a bearer token sent to the REST API. The token
    /// itself never belongs in the repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Extra HTTP headers: header name → name of the environment variable holding its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_from_env: BTreeMap<String, String>,
    /// Per-request timeout in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// Where the SQL runner jar comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlRunnerConfig {
    /// Repo-relative path of the runner jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jar: Option<String>,
    /// `http(s)://` or `file://` URL of the runner jar; requires `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expected SHA-256 (hex) of the jar fetched from `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Main class of the runner (default `dev.weir.sqlrunner.SqlRunner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
}

pub const DEFAULT_SQL_RUNNER_CLASS: &str = "dev.weir.sqlrunner.SqlRunner";

/// A job definition file (`kind: FlinkJob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobFile {
    pub api_version: ApiVersion,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: JobSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "weir/v1")]
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    FlinkJob,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Unique in the repo: lowercase letters, digits and '-', at most 63 characters, starting
    /// with a letter and not ending with '-'.
    pub name: String,
    #[serde(default, skip_serializing_if = "TextMap::is_empty")]
    pub labels: TextMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    /// A key of `clusters` in `weir.yaml`.
    pub cluster: String,
    #[serde(default)]
    pub state: RunState,
    #[serde(default)]
    pub upgrade_mode: UpgradeMode,
    /// Job parallelism (1 to 32768).
    pub parallelism: u32,
    /// A jar job. Exactly one of `jar`, `sql`, `sqlFile` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jar: Option<JarSpec>,
    /// An inline SQL script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Repo-relative path of a SQL script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_file: Option<String>,
    /// Flink configuration applied to the job at submission (`flinkConfiguration` of `/jars/run`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flink_configuration: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    pub savepoint: SavepointSpec,
    /// Bump to force a redeploy with the normal upgrade semantics.
    #[serde(default)]
    pub restart_nonce: u64,
    /// Pre-flight: before a change submits this program, `weir plan` asks the target cluster to
    /// plan it (`POST /jars/{id}/plan`), so a program that cannot start is a plan error and the
    /// running job is never stopped for it. This runs the program's `main()` on the JobManager
    /// (DDL against a persistent catalog really executes). `false` turns it off for this job.
    #[serde(
        default = "preflight_default",
        skip_serializing_if = "is_preflight_default"
    )]
    pub preflight: bool,
    /// Extra jars shipped with the job (UDFs, connectors): each a repo `path`, a `url` with its
    /// `sha256`, or a `maven` coordinate. They travel inside the uploaded jar as `lib/*.jar`
    /// entries, which Flink puts on the job's classpath.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencySpec>,
    /// The environments (keys of `environments` in `weir.yaml`) this job runs in; all of them
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Per environment (a key of `environments` in `weir.yaml`): fields that differ there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, JobOverride>,
    /// `streaming` (default) or `batch`. A batch job is submitted with
    /// `execution.runtime-mode: BATCH`; when it FINISHED it is done (not drift, not recovered)
    /// and it runs again only when its definition changes or `restartNonce` is bumped.
    #[serde(default, skip_serializing_if = "JobMode::is_streaming")]
    pub mode: JobMode,
    /// Batch jobs only: a cron expression (`min hour day-of-month month day-of-week`, or with a
    /// leading seconds field) on which `weir serve` runs the job, each run a new Flink job. A run
    /// is skipped while the previous one still runs; one missed while the daemon was down is
    /// started once when it starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The IANA time zone `schedule` is read in (e.g. `Europe/Berlin`); UTC when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Automatic rollback: after a change replaced the running job, weir watches the new one
    /// for a health window and, when it does not become healthy, puts the previous definition
    /// back from the savepoint the change took. Overrides `rollback` of `weir.yaml` field by
    /// field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
}

/// How Flink executes a job (`spec.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobMode {
    /// An unbounded job that runs until stopped; upgraded with its state.
    #[default]
    Streaming,
    /// A bounded job that finishes by design; no savepoints.
    Batch,
}

impl JobMode {
    pub fn is_streaming(&self) -> bool {
        *self == JobMode::Streaming
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobMode::Streaming => "streaming",
            JobMode::Batch => "batch",
        }
    }
}

fn preflight_default() -> bool {
    true
}

fn is_preflight_default(on: &bool) -> bool {
    *on
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    #[default]
    Running,
    Suspended,
}

/// How state is carried across a redeploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Stop with a savepoint, restore from it.
    #[default]
    Savepoint,
    /// Cancel, restore from the latest retained checkpoint.
    LastState,
    /// Cancel, start without state.
    Stateless,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JarSpec {
    /// Repo-relative path of the jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http(s)://` or `file://` URL of the jar; requires `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expected SHA-256 (hex) of the jar fetched from `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Main class; the jar manifest's `Main-Class` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SavepointSpec {
    /// Savepoint to start from on the very first deploy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_path: Option<String>,
    /// Let a restore skip state that no operator of the new job claims.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// Savepoint directory for this job; overrides the cluster's `savepointDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Take a savepoint of the running job this often, e.g. `6h` or `30m`, or on a cron
    /// expression in UTC, e.g. `0 */6 * * *` (`weir serve` takes them; recorded as `periodic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic: Option<String>,
    /// Which of the job's savepoints to keep; the others are disposed through Flink
    /// (`weir serve`, `weir savepoints prune`). Overrides `savepoints.retain` of `weir.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<RetainSpec>,
    /// A savepoint to redeploy the job from, when `redeployNonce` is bumped: the current state is
    /// still saved first (unless `upgradeMode: stateless`), then the job starts from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
    /// Bump (together with `restoreFrom`) to redeploy from `restoreFrom`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redeploy_nonce: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A Flink configuration value. YAML scalars of any type are accepted and passed to Flink as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::String(s) => f.write_str(s),
        }
    }
}

/// One environment of `environments` in `weir.yaml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentConfig {
    /// Clusters of this environment; they add to and replace the top-level `clusters`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// Variables of this environment; they add to and replace the top-level `variables`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, ConfigValue>,
}

/// `spec.overrides.<environment>`: the fields of a job that differ in one environment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobOverride {
    /// Replaces `spec.cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Replaces `spec.parallelism`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Replaces `spec.state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// Replaces `spec.upgradeMode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_mode: Option<UpgradeMode>,
    /// Added to `spec.flinkConfiguration`, replacing the values of the same keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flink_configuration: BTreeMap<String, ConfigValue>,
}

/// Why a cluster's `url` cannot be the base of the REST API. The URL is shown without its user
/// name and password.
#[derive(Debug, thiserror::Error)]
pub enum ClusterUrlError {
    // The parse error is part of the text: a cluster error is often shown without its causes.
    #[error("url {:?} is not a valid URL: {source}", shown_url(.raw))]
    Invalid {
        raw: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "url {:?} must use http or https, not `{scheme}` (http://host:port or https://...)",
        shown_url(.raw)
    )]
    Scheme { raw: String, scheme: String },
    #[error("url {:?} {problem}", shown_url(.raw))]
    Refused { raw: String, problem: &'static str },
}

/// `raw` for messages: no user name, password, query or fragment (where tokens go).
fn shown_url(raw: &str) -> String {
    let without_secrets = crate::redact::url_credentials(raw);
    match without_secrets.find(['?', '#']) {
        Some(i) => format!("{}{}", &without_secrets[..=i], crate::redact::REDACTED),
        None => without_secrets,
    }
}

/// The base URL of a cluster's REST API, as the loader validates it and the Flink client uses
/// it (one rule for both, so that `weir validate` refuses what `weir apply` would).
pub fn cluster_base_url(raw: &str) -> Result<url::Url, ClusterUrlError> {
    let url = url::Url::parse(raw.trim()).map_err(|source| ClusterUrlError::Invalid {
        raw: raw.to_string(),
        source,
    })?;
    let refuse = |problem| {
        Err(ClusterUrlError::Refused {
            raw: raw.to_string(),
            problem,
        })
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClusterUrlError::Scheme {
            raw: raw.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return refuse("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse(
            "must not contain a user name or password (they would be shown and stored with \
             the URL); put credentials in the environment variables named by `bearerTokenEnv` \
             or `headersFromEnv`",
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("must not have a query or fragment");
    }
    Ok(url)
}

/// Why a name (of a job, of a notification route) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("must start with a lowercase letter")]
    NoLowercaseStart,
    #[error("must not end with '-'")]
    EndsWithDash,
    #[error("contains {found:?}; only {allowed} are allowed")]
    Character { found: char, allowed: &'static str },
}

/// Rules for `metadata.name`.
pub fn check_job_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 63 {
        return Err(NameError::TooLong {
            len: name.len(),
            max: 63,
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(NameError::NoLowercaseStart);
    }
    if name.ends_with('-') {
        return Err(NameError::EndsWithDash);
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::Character {
            found,
            allowed: "lowercase letters, digits and '-'",
        });
    }
    Ok(())
}

/// Automatic rollback of a change whose new job does not become healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollbackSpec {
    /// Roll back a redeploy, rescale or migrate whose new job fails, restarts or does not reach
    /// RUNNING (default true). A first deploy that does so is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long the new job must keep running, without a restart, to count as healthy
    /// (default 30; 0 checks only that it reaches RUNNING with every task running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3600))]
    pub health_window_seconds: Option<u32>,
}

/// The default health window: long enough for a job that fails on its first records or its
/// first restore to be seen restarting (Flink's default restart backoff is 1 s), short enough
/// that an apply of many jobs is not held up for minutes.
pub const DEFAULT_HEALTH_WINDOW_SECONDS: u32 = 30;

impl RollbackSpec {
    /// `job` over `repo` over the defaults: (enabled, health window seconds).
    pub fn resolve(job: Option<&RollbackSpec>, repo: Option<&RollbackSpec>) -> (bool, u32) {
        let enabled = job
            .and_then(|j| j.enabled)
            .or(repo.and_then(|r| r.enabled))
            .unwrap_or(true);
        let window = job
            .and_then(|j| j.health_window_seconds)
            .or(repo.and_then(|r| r.health_window_seconds))
            .unwrap_or(DEFAULT_HEALTH_WINDOW_SECONDS);
        (enabled, window.min(3600))
    }
}

/// One entry of `spec.dependencies`: exactly one of `path`, `url` or `maven`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DependencySpec {
    /// Repo-relative path of a jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http(s)://` or `file://` URL of a jar; requires `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Maven coordinate `group:artifact:version[:classifier]`, resolved from `mavenRepositories`
    /// in `weir.yaml` (the artifact itself, no transitive dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maven: Option<String>,
    /// Expected SHA-256 (hex): required with `url`; optional with `maven` (a pin; without it the
    /// repository's `.sha256` or `.sha1` file is checked); with `path`, checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One entry of `mavenRepositories` in `weir.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MavenRepository {
    /// Names the repository in messages; unique.
    pub name: String,
    /// Base URL of a repository in Maven layout (`http(s)://` or `file://`).
    pub url: String,
    /// Name of an environment variable holding the user name for HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_from_env: Option<String>,
    /// Name of an environment variable holding the password (never in the repo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_from_env: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names() {
        assert!(check_job_name("orders-enricher").is_ok());
        assert!(check_job_name("a1").is_ok());
        assert!(check_job_name("").is_err());
        assert!(
            check_job_name("Orders")
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
        assert!(check_job_name("1abc").is_err());
        assert!(check_job_name("abc-").is_err());
        assert!(
            check_job_name("a_b")
                .unwrap_err()
                .to_string()
                .contains("'_'")
        );
        assert!(
            check_job_name(&"a".repeat(64))
                .unwrap_err()
                .to_string()
                .contains("64")
        );
        assert!(check_job_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn event_names_round_trip() {
        for kind in EventKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
            let selector: EventSelector = serde_json::from_value(json).unwrap();
            assert_eq!(selector, EventSelector::of(kind));
            assert_eq!(selector.as_str(), kind.as_str());
            assert!(selector.matches(kind));
            assert!(EventSelector::All.matches(kind));
        }
        assert!(!EventSelector::ApplyFailed.matches(EventKind::ApplySucceeded));
        assert_eq!(EventSelector::All.as_str(), "*");
        assert_eq!(EventKind::from_name("*"), None);
    }

    #[test]
    fn cluster_urls() {
        assert!(cluster_base_url("http://flink:8081").is_ok());
        assert!(cluster_base_url("https://flink.example.com/proxy/").is_ok());
        for (raw, needle) in [
            ("http://admin:hunter2@flink:8081", "user name or password"),
            ("http://admin@flink:8081", "user name or password"),
            ("http://flink:8081/?token=x", "query or fragment"),
            ("http://flink:8081/#x", "query or fragment"),
            ("ftp://flink", "must use http or https, not `ftp`"),
            ("http://admin:hunter2@[bad", "not a valid URL"),
        ] {
            let e = cluster_base_url(raw).unwrap_err().to_string();
            assert!(e.contains(needle), "{raw}: {e}");
            assert!(!e.contains("hunter2"), "{raw}: {e}");
        }
    }
}

/// Savepoint retention: a savepoint goes when it is beyond the `count` newest or older than
/// `maxAge`. The newest savepoint, the one the running job restored from, one an unfinished apply
/// or a rollback needs, pinned ones and checkpoints always stay.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetainSpec {
    /// Keep at most this many savepoints (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Dispose savepoints older than this, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// `savepoints` in `weir.yaml`: defaults for every job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoSavepoints {
    /// Retention for jobs that set no `spec.savepoint.retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<RetainSpec>,
}

/// `health` in `weir.yaml`: when a running job counts as Degraded or Failing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthConfig {
    /// X of "X failed checkpoints in Y minutes" (default 3): Degraded and `checkpoint.failing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_failures: Option<u32>,
    /// Y of "X failed checkpoints in Y minutes", also the window restarts are counted in
    /// (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
    /// Degraded when the latest completed checkpoint is older than this many checkpoint
    /// intervals (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_intervals: Option<u32>,
    /// Failing when the job restarted this often within the window (default 3; one restart
    /// makes it Degraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts_failing: Option<u32>,
}
