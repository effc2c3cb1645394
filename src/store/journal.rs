//! The apply journal: one entry per side effect on a cluster, written before it happens (the
//! intent), updated while it runs (progress, e.g. a savepoint request id) and completed with its
//! result. The entry types are the typed contract between the executor ([`crate::apply`]), the
//! audit trail and the daemon's metrics; their JSON text is what older versions stored, exactly.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Rejection, Store, StoreError};
use crate::identity::JobId;

/// The kind of a journaled step; stored as its snake-case name (`stop_with_savepoint`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Stop the job with a savepoint (a plan spells it `stop-with-savepoint`).
    #[serde(alias = "stop-with-savepoint")]
    StopWithSavepoint,
    Cancel,
    Submit,
    #[serde(alias = "await-running")]
    AwaitRunning,
    /// Drop the job from weir's records (after a delete).
    Forget,
    /// Watch the new job for the health window (automatic rollback).
    #[serde(alias = "watch-health")]
    WatchHealth,
    /// Put the previous definition back: the steps after it (cancel the new job, submit the
    /// previous definition, wait for it) are journaled as usual; this entry completes when
    /// they did.
    Rollback,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::StopWithSavepoint => "stop_with_savepoint",
            StepKind::Cancel => "cancel",
            StepKind::Submit => "submit",
            StepKind::AwaitRunning => "await_running",
            StepKind::Forget => "forget",
            StepKind::WatchHealth => "watch_health",
            StepKind::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a completed step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
}

/// The state of a journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// The side effect may or may not have happened: recovery must find out.
    Pending,
    Succeeded,
    Failed,
}

impl JournalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalStatus::Pending => "pending",
            JournalStatus::Succeeded => "succeeded",
            JournalStatus::Failed => "failed",
        }
    }
}

impl From<StepStatus> for JournalStatus {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Succeeded => JournalStatus::Succeeded,
            StepStatus::Failed => JournalStatus::Failed,
        }
    }
}

/// A journal entry as first written, before its side effect is attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJournalEntry {
    pub apply_id: String,
    pub job: String,
    /// Order of the step within its job in this apply.
    pub seq: u32,
    /// What is about to be done, e.g. the job id chosen before submitting.
    pub detail: StepDetail,
    pub at_ms: i64,
}

/// A journal entry as recorded. The JSON columns stay text (the daemon API returns them as
/// stored); [`JournalEntry::detail`] and [`JournalEntry::result`] read them as types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JournalEntry {
    pub id: i64,
    pub apply_id: String,
    pub job: String,
    #[sqlx(try_from = "i64")]
    pub seq: u32,
    pub kind: StepKind,
    pub status: JournalStatus,
    /// The detail as written by [`Store::journal_intent`], never changed.
    pub intent_json: String,
    /// The latest detail: the intent, or what [`Store::journal_progress`] last recorded.
    pub detail_json: String,
    /// Set when the entry completes.
    pub result_json: Option<String>,
    pub created_at_ms: i64,
    pub progress_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

impl JournalEntry {
    /// The latest detail (intent plus progress), as its type; `None` when it cannot be read.
    pub fn detail(&self) -> Option<StepDetail> {
        StepDetail::parse(self.kind, &self.detail_json).ok()
    }

    /// The detail as first written.
    pub fn intent(&self) -> Option<StepDetail> {
        StepDetail::parse(self.kind, &self.intent_json).ok()
    }

    /// How the step ended; `None` while pending (or when the result cannot be read).
    pub fn result(&self) -> Option<StepResult> {
        let text = self.result_json.as_deref()?;
        StepResult::parse(self.kind, self.status, text).ok()
    }
}

/// The Flink job a step acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    pub job_id: JobId,
}

/// A stop with a savepoint: the job, where the savepoint goes, and (once Flink answered) the
/// savepoint request to poll. Fields are in the order older versions wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopDetail {
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default)]
    pub target_dir: Option<String>,
}

/// A submission: the job id chosen before submitting, the jar, and the snapshot it starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitDetail {
    #[serde(default)]
    pub jar_id: Option<String>,
    pub job_id: JobId,
    #[serde(default)]
    pub parallelism: Option<u32>,
    #[serde(default)]
    pub savepoint_path: Option<String>,
}

/// A rollback: why, the new job it cancels (none when its submission was refused), the
/// snapshot the previous definition restarts from, and the cluster it restarts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackDetail {
    pub reason: String,
    #[serde(default)]
    pub new_job_id: Option<JobId>,
    #[serde(default)]
    pub savepoint_path: Option<String>,
    pub cluster: String,
    /// Whether a previous definition is put back (false for a first deploy: it is only
    /// cancelled).
    pub resubmit: bool,
}

/// What a step is about to do (its intent) and what it learnt while running (its progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDetail {
    StopWithSavepoint(StopDetail),
    Cancel(JobRef),
    Submit(SubmitDetail),
    AwaitRunning(JobRef),
    Forget,
    WatchHealth(JobRef),
    Rollback(RollbackDetail),
}

impl StepDetail {
    pub fn kind(&self) -> StepKind {
        match self {
            StepDetail::StopWithSavepoint(_) => StepKind::StopWithSavepoint,
            StepDetail::Cancel(_) => StepKind::Cancel,
            StepDetail::Submit(_) => StepKind::Submit,
            StepDetail::AwaitRunning(_) => StepKind::AwaitRunning,
            StepDetail::Forget => StepKind::Forget,
            StepDetail::WatchHealth(_) => StepKind::WatchHealth,
            StepDetail::Rollback(_) => StepKind::Rollback,
        }
    }

    /// The Flink job the step acts on (for a submit: the id it submits).
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            StepDetail::StopWithSavepoint(d) => Some(d.job_id),
            StepDetail::Cancel(r) | StepDetail::AwaitRunning(r) | StepDetail::WatchHealth(r) => {
                Some(r.job_id)
            }
            StepDetail::Submit(d) => Some(d.job_id),
            StepDetail::Rollback(d) => d.new_job_id,
            StepDetail::Forget => None,
        }
    }

    /// The stored text.
    pub fn to_json(&self) -> String {
        let text = match self {
            StepDetail::StopWithSavepoint(d) => serde_json::to_string(d),
            StepDetail::Cancel(r) | StepDetail::AwaitRunning(r) | StepDetail::WatchHealth(r) => {
                serde_json::to_string(r)
            }
            StepDetail::Submit(d) => serde_json::to_string(d),
            StepDetail::Rollback(d) => serde_json::to_string(d),
            StepDetail::Forget => Ok("{}".to_string()),
        };
        // Plain structs of strings and numbers always serialize.
        text.unwrap_or_else(|_| "{}".to_string())
    }

    /// Reads the stored text of a step of `kind`.
    pub fn parse(kind: StepKind, text: &str) -> Result<StepDetail, serde_json::Error> {
        Ok(match kind {
            StepKind::StopWithSavepoint => {
                StepDetail::StopWithSavepoint(serde_json::from_str(text)?)
            }
            StepKind::Cancel => StepDetail::Cancel(serde_json::from_str(text)?),
            StepKind::Submit => StepDetail::Submit(serde_json::from_str(text)?),
            StepKind::AwaitRunning => StepDetail::AwaitRunning(serde_json::from_str(text)?),
            StepKind::Forget => StepDetail::Forget,
            StepKind::WatchHealth => StepDetail::WatchHealth(serde_json::from_str(text)?),
            StepKind::Rollback => StepDetail::Rollback(serde_json::from_str(text)?),
        })
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// The stop produced this savepoint.
    Stopped {
        savepoint: String,
    },
    /// The job was cancelled; the retained checkpoint it left, if any.
    Cancelled {
        latest_checkpoint: Option<String>,
    },
    /// The job runs (or was started) as `job_id`, from the snapshot, if any.
    Submitted {
        job_id: JobId,
        savepoint_path: Option<String>,
    },
    /// Every task of the submitted job runs.
    Running,
    Forgotten,
    /// The health window ended: healthy, or why not.
    Watched {
        healthy: bool,
        reason: Option<String>,
    },
    /// The rollback finished; the previous definition runs as `job_id` (none when nothing was
    /// resubmitted).
    RolledBack {
        job_id: Option<JobId>,
    },
    /// The step failed with this error.
    Failed {
        error: String,
    },
}

/// The result fields any step kind has written (all optional: a reader takes what it needs).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultFields {
    savepoint: Option<String>,
    latest_checkpoint: Option<String>,
    job_id: Option<JobId>,
    savepoint_path: Option<String>,
    error: Option<String>,
    healthy: Option<bool>,
    reason: Option<String>,
}

impl StepResult {
    /// Whether the step succeeded.
    pub fn status(&self) -> StepStatus {
        match self {
            StepResult::Failed { .. } => StepStatus::Failed,
            _ => StepStatus::Succeeded,
        }
    }

    /// The stored text (the keys and order older versions wrote).
    pub fn to_json(&self) -> String {
        let value = match self {
            StepResult::Stopped { savepoint } => json!({ "savepoint": savepoint }),
            StepResult::Cancelled { latest_checkpoint } => {
                json!({ "latestCheckpoint": latest_checkpoint })
            }
            StepResult::Submitted {
                job_id,
                savepoint_path,
            } => json!({ "jobId": job_id, "savepointPath": savepoint_path }),
            StepResult::Running => json!({ "state": "RUNNING" }),
            StepResult::Forgotten => json!({}),
            StepResult::Watched { healthy, reason } => json!({
                "healthy": healthy,
                "reason": reason.as_deref().map(crate::redact::text),
            }),
            StepResult::RolledBack { job_id } => json!({ "jobId": job_id }),
            // Errors quote Flink and the job's own output: scrubbed before they are stored.
            StepResult::Failed { error } => json!({ "error": crate::redact::text(error) }),
        };
        value.to_string()
    }

    /// Reads the stored result of a completed step of `kind`.
    pub fn parse(
        kind: StepKind,
        status: JournalStatus,
        text: &str,
    ) -> Result<StepResult, ResultError> {
        let fields: ResultFields =
            serde_json::from_str(text).map_err(|source| ResultError::Json { kind, source })?;
        let missing = |field: &'static str| ResultError::Missing { kind, field };
        Ok(match (status, kind) {
            (JournalStatus::Pending, _) => return Err(ResultError::Pending { kind }),
            (JournalStatus::Failed, _) => StepResult::Failed {
                error: fields.error.unwrap_or_default(),
            },
            (JournalStatus::Succeeded, StepKind::StopWithSavepoint) => StepResult::Stopped {
                savepoint: fields.savepoint.ok_or_else(|| missing("savepoint"))?,
            },
            (JournalStatus::Succeeded, StepKind::Cancel) => StepResult::Cancelled {
                latest_checkpoint: fields.latest_checkpoint,
            },
            (JournalStatus::Succeeded, StepKind::Submit) => StepResult::Submitted {
                job_id: fields.job_id.ok_or_else(|| missing("jobId"))?,
                savepoint_path: fields.savepoint_path,
            },
            (JournalStatus::Succeeded, StepKind::AwaitRunning) => StepResult::Running,
            (JournalStatus::Succeeded, StepKind::Forget) => StepResult::Forgotten,
            (JournalStatus::Succeeded, StepKind::WatchHealth) => StepResult::Watched {
                healthy: fields.healthy.ok_or_else(|| missing("healthy"))?,
                reason: fields.reason,
            },
            (JournalStatus::Succeeded, StepKind::Rollback) => StepResult::RolledBack {
                job_id: fields.job_id,
            },
        })
    }

    /// The savepoint a stop took, or the retained checkpoint a cancel left.
    pub fn produced(&self) -> Option<&str> {
        match self {
            StepResult::Stopped { savepoint } => Some(savepoint),
            StepResult::Cancelled { latest_checkpoint } => latest_checkpoint.as_deref(),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            StepResult::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// A stored result that cannot be read as its step kind's.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("the result of a {kind} step is not JSON")]
    Json {
        kind: StepKind,
        #[source]
        source: serde_json::Error,
    },
    #[error("the result of a {kind} step has no `{field}`")]
    Missing { kind: StepKind, field: &'static str },
    #[error("the {kind} step has no result yet")]
    Pending { kind: StepKind },
}

const JOURNAL_SELECT: &str = "SELECT id, apply_id, job, seq, kind, status, intent_json,
    detail_json, result_json, created_at_ms, progress_at_ms, finished_at_ms FROM journal";

impl Store {
    /// Durably records that a side effect is about to be attempted, before attempting it.
    /// Returns the entry's id. Refused when the apply is unknown or already finished (so a
    /// process whose apply was declared interrupted by another cannot go on acting).
    pub async fn journal_intent(&self, e: &NewJournalEntry) -> Result<i64, StoreError> {
        const OP: &str = "journal_intent";
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO journal (apply_id, job, seq, kind, status, intent_json, detail_json,
                                  created_at_ms)
             SELECT id, $2, $3, $4, 'pending', $5, $5, $6
             FROM applies WHERE id = $1 AND finished_at_ms IS NULL
             RETURNING id",
        )
        .bind(&e.apply_id)
        .bind(&e.job)
        .bind(i64::from(e.seq))
        .bind(e.detail.kind())
        .bind(e.detail.to_json())
        .bind(e.at_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(OP))?;
        match id {
            Some(id) => Ok(id),
            None => Err(self.rejected(OP, self.apply_rejection(&e.apply_id, OP).await?)),
        }
    }

    /// Replaces the detail of a pending entry (e.g. with the savepoint request id as soon as
    /// Flink returns it). The original detail stays in [`JournalEntry::intent_json`].
    pub async fn journal_progress(
        &self,
        entry_id: i64,
        detail: &StepDetail,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "journal_progress";
        let done = sqlx::query(
            "UPDATE journal SET detail_json = $2, progress_at_ms = $3
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(entry_id)
        .bind(detail.to_json())
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        self.pending_updated(done.rows_affected(), entry_id, OP)
            .await
    }

    /// Completes a pending entry with the side effect's result.
    pub async fn journal_result(
        &self,
        entry_id: i64,
        result: &StepResult,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "journal_result";
        let done = sqlx::query(
            "UPDATE journal SET status = $2, result_json = $3, finished_at_ms = $4
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(entry_id)
        .bind(JournalStatus::from(result.status()))
        .bind(result.to_json())
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        self.pending_updated(done.rows_affected(), entry_id, OP)
            .await
    }

    /// The journal of one apply, ordered by job, seq, id (empty for an unknown apply).
    pub async fn journal(&self, apply_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        sqlx::query_as::<_, JournalEntry>(&format!(
            "{JOURNAL_SELECT} WHERE apply_id = $1 ORDER BY job, seq, id"
        ))
        .bind(apply_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("journal"))
    }

    /// Ok when an update of pending entry `id` took; otherwise why it was refused.
    async fn pending_updated(
        &self,
        rows_affected: u64,
        id: i64,
        op: &'static str,
    ) -> Result<(), StoreError> {
        if rows_affected == 1 {
            return Ok(());
        }
        let exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM journal WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(op))?;
        let rejection = match exists {
            None => Rejection::NotFound {
                what: "journal entry",
                id: id.to_string(),
            },
            Some(_) => Rejection::EntryComplete { id },
        };
        Err(self.rejected(op, rejection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_kinds_read_their_stored_and_planned_names() {
        for kind in [
            StepKind::StopWithSavepoint,
            StepKind::Cancel,
            StepKind::Submit,
            StepKind::AwaitRunning,
            StepKind::Forget,
            StepKind::WatchHealth,
            StepKind::Rollback,
        ] {
            let stored = serde_json::to_value(kind).unwrap();
            assert_eq!(stored, kind.as_str());
            assert_eq!(kind.to_string(), kind.as_str());
            let planned = serde_json::Value::String(kind.as_str().replace('_', "-"));
            assert_eq!(serde_json::from_value::<StepKind>(planned).unwrap(), kind);
        }
    }

    #[test]
    fn results_are_read_as_their_kind_says() {
        let id: JobId = "3e00000000000000000000000000abcd".parse().unwrap();
        let ok = JournalStatus::Succeeded;
        let submitted = StepResult::Submitted {
            job_id: id,
            savepoint_path: None,
        };
        assert_eq!(
            submitted.to_json(),
            format!(r#"{{"jobId":"{id}","savepointPath":null}}"#)
        );
        assert_eq!(
            StepResult::parse(StepKind::Submit, ok, &submitted.to_json()).unwrap(),
            submitted
        );
        assert!(matches!(
            StepResult::parse(StepKind::StopWithSavepoint, ok, "{}"),
            Err(ResultError::Missing {
                field: "savepoint",
                ..
            })
        ));
        assert!(matches!(
            StepResult::parse(StepKind::Cancel, ok, "not json"),
            Err(ResultError::Json { .. })
        ));
        assert_eq!(
            StepResult::parse(StepKind::Submit, JournalStatus::Failed, r#"{"error":"x"}"#).unwrap(),
            StepResult::Failed { error: "x".into() }
        );
        assert_eq!(StepResult::Running.to_json(), r#"{"state":"RUNNING"}"#);
        assert_eq!(StepDetail::Forget.to_json(), "{}");
    }
}
