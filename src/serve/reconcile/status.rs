//! What the daemon reports (`GET /api/v1/status`), and how a reconcile ended.

use std::collections::BTreeMap;

use compact_str::CompactString;

use serde::{Deserialize, Serialize};

use crate::serve::config::{EffectiveSync, SyncPolicy};

/// How a reconcile ended (`lastReconcile.outcome`, and the reconcile metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InSync,
    Applying,
    WaitingForApproval,
    Blocked,
    Drift,
    RepoInvalid,
    NoRevision,
    LockBusy,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applying => "applying",
            Outcome::WaitingForApproval => "waiting_for_approval",
            Outcome::Blocked => "blocked",
            Outcome::Drift => "drift",
            Outcome::RepoInvalid => "repo_invalid",
            Outcome::NoRevision => "no_revision",
            Outcome::LockBusy => "lock_busy",
            Outcome::Error => "error",
        }
    }

    /// Whether the outcome is a failure of the reconcile itself (it becomes `lastError`).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Error | Outcome::RepoInvalid | Outcome::NoRevision | Outcome::LockBusy
        )
    }
}

/// A reconcile's outcome and what to tell about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub outcome: Outcome,
    pub message: Option<String>,
}

impl Reconciled {
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Reconciled {
        Reconciled {
            outcome,
            message: Some(message.into()),
        }
    }

    pub fn quiet(outcome: Outcome) -> Reconciled {
        Reconciled {
            outcome,
            message: None,
        }
    }
}

/// Where the last apply stands (`lastApply.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyProgress {
    Running,
    Succeeded,
    Failed,
}

impl ApplyProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyProgress::Running => "running",
            ApplyProgress::Succeeded => "succeeded",
            ApplyProgress::Failed => "failed",
        }
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
    pub outcome: Outcome,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub at_ms: i64,
    pub message: String,
}

/// A job's line of the daemon's status, kept for every job between reconciles: its short texts
/// are `CompactString`s (up to 24 bytes inline, no allocation of their own), the same JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub name: CompactString,
    pub cluster: CompactString,
    /// `Synced`, `OutOfSync`, `Unknown` (cluster unreachable) or `InvalidDefinition` (its file
    /// does not load: the job keeps running its last applied spec).
    pub sync: CompactString,
    /// The Flink state of its newest job (`RUNNING`, `FAILED`, ... or `-`).
    pub health: CompactString,
    pub job_id: CompactString,
    pub last_savepoint: CompactString,
    /// Why the job needs a recover that self-heal did not (yet) do.
    pub drift: Option<String>,
    pub file: Option<CompactString>,
    pub self_heal: Option<HealInfo>,
    /// The sync policy and self-heal setting that hold for the job.
    pub policy: Option<EffectiveSync>,
    /// The apply in progress on the job, if any.
    pub applying: Option<String>,
    /// The Flink version of the job's cluster (`GET /config`), when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flink_version: Option<CompactString>,
    /// `metadata.labels` of the definition at the current revision (empty for an invalid one);
    /// `GET /api/v1/jobs` shows them, falling back to the last applied definition's.
    #[serde(skip)]
    pub labels: crate::textmap::TextMap,
    /// How the running job is doing (`healthy`, `degraded`, `failing`; see `weir.yaml`'s
    /// `health`), once the lifecycle timer read it. `health` above is the Flink state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_health: Option<crate::lifecycle::health::Health>,
    /// Why the job is not healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub job_health_reasons: Vec<String>,
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
    pub outcome: ApplyProgress,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedInfo {
    pub job: String,
    pub revision: String,
    pub apply_id: String,
    pub error: String,
    /// Why the job is held (memories of earlier versions have none: their apply failed).
    #[serde(default)]
    pub kind: BlockKind,
}

/// Why the daemon holds a job's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlockKind {
    /// Its apply failed at this revision.
    #[default]
    ApplyFailed,
    /// The cluster refused its program at pre-flight.
    PreflightFailed,
    /// An apply rolled this definition back: it did not become healthy.
    RolledBack,
}

/// The status line of `plan`.
pub fn plan_info(plan: &crate::plan::Plan) -> PlanInfo {
    PlanInfo {
        id: plan.id.clone(),
        revision: plan.revision.to_string(),
        summary: plan.summary.line(),
        created_at_ms: plan.created_at_ms,
    }
}
