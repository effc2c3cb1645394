//! Jobs stopped, finished or started twice outside weir.

use super::*;

/// Issue 9 item 1: a job started from savepoint S1 and stopped outside weir with S2 is
/// recovered from S2 (its own, newer state), not from S1 (what the store last recorded).
#[test]
fn job_stopped_outside_weir_recovers_from_its_own_newer_savepoint() {
    let j = job("a");
    let mut stopped = running(&j, 2, JobState::Finished);
    stopped.latest_savepoint = Some("file:///sp/savepoint-2".into());
    // The store last recorded S1: the savepoint this job was started from.
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&j, &stopped))].into();
    let p = run(
        &desired(vec![j.clone()], false),
        &observation(vec![stopped.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Recover);
    assert_eq!(
        c.restore,
        Restore::Path {
            path: "file:///sp/savepoint-2".into()
        }
    );
    assert!(
        c.reason.contains("stopped with a savepoint outside weir"),
        "{}",
        c.reason
    );

    // weir stopped it (a redeploy whose submission failed): said so, and its savepoint wins.
    let mut h = history_for(&j, &stopped);
    h.stopped_by_weir = [(stopped.id, "file:///sp/savepoint-2".to_string())].into();
    let mut lagging = stopped.clone();
    lagging.latest_savepoint = None;
    let p = run(
        &desired(vec![j], false),
        &observation(vec![lagging]),
        &[("a".to_string(), h)].into(),
        &[],
    );
    let c = &p.changes[0];
    assert!(!c.reason.contains("outside weir"), "{}", c.reason);
    assert!(c.reason.contains("weir stopped it"), "{}", c.reason);
    assert_eq!(
        c.restore,
        Restore::Path {
            path: "file:///sp/savepoint-2".into()
        }
    );
}

/// Issue 9 item 5: two active copies of one definition are a change that stops the extra copy
/// with a savepoint, keeping the newest (no store record), never in sync.
#[test]
fn two_running_copies_stop_the_older_one_with_a_savepoint() {
    let j = job("a");
    let first = running(&j, 1, JobState::Running);
    let second = running(&j, 2, JobState::Running);
    let d = desired(vec![j.clone()], false);
    let o = observation(vec![first.clone(), second.clone()]);
    let p = run(&d, &o, &BTreeMap::new(), &[]);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.changes.len(), 1);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::StopDuplicate);
    assert_eq!(c.current_job.as_ref().map(|k| k.job_id), Some(second.id));
    assert_eq!(
        c.steps,
        vec![Step::StopWithSavepoint {
            job_id: first.id,
            target_dir: j.savepoint_dir.clone()
        }]
    );
    assert!(c.desired.is_none(), "nothing is submitted");
    assert!(c.reason.contains("the newest"), "{}", c.reason);
    assert_eq!(p.summary.stop_duplicate, 1);
    assert_eq!(p.summary.total_changes(), 1);
    assert!(p.summary.line().contains("1 extra copy to stop"));
    let rows = crate::status::rows(&d, &o, &BTreeMap::new(), &p);
    assert_eq!(rows[0].sync, "OutOfSync");
}

/// The copy the store names as current is kept even when another copy is newer (someone
/// submitted a second one by hand): the store's job holds the state weir restores.
#[test]
fn two_running_copies_keep_the_one_the_store_names() {
    let j = job("a");
    let first = running(&j, 1, JobState::Running);
    let second = running(&j, 2, JobState::Running);
    let h = [("a".to_string(), history_for(&j, &first))].into();
    let p = run(
        &desired(vec![j.clone()], false),
        &observation(vec![first.clone(), second.clone()]),
        &h,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::StopDuplicate);
    assert_eq!(c.current_job.as_ref().map(|k| k.job_id), Some(first.id));
    assert!(matches!(c.steps[..], [Step::StopWithSavepoint { job_id, .. }] if job_id == second.id));
    assert!(c.reason.contains("records as current"), "{}", c.reason);
}

/// When weir cannot tell which copy is current (no store record, the same start time), the
/// definition is an error marked as drift (so `weir plan` exits 1 and status says `Error`).
#[test]
fn two_copies_started_together_are_an_error_not_in_sync() {
    let j = job("a");
    let first = running(&j, 1, JobState::Running);
    let mut second = running(&j, 2, JobState::Running);
    second.start_time_ms = first.start_time_ms;
    let p = run(
        &desired(vec![j.clone()], false),
        &observation(vec![first.clone(), second.clone()]),
        &BTreeMap::new(),
        &[],
    );
    assert!(p.changes.is_empty());
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = &p.errors[0];
    assert_eq!(e.job.as_deref(), Some("a"));
    assert!(e.message.contains("2 copies"), "{}", e.message);
    assert!(e.message.contains("cannot tell"), "{}", e.message);
    assert!(e.drift, "announced as drift by the daemon");
    assert!(e.message.contains(&first.id.to_string()), "{}", e.message);
    assert!(e.message.contains(&second.id.to_string()), "{}", e.message);
    let rows = crate::status::rows(
        &desired(vec![j], false),
        &observation(vec![first, second]),
        &BTreeMap::new(),
        &p,
    );
    assert_eq!(rows[0].sync, "Error");
}

/// Issue 9 item 4: a job that FINISHED moments ago was stopped with a savepoint; while neither
/// Flink nor the store names it, the definition is not started fresh (a second weir process
/// may have stopped it and be about to submit its successor).
#[test]
fn a_recently_finished_job_without_a_known_savepoint_is_not_started_fresh() {
    let j = job("a");
    let mut stopped = running(&j, 1, JobState::Finished);
    stopped.end_time_ms = Some(1_000_000);
    let d = desired(vec![j.clone()], false);
    let o = observation(vec![stopped.clone()]);
    let at = |now: i64| {
        plan(&PlanInput {
            plan_id: "p1".into(),
            created_at_ms: now,
            desired: &d,
            invalid_files: &[],
            observation: &o,
            history: &BTreeMap::new(),
        })
    };
    let p = at(1_030_000);
    assert!(p.changes.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert!(
        p.errors[0]
            .message
            .contains("refusing to start `a` without its state"),
        "{}",
        p.errors[0].message
    );
    // Long after, the start goes ahead with the no-state warning.
    let p = at(1_000_000 + 11 * 60 * 1000);
    assert!(p.errors.is_empty());
    assert_eq!(p.changes[0].state_risks, vec![StateRisk::NoKnownState]);
    // With the savepoint Flink reports, it recovers from it at once.
    let mut reported = stopped;
    reported.latest_savepoint = Some("file:///sp/savepoint-9".into());
    let o = observation(vec![reported]);
    let p = plan(&PlanInput {
        plan_id: "p1".into(),
        created_at_ms: 1_030_000,
        desired: &d,
        invalid_files: &[],
        observation: &o,
        history: &BTreeMap::new(),
    });
    assert!(p.errors.is_empty());
    assert_eq!(
        p.changes[0].restore,
        Restore::Path {
            path: "file:///sp/savepoint-9".into()
        }
    );
}
