//! Drift: a job cancelled behind weir's back is recovered from its latest savepoint.

use crate::harness::*;

#[test]
fn job_cancelled_behind_weirs_back_is_recovered() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("drift");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    // Redeploy once so that weir knows a savepoint of this job.
    repo.write(&file, &jar_job(&name, 1, "orders2", ""));
    repo.commit("change");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_ne!(first, second);

    cancel(base, &second[0]);
    let plan = plan_json(&repo, 2);
    let recover = change(&plan, &name);
    assert_eq!(recover["action"], "recover", "{recover:#}");
    assert!(
        recover["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("CANCELED outside weir"),
        "{recover:#}"
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let third = running_named(base, &name);
    assert_eq!(third.len(), 1);
    assert!(
        restored_from(base, &third[0]).is_some(),
        "recovered with state"
    );
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn unreachable_cluster_fails_the_plan_with_address_and_cause() {
    let repo = Repo::new("http://127.0.0.1:9", None);
    repo.write("artifacts/app.jar", "not really a jar");
    repo.write(
        "jobs/a.yaml",
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec:\n  cluster: local\n  parallelism: 1\n  jar: {path: artifacts/app.jar}\n",
    );
    repo.commit("a");
    let plan = repo.weir(&["plan", "--detailed-exitcode"]).code(1);
    assert!(plan.all().contains("http://127.0.0.1:9"), "{}", plan.all());
    assert!(
        plan.all().to_lowercase().contains("refused"),
        "{}",
        plan.all()
    );
}
