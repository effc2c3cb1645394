//! last-state and stateless upgrades on a real cluster.

use crate::harness::*;

#[test]
fn last_state_restores_the_latest_retained_checkpoint() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("laststate");
    let file = format!("jobs/{name}.yaml");
    // The test job retains its checkpoints on cancellation.
    repo.write(
        &file,
        &jar_job(&name, 1, "a", "  upgradeMode: last-state\n"),
    );
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);

    repo.write(
        &file,
        &jar_job(&name, 1, "b", "  upgradeMode: last-state\n"),
    );
    repo.commit("change");
    let plan = plan_json(&repo, 2);
    let redeploy = change(&plan, &name);
    assert_eq!(redeploy["upgradeMode"], "last-state", "{redeploy:#}");
    assert_eq!(redeploy["steps"][0]["step"], "cancel", "{redeploy:#}");
    assert_eq!(redeploy["steps"][0]["jobId"], first[0].as_str());
    assert_eq!(
        redeploy["restore"]["from"], "latest-checkpoint",
        "{redeploy:#}"
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    wait_state(base, &first[0], "CANCELED");
    let (path, _) = restored_from(base, &second[0]).expect("restored");
    assert!(
        path.contains(&first[0]) && path.contains("chk-"),
        "restored from the old job's checkpoint: {path}"
    );
}

#[test]
fn last_state_without_retained_checkpoints_is_refused_and_the_job_keeps_running() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("nockpt");
    let file = format!("jobs/{name}.yaml");
    // A SQL job with checkpointing off: nothing to restore from.
    let with_mode = |rate: u32| {
        sql_job(&name, rate).replace(
            "  parallelism: 1\n",
            "  parallelism: 1\n  upgradeMode: last-state\n",
        )
    };
    repo.write(&file, &with_mode(5));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);

    repo.write(&file, &with_mode(6));
    repo.commit("change");
    let failed = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(
        failed.all().contains("refusing to cancel"),
        "{}",
        failed.all()
    );
    assert_eq!(running_named(base, &name), first, "the job was not touched");
}

#[test]
fn stateless_upgrade_starts_fresh() {
    let cluster = cluster(Version::V1_20);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("stateless");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "a", "  upgradeMode: stateless\n"));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    repo.write(&file, &jar_job(&name, 1, "b", "  upgradeMode: stateless\n"));
    repo.commit("change");
    let plan = plan_json(&repo, 2);
    let redeploy = change(&plan, &name);
    assert_eq!(redeploy["upgradeMode"], "stateless", "{redeploy:#}");
    assert_eq!(redeploy["restore"]["from"], "none", "{redeploy:#}");
    assert!(
        redeploy["warnings"]
            .to_string()
            .contains("restarts without its state"),
        "{redeploy:#}"
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);
    wait_state(base, &first[0], "CANCELED");
    let restored = get(&format!("{base}/jobs/{}/checkpoints", second[0]));
    assert!(
        restored["latest"]["restored"].is_null(),
        "started without state: {restored}"
    );
}
