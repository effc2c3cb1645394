//! The staleness rule against the planner fixtures: no cluster, no store.

use super::*;
use crate::observe::{JobState, ObservedJob};
use crate::plan::fixtures::{desired, history_for, job, observation, running};

fn snapshot(jobs: Vec<ObservedJob>, history: History) -> Snapshot {
    Snapshot {
        clients: Default::default(),
        observation: observation(jobs),
        history,
    }
}

/// Two jobs of the repo, `a` changed (a redeploy) and `b` in sync, and a weir job of another
/// repo on the same cluster.
fn setup(b_state: JobState, foreign_state: JobState) -> (DesiredState, Snapshot) {
    let a_old = job("a");
    let mut a = job("a");
    a.parallelism = 4;
    let b = job("b");
    let foreign = job("someone-else");
    let a_now = running(&a_old, 1, JobState::Running);
    let b_now = running(&b, 2, b_state);
    let history: History = [
        ("a".to_string(), history_for(&a_old, &a_now)),
        ("b".to_string(), history_for(&b, &b_now)),
    ]
    .into();
    let d = desired(vec![a, b], false);
    let snap = snapshot(
        vec![a_now, b_now, running(&foreign, 3, foreign_state)],
        history,
    );
    (d, snap)
}

fn made(scope: Scope) -> (DesiredState, Plan) {
    let (d, snap) = setup(JobState::Running, JobState::Running);
    let mut plan = snap.plan(&d, &[], "p1".into(), 42);
    if scope == Scope::Changes {
        stamp(&mut plan, scope, &d, &snap.history, &snap.observation);
    }
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    assert_eq!(plan.changes[0].job, "a");
    (d, plan)
}

#[test]
fn an_unchanged_world_is_fresh_in_both_scopes() {
    for scope in [Scope::Repo, Scope::Changes] {
        let (d, plan) = made(scope);
        let (_, now) = setup(JobState::Running, JobState::Running);
        assert_eq!(check(&plan, scope, &d, &[], &now), Ok(()), "{scope:?}");
    }
}

#[test]
fn another_revision_is_stale() {
    let (mut d, plan) = made(Scope::Repo);
    let (_, now) = setup(JobState::Running, JobState::Running);
    d.revision.digest = "e".repeat(64);
    assert!(matches!(
        check(&plan, Scope::Repo, &d, &[], &now),
        Err(Stale::Revision { .. })
    ));
    assert!(check_revision(&plan, &d).is_err());
}

#[test]
fn foreign_jobs_on_a_shared_cluster_do_not_make_a_plan_stale() {
    for scope in [Scope::Repo, Scope::Changes] {
        let (d, plan) = made(scope);
        let (_, now) = setup(JobState::Running, JobState::Failed);
        assert_eq!(check(&plan, scope, &d, &[], &now), Ok(()), "{scope:?}");
    }
}

#[test]
fn a_whole_plan_is_stale_when_any_of_its_jobs_changes() {
    let (d, plan) = made(Scope::Repo);
    let (_, now) = setup(JobState::Failed, JobState::Running);
    assert!(check(&plan, Scope::Repo, &d, &[], &now).is_err());
}

#[test]
fn a_pending_part_is_stale_only_when_its_own_jobs_change() {
    let (d, plan) = made(Scope::Changes);
    // `b` is not in the part: it is applied (or healed) on its own.
    let (_, now) = setup(JobState::Failed, JobState::Running);
    assert_eq!(check(&plan, Scope::Changes, &d, &[], &now), Ok(()));
    // `a` itself changed state: stale, and the message names it.
    let (_, mut now) = setup(JobState::Running, JobState::Running);
    if let crate::observe::ClusterObservation::Reachable { jobs, .. } =
        now.observation.clusters.get_mut("local").unwrap()
    {
        jobs[0].state = JobState::Restarting;
    }
    let err = check(&plan, Scope::Changes, &d, &[], &now).unwrap_err();
    assert!(err.to_string().contains("`a`"), "{err}");
}

#[test]
fn one_job_fingerprint_is_stable_and_scoped() {
    let (_, now) = setup(JobState::Running, JobState::Running);
    let (_, foreign_failed) = setup(JobState::Running, JobState::Failed);
    let o = &now.observation;
    assert_eq!(
        o.job_fingerprint("local", "a"),
        o.job_fingerprint("local", "a")
    );
    assert_eq!(
        o.job_fingerprint("local", "a"),
        foreign_failed.observation.job_fingerprint("local", "a")
    );
    assert_ne!(
        o.job_fingerprint("local", "a"),
        o.job_fingerprint("local", "b")
    );
    assert_ne!(
        o.job_fingerprint("nowhere", "a"),
        o.job_fingerprint("local", "a")
    );
    // The order of a scope does not matter.
    assert_eq!(
        o.scope_fingerprint([("local", "a"), ("local", "b")]),
        o.scope_fingerprint([("local", "b"), ("local", "a")])
    );
}

/// The fingerprints' format is stored by the daemon: a job's is the SHA-256 of
/// `cluster/job:` and its jobs' `id=STATE` (sorted, comma-separated); a scope's is the SHA-256 of
/// its jobs' fingerprints, each followed by a newline, in (cluster, job) order.
#[test]
fn fingerprints_keep_their_stored_format() {
    use sha2::{Digest, Sha256};
    let (_, now) = setup(JobState::Running, JobState::Running);
    let o = &now.observation;
    let crate::observe::ClusterObservation::Reachable { jobs, .. } = &o.clusters["local"] else {
        panic!("local is reachable");
    };
    let a = jobs
        .iter()
        .find(|j| {
            j.identity
                .is_some_and(|i| i.name_hash == crate::identity::name_hash("a"))
        })
        .unwrap();
    let expected_a = hex::encode(Sha256::digest(format!("local/a:{}={}", a.id, a.state)));
    assert_eq!(o.job_fingerprint("local", "a"), expected_a);
    let expected_none = hex::encode(Sha256::digest("local/zed:"));
    assert_eq!(o.job_fingerprint("local", "zed"), expected_none);
    let unobserved = hex::encode(Sha256::digest("nowhere/a:unobserved"));
    assert_eq!(o.job_fingerprint("nowhere", "a"), unobserved);
    let mut scope = Sha256::new();
    for (cluster, job) in [
        ("local", "a"),
        ("local", "b"),
        ("local", "zed"),
        ("nowhere", "a"),
    ] {
        scope.update(o.job_fingerprint(cluster, job));
        scope.update("\n");
    }
    assert_eq!(
        o.scope_fingerprint([
            ("nowhere", "a"),
            ("local", "zed"),
            ("local", "b"),
            ("local", "a")
        ]),
        hex::encode(scope.finalize())
    );
}

#[test]
fn a_plan_read_back_from_json_is_fresh() {
    for scope in [Scope::Repo, Scope::Changes] {
        let (d, plan) = made(scope);
        let saved: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        let (_, now) = setup(JobState::Running, JobState::Running);
        assert_eq!(check(&saved, scope, &d, &[], &now), Ok(()), "{scope:?}");
    }
}

#[test]
fn a_whole_plan_also_answers_for_its_own_jobs() {
    // A plan stamped for the whole repo (a reconcile's, or the CLI's) approved as a part.
    let (d, plan) = made(Scope::Repo);
    let (_, now) = setup(JobState::Running, JobState::Running);
    assert_eq!(check(&plan, Scope::Changes, &d, &[], &now), Ok(()));
}

#[test]
fn the_job_fingerprint_format_is_pinned() {
    // The daemon stores these with a failed revision (`daemon_state`): a new format would lift
    // every stored block once after an upgrade.
    use sha2::Digest;
    let (_, now) = setup(JobState::Running, JobState::Running);
    let a = running(&job("a"), 1, JobState::Running);
    let text = format!("local/a:{}={}", a.id, a.state);
    assert_eq!(
        now.observation.job_fingerprint("local", "a"),
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
    assert_eq!(
        now.observation.job_fingerprint("elsewhere", "a"),
        hex::encode(sha2::Sha256::digest(b"elsewhere/a:unobserved"))
    );
}
