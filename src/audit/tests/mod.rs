use std::collections::BTreeMap;

use super::*;
use crate::clock::{rfc3339, table_time as time_text};
use crate::desired::Revision;
use crate::git::RepoSource;
use crate::store::audit::{ApplyEvent, ApplyEventKind, ChangeResult, RecordKind, RecordOrigin};
use crate::store::{
    ApplyOutcome, ApplyRecord, JobRef, JournalEntry, JournalStatus, NewApply, NewJournalEntry,
    PlanRecord, SavepointKind, SavepointRecord, SavepointRestore, StepDetail, StepKind, StepResult,
    StopDetail, SubmitDetail,
};

const OLD: &str = "3e00000000000000000000000000aaaa";
const NEW: &str = "3e00000000000000000000000000bbbb";
const SP: &str = "file:/sp/savepoint-aaaa-1";

/// A plan JSON as `weir plan` stores it: a redeploy of `orders` through a savepoint.
fn plan_json() -> String {
    serde_json::json!({
        "id": "plan-1",
        "changes": [{
            "job": "orders",
            "cluster": "local",
            "action": "redeploy",
            "reason": "sql changed",
            "upgradeMode": "savepoint",
            "steps": [
                {"step": "stop-with-savepoint", "jobId": OLD, "targetDir": null},
                {"step": "submit", "parallelism": 1, "restore": {"from": "stop-savepoint"}},
                {"step": "await-running"}
            ],
            "diff": [
                {"field": "sql", "severity": "redeploy", "before": "A", "after": "B"},
                {"field": "flinkConfiguration.s3.secret-key", "severity": "redeploy",
                 "before": "<redacted>", "after": "<redacted>"}
            ],
            "currentJob": {"jobId": OLD, "state": "RUNNING"},
            "restore": {"from": "stop-savepoint"},
            "warnings": []
        }],
        "errors": [],
        "warnings": ["a plan warning"]
    })
    .to_string()
}

fn plan_record() -> PlanRecord {
    PlanRecord {
        id: "plan-1".into(),
        created_at_ms: 1_000,
        revision: "0123456789ab".into(),
        trigger: "cli".into(),
        summary: "Plan: 0 to create, 1 to redeploy, 0 to delete.".into(),
        plan_json: plan_json(),
        job_names: vec!["orders".into()],
    }
}

fn origin_of(id: &str, kind: RecordKind) -> RecordOrigin {
    RecordOrigin {
        record_id: id.into(),
        kind,
        actor: Some("alice".into()),
        commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        dirty: false,
        author_name: Some("Ann Author".into()),
        author_email: Some("ann@example.com".into()),
        authored_at_ms: Some(900),
        message: Some("speed up orders\n\nlonger body".into()),
        recorded_at_ms: 1_000,
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    id: i64,
    seq: u32,
    kind: &str,
    status: JournalStatus,
    intent: Value,
    detail: Option<Value>,
    result: Option<Value>,
    at: (i64, Option<i64>),
) -> JournalEntry {
    JournalEntry {
        id,
        apply_id: "apply-1".into(),
        job: "orders".into(),
        seq,
        kind: serde_json::from_value(Value::String(kind.into())).unwrap(),
        status,
        intent_json: intent.to_string(),
        detail_json: detail.unwrap_or_else(|| intent.clone()).to_string(),
        result_json: result.map(|r| r.to_string()),
        created_at_ms: at.0,
        progress_at_ms: None,
        finished_at_ms: at.1,
    }
}

fn stop_entry(finished: Option<i64>) -> JournalEntry {
    entry(
        1,
        0,
        "stop_with_savepoint",
        if finished.is_some() {
            JournalStatus::Succeeded
        } else {
            JournalStatus::Pending
        },
        serde_json::json!({"jobId": OLD, "targetDir": null}),
        Some(serde_json::json!({"jobId": OLD, "targetDir": null, "requestId": "req-7"})),
        finished.map(|_| serde_json::json!({"savepoint": SP})),
        (2_000, finished),
    )
}

fn apply_record(outcome: Option<ApplyOutcome>, error: Option<&str>) -> ApplyRecord {
    ApplyRecord {
        id: "apply-1".into(),
        plan_id: "plan-1".into(),
        started_at_ms: 1_500,
        revision: "0123456789ab".into(),
        trigger: "cli".into(),
        job_names: vec!["orders".into()],
        finished_at_ms: outcome.map(|_| 9_000),
        outcome,
        error: error.map(str::to_string),
    }
}

fn failed_apply() -> ApplyRecords {
    let err = "orders: the program failed: SELECT statements are not supported";
    ApplyRecords {
        apply: apply_record(Some(ApplyOutcome::Failed), Some(err)),
        origin: Some(origin_of("apply-1", RecordKind::Apply)),
        plan: Some(plan_record()),
        plan_origin: Some(origin_of("plan-1", RecordKind::Plan)),
        journal: vec![
            stop_entry(Some(5_200)),
            entry(
                2,
                1,
                "submit",
                JournalStatus::Failed,
                serde_json::json!({"jobId": NEW, "jarId": "abc_runner.jar", "savepointPath": SP, "parallelism": 1}),
                None,
                Some(
                    serde_json::json!({"error": "the program failed: SELECT statements are not supported"}),
                ),
                (5_300, Some(5_750)),
            ),
        ],
        changes: vec![ChangeResult {
            job: "orders".into(),
            action: "redeploy".into(),
            ok: false,
            message: err.into(),
            new_job_id: None,
            savepoint: None,
        }],
        events: vec![],
    }
}

mod from_the_store;
mod rendering;
mod stories;
