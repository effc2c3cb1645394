//! Snapshots of the preview of a migrate across Flink versions and of a change an earlier apply
//! rolled back.

use std::collections::BTreeMap;

use crate::observe::{ClusterObservation, JobState};
use crate::plan::fixtures::*;
use crate::plan::{Plan, RolledBack};

fn plan() -> Plan {
    // `mover` ran on `old` (Flink 1.20.5) and is now defined on `local` (2.3.0).
    let mut was = job("mover");
    was.cluster = "old".into();
    let moving = running(&was, 1, JobState::Running);
    // `flaky`'s last change was rolled back; the same definition is still in Git.
    let flaky = job("flaky");
    let flaky_run = running(&flaky, 2, JobState::Running);
    let mut flaky_new = flaky.clone();
    flaky_new.restart_nonce = 1;
    let mut flaky_history = history_for(&flaky, &flaky_run);
    flaky_history.rolled_back = Some(RolledBack {
        fingerprint: hex::encode(flaky_new.code_fingerprint()),
        parallelism: flaky_new.parallelism,
        reason: "job 7e0 was RESTARTING within the health window: weir test job: \
                 --fail-after-records 20 reached"
            .into(),
        apply_id: "apply-42".into(),
    });
    let history = BTreeMap::from([
        ("mover".to_string(), history_for(&was, &moving)),
        ("flaky".to_string(), flaky_history),
    ]);
    let mut o = observation(vec![flaky_run]);
    o.clusters.insert(
        "old".into(),
        ClusterObservation::Reachable {
            url: "http://old:8081".into(),
            flink_version: Some("1.20.5".into()),
            jobs: vec![moving],
        },
    );
    run(
        &desired(vec![job("mover"), flaky_new], false),
        &o,
        &history,
        &[],
    )
}

#[test]
fn markdown_migrate_and_rolled_back() {
    insta::assert_snapshot!(super::markdown(&plan()));
}

#[test]
fn text_migrate_and_rolled_back() {
    insta::assert_snapshot!(super::text(&plan()));
}
