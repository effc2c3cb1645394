//! The whole life of a jar job on real Flink 2.x and 1.20 session clusters: create → change args
//! (savepoint redeploy, state restored) → rescale → suspend → resume → delete with prune.

use crate::harness::*;

fn lifecycle(version: Version) {
    let cluster = cluster(version);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("life");
    let file = format!("jobs/team/{name}.yaml");
    let base = &cluster.url;

    // Create.
    repo.write(&file, &jar_job(&name, 2, "orders", ""));
    repo.commit("add job");
    let plan = repo.weir(&["plan", "--detailed-exitcode"]).code(2);
    assert!(
        plan.stdout
            .contains(&format!("+ {name} (cluster local) will be created")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 1 to create, 0 to redeploy, 0 to delete."),
        "{}",
        plan.stdout
    );
    let applied = repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(
        applied.stdout.contains("Apply complete"),
        "{}",
        applied.all()
    );
    let first = running_named(base, &name);
    assert_eq!(
        first.len(),
        1,
        "exactly one running job: {:?}",
        jobs_named(base, &name)
    );
    assert_eq!(job_parallelism(base, &first[0]), 2);

    // In sync now; an empty store would see the same (identity lives in the job id).
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    let other_state = repo.root.parent().unwrap().join("other.db");
    let fresh = repo.weir(&[
        "--state",
        other_state.to_str().unwrap(),
        "plan",
        "--detailed-exitcode",
    ]);
    assert_eq!(
        fresh.code,
        0,
        "a lost store must not change the plan: {}",
        fresh.all()
    );

    // Change args: redeploy through a savepoint, and the new job restores it.
    wait_checkpoint(base, &first[0]);
    repo.write(&file, &jar_job(&name, 2, "payments", ""));
    repo.commit("change topic");
    let plan = repo.weir(&["plan", "--detailed-exitcode"]).code(2);
    assert!(
        plan.stdout.contains("will be redeployed"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("why:     args changed"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("-orders") && plan.stdout.contains("+payments"),
        "{}",
        plan.stdout
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first[0]);
    wait_state(base, &first[0], "FINISHED");
    let (restored, is_savepoint) =
        restored_from(base, &second[0]).expect("restored from a savepoint");
    assert!(is_savepoint, "restored from a savepoint, not a checkpoint");
    assert!(
        restored.contains(repo.savepoints.to_str().unwrap()),
        "{restored}"
    );
    let status = repo.weir(&["status"]).ok();
    assert!(
        status.stdout.contains(&second[0]) && status.stdout.contains("Synced"),
        "{}",
        status.stdout
    );

    // Rescale 2 → 1.
    repo.write(&file, &jar_job(&name, 1, "payments", ""));
    repo.commit("rescale");
    let plan = repo.weir(&["plan"]).ok();
    assert!(plan.stdout.contains("will be rescaled"), "{}", plan.stdout);
    assert!(plan.stdout.contains("1 to rescale"), "{}", plan.stdout);
    repo.weir(&["apply", "--auto-approve"]).ok();
    let third = running_named(base, &name);
    assert_eq!(third.len(), 1);
    assert_eq!(job_parallelism(base, &third[0]), 1);
    assert!(restored_from(base, &third[0]).unwrap().1);

    // Suspend: stopped with a savepoint, nothing running.
    repo.write(
        &file,
        &jar_job(&name, 1, "payments", "  state: suspended\n"),
    );
    repo.commit("suspend");
    let plan = repo.weir(&["plan"]).ok();
    assert!(plan.stdout.contains("will be suspended"), "{}", plan.stdout);
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(running_named(base, &name).is_empty());
    wait_state(base, &third[0], "FINISHED");
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    let status = repo.weir(&["status"]).ok();
    assert!(status.stdout.contains("FINISHED"), "{}", status.stdout);
    assert!(
        status.stdout.contains(repo.savepoints.to_str().unwrap()),
        "last savepoint shown: {}",
        status.stdout
    );

    // Resume from that savepoint.
    repo.write(&file, &jar_job(&name, 1, "payments", ""));
    repo.commit("resume");
    let plan = repo.weir(&["plan"]).ok();
    assert!(plan.stdout.contains("will be resumed"), "{}", plan.stdout);
    repo.weir(&["apply", "--auto-approve"]).ok();
    let fourth = running_named(base, &name);
    assert_eq!(fourth.len(), 1);
    assert!(restored_from(base, &fourth[0]).unwrap().1);

    // Delete: without prune only a warning, with prune a stop-with-savepoint.
    repo.remove(&file);
    repo.commit("delete");
    let plan = repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    assert!(
        plan.stdout.contains("prune") && plan.stdout.contains(&name),
        "{}",
        plan.stdout
    );
    repo.write_config(true);
    repo.commit("prune");
    let plan = repo.weir(&["plan"]).ok();
    assert!(plan.stdout.contains("1 to delete"), "{}", plan.stdout);
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(running_named(base, &name).is_empty());
    wait_state(base, &fourth[0], "FINISHED");
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);

    let history = repo.weir(&["history", &name]).ok();
    assert!(
        history.stdout.matches("succeeded").count() >= 6,
        "{}",
        history.stdout
    );
}

#[test]
fn jar_job_lifecycle_flink2() {
    lifecycle(Version::V2);
}

#[test]
fn jar_job_lifecycle_flink1_20() {
    lifecycle(Version::V1_20);
}
