use super::fixtures::*;
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

#[test]
fn plan_is_deterministic_and_fingerprinted() {
    let j = job("a");
    let obs = observation(vec![running(&j, 1, JobState::Running)]);
    let d = desired(vec![job("b"), j], false);
    let a = serde_json::to_string(&run(&d, &obs, &BTreeMap::new(), &[])).unwrap();
    let b = serde_json::to_string(&run(&d, &obs, &BTreeMap::new(), &[])).unwrap();
    assert_eq!(a, b);
    let mut obs2 = obs.clone();
    if let Some(ClusterObservation::Reachable { jobs, .. }) = obs2.clusters.get_mut("local") {
        jobs[0].state = JobState::Failed;
    }
    let h = BTreeMap::new();
    assert_ne!(
        observed_fingerprint(&d, &h, &obs),
        observed_fingerprint(&d, &h, &obs2)
    );
    // A weir job of another repo on the same cluster does not make the plan stale.
    let mut obs3 = obs.clone();
    if let Some(ClusterObservation::Reachable { jobs, .. }) = obs3.clusters.get_mut("local") {
        jobs.push(running(&job("someone-elses"), 9, JobState::Running));
    }
    assert_eq!(
        observed_fingerprint(&d, &h, &obs),
        observed_fingerprint(&d, &h, &obs3)
    );
}

#[test]
fn secrets_never_reach_the_diff() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.flink_configuration
        .insert("s3.secret-key".into(), "TOPSECRET".into());
    let hist = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let json = serde_json::to_string(&p.changes[0].diff).unwrap();
    assert!(!json.contains("TOPSECRET"));
    assert!(json.contains("<redacted>"));
}

#[test]
fn finished_job_resumes_from_its_savepoint_not_a_discarded_checkpoint() {
    let j = job("a");
    let mut stopped = running(&j, 1, JobState::Finished);
    // Flink's checkpoint statistics lag: right after a stop they may still name the last
    // (now deleted) checkpoint and no savepoint.
    stopped.latest_checkpoint = Some("file:///ck/chk-8".into());
    let mut h = history_for(&j, &stopped);
    h.suspended = true;
    h.last_savepoint = Some("file:///sp/savepoint-final".into());
    let hist: BTreeMap<_, _> = [("a".to_string(), h)].into();
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
            path: "file:///sp/savepoint-final".into()
        }
    );
}

/// A running job redeployed with `upgradeMode` stateless and the other ways a change may lose
/// state are flagged as data (`state_risks`), for previews.
#[test]
fn state_risks_are_flagged() {
    let risks = |d: DesiredJob, observed: Vec<ObservedJob>, hist: BTreeMap<String, JobHistory>| {
        let p = run(&desired(vec![d], false), &observation(observed), &hist, &[]);
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        p.changes[0].clone()
    };
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let hist: BTreeMap<String, JobHistory> =
        [("a".to_string(), history_for(&old, &current))].into();

    // A savepoint redeploy: no risk.
    let mut new = old.clone();
    new.restart_nonce = 1;
    let c = risks(new.clone(), vec![current.clone()], hist.clone());
    assert_eq!(c.action, Action::Redeploy);
    assert!(c.state_risks.is_empty());

    // Stateless redeploy and rescale of a running job drop its state.
    let mut stateless = new.clone();
    stateless.upgrade_mode = UpgradeMode::Stateless;
    let c = risks(stateless.clone(), vec![current.clone()], hist.clone());
    assert_eq!(c.state_risks, vec![StateRisk::StatelessDropsState]);
    assert!(matches!(c.steps[0], Step::Cancel { .. }));
    let mut rescale = old.clone();
    rescale.upgrade_mode = UpgradeMode::Stateless;
    rescale.parallelism = 4;
    let c = risks(rescale, vec![current.clone()], hist.clone());
    assert_eq!(c.action, Action::Rescale);
    assert_eq!(c.state_risks, vec![StateRisk::StatelessDropsState]);

    // allowNonRestoredState while restoring.
    let mut lax = new.clone();
    lax.allow_non_restored_state = true;
    let c = risks(lax.clone(), vec![current.clone()], hist.clone());
    assert_eq!(c.state_risks, vec![StateRisk::NonRestoredStateAllowed]);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("allowNonRestoredState"))
    );

    // Creates: nothing to lose, unless an initial savepoint is restored non-strictly.
    let mut fresh = job("b");
    fresh.upgrade_mode = UpgradeMode::Stateless;
    fresh.allow_non_restored_state = true;
    let c = risks(fresh.clone(), vec![], BTreeMap::new());
    assert_eq!(c.action, Action::Create);
    assert!(c.state_risks.is_empty());
    let mut seeded = job("b");
    seeded.allow_non_restored_state = true;
    seeded.initial_savepoint = Some("file:///sp/seed".into());
    let c = risks(seeded, vec![], BTreeMap::new());
    assert_eq!(c.state_risks, vec![StateRisk::NonRestoredStateAllowed]);

    // Recover: stateless ignores a known checkpoint; without one there is nothing to drop.
    let mut failed = running(&old, 1, JobState::Failed);
    failed.latest_checkpoint = Some("file:///ck/chk-3".into());
    let mut recover = old.clone();
    recover.upgrade_mode = UpgradeMode::Stateless;
    let c = risks(recover.clone(), vec![failed.clone()], BTreeMap::new());
    assert_eq!(c.action, Action::Recover);
    assert_eq!(c.restore, Restore::None);
    assert_eq!(c.state_risks, vec![StateRisk::StatelessDropsState]);
    let bare = running(&old, 1, JobState::Failed);
    let c = risks(recover, vec![bare.clone()], BTreeMap::new());
    assert!(c.state_risks.is_empty());
    // ... and in savepoint mode, no known state at all is a risk of its own.
    let c = risks(old.clone(), vec![bare], BTreeMap::new());
    assert_eq!(c.state_risks, vec![StateRisk::NoKnownState]);

    // A stateless suspend cancels the job: no savepoint to resume from.
    let mut pause = old.clone();
    pause.upgrade_mode = UpgradeMode::Stateless;
    pause.state = RunState::Suspended;
    let c = risks(pause, vec![current.clone()], hist.clone());
    assert_eq!(c.action, Action::Suspend);
    assert!(matches!(c.steps[..], [Step::Cancel { .. }]));
    assert_eq!(c.state_risks, vec![StateRisk::StatelessDropsState]);
    assert!(c.warnings.iter().any(|w| w.contains("without a savepoint")));
}

#[test]
fn stateless_delete_says_it_cancels() {
    let mut j = job("gone");
    j.upgrade_mode = UpgradeMode::Stateless;
    let current = running(&j, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("gone".to_string(), history_for(&j, &current))].into();
    let p = run(
        &desired(vec![], true),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Delete);
    assert!(matches!(c.steps[0], Step::Cancel { .. }));
    assert!(
        c.warnings[0].contains("no final savepoint"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn plans_saved_without_state_risks_still_load() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.upgrade_mode = UpgradeMode::Stateless;
    new.restart_nonce = 1;
    let hist = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let mut value = serde_json::to_value(&p).unwrap();
    assert_eq!(
        value["changes"][0]["stateRisks"],
        serde_json::json!(["stateless-drops-state"])
    );
    value["changes"][0]
        .as_object_mut()
        .unwrap()
        .remove("stateRisks");
    let back: Plan = serde_json::from_value(value).unwrap();
    assert!(back.changes[0].state_risks.is_empty());
}

#[test]
fn jar_urls_show_no_query_string() {
    let mut j = job("a");
    if let Program::Jar { jar, .. } = &mut j.program {
        jar.location = crate::desired::JarLocation::Url {
            url: "https://bucket.s3.amazonaws.com/jobs/app-1.2.jar?X-Amz-Signature=SIG/NATURE&X-Amz-Credential=CRED#frag".into(),
        };
    }
    let p = run(
        &desired(vec![j], false),
        &observation(vec![]),
        &BTreeMap::new(),
        &[],
    );
    let jar = p.changes[0]
        .diff
        .iter()
        .find(|d| d.field == "jar")
        .and_then(|d| d.after.clone())
        .unwrap();
    assert_eq!(jar, format!("app-1.2.jar (sha256 {})", &"ab".repeat(6)));
}

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

#[test]
fn a_dependency_change_is_a_redeploy_whose_diff_names_it() {
    use crate::desired::{Dependency, DependencySource};
    let dep = |version: &str, sha: Option<String>| Dependency {
        source: DependencySource::Maven {
            coordinate: crate::artifact::maven::Coordinate::parse(&format!(
                "org.example:udfs:{version}"
            ))
            .unwrap(),
            repositories: Vec::new(),
        },
        sha256: sha,
        origin: "jobs/a.yaml:9:7".into(),
    };
    let plain = job("a");
    let mut before = job("a");
    before.dependencies = vec![dep("1.0", None)];
    let mut after = job("a");
    after.dependencies = vec![dep("1.1", Some("ab".repeat(32)))];
    let diffs = field_diffs(&before, &after);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!(diffs[0].field, "dependencies");
    assert_eq!(diffs[0].severity, Severity::Redeploy);
    assert_eq!(diffs[0].before.as_deref(), Some("org.example:udfs:1.0"));
    assert_eq!(
        diffs[0].after.as_deref(),
        Some("org.example:udfs:1.1 (sha256 abababababab)")
    );
    // Adding the first dependency shows it; jobs without any have no such field.
    let diffs = field_diffs(&plain, &before);
    assert_eq!(diffs[0].field, "dependencies");
    assert_eq!(diffs[0].before, None);
    assert!(field_diffs(&plain, &plain).is_empty());
}

#[test]
fn an_unset_secret_is_an_error_of_its_job_and_touches_nothing() {
    let old = job("a");
    let mut j = old.clone();
    j.flink_configuration
        .insert("sasl".into(), "password=${env:KAFKA_PASSWORD}".into());
    j.secrets.insert("KAFKA_PASSWORD".into(), None);
    let current = running(&old, 1, JobState::Running);
    let h = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![j], true),
        &observation(vec![current]),
        &h,
        &[],
    );
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert!(p.unmanaged.is_empty() && p.warnings.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].job.as_deref(), Some("a"));
    assert!(
        p.errors[0]
            .message
            .contains("secret `${env:KAFKA_PASSWORD}` is not set"),
        "{}",
        p.errors[0].message
    );
}

#[test]
fn a_rotated_secret_is_a_redeploy_that_names_it_only() {
    let mut old = job("a");
    old.flink_configuration
        .insert("sasl".into(), "password=${env:KAFKA_PASSWORD}".into());
    old.secrets
        .insert("KAFKA_PASSWORD".into(), Some("1111".repeat(8)));
    let mut new = old.clone();
    new.secrets
        .insert("KAFKA_PASSWORD".into(), Some("2222".repeat(8)));
    let current = running(&old, 1, JobState::Running);
    let h = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &h,
        &[],
    );
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Redeploy);
    let diff = &p.changes[0].diff;
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0].field, "secret KAFKA_PASSWORD");
    assert_eq!(
        diff[0].after.as_deref(),
        Some("${env:KAFKA_PASSWORD} (changed)")
    );
}

#[test]
fn jobs_of_another_environment_on_the_cluster_are_not_foreign() {
    let mut d = desired(vec![job("a")], true);
    d.environment = Some("prod".into());
    for e in ["staging", "prod"] {
        d.config.environments.insert(e.into(), Default::default());
    }
    let mut other = running(&job("a"), 7, JobState::Running);
    let mut ident = other.identity.unwrap();
    ident.name_hash = crate::identity::name_hash_in(Some("staging"), "a");
    other.identity = Some(ident);
    other.id = ident.job_id();
    let p = run(&d, &observation(vec![other.clone()]), &BTreeMap::new(), &[]);
    assert!(p.unmanaged.is_empty(), "{:?}", p.unmanaged);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Create);
    // Without environments the same job is someone else's (left alone, listed).
    let plain = desired(vec![job("b")], true);
    let p = run(&plain, &observation(vec![other]), &BTreeMap::new(), &[]);
    assert_eq!(p.unmanaged.len(), 1);
}

/// Invariant 5: a definition without `${env:…}` secrets keeps the fingerprint (and so the job
/// id) of the versions before secrets existed: the canonical JSON as they wrote it.
#[test]
fn fingerprints_without_secrets_are_unchanged() {
    use sha2::Digest;
    let j = job("a");
    let before_secrets = serde_json::json!({
        "jarSha256": "ab".repeat(32),
        "entryClass": "com.acme.App",
        "args": ["--topic", "orders"],
        "sql": null,
        "flinkConfiguration": {"execution.checkpointing.interval": "10s"},
        "restartNonce": 0,
    });
    let expected: [u8; 32] = sha2::Sha256::digest(before_secrets.to_string().as_bytes()).into();
    assert_eq!(j.code_fingerprint(), expected);
    let mut with_secret = j.clone();
    with_secret
        .secrets
        .insert("PW".into(), Some("00".repeat(16)));
    assert_ne!(with_secret.code_fingerprint(), expected);
}

/// Issue 12: bumping `redeployNonce` with `restoreFrom` redeploys from that savepoint, loudly,
/// after saving the current state; the same restoreFrom without a bump changes nothing.
#[test]
fn a_bumped_redeploy_nonce_restores_the_chosen_savepoint() {
    let mut old = job("a");
    old.lifecycle.restore_from = Some("file:///sp/savepoint-old".into());
    let current = running(&old, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![old.clone()], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    assert!(p.changes.is_empty(), "restoreFrom alone does nothing");

    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Redeploy);
    let chosen = Restore::Path {
        path: "file:///sp/savepoint-old".into(),
    };
    assert_eq!(c.restore, chosen);
    assert!(
        matches!(c.steps[0], Step::StopWithSavepoint { .. }),
        "{:?}",
        c.steps
    );
    assert_eq!(
        c.steps[1],
        Step::Submit {
            parallelism: 2,
            restore: chosen
        }
    );
    assert!(
        c.warnings[0].starts_with("REDEPLOY FROM A CHOSEN SAVEPOINT"),
        "{:?}",
        c.warnings
    );
    assert!(
        c.reason.contains("savepoint.redeployNonce changed"),
        "{}",
        c.reason
    );
    assert!(c.warnings[1].starts_with("weir has no record of file:///sp/savepoint-old"));

    // A savepoint of the lineage is not warned about.
    let mut known = hist.clone();
    known
        .get_mut("a")
        .unwrap()
        .known_savepoints
        .insert("file:///sp/savepoint-old".into());
    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &known,
        &[],
    );
    assert!(
        !p.changes[0]
            .warnings
            .iter()
            .any(|w| w.contains("no record"))
    );
}

/// Invariant 5: a job without the new fields keeps its fingerprint.
#[test]
fn fingerprints_of_jobs_without_a_redeploy_nonce_do_not_change() {
    let plain = job("a");
    let mut with_from = plain.clone();
    with_from.lifecycle.restore_from = Some("file:///sp/x".into());
    with_from.lifecycle.periodic_ms = Some(60_000);
    assert_eq!(plain.code_fingerprint(), with_from.code_fingerprint());
    let mut bumped = with_from.clone();
    bumped.lifecycle.redeploy_nonce = 1;
    assert_ne!(plain.code_fingerprint(), bumped.code_fingerprint());
    // The canonical form of a job without it is what earlier versions hashed.
    let canonical = serde_json::json!({
        "jarSha256": plain.jar().sha256,
        "entryClass": plain.entry_class(),
        "args": match &plain.program { crate::desired::Program::Jar { args, .. } => args.clone(), _ => vec![] },
        "sql": Option::<String>::None,
        "flinkConfiguration": plain.flink_configuration,
        "restartNonce": plain.restart_nonce,
    });
    let old: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        canonical.to_string().as_bytes(),
    ))
    .into();
    assert_eq!(plain.code_fingerprint(), old);
}

/// A stateless redeploy from a chosen savepoint restarts with that state: the plan does not also
/// say it restarts without state.
#[test]
fn a_stateless_redeploy_from_a_chosen_savepoint_is_not_called_stateless() {
    let mut old = job("a");
    old.upgrade_mode = UpgradeMode::Stateless;
    old.lifecycle.restore_from = Some("file:///sp/chosen".into());
    let current = running(&old, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&old, &current))].into();
    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(
        c.restore,
        Restore::Path {
            path: "file:///sp/chosen".into()
        }
    );
    assert!(
        c.warnings[0].contains("cancelled without a savepoint"),
        "{:?}",
        c.warnings
    );
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("restarts without its state")),
        "{:?}",
        c.warnings
    );
}
