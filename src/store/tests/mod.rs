use super::*;

use super::journal::{JobRef, StopDetail, SubmitDetail};

fn plan(id: &str, at: i64, jobs: &[&str]) -> PlanRecord {
    PlanRecord {
        id: id.to_string(),
        created_at_ms: at,
        revision: format!("rev-{id}"),
        trigger: Trigger::Cli,
        summary: format!("summary of {id}"),
        plan_json: format!(r#"{{"plan":"{id}"}}"#),
        job_names: jobs.iter().map(|j| j.to_string()).collect(),
    }
}

fn new_apply(id: &str, plan_id: &str, at: i64, jobs: &[&str]) -> NewApply {
    NewApply {
        id: id.to_string(),
        plan_id: plan_id.to_string(),
        started_at_ms: at,
        revision: format!("rev-{plan_id}"),
        trigger: Trigger::from("webhook"),
        job_names: jobs.iter().map(|j| j.to_string()).collect(),
    }
}

const FLINK_JOB: &str = "3e00000000000000000000000000abcd";

fn detail(kind: StepKind) -> StepDetail {
    let job_id = FLINK_JOB.parse().unwrap();
    match kind {
        StepKind::StopWithSavepoint => StepDetail::StopWithSavepoint(StopDetail {
            job_id,
            request_id: None,
            target_dir: None,
        }),
        StepKind::Cancel => StepDetail::Cancel(JobRef { job_id }),
        StepKind::Submit => StepDetail::Submit(SubmitDetail {
            jar_id: Some("j.jar".into()),
            job_id,
            parallelism: Some(2),
            savepoint_path: None,
        }),
        StepKind::AwaitRunning => StepDetail::AwaitRunning(JobRef { job_id }),
        StepKind::Forget => StepDetail::Forget,
        StepKind::WatchHealth => StepDetail::WatchHealth(JobRef { job_id }),
        StepKind::Rollback => StepDetail::Rollback(crate::store::RollbackDetail {
            reason: "failed".into(),
            new_job_id: Some(job_id),
            savepoint_path: Some("file:///sp/1".into()),
            cluster: "local".into(),
            resubmit: true,
        }),
    }
}

fn intent(apply_id: &str, job: &str, seq: u32, kind: StepKind, at: i64) -> NewJournalEntry {
    NewJournalEntry {
        apply_id: apply_id.to_string(),
        job: job.to_string(),
        seq,
        detail: detail(kind),
        at_ms: at,
    }
}

fn stopped(path: &str) -> StepResult {
    StepResult::Stopped {
        savepoint: path.into(),
    }
}

fn failed(error: &str) -> StepResult {
    StepResult::Failed {
        error: error.into(),
    }
}

fn job_record(name: &str, at: i64) -> JobRecord {
    JobRecord {
        name: name.to_string(),
        cluster: "prod".to_string(),
        current_job_id: Some("3e00000000000000000000000000abcd".to_string()),
        spec_json: Some(r#"{"name":"x"}"#.to_string()),
        suspended: false,
        last_savepoint: None,
        last_savepoint_at_ms: None,
        updated_at_ms: at,
        deleted: false,
    }
}

fn savepoint(job: &str, path: &str, at: i64, apply: Option<&str>) -> SavepointRecord {
    SavepointRecord {
        job: job.to_string(),
        path: path.to_string(),
        kind: SavepointKind::Savepoint,
        flink_job_id: "3e00000000000000000000000000abcd".to_string(),
        produced_by_apply: apply.map(str::to_string),
        at_ms: at,
        restores: Vec::new(),
    }
}

fn rejection(e: StoreError) -> Rejection {
    match e {
        StoreError::Rejected { source, .. } => source,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A store with plan `p1` (jobs a, b) and apply `a1` of it.
async fn seeded() -> Store {
    let store = Store::open_for_test().await;
    store
        .insert_plan(&plan("p1", 1_000, &["b", "a"]))
        .await
        .unwrap();
    store
        .insert_apply(&new_apply("a1", "p1", 1_100, &["a", "b"]))
        .await
        .unwrap();
    store
}

mod backends;
mod files;
mod records;
mod upgrades;
