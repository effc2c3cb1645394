//! Determinism, secrets kept out of diffs, the savepoint a resume uses, and the state risks a plan
//! names.

use super::*;

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
