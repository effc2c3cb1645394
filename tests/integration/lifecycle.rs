//! The whole life of a jar job on real Flink 2.x and 1.20 session clusters: create → change args
//! (savepoint redeploy, state restored) → rescale → suspend → resume → delete with prune.

use crate::harness::*;

/// The job under test: its repo, cluster, name and file.
struct Life<'a> {
    repo: &'a Repo,
    base: &'a str,
    name: &'a str,
    file: &'a str,
}

fn lifecycle(version: Version) {
    let cluster = cluster(version);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("life");
    let file = format!("jobs/team/{name}.yaml");
    let life = Life {
        repo: &repo,
        base: &cluster.url,
        name: &name,
        file: &file,
    };
    let first = create(&life);
    change_args(&life, &first);
    let third = rescale(&life);
    suspend(&life, &third);
    let fourth = resume(&life);
    delete_with_prune(&life, &fourth);

    let history = repo
        .weir(&["history", &name, "--format", "json"])
        .ok()
        .json();
    let succeeded = history
        .as_array()
        .expect("history records")
        .iter()
        .filter(|r| r["kind"] == "apply" && r["summary_or_outcome"] == "succeeded")
        .count();
    assert!(succeeded >= 6, "{history:#}");
}

/// Create; then in sync, and an empty store would see the same (identity lives in the job id).
fn create(life: &Life) -> String {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    repo.write(file, &jar_job(name, 2, "orders", ""));
    repo.commit("add job");
    let plan = plan_json(repo, 2);
    let create = change(&plan, name);
    assert_eq!(create["action"], "create", "{create:#}");
    assert_eq!(create["cluster"], "local");
    assert_eq!(plan["summary"]["create"], 1, "{plan:#}");
    assert_eq!(plan["summary"]["redeploy"], 0);
    assert_eq!(plan["summary"]["delete"], 0);
    let applied = repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(
        applied.stdout.contains("Apply complete"),
        "{}",
        applied.all()
    );
    let first = running_named(base, name);
    assert_eq!(
        first.len(),
        1,
        "exactly one running job: {:?}",
        jobs_named(base, name)
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

    first[0].clone()
}

/// Change args: redeploy through a savepoint, and the new job restores it.
fn change_args(life: &Life, first: &str) {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    wait_checkpoint(base, first);
    repo.write(file, &jar_job(name, 2, "payments", ""));
    repo.commit("change topic");
    let plan = plan_json(repo, 2);
    let redeploy = change(&plan, name);
    assert_eq!(redeploy["action"], "redeploy", "{redeploy:#}");
    assert_eq!(redeploy["reason"], "args changed", "{redeploy:#}");
    let (before, after) = diff_of(redeploy, "args");
    assert!(
        before.to_string().contains("orders") && after.to_string().contains("payments"),
        "{redeploy:#}"
    );
    assert_eq!(
        step_names(redeploy),
        ["stop-with-savepoint", "submit", "await-running"]
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, name);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first);
    wait_state(base, first, "FINISHED");
    let (restored, is_savepoint) =
        restored_from(base, &second[0]).expect("restored from a savepoint");
    assert!(is_savepoint, "restored from a savepoint, not a checkpoint");
    assert!(
        restored.contains(repo.savepoints.to_str().unwrap()),
        "{restored}"
    );
    let row = status_row(repo, name);
    assert_eq!(row["jobId"], second[0].as_str(), "{row:#}");
    assert_eq!(row["sync"], "Synced", "{row:#}");
}

/// Rescale 2 → 1.
fn rescale(life: &Life) -> String {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    repo.write(file, &jar_job(name, 1, "payments", ""));
    repo.commit("rescale");
    let plan = plan_json(repo, 2);
    assert_eq!(change(&plan, name)["action"], "rescale", "{plan:#}");
    assert_eq!(plan["summary"]["rescale"], 1);
    repo.weir(&["apply", "--auto-approve"]).ok();
    let third = running_named(base, name);
    assert_eq!(third.len(), 1);
    assert_eq!(job_parallelism(base, &third[0]), 1);
    assert!(restored_from(base, &third[0]).unwrap().1);

    third[0].clone()
}

/// Suspend: stopped with a savepoint, nothing running.
fn suspend(life: &Life, third: &str) {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    repo.write(file, &jar_job(name, 1, "payments", "  state: suspended\n"));
    repo.commit("suspend");
    let plan = plan_json(repo, 2);
    assert_eq!(change(&plan, name)["action"], "suspend", "{plan:#}");
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(running_named(base, name).is_empty());
    wait_state(base, third, "FINISHED");
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    let row = status_row(repo, name);
    assert_eq!(row["flinkState"], "FINISHED", "{row:#}");
    assert!(
        row["lastSavepoint"]
            .as_str()
            .unwrap_or_default()
            .contains(repo.savepoints.to_str().unwrap()),
        "last savepoint shown: {row:#}"
    );
}

/// Resume from the savepoint of the suspend.
fn resume(life: &Life) -> String {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    repo.write(file, &jar_job(name, 1, "payments", ""));
    repo.commit("resume");
    let plan = plan_json(repo, 2);
    assert_eq!(change(&plan, name)["action"], "resume", "{plan:#}");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let fourth = running_named(base, name);
    assert_eq!(fourth.len(), 1);
    assert!(restored_from(base, &fourth[0]).unwrap().1);

    fourth[0].clone()
}

/// Delete: without prune only a warning, with prune a stop-with-savepoint.
fn delete_with_prune(life: &Life, fourth: &str) {
    let Life {
        repo,
        base,
        name,
        file,
    } = life;
    repo.remove(file);
    repo.commit("delete");
    let plan = plan_json(repo, 0);
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("prune") && warnings.contains(name),
        "a warning names the job and prune: {plan:#}"
    );
    repo.write_config(true);
    repo.commit("prune");
    let plan = plan_json(repo, 2);
    assert_eq!(change(&plan, name)["action"], "delete", "{plan:#}");
    assert_eq!(plan["summary"]["delete"], 1);
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(running_named(base, name).is_empty());
    wait_state(base, fourth, "FINISHED");
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn jar_job_lifecycle_flink2() {
    lifecycle(Version::V2);
}

#[test]
fn jar_job_lifecycle_flink1_20() {
    lifecycle(Version::V1_20);
}
