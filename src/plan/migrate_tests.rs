//! The planner's `migrate` (a running job whose `spec.cluster` changed) and its note of a
//! change that an earlier apply rolled back.

use super::fixtures::*;
use super::*;

/// `local` (Flink `local_version`) and `old` (2.3.0) observed, with `on_old` running on `old`.
fn two_clusters(on_old: Vec<ObservedJob>, local_version: &str) -> Observation {
    let mut o = observation(vec![]);
    if let Some(ClusterObservation::Reachable { flink_version, .. }) = o.clusters.get_mut("local") {
        *flink_version = Some(local_version.into());
    }
    o.clusters.insert(
        "old".into(),
        ClusterObservation::Reachable {
            url: "http://127.0.0.1:9081".into(),
            flink_version: Some("2.3.0".into()),
            jobs: on_old,
        },
    );
    o
}

/// A job that ran on `old` and is now defined on `local`: its history and running job.
fn moved(name: &str) -> (DesiredJob, ObservedJob, BTreeMap<String, JobHistory>) {
    let mut was = job(name);
    was.cluster = "old".into();
    let current = running(&was, 1, JobState::Running);
    let history = BTreeMap::from([(name.to_string(), history_for(&was, &current))]);
    (job(name), current, history)
}

#[test]
fn a_running_job_whose_cluster_changed_is_migrated_in_one_change() {
    let (now, current, history) = moved("a");
    let obs = two_clusters(vec![current.clone()], "2.3.0");
    // With prune on, the job on the old cluster must not also be deleted.
    let p = run(&desired(vec![now], true), &obs, &history, &[]);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Migrate);
    assert_eq!(
        (c.from_cluster.as_deref(), c.cluster.as_str()),
        (Some("old"), "local")
    );
    assert_eq!(c.current_job.as_ref().unwrap().job_id, current.id);
    assert_eq!(
        c.steps,
        [
            Step::StopWithSavepoint {
                job_id: current.id,
                target_dir: Some("file:///sp".into())
            },
            Step::Submit {
                parallelism: 2,
                restore: Restore::StopSavepoint
            },
            Step::AwaitRunning
        ]
    );
    assert_eq!(c.step_cluster(&c.steps[0]), "old");
    assert_eq!(c.step_cluster(&c.steps[1]), "local");
    assert_eq!(c.diff[0].field, "cluster");
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["action"], "migrate");
    assert_eq!(json["fromCluster"], "old");
    assert_eq!(json["cluster"], "local");
    assert_eq!(
        p.summary.line(),
        "Plan: 0 to create, 0 to redeploy, 1 to migrate, 0 to delete."
    );
    assert!(
        !c.warnings.iter().any(|w| w.contains("Flink versions")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_migrate_across_flink_versions_says_so() {
    let (now, current, history) = moved("a");
    let obs = two_clusters(vec![current], "1.20.5");
    let p = run(&desired(vec![now], false), &obs, &history, &[]);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Migrate);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("across Flink versions (2.3.0 on `old` → 1.20.5 on `local`)")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_migrate_is_an_error_while_the_old_cluster_cannot_be_observed() {
    let (now, _, history) = moved("a");
    let mut obs = observation(vec![]);
    obs.clusters.insert(
        "old".into(),
        ClusterObservation::Unreachable {
            url: "http://127.0.0.1:9081".into(),
            error: "connection refused".into(),
        },
    );
    let p = run(&desired(vec![now], false), &obs, &history, &[]);
    assert!(p.changes.is_empty(), "never a second copy: {:?}", p.changes);
    assert_eq!(p.errors.len(), 1);
    assert!(
        p.errors[0]
            .message
            .contains("cannot move `a` from cluster `old`")
    );
}

#[test]
fn a_job_stopped_on_its_old_cluster_is_started_on_the_new_one_not_migrated() {
    let (now, current, history) = moved("a");
    let mut finished = current;
    finished.state = JobState::Finished;
    let obs = two_clusters(vec![finished], "2.3.0");
    let p = run(&desired(vec![now], false), &obs, &history, &[]);
    assert_ne!(p.changes[0].action, Action::Migrate);
    assert!(p.changes[0].from_cluster.is_none());
}

#[test]
fn a_change_an_apply_rolled_back_stays_pending_and_says_so() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.restart_nonce = 1;
    let mut h = history_for(&old, &current);
    h.rolled_back = Some(RolledBack {
        fingerprint: hex::encode(new.code_fingerprint()),
        parallelism: new.parallelism,
        reason: "job 1 was FAILED within the health window".into(),
        apply_id: "apply-7".into(),
    });
    let history = BTreeMap::from([("a".to_string(), h)]);
    let obs = observation(vec![current.clone()]);
    let p = run(&desired(vec![new.clone()], false), &obs, &history, &[]);
    let c = &p.changes[0];
    assert_eq!(
        c.action,
        Action::Redeploy,
        "never fights Git: still pending"
    );
    assert_eq!(
        c.rolled_back.as_ref().map(|r| r.reason.as_str()),
        Some("job 1 was FAILED within the health window")
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("apply apply-7 rolled this change back"))
    );
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(
        json["rolledBack"]["reason"],
        "job 1 was FAILED within the health window"
    );
    assert_eq!(json["rolledBack"]["applyId"], "apply-7");

    // Another definition is another change: no note.
    new.restart_nonce = 2;
    let p = run(&desired(vec![new], false), &obs, &history, &[]);
    assert!(p.changes[0].rolled_back.is_none());
}
