//! Planner fixtures of batch jobs (`spec.mode: batch`) and schedules.

use std::collections::BTreeMap;

use super::fixtures::*;
use super::*;
use crate::desired::Schedule;
use crate::spec::JobMode;

fn batch(name: &str) -> DesiredJob {
    let mut d = job(name);
    d.mode = JobMode::Batch;
    d
}

fn scheduled(name: &str) -> DesiredJob {
    let mut d = batch(name);
    d.schedule = Some(Schedule {
        cron: "0 2 * * *".into(),
        time_zone: None,
    });
    d
}

fn plan_one(d: &DesiredJob, observed: Vec<ObservedJob>, h: Option<JobHistory>) -> Plan {
    let history: BTreeMap<String, JobHistory> =
        h.into_iter().map(|h| (d.name.to_string(), h)).collect();
    run(
        &desired(vec![d.clone()], false),
        &observation(observed),
        &history,
        &[],
    )
}

fn only_change(p: &Plan) -> &Change {
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    &p.changes[0]
}

fn submit_without_state(d: &DesiredJob) -> Step {
    Step::Submit {
        parallelism: d.parallelism,
        restore: Restore::None,
    }
}

/// Computed before batch jobs existed (SHA-256 of the canonical JSON of the fixture job):
/// streaming jobs keep their fingerprints, so the job ids weir gave them stay recognised.
#[test]
fn streaming_fingerprints_are_unchanged_by_batch_support() {
    assert_eq!(
        hex::encode(job("a").code_fingerprint()),
        "f49bf7e249785d3cec9542140d9c116fa7cd3c7174797113771e95998592ffcc"
    );
}

#[test]
fn the_mode_is_part_of_a_batch_jobs_fingerprint_but_not_the_schedule() {
    assert_ne!(job("a").code_fingerprint(), batch("a").code_fingerprint());
    assert_eq!(
        batch("a").code_fingerprint(),
        scheduled("a").code_fingerprint()
    );
}

#[test]
fn a_new_batch_job_is_created_without_state() {
    let d = batch("nightly");
    let p = plan_one(&d, vec![], None);
    let c = only_change(&p);
    assert_eq!(c.action, Action::Create);
    assert_eq!(c.steps, vec![submit_without_state(&d), Step::AwaitRunning]);
    assert_eq!(c.restore, Restore::None);
}

#[test]
fn a_finished_batch_job_of_the_current_definition_is_done() {
    let d = batch("nightly");
    let done = running(&d, 1, JobState::Finished);
    let h = history_for(&d, &done);
    let p = plan_one(&d, vec![done], Some(h));
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert!(p.errors.is_empty() && p.warnings.is_empty());
}

#[test]
fn a_finished_streaming_job_is_still_recovered() {
    let d = job("orders");
    let done = running(&d, 1, JobState::Finished);
    let mut h = history_for(&d, &done);
    h.last_savepoint = Some("file:///sp/savepoint-9".into());
    let p = plan_one(&d, vec![done], Some(h));
    assert_eq!(only_change(&p).action, Action::Recover);
}

#[test]
fn a_restart_nonce_bump_runs_a_finished_batch_job_again() {
    let d = batch("nightly");
    let done = running(&d, 1, JobState::Finished);
    let h = history_for(&d, &done);
    let mut bumped = d.clone();
    bumped.restart_nonce = 1;
    let p = plan_one(&bumped, vec![done.clone()], Some(h));
    let c = only_change(&p);
    assert_eq!(c.action, Action::Redeploy);
    assert_eq!(c.current_job.as_ref().map(|j| j.job_id), Some(done.id));
    // Nothing to stop: the finished job is not touched.
    assert_eq!(
        c.steps,
        vec![submit_without_state(&bumped), Step::AwaitRunning]
    );
    assert!(
        c.diff.iter().any(|f| f.field == "restartNonce"),
        "{:?}",
        c.diff
    );
}

#[test]
fn a_failed_batch_job_is_a_recover_without_state() {
    let d = batch("nightly");
    let failed = running(&d, 1, JobState::Failed);
    let h = history_for(&d, &failed);
    let p = plan_one(&d, vec![failed], Some(h));
    let c = only_change(&p);
    assert_eq!(c.action, Action::Recover);
    assert!(c.reason.contains("FAILED"), "{}", c.reason);
    assert_eq!(c.steps, vec![submit_without_state(&d), Step::AwaitRunning]);
}

#[test]
fn a_running_batch_job_is_cancelled_and_resubmitted_on_upgrade() {
    let old = batch("nightly");
    let current = running(&old, 1, JobState::Running);
    let h = history_for(&old, &current);
    let mut new = old.clone();
    new.flink_configuration
        .insert("table.exec.resource.default-parallelism".into(), "4".into());
    let p = plan_one(&new, vec![current.clone()], Some(h));
    let c = only_change(&p);
    assert_eq!(c.action, Action::Redeploy);
    assert_eq!(
        c.steps,
        vec![
            Step::Cancel { job_id: current.id },
            submit_without_state(&new),
            Step::AwaitRunning
        ]
    );
    assert_eq!(c.restore, Restore::None);
}

#[test]
fn a_running_batch_job_of_the_current_definition_is_left_alone() {
    let d = batch("nightly");
    let current = running(&d, 1, JobState::Running);
    let h = history_for(&d, &current);
    assert!(plan_one(&d, vec![current], Some(h)).changes.is_empty());
}

#[test]
fn suspending_a_running_batch_job_cancels_it() {
    let d = batch("nightly");
    let current = running(&d, 1, JobState::Running);
    let h = history_for(&d, &current);
    let mut suspended = d.clone();
    suspended.state = RunState::Suspended;
    let p = plan_one(&suspended, vec![current.clone()], Some(h));
    let c = only_change(&p);
    assert_eq!(c.action, Action::Suspend);
    assert_eq!(c.steps, vec![Step::Cancel { job_id: current.id }]);
}

#[test]
fn a_batch_job_flink_forgot_runs_again_only_for_a_new_definition() {
    let d = batch("nightly");
    let done = running(&d, 1, JobState::Finished);
    let h = history_for(&d, &done);
    // Flink's job store expired the finished job: the store's record says it ran.
    assert!(plan_one(&d, vec![], Some(h.clone())).changes.is_empty());
    let mut changed = d.clone();
    changed.restart_nonce = 7;
    let p = plan_one(&changed, vec![], Some(h));
    assert_eq!(only_change(&p).action, Action::Redeploy);
}

#[test]
fn scheduled_jobs_are_started_by_the_scheduler_not_by_plans() {
    let d = scheduled("nightly");
    assert!(plan_one(&d, vec![], None).changes.is_empty());
    let done = running(&d, 1, JobState::Finished);
    let h = history_for(&d, &done);
    let mut changed = d.clone();
    changed.restart_nonce = 3;
    // A finished run between fire times is neither drift nor a reason to run again.
    assert!(
        plan_one(&changed, vec![done], Some(h.clone()))
            .changes
            .is_empty()
    );
    // A run in progress is left to finish even when the definition changed.
    let current = running(&d, 2, JobState::Running);
    assert!(
        plan_one(&changed, vec![current], Some(h))
            .changes
            .is_empty()
    );
}

#[test]
fn switching_a_running_job_to_batch_is_a_redeploy_that_says_so() {
    let streaming = job("report");
    let current = running(&streaming, 1, JobState::Running);
    let h = history_for(&streaming, &current);
    let mut now_batch = streaming.clone();
    now_batch.mode = JobMode::Batch;
    let p = plan_one(&now_batch, vec![current.clone()], Some(h));
    let c = only_change(&p);
    assert_eq!(c.action, Action::Redeploy);
    assert_eq!(
        c.reason,
        format!(
            "the definition changed while batch job {} runs: it is cancelled and the job runs again from the start (batch jobs have no savepoints)",
            current.id
        )
    );
    let mode = c
        .diff
        .iter()
        .find(|d| d.field == "mode")
        .expect("a mode diff");
    assert_eq!(
        (mode.before.as_deref(), mode.after.as_deref()),
        (None, Some("batch"))
    );
    assert!(
        !c.diff.iter().any(|d| d.field == "flinkConfiguration"),
        "{:?}",
        c.diff
    );
    // The running job is a streaming job with state: stopped with a savepoint, not cancelled.
    assert_eq!(
        c.steps[0],
        Step::StopWithSavepoint {
            job_id: current.id,
            target_dir: now_batch.savepoint_dir.clone()
        }
    );
}

#[test]
fn scheduled_runs_are_counted_as_runs() {
    let summary = Summary {
        run: 1,
        ..Summary::default()
    };
    assert_eq!(summary.total_changes(), 1);
    assert_eq!(
        summary.line(),
        "Plan: 0 to create, 0 to redeploy, 1 to run on schedule, 0 to delete."
    );
    let json = serde_json::to_value(Summary::default()).unwrap();
    assert!(json.get("run").is_none(), "absent when zero: {json}");
    assert_eq!(Action::Run.as_str(), "run");
}
