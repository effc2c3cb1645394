//! Flink calls of the savepoint lifecycle and job health: savepoints of a running job
//! (`POST /jobs/{id}/savepoints`), disposal (`POST /savepoint-disposal`), and the few reads the
//! health classification needs.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::model::{AsyncOperationBody, TriggerBody};
use super::{FlinkClient, FlinkError, decode, poll, summarize_java_error};
use crate::identity::JobId;

/// Where a disposal stands (`GET /savepoint-disposal/{trigger id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisposalStatus {
    InProgress,
    Completed,
    Failed { cause: String },
}

/// What the health classification reads about one running job: two GETs
/// (`/jobs/{id}/checkpoints` and `/jobs/{id}/exceptions`) plus the checkpoint interval
/// (`/jobs/{id}/checkpoints/config`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthFacts {
    /// Failed checkpoints since the job started (Flink's counter).
    pub checkpoints_failed: u64,
    /// Trigger times of the failed checkpoints in Flink's recent history (bounded by
    /// `web.checkpoints.history`, 10 by default).
    pub failed_checkpoint_times_ms: Vec<i64>,
    /// When the latest completed checkpoint was triggered.
    pub latest_completed_ms: Option<i64>,
    /// The job's checkpoint interval; `None` when checkpointing is off.
    pub checkpoint_interval_ms: Option<i64>,
    /// When each recent restart's exception happened, newest first (the exception history).
    pub restart_times_ms: Vec<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HistoryBody {
    history: Option<Vec<HistoryEntryWire>>,
    counts: Option<CountsWire>,
    latest: Option<LatestWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CountsWire {
    failed: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LatestWire {
    completed: Option<EntryTimes>,
    failed: Option<FailedWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EntryTimes {
    trigger_timestamp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FailedWire {
    trigger_timestamp: Option<i64>,
    failure_timestamp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HistoryEntryWire {
    status: Option<String>,
    trigger_timestamp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExceptionTimesBody {
    #[serde(rename = "exceptionHistory")]
    exception_history: Option<ExceptionTimesHistory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExceptionTimesHistory {
    entries: Option<Vec<ExceptionTime>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExceptionTime {
    timestamp: Option<i64>,
}

/// Restarts read from the exception history; more than any sane threshold.
const MAX_EXCEPTIONS: &str = "20";

impl FlinkClient {
    /// `POST /jobs/{id}/savepoints` (the job keeps running); returns the request id to poll
    /// with [`FlinkClient::savepoint_status`]. `target_dir` `None` uses the cluster's default.
    pub async fn trigger_savepoint(
        &self,
        id: &JobId,
        target_dir: Option<&str>,
    ) -> Result<String, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "savepoints"], &[]);
        let mut body = serde_json::json!({"cancel-job": false, "formatType": "CANONICAL"});
        if let Some(dir) = target_dir {
            body["target-directory"] = dir.into();
        }
        let answer: TriggerBody = decode(&url, &self.send_json(Method::POST, &url, &body).await?)?;
        Ok(answer.request_id)
    }

    /// `POST /savepoint-disposal`: asks Flink to delete a savepoint's files; returns the
    /// request id to poll with [`FlinkClient::disposal_status`].
    pub async fn dispose_savepoint(&self, path: &str) -> Result<String, FlinkError> {
        let url = self.endpoint(&["savepoint-disposal"], &[]);
        let body = serde_json::json!({"savepoint-path": path});
        let answer: TriggerBody = decode(&url, &self.send_json(Method::POST, &url, &body).await?)?;
        Ok(answer.request_id)
    }

    /// `GET /savepoint-disposal/{request id}`.
    pub async fn disposal_status(&self, request_id: &str) -> Result<DisposalStatus, FlinkError> {
        let url = self.endpoint(&["savepoint-disposal", request_id], &[]);
        let body: AsyncOperationBody = self.get_json(&url).await?;
        if body.status.and_then(|s| s.id).as_deref() != Some("COMPLETED") {
            return Ok(DisposalStatus::InProgress);
        }
        match body.operation.and_then(|o| o.failure_cause) {
            None => Ok(DisposalStatus::Completed),
            Some(c) => Ok(DisposalStatus::Failed {
                cause: c
                    .stack_trace
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| summarize_java_error(&t).message)
                    .or(c.class)
                    .unwrap_or_else(|| "Flink reported the disposal failed".into()),
            }),
        }
    }

    /// Polls a disposal until Flink says it is done.
    pub async fn wait_for_disposal(
        &self,
        path: &str,
        request_id: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> Result<(), FlinkError> {
        let what = format!("the disposal of {path}");
        let mut last = "it was still in progress".to_string();
        poll(
            timeout,
            poll_interval,
            &what,
            &mut last,
            async |last: &mut String, _| match self.disposal_status(request_id).await {
                Ok(DisposalStatus::Completed) => Some(Ok(())),
                Ok(DisposalStatus::Failed { cause }) => Some(Err(FlinkError::DisposalFailed {
                    path: path.to_string(),
                    cause,
                })),
                Ok(DisposalStatus::InProgress) => None,
                Err(e) if e.is_retryable() => {
                    *last = format!("last error: {e}");
                    None
                }
                Err(e) => Some(Err(e)),
            },
        )
        .await
    }

    /// The facts job health is classified from (three GETs). `None` when the job is unknown.
    pub async fn health_facts(&self, id: &JobId) -> Result<Option<HealthFacts>, FlinkError> {
        let job = id.to_string();
        let url = self.endpoint(&["jobs", &job, "checkpoints"], &[]);
        let body = match self.get_json::<HistoryBody>(&url).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                // Older versions answer 404 when checkpointing is off; an unknown job too.
                if self.job_state(id).await?.is_none() {
                    return Ok(None);
                }
                HistoryBody::default()
            }
            Err(e) => return Err(e),
        };
        let config_url = self.endpoint(&["jobs", &job, "checkpoints", "config"], &[]);
        let interval = self
            .get_json_opt::<serde_json::Value>(&config_url)
            .await?
            .and_then(|c| c["interval"].as_i64())
            // Flink reports a disabled interval as Long.MAX_VALUE.
            .filter(|i| *i > 0 && *i < i64::MAX / 2);
        let exceptions_url = self.endpoint(
            &["jobs", &job, "exceptions"],
            &[("maxExceptions", MAX_EXCEPTIONS)],
        );
        let exceptions = self
            .get_json_opt::<ExceptionTimesBody>(&exceptions_url)
            .await?
            .unwrap_or_default();
        Ok(Some(facts_from(body, interval, exceptions)))
    }
}

fn facts_from(
    body: HistoryBody,
    interval: Option<i64>,
    exceptions: ExceptionTimesBody,
) -> HealthFacts {
    let latest = body.latest.unwrap_or_default();
    let mut failed: Vec<i64> = body
        .history
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.status.as_deref() == Some("FAILED"))
        .filter_map(|e| e.trigger_timestamp)
        .collect();
    // The latest failure is in `latest.failed` even when the history is shorter.
    if let Some(f) = latest.failed
        && let Some(t) = f.trigger_timestamp.or(f.failure_timestamp)
        && !failed.contains(&t)
    {
        failed.push(t);
    }
    failed.sort_unstable_by(|a, b| b.cmp(a));
    let mut restarts: Vec<i64> = exceptions
        .exception_history
        .and_then(|h| h.entries)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.timestamp)
        .collect();
    restarts.sort_unstable_by(|a, b| b.cmp(a));
    HealthFacts {
        checkpoints_failed: body.counts.and_then(|c| c.failed).unwrap_or_default(),
        failed_checkpoint_times_ms: failed,
        latest_completed_ms: latest.completed.and_then(|c| c.trigger_timestamp),
        checkpoint_interval_ms: interval,
        restart_times_ms: restarts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_read_failures_from_history_and_latest() {
        let body: HistoryBody = serde_json::from_value(serde_json::json!({
            "counts": {"failed": 7, "completed": 3},
            "latest": {
                "completed": {"trigger_timestamp": 500},
                "failed": {"trigger_timestamp": 900, "failure_timestamp": 950}
            },
            "history": [
                {"status": "FAILED", "trigger_timestamp": 800},
                {"status": "COMPLETED", "trigger_timestamp": 500},
                {"status": "FAILED", "trigger_timestamp": 900}
            ]
        }))
        .unwrap();
        let exceptions: ExceptionTimesBody = serde_json::from_value(serde_json::json!({
            "exceptionHistory": {"entries": [{"timestamp": 10}, {"timestamp": 30}]}
        }))
        .unwrap();
        let facts = facts_from(body, Some(1000), exceptions);
        assert_eq!(facts.checkpoints_failed, 7);
        assert_eq!(facts.failed_checkpoint_times_ms, [900, 800]);
        assert_eq!(facts.latest_completed_ms, Some(500));
        assert_eq!(facts.restart_times_ms, [30, 10]);
    }
}
