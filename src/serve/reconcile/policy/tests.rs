//! The reconcile policy in milliseconds: planner fixtures in, decisions out.

use std::collections::BTreeMap;

use super::*;
use crate::observe::{ClusterObservation, JobState};
use crate::plan::fixtures::{desired, history_for, job, observation, run};
use crate::serve::config::SyncOverride;

const NOW: i64 = 1_000_000;

/// A plan that recovers `a` (its job FAILED) and rescales `b` (its parallelism changed).
fn plan_and_observation() -> (Plan, Observation) {
    let a = job("a");
    let b_old = job("b");
    let mut b = job("b");
    b.parallelism = 8;
    let a_failed = crate::plan::fixtures::running(&a, 1, JobState::Failed);
    let b_running = crate::plan::fixtures::running(&b_old, 2, JobState::Running);
    let history: BTreeMap<String, _> = [
        ("a".to_string(), history_for(&a, &a_failed)),
        ("b".to_string(), history_for(&b_old, &b_running)),
    ]
    .into();
    let o = observation(vec![a_failed, b_running]);
    let plan = run(&desired(vec![a, b], false), &o, &history, &[]);
    let actions: Vec<_> = plan
        .changes
        .iter()
        .map(|c| (c.job.as_str(), c.action))
        .collect();
    assert_eq!(
        actions,
        [("a", Action::Recover), ("b", Action::Rescale)],
        "fixture"
    );
    (plan, o)
}

fn sync(self_heal: bool) -> SyncConfig {
    SyncConfig {
        self_heal,
        self_heal_max_attempts: 3,
        self_heal_backoff_seconds: 10,
        self_heal_max_backoff_seconds: 60,
        ..SyncConfig::default()
    }
}

fn jobs(plan: &Plan) -> Vec<&str> {
    plan.changes.iter().map(|c| c.job.as_str()).collect()
}

#[test]
fn recovers_wait_for_self_heal() {
    let (mut plan, _) = plan_and_observation();
    let mut heal = BTreeMap::new();
    let drift = admit(&mut plan, &BTreeMap::new(), &sync(false), &mut heal, NOW);
    assert_eq!(jobs(&plan), ["b"]);
    assert!(drift["a"].ends_with("(self-heal is off)"), "{drift:?}");

    let (mut plan, _) = plan_and_observation();
    let drift = admit(&mut plan, &BTreeMap::new(), &sync(true), &mut heal, NOW);
    assert_eq!(jobs(&plan), ["a", "b"]);
    assert!(drift.is_empty());
}

#[test]
fn self_heal_backs_off_doubling_up_to_the_cap_then_gives_up() {
    let s = sync(true);
    let mut heal = BTreeMap::new();
    let mut at = NOW;
    let mut waits = Vec::new();
    for attempt in 1..=3 {
        let (mut plan, _) = plan_and_observation();
        assert!(admit(&mut plan, &BTreeMap::new(), &s, &mut heal, at).is_empty());
        assert_eq!(count_attempts(&mut heal, &plan, &s, at), ["a"]);
        let h: &Heal = &heal["a"];
        waits.push((h.next_at_ms - at) / 1000);
        // Too early: held back, and the drift says when.
        let (mut plan, _) = plan_and_observation();
        let drift = admit(&mut plan, &BTreeMap::new(), &s, &mut heal, at + 1000);
        assert_eq!(jobs(&plan), ["b"]);
        let why = if attempt < 3 {
            format!("self-heal attempt {} in", attempt + 1)
        } else {
            "gave up after 3 attempts".into()
        };
        assert!(drift["a"].contains(&why), "{drift:?}");
        at = heal["a"].next_at_ms;
    }
    assert_eq!(waits, [10, 20, 40]);
    let (mut plan, _) = plan_and_observation();
    let drift = admit(&mut plan, &BTreeMap::new(), &s, &mut heal, at);
    assert!(drift["a"].contains("gave up after 3 attempts"), "{drift:?}");
    // The cap: a fourth wait would be 80 s, it is 60 s.
    let mut many = BTreeMap::new();
    let (plan, _) = plan_and_observation();
    for _ in 0..5 {
        count_attempts(&mut many, &plan, &s, NOW);
    }
    assert_eq!((many["a"].next_at_ms - NOW) / 1000, 60);
}

#[test]
fn healthy_jobs_start_counting_again_after_the_backoff_cap() {
    let s = sync(true);
    let mut heal: BTreeMap<String, Heal> = [(
        "gone".to_string(),
        Heal {
            attempts: 2,
            last_attempt_ms: NOW - 61_000,
            next_at_ms: NOW,
        },
    )]
    .into();
    let (mut plan, _) = plan_and_observation();
    admit(&mut plan, &BTreeMap::new(), &s, &mut heal, NOW);
    assert!(!heal.contains_key("gone"));
}

#[test]
fn invalid_files_hold_back_their_jobs_and_every_delete() {
    let (mut plan, _) = plan_and_observation();
    let invalid: BTreeMap<String, String> = [("b".to_string(), "jobs/b.yaml".to_string())].into();
    admit(&mut plan, &invalid, &sync(true), &mut BTreeMap::new(), NOW);
    assert_eq!(jobs(&plan), ["a"]);
}

#[test]
fn a_failed_revision_is_blocked_until_the_job_or_the_revision_changes() {
    let (plan, o) = plan_and_observation();
    let failed: BTreeMap<String, String> = [
        ("a".to_string(), "boom".to_string()),
        ("b".to_string(), "boom".to_string()),
    ]
    .into();
    let before: BTreeMap<String, String> = plan
        .changes
        .iter()
        .map(|c| (c.job.clone(), o.job_fingerprint(&c.cluster, &c.job)))
        .collect();
    let mut blocked = BTreeMap::new();
    block_failed(&mut blocked, &plan, "apply-1", &failed, &before, &o);
    assert_eq!(blocked.len(), 2);

    // Same revision, same cluster state: `b` is held back; a recover is never blocked.
    let digest = plan.revision.digest.clone();
    let (mut again, _) = plan_and_observation();
    let (in_force, changed) = drop_blocked(&mut blocked, &mut again, &o, &digest);
    assert_eq!(jobs(&again), ["a"]);
    assert_eq!(in_force.len(), 1);
    assert_eq!(in_force[0].job, "b");
    assert_eq!(in_force[0].apply_id, "apply-1");
    assert!(!changed);

    // Another revision: the blocks are forgotten.
    let (mut again, _) = plan_and_observation();
    let (in_force, changed) = drop_blocked(&mut blocked, &mut again, &o, "another");
    assert!(in_force.is_empty() && changed && blocked.is_empty());
    assert_eq!(jobs(&again), ["a", "b"]);
}

/// A reconcile that plans while the failed job's own apply still holds it (so without its
/// change) must not forget the block that apply has just recorded.
#[test]
fn a_block_of_a_job_left_out_of_the_plan_is_kept() {
    let (plan, o) = plan_and_observation();
    let failed: BTreeMap<String, String> = [("b".to_string(), "boom".to_string())].into();
    let before = [("b".to_string(), o.job_fingerprint("local", "b"))].into();
    let mut blocked = BTreeMap::new();
    block_failed(&mut blocked, &plan, "apply-1", &failed, &before, &o);
    let digest = plan.revision.digest.clone();
    let (mut busy, _) = plan_and_observation();
    busy.retain_changes(|c| c.job != "b");
    let (in_force, changed) = drop_blocked(&mut blocked, &mut busy, &o, &digest);
    assert!(in_force.is_empty() && !changed);
    assert!(
        blocked.contains_key("b"),
        "kept for when b is planned again"
    );
    let (mut again, _) = plan_and_observation();
    let (in_force, _) = drop_blocked(&mut blocked, &mut again, &o, &digest);
    assert_eq!(in_force.len(), 1);
    assert_eq!(jobs(&again), ["a"]);
}

#[test]
fn a_block_lifts_when_the_jobs_cluster_state_changes() {
    let (plan, o) = plan_and_observation();
    let failed: BTreeMap<String, String> = [("b".to_string(), "boom".to_string())].into();
    let before = [("b".to_string(), o.job_fingerprint("local", "b"))].into();
    let mut blocked = BTreeMap::new();
    block_failed(&mut blocked, &plan, "apply-1", &failed, &before, &o);
    let mut moved = o.clone();
    if let Some(ClusterObservation::Reachable { jobs, .. }) = moved.clusters.get_mut("local") {
        jobs.retain(|j| j.name != "b");
    }
    let (mut again, _) = plan_and_observation();
    let digest = plan.revision.digest.clone();
    let (in_force, _) = drop_blocked(&mut blocked, &mut again, &moved, &digest);
    assert!(in_force.is_empty());
    assert_eq!(jobs(&again), ["a", "b"]);
}

#[test]
fn manual_policy_holds_everything_but_recovers() {
    let (mut plan, _) = plan_and_observation();
    let mut s = sync(true);
    s.policy = SyncPolicy::Manual;
    let manual = split_manual(&mut plan, &s, "p2".into());
    assert_eq!(jobs(&plan), ["a"]);
    assert_eq!(jobs(&manual), ["b"]);
    assert_eq!(manual.id, "p2");

    // A job's own policy wins over the default.
    let (mut plan, _) = plan_and_observation();
    let mut s = sync(true);
    s.jobs.insert(
        "b".into(),
        SyncOverride {
            policy: Some(SyncPolicy::Manual),
            self_heal: None,
        },
    );
    let manual = split_manual(&mut plan, &s, "p2".into());
    assert_eq!(jobs(&manual), ["b"]);
}

#[test]
fn quiet_outcomes_name_the_most_important_reason() {
    let (mut plan, _) = plan_and_observation();
    plan.retain_changes(|_| false);
    let none = BTreeMap::new();
    assert_eq!(
        quiet_outcome(&plan, &none, &[], &none).outcome,
        Outcome::InSync
    );
    let busy: BTreeMap<String, String> = [("a".to_string(), "apply-1".to_string())].into();
    let r = quiet_outcome(&plan, &none, &[], &busy);
    assert_eq!(r.outcome, Outcome::Applying);
    assert_eq!(r.message.as_deref(), Some("apply-1 in progress"));
    let drift: Drift = [("a".to_string(), "FAILED".to_string())].into();
    assert_eq!(
        quiet_outcome(&plan, &drift, &[], &busy).outcome,
        Outcome::Drift
    );
    let block = BlockedInfo {
        job: "b".into(),
        revision: "c0ffee".into(),
        apply_id: "apply-1".into(),
        error: "boom".into(),
        kind: Default::default(),
    };
    let r = quiet_outcome(&plan, &drift, &[block], &busy);
    assert_eq!(r.outcome, Outcome::Blocked);
    assert!(
        r.message
            .unwrap()
            .contains("not retried until the revision or the cluster state changes")
    );
}

#[test]
fn the_most_specific_trigger_wins() {
    let t =
        |r: &[&str]| trigger_of(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>()).to_string();
    assert_eq!(t(&["poll", "webhook:github"]), "serve:push");
    assert_eq!(t(&["api", "watch"]), "serve:api");
    assert_eq!(t(&["watch"]), "serve:watch");
    assert_eq!(t(&["startup"]), "serve:poll");
}

/// The plan `plan_and_observation` makes, where the cluster refused `b`'s program at
/// pre-flight (as `engine::preflight` records it).
fn refused_at_preflight() -> (Plan, Observation) {
    let (mut plan, o) = plan_and_observation();
    plan.retain_changes(|c| c.job != "b");
    plan.errors.push(crate::plan::PlanError {
        job: Some("b".into()),
        cluster: "local".into(),
        message: "Object 'clickz' not found".into(),
        drift: false,
    });
    plan.preflight.push(crate::plan::JobPreflight {
        job: "b".into(),
        cluster: "local".into(),
        status: PreflightStatus::Failed,
        checked_on: Some("local".into()),
        reason: None,
        graph: None,
    });
    (plan, o)
}

#[test]
fn a_program_refused_at_preflight_is_a_failed_revision_not_preflighted_again() {
    let mut blocked = BTreeMap::new();
    let (plan, o) = refused_at_preflight();
    assert!(block_preflight_refused(&mut blocked, &plan, &o));
    assert!(blocked["b"].preflight);
    assert!(
        blocked["b"]
            .info
            .error
            .contains("Object 'clickz' not found")
    );
    // The same refusal again changes nothing.
    assert!(!block_preflight_refused(&mut blocked, &plan, &o));

    // The next reconcile of the same revision does not pre-flight `b` again.
    let (mut next, _) = plan_and_observation();
    let digest = next.revision.digest.clone();
    let held = hold_preflight_refused(&blocked, &mut next, &digest);
    assert_eq!(jobs(&next), ["a"]);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].job, "b");

    // A new revision is pre-flighted (and applied) again.
    let (mut other, _) = plan_and_observation();
    other.revision.digest = "e".repeat(64);
    let digest = other.revision.digest.clone();
    assert!(hold_preflight_refused(&blocked, &mut other, &digest).is_empty());
    assert_eq!(jobs(&other), ["a", "b"]);
}

#[test]
fn a_rolled_back_change_is_held_until_the_definition_changes() {
    let (mut plan, _) = plan_and_observation();
    plan.changes[1].rolled_back = Some(crate::plan::RolledBack {
        fingerprint: "f".into(),
        parallelism: 8,
        reason: "job x was FAILED within the health window".into(),
        apply_id: "apply-3".into(),
    });
    let held = hold_rolled_back(&mut plan);
    assert_eq!(jobs(&plan), ["a"]);
    assert_eq!(held[0].apply_id, "apply-3");
    assert!(held[0].error.starts_with("rolled back: "));
}
