//! Unit tests of the executor against the fake Flink (`src/testing/fake_flink.rs`) and a temp
//! SQLite store: the safety invariants of a redeploy, resume and failures, in milliseconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;

use super::*;
use crate::desired::{DesiredJob, Program};
use crate::flink::JobState;
use crate::plan::fixtures;
use crate::plan::{self, JobHistory, Restore};
use crate::spec::{ClusterConfig, UpgradeMode};
use crate::store::{
    ApplyOutcome, NewJournalEntry, PlanRecord, StepDetail, StepResult, StopDetail, SubmitDetail,
};
use crate::testing::fake_flink::{Fake, FakeJob, Request};

const STOP: &str = "POST /jobs/{jobid}/stop";
const RUN: &str = "POST /jars/{jarid}/run";

/// A fake cluster, a store in a temp dir, and a redeploy of `orders` through a savepoint.
struct World {
    fake: Arc<Fake>,
    store: Store,
    applier: Applier,
    plan: Plan,
    old_id: JobId,
    new_job: DesiredJob,
    progress: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// The running definition: the desired one with other program arguments.
fn old_job() -> DesiredJob {
    let mut job = fixtures::job("orders");
    if let Program::Jar { args, .. } = &mut job.program {
        args.push("--old".into());
    }
    job
}

async fn world() -> World {
    world_with(UpgradeMode::Savepoint).await
}

/// The world of a redeploy with `upgrade` as the job's upgrade mode.
async fn world_with(upgrade: UpgradeMode) -> World {
    let (fake, url) = Fake::serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("weir.db")).await.unwrap();
    let (mut old, mut new) = (old_job(), fixtures::job("orders"));
    old.upgrade_mode = upgrade;
    new.upgrade_mode = upgrade;
    let old_id = plan::submission_identity(&old, 1).job_id();
    fake.insert_jobs([FakeJob {
        id: old_id.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 1_000,
        end_ms: None,
    }]);
    // The jar is on the cluster already (as an earlier apply left it): nothing to upload.
    let jar = new.jar();
    fake.insert_jar(&format!("weir-{}-{}", &jar.sha256[..16], jar.file_name()));

    let observed = fixtures::running(&old, 1, JobState::Running);
    let history = BTreeMap::from([(
        "orders".to_string(),
        JobHistory {
            cluster: "local".into(),
            current_job_id: Some(old_id),
            spec: Some(old.clone()),
            suspended: false,
            last_savepoint: None,
            stopped_by_weir: Default::default(),
        },
    )]);
    let desired = fixtures::desired(vec![new.clone()], false);
    let plan = fixtures::run(
        &desired,
        &fixtures::observation(vec![observed]),
        &history,
        &[],
    );
    store
        .insert_plan(&PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger: Trigger::Cli,
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(&plan).unwrap(),
            job_names: vec!["orders".into()],
        })
        .await
        .unwrap();

    let cluster = ClusterConfig {
        url,
        savepoint_dir: Some("file:///sp".into()),
        bearer_token_env: None,
        headers_from_env: Default::default(),
        timeout_seconds: Some(5),
    };
    let client = Arc::new(FlinkClient::new("local", &cluster).unwrap());
    let progress = Arc::new(Mutex::new(Vec::new()));
    let said = progress.clone();
    let applier = Applier {
        store: store.clone(),
        clients: BTreeMap::from([("local".to_string(), client)]),
        source: Arc::new(RepoSource::work_tree(dir.path()).unwrap()),
        concurrency: 2,
        slots: None,
        savepoint_timeout: Duration::from_secs(5),
        start_timeout: Duration::from_secs(5),
        run_timeout: Duration::from_secs(5),
        submit_settle: Duration::from_secs(5),
        progress: Arc::new(move |m: &str| said.lock().unwrap().push(m.to_string())),
        on_change_done: None,
        jar_ids: Default::default(),
        overviews: Default::default(),
        trigger: Trigger::Cli,
        artifacts: crate::artifact::ArtifactSettings {
            policy: Default::default(),
            cache: dir.path().join("artifacts"),
        },
    };
    World {
        fake,
        store,
        applier,
        plan,
        old_id,
        new_job: new,
        progress,
        _dir: dir,
    }
}

fn calls<'a>(requests: &'a [Request], endpoint: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.endpoint == endpoint).collect()
}

impl World {
    /// Starts an apply of the plan as `weir apply` would, without running it.
    async fn begin(&self, apply_id: &str) {
        self.store
            .insert_apply(&NewApply {
                id: apply_id.into(),
                plan_id: self.plan.id.clone(),
                started_at_ms: 2_000,
                revision: self.plan.revision.to_string(),
                trigger: Trigger::Cli,
                job_names: vec!["orders".into()],
            })
            .await
            .unwrap();
    }

    async fn journal(&self, apply_id: &str, seq: u32, detail: StepDetail) -> i64 {
        self.store
            .journal_intent(&NewJournalEntry {
                apply_id: apply_id.into(),
                job: "orders".into(),
                seq,
                detail,
                at_ms: 2_100,
            })
            .await
            .unwrap()
    }

    /// An apply whose stop completed and whose submission (with the id chosen from `nonce`) was
    /// journaled, without its outcome: what a crash right after sending it leaves. Returns the
    /// submission's job id and the stop's savepoint.
    async fn interrupted_submit(&self, apply_id: &str, nonce: u32) -> (JobId, String) {
        let savepoint = format!("file:///sp/savepoint-{apply_id}");
        let new_id = plan::submission_identity(&self.new_job, nonce).job_id();
        self.begin(apply_id).await;
        let stop = StepDetail::StopWithSavepoint(StopDetail {
            job_id: self.old_id,
            request_id: Some("r-1".into()),
            target_dir: Some("file:///sp".into()),
        });
        let stop = self.journal(apply_id, 0, stop).await;
        let stopped = StepResult::Stopped {
            savepoint: savepoint.clone(),
        };
        self.store
            .journal_result(stop, &stopped, 2_200)
            .await
            .unwrap();
        let submit = StepDetail::Submit(SubmitDetail {
            jar_id: None,
            job_id: new_id,
            parallelism: Some(2),
            savepoint_path: Some(savepoint.clone()),
        });
        self.journal(apply_id, 1, submit).await;
        (new_id, savepoint)
    }
}

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

/// The lease markers (`weir-lock-…`) on the fake cluster, by file name.
async fn lease_markers(w: &World) -> Vec<String> {
    let jars = w.applier.clients["local"].list_jars().await.unwrap();
    jars.into_iter()
        .map(|j| j.name)
        .filter(|n| n.starts_with("weir-lock-"))
        .collect()
}

fn orders_hash() -> String {
    format!("{:016x}", crate::identity::name_hash("orders"))
}

/// Issue 9 item 4: two appliers (two stores, two CI jobs) race on one job: exactly one goes
/// ahead, the other refuses before any side effect, and no lease is left behind.
#[tokio::test]
async fn two_appliers_racing_on_one_job_exactly_one_proceeds() {
    let w = world().await;
    // The stop is slow to answer, so the applies overlap whatever order they run in.
    w.fake.answer_late(STOP, Duration::from_millis(500));
    let mark = w.fake.mark();
    let (a, b) = tokio::join!(
        w.applier.apply(&w.plan, "apply-a"),
        w.applier.apply(&w.plan, "apply-b")
    );
    let outcomes = [a.unwrap().remove(0), b.unwrap().remove(0)];
    let ok: Vec<_> = outcomes.iter().filter(|o| o.ok).collect();
    assert_eq!(ok.len(), 1, "{outcomes:?}");
    let refused = outcomes.iter().find(|o| !o.ok).unwrap();
    assert!(
        refused.message.contains("another weir apply"),
        "{}",
        refused.message
    );
    let requests = w.fake.since(mark);
    assert_eq!(calls(&requests, STOP).len(), 1);
    assert_eq!(calls(&requests, RUN).len(), 1);
    assert_eq!(w.fake.jobs_in("RUNNING").len(), 1);
    assert!(lease_markers(&w).await.is_empty());
}

/// A lease another process holds refuses the change before any side effect, naming the holder;
/// this applier's own marker is removed again.
#[tokio::test]
async fn a_lease_held_by_another_apply_refuses_before_any_side_effect() {
    let w = world().await;
    let theirs = lease::marker_name(&orders_hash(), crate::clock::now_ms() + 600_000, "other01");
    w.fake.insert_jar(&theirs);
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-held").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].message.contains("other01"),
        "{}",
        outcomes[0].message
    );
    assert!(calls(&w.fake.since(mark), STOP).is_empty());
    assert_eq!(lease_markers(&w).await, vec![theirs]);
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}

/// An expired lease (a crashed holder) is ignored and deleted; a lease of another job does not
/// block; the lease is released when the change ends.
#[tokio::test]
async fn an_expired_lease_is_ignored_and_another_jobs_lease_does_not_block() {
    let w = world().await;
    w.fake
        .insert_jar(&lease::marker_name(&orders_hash(), 1_000, "crashed01"));
    let other_job = lease::marker_name("00000000000000ff", crate::clock::now_ms() + 600_000, "x1");
    w.fake.insert_jar(&other_job);
    let outcomes = w.applier.apply(&w.plan, "apply-expired").await.unwrap();
    assert!(outcomes[0].ok, "{}", outcomes[0].message);
    assert_eq!(lease_markers(&w).await, vec![other_job]);
}

/// An unexpired lease of an apply of this store that has finished (its process was killed and
/// the resume finished it) is taken over: the store's next apply is not blocked by its own past.
#[tokio::test]
async fn a_lease_of_a_finished_apply_of_this_store_is_taken_over() {
    let w = world().await;
    w.begin("apply-killed").await;
    w.store
        .finish_apply("apply-killed", ApplyOutcome::Interrupted, None, 3_000)
        .await
        .unwrap();
    let left = lease::marker_name(
        &orders_hash(),
        crate::clock::now_ms() + 600_000,
        "apply-killed",
    );
    w.fake.insert_jar(&left);
    let outcomes = w.applier.apply(&w.plan, "apply-next").await.unwrap();
    assert!(outcomes[0].ok, "{}", outcomes[0].message);
    assert!(lease_markers(&w).await.is_empty());
}

/// The lease is released when the change fails too.
#[tokio::test]
async fn the_lease_is_released_when_the_change_fails() {
    let w = world().await;
    w.fake.fail(
        STOP,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no savepoint",
        None,
    );
    let outcomes = w.applier.apply(&w.plan, "apply-fails").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(lease_markers(&w).await.is_empty());
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

/// A definition whose `${env:…}` secret is not set where the apply runs (a plan made where it
/// was): nothing is touched, the running job keeps running.
#[tokio::test]
async fn an_unset_secret_touches_nothing() {
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:WEIR_TEST_NEVER_SET_IN_APPLY}".into());
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s1").await.unwrap();
    assert!(!outcomes[0].ok, "{outcomes:?}");
    assert!(
        outcomes[0].message.contains("WEIR_TEST_NEVER_SET_IN_APPLY"),
        "{outcomes:?}"
    );
    let requests = w.fake.since(mark);
    assert!(calls(&requests, STOP).is_empty() && calls(&requests, RUN).is_empty());
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}

/// A secret's value reaches Flink's run request, and neither the journal nor the store's
/// records of the apply.
#[tokio::test]
async fn a_secret_reaches_the_run_request_only() {
    let value = std::env::var("PATH").expect("PATH is set in tests");
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:PATH}".into());
    let planned = crate::secrets::digest("PATH", &value);
    desired.secrets.insert("PATH".into(), Some(planned));
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s2").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let requests = w.fake.since(mark);
    let run = calls(&requests, RUN)[0].json.clone().unwrap();
    assert_eq!(run["flinkConfiguration"]["sasl"], value.as_str());
    let journal = format!("{:?}", w.store.journal("apply-s2").await.unwrap());
    assert!(!journal.contains(&value), "{journal}");
    let progress = w.progress.lock().unwrap().join("\n");
    assert!(!progress.contains(&value), "{progress}");
}

/// A secret rotated between the plan and the apply: the plan's job ids carry the old digest, so
/// nothing is touched and the apply says to plan again.
#[tokio::test]
async fn a_secret_changed_since_the_plan_touches_nothing() {
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:PATH}".into());
    desired.secrets.insert(
        "PATH".into(),
        Some(crate::secrets::digest("PATH", "an older value")),
    );
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s3").await.unwrap();
    assert!(!outcomes[0].ok, "{outcomes:?}");
    assert!(
        outcomes[0].message.contains("has changed since the plan"),
        "{outcomes:?}"
    );
    let requests = w.fake.since(mark);
    assert!(calls(&requests, STOP).is_empty() && calls(&requests, RUN).is_empty());
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}
