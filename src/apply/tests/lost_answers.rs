//! Answers lost or late on the network, and copies started elsewhere: settled from Flink's state,
//! never a second copy.

use super::*;

/// A client of the world's fake cluster that gives up after one second (so that a late answer
/// is a lost one), with the apply's run timeout and settle window at one second too.
fn impatient(w: &mut World) {
    let cluster = ClusterConfig {
        url: w.applier.clients["local"].url().to_string(),
        savepoint_dir: Some("file:///sp".into()),
        bearer_token_env: None,
        headers_from_env: Default::default(),
        timeout_seconds: Some(1),
    };
    let client = FlinkClient::new("local", &cluster).unwrap();
    w.applier.clients.insert("local".into(), Arc::new(client));
    w.applier.run_timeout = Duration::from_secs(1);
    w.applier.submit_settle = Duration::from_secs(1);
    w.applier.savepoint_timeout = Duration::from_secs(2);
}

/// Issue 9 item 1: Flink stops the job but its answer to the stop is lost. The apply settles
/// the stop from the job's state (FINISHED, with its savepoint), records that savepoint and
/// restores from it; it never stops twice.
#[tokio::test]
async fn a_lost_stop_answer_is_settled_from_the_stopped_job_and_its_savepoint_recorded() {
    let mut w = world().await;
    impatient(&mut w);
    w.fake.answer_late(STOP, Duration::from_secs(3));
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-lost-stop").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let savepoint = outcomes[0].savepoint.clone().expect("the stop's savepoint");
    let requests = w.fake.since(mark);
    assert_eq!(calls(&requests, STOP).len(), 1);
    let runs = calls(&requests, RUN);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].json.as_ref().unwrap()["savepointPath"],
        savepoint.as_str()
    );
    let lineage = w.store.savepoints("orders").await.unwrap();
    let taken = lineage
        .iter()
        .find(|s| s.path == savepoint)
        .expect("in the lineage");
    assert_eq!(taken.flink_job_id, w.old_id.to_string());
    let apply = w.store.apply("apply-lost-stop").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
}

/// Issue 9 item 1: the savepoint status polls go unanswered while the job stops with its
/// savepoint: the savepoint is read back from the stopped job, recorded and restored from.
#[tokio::test]
async fn a_lost_savepoint_status_is_settled_from_the_stopped_job() {
    let mut w = world().await;
    impatient(&mut w);
    w.fake.answer_late(
        "GET /jobs/{jobid}/savepoints/{requestid}",
        Duration::from_secs(3),
    );
    let outcomes = w.applier.apply(&w.plan, "apply-lost-poll").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let savepoint = outcomes[0].savepoint.clone().expect("the stop's savepoint");
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.last_savepoint.as_deref(), Some(savepoint.as_str()));
    assert!(
        w.store
            .savepoints("orders")
            .await
            .unwrap()
            .iter()
            .any(|s| s.path == savepoint)
    );
}

/// Issue 9 item 3: Flink creates the job but answers the run after weir stopped waiting. The
/// apply finds the job by its id instead of failing (and a retry submitting another id).
#[tokio::test]
async fn a_run_answered_late_is_found_by_its_id_and_not_submitted_again() {
    let mut w = world().await;
    impatient(&mut w);
    w.fake.answer_late(RUN, Duration::from_secs(3));
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-late-run").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    assert_eq!(calls(&w.fake.since(mark), RUN).len(), 1);
    assert_eq!(w.fake.jobs_in("RUNNING").len(), 1);
}

/// Issue 9 items 2 and 3: a run whose answer is lost and whose job does not show within the
/// settle window leaves the outcome unknown: the apply says so and stays unfinished with the
/// job id pending; the next apply settles it by that id (the job landed) without a second run.
#[tokio::test]
async fn a_lost_run_stays_pending_and_the_next_apply_settles_it_without_a_second_copy() {
    let mut w = world().await;
    impatient(&mut w);
    w.fake.answer_late(RUN, Duration::from_secs(3));
    // Flink does not list the job yet (its main() is still running, say).
    w.fake.fail(
        "GET /jobs/{jobid}",
        StatusCode::NOT_FOUND,
        "Job not found",
        None,
    );
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-lost-run").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(outcomes[0].unsettled);
    let message = &outcomes[0].message;
    assert!(message.contains("Flink did not answer"), "{message}");
    assert!(message.contains("run `weir apply` again"), "{message}");
    let journal = w.store.journal("apply-lost-run").await.unwrap();
    assert_eq!(journal[1].kind, StepKind::Submit);
    assert_eq!(journal[1].status, JournalStatus::Pending);
    let unfinished = w.store.unfinished_applies().await.unwrap();
    assert!(unfinished.iter().any(|a| a.id == "apply-lost-run"));

    w.fake.heal();
    let plan = w.plan.clone();
    let resumed = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert!(resumed.iter().all(Resumed::ok), "{resumed:?}");
    assert_eq!(calls(&w.fake.since(mark), RUN).len(), 1, "one submission");
    assert_eq!(w.fake.jobs_in("RUNNING").len(), 1, "one copy");
    let apply = w.store.apply("apply-lost-run").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
}

/// Issue 9 item 4: another process started a copy of the definition after the plan was made
/// (two stores against one cluster): the submission is refused instead of making a second copy.
#[tokio::test]
async fn a_copy_started_by_another_process_is_not_doubled() {
    let w = world().await;
    let theirs = plan::submission_identity(&w.new_job, 77).job_id();
    w.fake.insert_jobs([FakeJob {
        id: theirs.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 5_000,
        end_ms: None,
    }]);
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-race").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].message.contains(&theirs.to_string()),
        "{}",
        outcomes[0].message
    );
    assert!(
        calls(&w.fake.since(mark), RUN).is_empty(),
        "nothing submitted"
    );
    assert_eq!(w.fake.jobs_in("RUNNING").len(), 1, "one copy");
}

/// Issue 9 items 1 and 2: the stop's answer is lost and Flink cannot be asked what happened:
/// the apply says the outcome is unknown and stays unfinished; the next apply settles the stop
/// from the stopped job and its savepoint (recorded), without stopping again.
#[tokio::test]
async fn an_unknown_stop_is_settled_by_the_next_apply_from_flinks_state() {
    let mut w = world().await;
    impatient(&mut w);
    w.fake.answer_late(STOP, Duration::from_secs(3));
    w.fake.fail(
        "GET /jobs/{jobid}",
        StatusCode::SERVICE_UNAVAILABLE,
        "JobManager is restarting",
        None,
    );
    let mark = w.fake.mark();
    let outcomes = w
        .applier
        .apply(&w.plan, "apply-unknown-stop")
        .await
        .unwrap();
    assert!(!outcomes[0].ok);
    assert!(outcomes[0].unsettled, "{outcomes:?}");
    let message = &outcomes[0].message;
    assert!(message.contains("the stop of"), "{message}");
    assert!(message.contains("run `weir apply` again"), "{message}");
    let journal = w.store.journal("apply-unknown-stop").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, JournalStatus::Pending);

    w.fake.heal();
    let plan = w.plan.clone();
    let resumed = w.applier.resume(|_| Some(plan.clone())).await.unwrap();
    assert!(resumed.iter().all(Resumed::ok), "{resumed:?}");
    let requests = w.fake.since(mark);
    assert_eq!(calls(&requests, STOP).len(), 1, "stopped once");
    assert_eq!(calls(&requests, RUN).len(), 1);
    let journal = w.store.journal("apply-unknown-stop").await.unwrap();
    let savepoint = match journal[0].result() {
        Some(StepResult::Stopped { savepoint }) => savepoint,
        other => panic!("stop result: {other:?}"),
    };
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.last_savepoint.as_deref(), Some(savepoint.as_str()));
    let apply = w.store.apply("apply-unknown-stop").await.unwrap().unwrap();
    assert_eq!(apply.outcome, Some(ApplyOutcome::Succeeded));
}

/// Issue 9 item 5: a stop-duplicate change stops the extra copy with a savepoint, records that
/// savepoint in the lineage under the extra copy's id, keeps the store's current job and does
/// not make the extra copy's savepoint the definition's state.
#[tokio::test]
async fn a_stop_duplicate_stops_the_extra_copy_and_keeps_the_current_one() {
    let w = world().await;
    let old = old_job();
    let extra = plan::submission_identity(&old, 2).job_id();
    w.fake.insert_jobs([FakeJob {
        id: extra.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 5_000,
        end_ms: None,
    }]);
    let mut observed_extra = fixtures::running(&old, 2, JobState::Running);
    observed_extra.start_time_ms = Some(5_000);
    let history = BTreeMap::from([(
        "orders".to_string(),
        JobHistory {
            cluster: "local".into(),
            current_job_id: Some(w.old_id),
            spec: Some(old.clone()),
            suspended: false,
            last_savepoint: None,
            stopped_by_weir: Default::default(),
            rolled_back: None,
            known_savepoints: Default::default(),
        },
    )]);
    let plan = fixtures::run(
        &fixtures::desired(vec![old.clone()], false),
        &fixtures::observation(vec![
            fixtures::running(&old, 1, JobState::Running),
            observed_extra,
        ]),
        &history,
        &[],
    );
    assert_eq!(plan.changes[0].action, Action::StopDuplicate, "{plan:?}");
    let outcomes = w.applier.apply(&plan, "apply-dedupe").await.unwrap();
    assert!(outcomes[0].ok, "{}", outcomes[0].message);
    let running: Vec<String> = w
        .fake
        .jobs_in("RUNNING")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(running, vec![w.old_id.to_string()]);
    let lineage = w.store.savepoints("orders").await.unwrap();
    assert!(
        lineage.iter().any(|s| s.flink_job_id == extra.to_string()),
        "{lineage:?}"
    );
    let record = w.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.current_job_id, Some(w.old_id.to_string()));
    assert_eq!(
        record.last_savepoint, None,
        "the kept copy's state is the definition's"
    );
}
