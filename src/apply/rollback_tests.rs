//! Automatic rollback on the fake Flink: a new job that fails at start or within its health
//! window is replaced by the previous definition from the savepoint the change took, with every
//! step journaled, and an interrupted rollback is finished by the next apply.

use super::tests::{World, calls, old_job, world_from};
use super::*;
use crate::desired::{DesiredJob, Program};
use crate::identity::{self, Identity};
use crate::plan;
use crate::spec::UpgradeMode;
use crate::store::audit::ApplyEventKind;
use crate::store::{
    JobRecord, JobRef, NewJournalEntry, RollbackDetail, RollbackTarget, StepDetail, StepResult,
    StopDetail, SubmitDetail,
};
use crate::testing::fake_flink::FakeJob;

const RUN: &str = "POST /jars/{jarid}/run";

/// A redeploy to a definition whose job fails `fail_after_ms` after it started (the fake's
/// reading of the test job's `--fail-after-records`; `None`: it does not fail), watched for
/// `window` seconds, with the running definition recorded as weir submitted it.
async fn redeploy(fail_after_ms: Option<u32>, window: u32) -> World {
    let w = world_from(UpgradeMode::Savepoint, |job: &mut DesiredJob| {
        if let (Some(ms), Program::Jar { args, .. }) = (fail_after_ms, &mut job.program) {
            args.extend(["--fail-after-records".into(), ms.to_string().into()]);
        }
        job.rollback.health_window_seconds = window;
    })
    .await;
    record_running_definition(&w).await;
    w
}

/// The store's record of the running job, as the apply that submitted it left it.
async fn record_running_definition(w: &World) {
    w.store
        .upsert_job(&JobRecord {
            name: "orders".into(),
            cluster: "local".into(),
            current_job_id: Some(w.old_id.to_string()),
            spec_json: Some(serde_json::to_string(&old_job().redacted()).unwrap()),
            suspended: false,
            last_savepoint: None,
            last_savepoint_at_ms: None,
            updated_at_ms: 1,
            deleted: false,
        })
        .await
        .unwrap();
}

fn active(w: &World) -> Vec<String> {
    w.fake
        .jobs()
        .into_iter()
        .filter(|j| {
            matches!(
                j.state,
                "RUNNING" | "CREATED" | "RESTARTING" | "INITIALIZING"
            )
        })
        .map(|j| j.id)
        .collect()
}

fn runs_of_previous(id: JobId) -> bool {
    Identity::decode(&id).unwrap().code_hash == identity::code_hash(&old_job().code_fingerprint())
}

async fn kinds(w: &World, apply_id: &str) -> Vec<StepKind> {
    w.store
        .journal(apply_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_new_job_that_fails_at_start_is_rolled_back_to_the_previous_definition_from_the_new_savepoint()
 {
    let w = redeploy(Some(0), 0).await;
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-1").await.unwrap();
    let o = &outcomes[0];
    assert!(!o.ok, "{o:?}");
    assert!(o.rolled_back.is_some(), "{o:?}");
    assert!(o.message.starts_with("rolled back: "), "{}", o.message);
    let back = o.new_job_id.expect("the previous definition runs again");
    assert!(runs_of_previous(back));

    // Flink saw the new definition submitted, then the previous one from the stop's savepoint.
    let requests = w.fake.since(mark);
    let runs = calls(&requests, RUN);
    assert_eq!(runs.len(), 2, "{requests:?}");
    let body = |i: usize| runs[i].json.clone().unwrap();
    assert!(body(0)["savepointPath"].is_string());
    assert_eq!(body(1)["savepointPath"], body(0)["savepointPath"]);
    assert_eq!(body(1)["jobId"], back.to_string());
    assert_eq!(active(&w), [back.to_string()], "one copy runs");

    assert_eq!(
        kinds(&w, "apply-1").await,
        [
            StepKind::StopWithSavepoint,
            StepKind::Submit,
            StepKind::AwaitRunning,
            StepKind::Rollback,
            StepKind::Cancel,
            StepKind::Submit,
            StepKind::AwaitRunning,
        ]
    );
    // The store names the previous definition as running, and the rolled-back one as such.
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.current_job_id, Some(back.to_string()));
    let spec: DesiredJob = serde_json::from_str(record.spec_json.as_deref().unwrap()).unwrap();
    assert_eq!(spec.code_fingerprint(), old_job().code_fingerprint());
    let rolled = w.store.latest_rollback("orders").await.unwrap().unwrap();
    assert_eq!(
        rolled.rolled_back_fingerprint,
        Some(hex::encode(w.new_job.code_fingerprint()))
    );
    assert!(rolled.reason.unwrap().contains("FAILED"));
    let events = w.store.apply_events("apply-1").await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == ApplyEventKind::RolledBack),
        "{events:?}"
    );
    let apply = w.store.apply("apply-1").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Failed));
}

#[tokio::test]
async fn a_new_job_that_fails_within_the_health_window_is_rolled_back() {
    let w = redeploy(Some(1_000), 3).await;
    let outcomes = w.applier.apply(&w.plan, "apply-1").await.unwrap();
    let o = &outcomes[0];
    assert!(!o.ok && o.rolled_back.is_some(), "{o:?}");
    assert!(
        o.message.contains("within the health window"),
        "{}",
        o.message
    );
    let back = o.new_job_id.unwrap();
    assert!(runs_of_previous(back));
    assert_eq!(active(&w), [back.to_string()]);
    let journal = w.store.journal("apply-1").await.unwrap();
    let watch = journal
        .iter()
        .find(|e| e.kind == StepKind::WatchHealth)
        .expect("the watch is journaled");
    assert!(matches!(
        watch.result(),
        Some(StepResult::Watched { healthy: false, .. })
    ));
}

#[tokio::test]
async fn a_healthy_new_job_is_kept_after_its_health_window() {
    let w = redeploy(None, 1).await;
    let outcomes = w.applier.apply(&w.plan, "apply-1").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let journal = w.store.journal("apply-1").await.unwrap();
    assert_eq!(journal.len(), 4);
    assert_eq!(
        journal[3].result(),
        Some(StepResult::Watched {
            healthy: true,
            reason: None
        })
    );
    assert!(
        w.store
            .latest_rollback("orders")
            .await
            .unwrap()
            .unwrap()
            .reason
            .is_none()
    );
}

#[tokio::test]
async fn without_an_exact_record_of_the_running_definition_nothing_is_rolled_back() {
    let w = world_from(UpgradeMode::Savepoint, |job: &mut DesiredJob| {
        if let Program::Jar { args, .. } = &mut job.program {
            args.extend(["--fail-after-records".into(), "0".into()]);
        }
    })
    .await;
    // The store has no definition of the running job: what ran before is not known exactly.
    let outcomes = w.applier.apply(&w.plan, "apply-1").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(outcomes[0].rolled_back.is_none());
    assert!(outcomes[0].message.contains("left stopped"), "{outcomes:?}");
    assert!(active(&w).is_empty());
}

/// What a process killed right after a rollback's cancel leaves: the old job stopped with
/// `savepoint`, the new one (`new_id`) FAILED and cancelled, the rollback pending.
async fn interrupted_rollback(w: &World, apply_id: &str, savepoint: &str, new_id: JobId) {
    let savepoint = savepoint.to_string();
    w.fake.insert_jobs([FakeJob {
        id: new_id.to_string(),
        name: "orders".into(),
        state: "FAILED",
        parallelism: 2,
        start_ms: 3_000,
        end_ms: Some(3_500),
    }]);
    // The old job was stopped by the interrupted apply.
    w.fake.insert_jobs([FakeJob {
        id: w.old_id.to_string(),
        name: "orders".into(),
        state: "FINISHED",
        parallelism: 2,
        start_ms: 1_000,
        end_ms: Some(2_500),
    }]);
    w.store
        .insert_apply(&NewApply {
            id: apply_id.into(),
            plan_id: w.plan.id.clone(),
            started_at_ms: 2_000,
            revision: w.plan.revision.to_string(),
            trigger: Trigger::Cli,
            job_names: vec!["orders".into()],
        })
        .await
        .unwrap();
    w.store
        .insert_rollback_target(&RollbackTarget {
            apply_id: apply_id.into(),
            job: "orders".into(),
            cluster: "local".into(),
            previous_job_id: w.old_id.to_string(),
            previous_spec_json: serde_json::to_string(&old_job().redacted()).unwrap(),
            created_at_ms: 2_000,
            rolled_back_fingerprint: None,
            rolled_back_parallelism: None,
            reason: None,
            rolled_back_at_ms: None,
        })
        .await
        .unwrap();
    journal_interrupted_rollback(w, apply_id, &savepoint, new_id).await;
}

/// The journal of [`interrupted_rollback`].
async fn journal_interrupted_rollback(w: &World, apply_id: &str, savepoint: &str, new_id: JobId) {
    let savepoint = savepoint.to_string();
    let entries = [
        (
            StepDetail::StopWithSavepoint(StopDetail {
                job_id: w.old_id,
                request_id: Some("r-1".into()),
                target_dir: Some("file:///sp".into()),
            }),
            Some(StepResult::Stopped {
                savepoint: savepoint.clone(),
            }),
        ),
        (
            StepDetail::Submit(SubmitDetail {
                jar_id: None,
                job_id: new_id,
                parallelism: Some(2),
                savepoint_path: Some(savepoint.clone()),
            }),
            Some(StepResult::Submitted {
                job_id: new_id,
                savepoint_path: Some(savepoint.clone()),
            }),
        ),
        (
            StepDetail::AwaitRunning(JobRef { job_id: new_id }),
            Some(StepResult::Failed {
                error: "job FAILED".into(),
            }),
        ),
        (
            StepDetail::Rollback(RollbackDetail {
                reason: "job FAILED".into(),
                new_job_id: Some(new_id),
                savepoint_path: Some(savepoint.clone()),
                cluster: "local".into(),
                resubmit: true,
            }),
            None,
        ),
        (
            StepDetail::Cancel(JobRef { job_id: new_id }),
            Some(StepResult::Cancelled {
                latest_checkpoint: None,
            }),
        ),
    ];
    for (seq, (detail, result)) in entries.into_iter().enumerate() {
        let id = w
            .store
            .journal_intent(&NewJournalEntry {
                apply_id: apply_id.into(),
                job: "orders".into(),
                seq: seq as u32,
                detail,
                at_ms: 2_100,
            })
            .await
            .unwrap();
        if let Some(result) = result {
            w.store.journal_result(id, &result, 2_200).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_rollback_interrupted_after_the_cancel_is_finished_by_the_next_apply_once() {
    let w = redeploy(Some(0), 0).await;
    let apply_id = "apply-9";
    let savepoint = "file:///sp/savepoint-9".to_string();
    let new_id = plan::submission_identity(&w.new_job, 7).job_id();
    interrupted_rollback(&w, apply_id, &savepoint, new_id).await;
    let mark = w.fake.mark();
    let plan = w.plan.clone();
    let report = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(!report[0].ok());
    assert!(report[0].to_string().contains("rolled back"), "{report:?}");
    let requests = w.fake.since(mark);
    let runs = calls(&requests, RUN);
    assert_eq!(runs.len(), 1, "the previous definition is submitted once");
    let body = runs[0].json.clone().unwrap();
    assert_eq!(body["savepointPath"], savepoint.as_str());
    let back: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    assert!(runs_of_previous(back));
    assert_eq!(active(&w), [back.to_string()]);
    assert!(calls(&requests, "POST /jobs/{jobid}/stop").is_empty());
    let apply = w.store.apply(apply_id).await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Failed));
    // A second resume finds nothing to do.
    assert!(w.applier.resume(|_| None).await.unwrap().is_empty());
}

#[tokio::test]
async fn health_windows_of_several_changes_overlap_instead_of_queueing() {
    let mut w = redeploy(None, 0).await;
    w.applier.concurrency = 1;
    let jobs: Vec<DesiredJob> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|name| {
            let mut job = crate::plan::fixtures::job(name);
            job.rollback.health_window_seconds = 1;
            job
        })
        .collect();
    let plan = crate::plan::fixtures::run(
        &crate::plan::fixtures::desired(jobs, false),
        &crate::plan::fixtures::observation(vec![]),
        &Default::default(),
        &[],
    );
    w.store
        .insert_plan(&crate::store::PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger: Trigger::Cli,
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(&plan).unwrap(),
            job_names: vec!["alpha".into(), "beta".into(), "gamma".into()],
        })
        .await
        .unwrap_or(());
    let started = std::time::Instant::now();
    let outcomes = w.applier.apply(&plan, "apply-3").await.unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    // Three one-second windows one change at a time would take three seconds.
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
}
