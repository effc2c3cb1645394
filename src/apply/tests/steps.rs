//! Each step of a change against the fake Flink: the savepoint recorded before the submit, failures
//! reported, resumes that repeat nothing.

use super::*;

#[tokio::test]
async fn a_savepoint_redeploy_records_the_savepoint_before_submitting_from_it() {
    let w = world().await;
    let steps: Vec<StepKind> = w.plan.changes[0].steps.iter().map(step_kind).collect();
    assert_eq!(
        steps,
        [
            StepKind::StopWithSavepoint,
            StepKind::Submit,
            StepKind::AwaitRunning
        ]
    );
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-1").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let savepoint = outcomes[0].savepoint.clone().expect("the stop's savepoint");
    let new_id = outcomes[0].new_job_id.expect("a new job");

    // Flink saw: the stop, then the run from that savepoint with the chosen id.
    let requests = w.fake.since(mark);
    let (stops, runs) = (calls(&requests, STOP), calls(&requests, RUN));
    assert_eq!((stops.len(), runs.len()), (1, 1));
    assert!(stops[0].at <= runs[0].at);
    let run = runs[0].json.as_ref().unwrap();
    assert_eq!(run["savepointPath"], savepoint.as_str());
    assert_eq!(run["jobId"], new_id.to_string());
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "FINISHED");
    assert_eq!(w.fake.job(&new_id.to_string()).unwrap().state, "RUNNING");

    // The journal: the savepoint was durable before the submit's intent was written.
    let journal = w.store.journal("apply-1").await.unwrap();
    let kinds: Vec<StepKind> = journal.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, steps);
    assert_eq!(
        journal[0].result(),
        Some(StepResult::Stopped {
            savepoint: savepoint.clone()
        })
    );
    assert!(journal[0].finished_at_ms.unwrap() <= journal[1].created_at_ms);
    match journal[1].intent() {
        Some(StepDetail::Submit(d)) => {
            assert_eq!(d.savepoint_path.as_deref(), Some(savepoint.as_str()));
            assert_eq!(d.job_id, new_id);
        }
        other => panic!("submit intent: {other:?}"),
    }
    assert_eq!(journal[2].result(), Some(StepResult::Running));

    // The store knows the new job, its savepoint, and that it was restored from it.
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.current_job_id, Some(new_id.to_string()));
    assert_eq!(record.last_savepoint.as_deref(), Some(savepoint.as_str()));
    let lineage = w.store.savepoints("orders").await.unwrap();
    assert_eq!(lineage[0].path, savepoint);
    assert_eq!(lineage[0].restores[0].job_id, new_id.to_string());
    let apply = w.store.apply("apply-1").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
    assert!(w.store.origin("apply-1").await.unwrap().is_some());
}

#[tokio::test]
async fn resuming_settles_a_submission_flink_received_without_submitting_again() {
    let w = world().await;
    // The process died after Flink accepted the run, before the outcome was journaled.
    let (new_id, savepoint) = w.interrupted_submit("apply-2", 7).await;
    w.fake.insert_jobs([FakeJob {
        id: new_id.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 2_300,
        end_ms: None,
    }]);

    let mark = w.fake.mark();
    let plan = w.plan.clone();
    let report = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert_eq!(report.len(), 1);
    assert!(report.iter().all(Resumed::ok), "{report:?}");
    let requests = w.fake.since(mark);
    assert!(calls(&requests, RUN).is_empty(), "{requests:?}");
    assert!(calls(&requests, STOP).is_empty(), "{requests:?}");

    let journal = w.store.journal("apply-2").await.unwrap();
    assert_eq!(
        journal[1].result(),
        Some(StepResult::Submitted {
            job_id: new_id,
            savepoint_path: Some(savepoint.clone()),
        })
    );
    assert_eq!(journal[2].result(), Some(StepResult::Running));
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.current_job_id, Some(new_id.to_string()));
    let apply = w.store.apply("apply-2").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
    let events = w.store.apply_events("apply-2").await.unwrap();
    assert_eq!(events.len(), 1);
    // Nothing left to resume; a second resume does nothing.
    assert!(w.applier.resume(|_| None).await.unwrap().is_empty());
}

#[tokio::test]
async fn resuming_a_submission_flink_never_received_submits_the_same_id_once() {
    let w = world().await;
    // The process died before the run reached Flink.
    let (new_id, savepoint) = w.interrupted_submit("apply-3", 9).await;

    let mark = w.fake.mark();
    let plan = w.plan.clone();
    let report = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert!(report.iter().all(Resumed::ok), "{report:?}");
    let requests = w.fake.since(mark);
    let runs = calls(&requests, RUN);
    assert_eq!(runs.len(), 1, "{requests:?}");
    let run = runs[0].json.as_ref().unwrap();
    assert_eq!(run["jobId"], new_id.to_string());
    assert_eq!(run["savepointPath"], savepoint.as_str());
    assert_eq!(w.fake.job(&new_id.to_string()).unwrap().state, "RUNNING");
    assert_eq!(
        w.fake
            .jobs()
            .iter()
            .filter(|j| j.state == "RUNNING")
            .count(),
        2,
        "the old job (never stopped in this fake) and exactly one new one"
    );
}

#[tokio::test]
async fn a_failed_stop_leaves_the_job_running_and_is_reported() {
    let w = world().await;
    w.fake.fail(
        STOP,
        StatusCode::INTERNAL_SERVER_ERROR,
        "java.util.concurrent.CompletionException: savepoint coordinator is shut down",
        None,
    );
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-4").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].message.contains("savepoint coordinator"),
        "{}",
        outcomes[0].message
    );
    assert_eq!(outcomes[0].new_job_id, None);
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
    assert!(calls(&w.fake.since(mark), RUN).is_empty());

    let journal = w.store.journal("apply-4").await.unwrap();
    assert_eq!(journal.len(), 1, "nothing after the failed stop");
    assert_eq!(journal[0].status, JournalStatus::Failed);
    let error = journal[0]
        .result()
        .and_then(|r| r.error().map(str::to_string));
    assert!(error.unwrap().contains("savepoint coordinator"));
    let apply = w.store.apply("apply-4").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Failed));
    let error = apply.error.unwrap();
    assert!(error.starts_with("orders: "), "{error}");
    assert!(!error.contains("orders: orders"), "named once: {error}");
    let said = w.progress.lock().unwrap().join("\n");
    assert!(said.contains("orders: FAILED"), "{said}");
    assert!(
        !said.contains("orders: FAILED: orders"),
        "named once: {said}"
    );
    assert!(
        !outcomes[0].message.starts_with("orders"),
        "{}",
        outcomes[0].message
    );
}

#[tokio::test]
async fn a_failed_submit_reports_and_leaves_the_job_stopped_with_its_savepoint() {
    let w = world().await;
    w.fake.fail(
        RUN,
        StatusCode::BAD_REQUEST,
        "org.apache.flink.client.program.ProgramInvocationException: main class not found \
         (connecting to jdbc:postgresql://app:Pa55-in-main@db/x)\u{1b}[2J",
        None,
    );
    let outcomes = w.applier.apply(&w.plan, "apply-5").await.unwrap();
    assert!(!outcomes[0].ok);
    let message = &outcomes[0].message;
    assert!(message.contains("main class not found"), "{message}");
    // It says that the job is left stopped, where its state is and what to do.
    assert!(message.contains("the job is left stopped"), "{message}");
    assert!(message.contains("run `weir apply` again"), "{message}");
    // Flink's text reaches no output with the password or a terminal escape.
    let said = w.progress.lock().unwrap().join("\n");
    let stored = w
        .store
        .apply("apply-5")
        .await
        .unwrap()
        .unwrap()
        .error
        .unwrap();
    let changes = w.store.apply_changes("apply-5").await.unwrap();
    let journal_error = w.store.journal("apply-5").await.unwrap()[1]
        .result_json
        .clone()
        .unwrap();
    for text in [message, &said, &stored, &changes[0].message, &journal_error] {
        assert!(!text.contains("Pa55-in-main"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
    // The old job is stopped, nothing new runs.
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "FINISHED");
    assert!(w.fake.jobs().iter().all(|j| j.state != "RUNNING"));

    let journal = w.store.journal("apply-5").await.unwrap();
    let savepoint = match journal[0].result() {
        Some(StepResult::Stopped { savepoint }) => savepoint,
        other => panic!("stop result: {other:?}"),
    };
    assert_eq!(journal[1].kind, StepKind::Submit);
    assert_eq!(journal[1].status, JournalStatus::Failed);
    assert_eq!(journal.len(), 2, "no wait after the failed submit");
    // The next plan restores from the savepoint the stop took.
    assert!(message.contains(&savepoint), "{message}");
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.last_savepoint.as_deref(), Some(savepoint.as_str()));
    assert_eq!(record.current_job_id, None);
    let apply = w.store.apply("apply-5").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Failed));
    assert!(matches!(
        w.plan.changes[0].steps[1],
        Step::Submit {
            restore: Restore::StopSavepoint,
            ..
        }
    ));
}

#[tokio::test]
async fn resuming_a_stop_flink_received_reads_its_savepoint_without_stopping_again() {
    let w = world().await;
    // The process died after Flink accepted the stop and its request id was journaled.
    let client = w.applier.clients["local"].clone();
    let request = client
        .stop_with_savepoint(&w.old_id, Some("file:///sp"))
        .await
        .unwrap();
    w.begin("apply-6").await;
    let stop = StepDetail::StopWithSavepoint(StopDetail {
        job_id: w.old_id,
        request_id: Some(request),
        target_dir: Some("file:///sp".into()),
    });
    w.journal("apply-6", 0, stop).await;

    let mark = w.fake.mark();
    let plan = w.plan.clone();
    let report = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert!(report.iter().all(Resumed::ok), "{report:?}");
    let requests = w.fake.since(mark);
    assert!(calls(&requests, STOP).is_empty(), "{requests:?}");
    let runs = calls(&requests, RUN);
    assert_eq!(runs.len(), 1, "{requests:?}");

    let journal = w.store.journal("apply-6").await.unwrap();
    let Some(StepResult::Stopped { savepoint }) = journal[0].result() else {
        panic!("stop result: {:?}", journal[0]);
    };
    assert_eq!(
        runs[0].json.as_ref().unwrap()["savepointPath"],
        savepoint.as_str()
    );
    let apply = w.store.apply("apply-6").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
}

#[tokio::test]
async fn last_state_refuses_to_cancel_a_job_without_a_completed_checkpoint() {
    let w = world_with(UpgradeMode::LastState).await;
    let steps: Vec<StepKind> = w.plan.changes[0].steps.iter().map(step_kind).collect();
    assert_eq!(
        steps,
        [StepKind::Cancel, StepKind::Submit, StepKind::AwaitRunning]
    );
    // The fake's jobs have no completed checkpoint.
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-7").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].message.contains("has no completed checkpoint"),
        "{}",
        outcomes[0].message
    );
    // Nothing but the lease marker (uploaded and deleted again) was written.
    let requests = w.fake.since(mark);
    assert!(
        requests
            .iter()
            .all(|r| !r.is_mutating() || r.path.starts_with("/jars")),
        "{requests:?}"
    );
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
    // Refused before anything was journaled.
    assert!(w.store.journal("apply-7").await.unwrap().is_empty());
}

/// Safety invariant 2 for URL jars: a jar that cannot be had fails the change before the
/// running job is stopped (it used to be fetched by the submit step, after the stop).
#[tokio::test]
async fn a_url_jar_that_cannot_be_fetched_fails_before_the_stop() {
    let mut w = world().await;
    let root = tempfile::tempdir().unwrap();
    for (url, expect) in [
        // file:// is off unless the operator allowed a directory.
        (
            format!("file://{}/app.jar", root.path().display()),
            "file:// URLs are off",
        ),
        // Nothing listens there.
        ("http://127.0.0.1:9/app.jar".to_string(), "127.0.0.1:9"),
    ] {
        let desired = w.plan.changes[0].desired.as_mut().unwrap();
        if let Program::Jar { jar, .. } = &mut desired.program {
            jar.location = crate::desired::JarLocation::Url { url };
            jar.sha256 = "cd".repeat(32);
        }
        let mark = w.fake.mark();
        let outcomes = w
            .applier
            .apply(&w.plan, &format!("apply-{expect}"))
            .await
            .unwrap();
        assert!(!outcomes[0].ok, "{outcomes:?}");
        assert!(
            outcomes[0].message.contains(expect),
            "{}",
            outcomes[0].message
        );
        let requests = w.fake.since(mark);
        assert!(calls(&requests, STOP).is_empty(), "no stop: {requests:?}");
        assert!(calls(&requests, RUN).is_empty());
        assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
    }
}

/// The refusal's advice works in one step: retention set by the change applies only to the job
/// the change starts, so the advice for this change is a savepoint upgrade.
#[test]
fn the_last_state_refusal_advises_what_works_for_this_change() {
    let id = plan::submission_identity(&old_job(), 1).job_id();
    let text = StepError::CheckpointsDeletedOnCancel(id).to_string();
    assert!(
        text.contains("`upgradeMode: savepoint` for this change"),
        "{text}"
    );
    assert!(text.contains("not to the running one"), "{text}");
}
