//! The records of the store (plans, applies, jobs, savepoint lineage, history), as read back by
//! `sqlx::FromRow`.

use serde::{Deserialize, Serialize};

use super::Trigger;

/// A computed plan (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PlanRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub revision: String,
    /// What caused the plan.
    #[sqlx(rename = "triggered_by")]
    pub trigger: Trigger,
    pub summary: String,
    pub plan_json: String,
    /// The jobs the plan touches. Stored as a set: read back sorted and without duplicates.
    #[sqlx(skip)]
    pub job_names: Vec<String>,
}

/// An apply as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApply {
    pub id: String,
    /// The plan being applied; it must have been inserted first.
    pub plan_id: String,
    pub started_at_ms: i64,
    pub revision: String,
    pub trigger: Trigger,
    /// Stored as a set: read back sorted and without duplicates.
    pub job_names: Vec<String>,
}

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyOutcome {
    Succeeded,
    Failed,
    /// The process running it died or gave up without finishing; set by recovery.
    Interrupted,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Succeeded => "succeeded",
            ApplyOutcome::Failed => "failed",
            ApplyOutcome::Interrupted => "interrupted",
        }
    }
}

/// An apply as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApplyRecord {
    pub id: String,
    pub plan_id: String,
    pub started_at_ms: i64,
    pub revision: String,
    #[sqlx(rename = "triggered_by")]
    pub trigger: Trigger,
    #[sqlx(skip)]
    pub job_names: Vec<String>,
    /// `None` while the apply runs (or after its process died before finishing it).
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<ApplyOutcome>,
    pub error: Option<String>,
}

/// What weir currently knows about one job definition (mutable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobRecord {
    pub name: String,
    pub cluster: String,
    /// The Flink job id weir last submitted (or adopted) for this definition.
    pub current_job_id: Option<String>,
    /// The last applied `DesiredJob`, as JSON.
    pub spec_json: Option<String>,
    #[sqlx(try_from = "super::SqlBool")]
    pub suspended: bool,
    pub last_savepoint: Option<String>,
    pub last_savepoint_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The definition was removed from the repo and its job torn down.
    #[sqlx(try_from = "super::SqlBool")]
    pub deleted: bool,
}

/// Whether a snapshot is a savepoint or a retained checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavepointKind {
    Savepoint,
    Checkpoint,
}

impl SavepointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SavepointKind::Savepoint => "savepoint",
            SavepointKind::Checkpoint => "checkpoint",
        }
    }
}

/// A savepoint or retained checkpoint in a job's lineage (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SavepointRecord {
    pub job: String,
    /// Where the snapshot is; identifies it.
    pub path: String,
    pub kind: SavepointKind,
    /// The Flink job that produced it.
    pub flink_job_id: String,
    /// The apply that took it, if weir did.
    pub produced_by_apply: Option<String>,
    pub at_ms: i64,
    /// Every time a job was started from this snapshot, oldest first. Normally empty when
    /// inserting; [`Store::mark_savepoint_restored`] appends.
    #[serde(default)]
    #[sqlx(skip)]
    pub restores: Vec<SavepointRestore>,
}

/// One start of a job from a savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SavepointRestore {
    pub apply_id: String,
    /// The Flink job id started from the snapshot.
    pub job_id: String,
    pub at_ms: i64,
}

/// Whether a history entry is a plan or an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Plan,
    Apply,
}

/// One line of `weir history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub kind: HistoryKind,
    pub id: String,
    /// When the plan was made or the apply started.
    pub at_ms: i64,
    pub revision: String,
    #[sqlx(rename = "triggered_by")]
    pub trigger: Trigger,
    /// A plan's summary, or an apply's outcome (`succeeded`, `failed`, `interrupted`, or
    /// `unfinished` while it has none).
    pub summary_or_outcome: String,
    /// An apply's error.
    pub error: Option<String>,
    /// The plan an apply applied.
    pub plan_id: Option<String>,
    /// When an apply finished.
    pub finished_at_ms: Option<i64>,
}
