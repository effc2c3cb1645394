//! What the planner does for a job in each state: new, in sync, changed, suspended, failed,
//! deleted, foreign, unreachable.

use super::*;

#[test]
fn new_definition_is_created() {
    let d = desired(vec![job("a")], false);
    let p = run(&d, &observation(vec![]), &BTreeMap::new(), &[]);
    assert_eq!(p.changes.len(), 1);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Create);
    assert_eq!(c.restore, Restore::None);
    assert!(matches!(
        c.steps[0],
        Step::Submit {
            parallelism: 2,
            restore: Restore::None
        }
    ));
    assert_eq!(c.steps[1], Step::AwaitRunning);
    assert!(c.diff.iter().all(|f| f.before.is_none()));
    assert_eq!(
        p.summary.line(),
        "Plan: 1 to create, 0 to redeploy, 0 to delete."
    );
}

#[test]
fn create_uses_initial_savepoint() {
    let mut j = job("a");
    j.initial_savepoint = Some("file:///old/sp".into());
    let p = run(
        &desired(vec![j], false),
        &observation(vec![]),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(
        p.changes[0].restore,
        Restore::Path {
            path: "file:///old/sp".into()
        }
    );
}

#[test]
fn in_sync_job_has_no_change_even_with_empty_store() {
    let j = job("a");
    let obs = observation(vec![running(&j, 7, JobState::Running)]);
    let p = run(&desired(vec![j], false), &obs, &BTreeMap::new(), &[]);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.summary.total_changes(), 0);
}

#[test]
fn changed_args_redeploy_with_savepoint() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    if let Program::Jar { args, .. } = &mut new.program {
        args[1] = "payments".into();
    }
    let hist = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Redeploy);
    assert_eq!(c.reason, "args changed");
    assert_eq!(
        c.steps,
        vec![
            Step::StopWithSavepoint {
                job_id: current.id,
                target_dir: Some("file:///sp".into())
            },
            Step::Submit {
                parallelism: 2,
                restore: Restore::StopSavepoint
            },
            Step::AwaitRunning,
        ]
    );
    assert_eq!(c.diff.len(), 1);
    assert_eq!(c.diff[0].before.as_deref(), Some("--topic\norders"));
    assert_eq!(c.diff[0].after.as_deref(), Some("--topic\npayments"));
}

#[test]
fn redeploy_without_history_still_detected() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.restart_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Redeploy);
    assert!(p.changes[0].reason.contains("no record"));
}

#[test]
fn severity_takes_the_maximum() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.parallelism = 4;
    new.upgrade_mode = UpgradeMode::LastState;
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new.clone()], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Rescale);
    assert_eq!(c.diff[0].field, "parallelism");
    assert_eq!(c.diff[1].field, "upgradeMode");
    assert_eq!(c.steps[0], Step::Cancel { job_id: current.id });
    assert_eq!(c.restore, Restore::LatestCheckpoint);

    new.flink_configuration
        .insert("pipeline.max-parallelism".into(), "128".into());
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Redeploy);
    assert_eq!(p.changes[0].diff[0].field, "flinkConfiguration");
}

#[test]
fn record_only_change_is_not_listed() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.upgrade_mode = UpgradeMode::Stateless;
    let hist = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    assert!(p.changes.is_empty());
}

#[test]
fn suspend_and_resume() {
    let j = job("a");
    let current = running(&j, 1, JobState::Running);
    let mut s = j.clone();
    s.state = RunState::Suspended;
    let p = run(
        &desired(vec![s.clone()], false),
        &observation(vec![current.clone()]),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Suspend);
    assert!(matches!(
        p.changes[0].steps[..],
        [Step::StopWithSavepoint { .. }]
    ));

    // After the suspend: the job FINISHED, the store says weir suspended it.
    let mut stopped = current.clone();
    stopped.state = JobState::Finished;
    let mut h = history_for(&j, &current);
    h.suspended = true;
    h.last_savepoint = Some("file:///sp/savepoint-2".into());
    let hist: BTreeMap<_, _> = [("a".to_string(), h)].into();
    let p = run(
        &desired(vec![s], false),
        &observation(vec![stopped.clone()]),
        &hist,
        &[],
    );
    assert!(
        p.changes.is_empty(),
        "a suspended job that should stay suspended needs nothing"
    );
    let p = run(
        &desired(vec![j], false),
        &observation(vec![stopped]),
        &hist,
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Resume);
    assert_eq!(
        p.changes[0].restore,
        Restore::Path {
            path: "file:///sp/savepoint-2".into()
        }
    );
}

#[test]
fn failed_or_cancelled_jobs_are_recovered_from_the_newest_state() {
    let j = job("a");
    let mut failed = running(&j, 1, JobState::Failed);
    failed.latest_checkpoint = Some("file:///ck/chk-9".into());
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&j, &failed))].into();
    let p = run(
        &desired(vec![j.clone()], false),
        &observation(vec![failed.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Recover);
    assert!(c.reason.contains("FAILED"), "{}", c.reason);
    assert_eq!(
        c.restore,
        Restore::Path {
            path: "file:///ck/chk-9".into()
        }
    );

    let mut cancelled = failed.clone();
    cancelled.state = JobState::Canceled;
    cancelled.latest_checkpoint = None;
    let p = run(
        &desired(vec![j.clone()], false),
        &observation(vec![cancelled]),
        &hist,
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Recover);
    assert!(p.changes[0].reason.contains("CANCELED outside weir"));
    assert_eq!(
        p.changes[0].restore,
        Restore::Path {
            path: "file:///sp/savepoint-1".into()
        }
    );

    // Missing entirely (e.g. the cluster was replaced): recover from what the store knows.
    let p = run(&desired(vec![j], false), &observation(vec![]), &hist, &[]);
    assert_eq!(p.changes[0].action, Action::Recover);
    assert!(p.changes[0].reason.contains("missing"));
}

#[test]
fn recover_without_any_state_warns() {
    let j = job("a");
    let failed = running(&j, 1, JobState::Failed);
    let p = run(
        &desired(vec![j], false),
        &observation(vec![failed]),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(p.changes[0].action, Action::Recover);
    assert!(
        p.changes[0]
            .warnings
            .iter()
            .any(|w| w.contains("without state"))
    );
}

#[test]
fn deleted_definition_is_only_pruned_when_asked_and_known() {
    let j = job("gone");
    let current = running(&j, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("gone".to_string(), history_for(&j, &current))].into();
    let obs = observation(vec![current.clone()]);

    let p = run(&desired(vec![], false), &obs, &hist, &[]);
    assert!(p.changes.is_empty());
    assert_eq!(p.unmanaged[0].weir_job.as_deref(), Some("gone"));
    assert!(p.warnings[0].contains("prune"), "{:?}", p.warnings);

    let p = run(&desired(vec![], true), &obs, &hist, &[]);
    assert_eq!(p.changes[0].action, Action::Delete);
    assert_eq!(p.changes[0].steps[1], Step::Forget);
    assert_eq!(
        p.summary.line(),
        "Plan: 0 to create, 0 to redeploy, 1 to delete."
    );

    // Invalid files: never delete (the job's file may be the broken one).
    let p = run(
        &desired(vec![], true),
        &obs,
        &hist,
        &["jobs/gone.yaml".to_string()],
    );
    assert!(p.changes.is_empty());
    assert!(p.warnings[0].contains("invalid"));

    // Unknown to this store: may belong to another repo.
    let p = run(&desired(vec![], true), &obs, &BTreeMap::new(), &[]);
    assert!(p.changes.is_empty());
    assert!(p.warnings[0].contains("another repo"));
}

#[test]
fn foreign_jobs_are_never_touched() {
    let foreign = ObservedJob {
        id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".parse().unwrap(),
        name: "someone else's".into(),
        state: JobState::Running,
        start_time_ms: Some(1),
        end_time_ms: None,
        identity: None,
        latest_savepoint: None,
        latest_checkpoint: None,
    };
    let p = run(
        &desired(vec![], true),
        &observation(vec![foreign]),
        &BTreeMap::new(),
        &[],
    );
    assert!(p.changes.is_empty());
    assert_eq!(p.unmanaged.len(), 1);
    assert!(p.unmanaged[0].weir_job.is_none());
}

#[test]
fn unreachable_cluster_is_an_error_for_its_jobs() {
    let obs = Observation {
        clusters: [(
            "local".to_string(),
            ClusterObservation::Unreachable {
                url: "http://127.0.0.1:1".into(),
                error: "connection refused".into(),
            },
        )]
        .into(),
    };
    let p = run(&desired(vec![job("a")], false), &obs, &BTreeMap::new(), &[]);
    assert!(p.changes.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert!(p.errors[0].message.contains("http://127.0.0.1:1"));
    assert!(p.errors[0].message.contains("connection refused"));
    assert!(p.summary.line().contains("1 error"));
}
