//! Saved plans: applied exactly, and refused when the repo or the clusters changed.

use crate::harness::*;

#[test]
fn saved_plan_is_applied_and_refused_when_stale() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("stale");
    let file = format!("jobs/{name}.yaml");
    let planfile = repo.root.parent().unwrap().join("plan.json");
    let planfile = planfile.to_str().unwrap();

    repo.write(&file, &jar_job(&name, 1, "a", ""));
    repo.commit("job");
    let plan = repo
        .weir(&["plan", "--out", planfile, "--format", "json"])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json plan");
    assert_eq!(json["changes"][0]["action"], "create");
    assert_eq!(json["changes"][0]["job"], name.as_str());
    assert_eq!(json["summary"]["create"], 1);

    // The repo changes after the plan: refused, nothing runs.
    repo.write(&file, &jar_job(&name, 1, "b", ""));
    repo.commit("change");
    let refused = repo.weir(&["apply", planfile]).code(1);
    assert!(refused.stderr.contains("stale"), "{}", refused.all());
    assert!(jobs_named(base, &name).is_empty());

    // A fresh plan applies exactly.
    repo.weir(&["plan", "--out", planfile]).ok();
    repo.weir(&["apply", planfile]).ok();
    let running = running_named(base, &name);
    assert_eq!(running.len(), 1);

    // The cluster changes after the plan: refused.
    repo.write(&file, &jar_job(&name, 1, "c", ""));
    repo.commit("change again");
    repo.weir(&["plan", "--out", planfile]).ok();
    cancel(base, &running[0]);
    let refused = repo.weir(&["apply", planfile]).code(1);
    assert!(
        refused.stderr.contains("clusters changed"),
        "{}",
        refused.all()
    );
    assert!(running_named(base, &name).is_empty(), "nothing was started");
}

#[test]
fn apply_without_a_terminal_refuses_without_auto_approve() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("confirm");
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "a", ""));
    repo.commit("job");
    let refused = repo.weir(&["apply"]).code(1);
    assert!(
        refused.stderr.contains("--auto-approve"),
        "{}",
        refused.all()
    );
    assert!(jobs_named(&cluster.url, &name).is_empty());
}
