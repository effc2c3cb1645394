//! Automatic rollback on real Flink: a redeploy whose new job starts and then fails (the test
//! job's `--fail-after-records`) is rolled back to the previous definition, restored from the
//! savepoint the apply just took; one copy runs; the plan still shows the change, marked; a
//! `kill -9` in the middle of the rollback is finished by the next `weir apply`.

use weir::identity::{Identity, JobId};

use crate::harness::*;

/// The test job with `--topic <topic>`, its program failing after `fail_after` records (none:
/// healthy), watched for `window` seconds after a change.
fn job(name: &str, topic: &str, fail_after: Option<u32>, window: u32) -> String {
    let fail = fail_after
        .map(|n| format!(", \"--fail-after-records\", \"{n}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  \
         parallelism: 1\n  jar:\n    path: artifacts/weir-test-job.jar\n    entryClass: \
         dev.weir.testjob.CounterJob\n    args: [\"--topic\", \"{topic}\", \"--rate\", \"20\"{fail}]\n  \
         rollback:\n    healthWindowSeconds: {window}\n"
    )
}

fn code_hash(id: &str) -> u32 {
    let id: JobId = id.parse().unwrap();
    Identity::decode(&id).unwrap().code_hash
}

/// Deploys `name` healthy; returns its running job id.
fn deployed(repo: &Repo, base: &str, name: &str, window: u32) -> String {
    repo.write(&format!("jobs/{name}.yaml"), &job(name, "t0", None, window));
    repo.commit("healthy");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let running = running_named(base, name);
    assert_eq!(running.len(), 1, "{running:?}");
    running[0].clone()
}

/// After a rollback: exactly one copy runs, it runs the previous program (`first`'s code), and it
/// was restored from a savepoint this repo's applies took.
fn assert_rolled_back(repo: &Repo, base: &str, name: &str, first: &str) -> String {
    let running = running_named(base, name);
    assert_eq!(running.len(), 1, "one copy: {:?}", jobs_named(base, name));
    assert_ne!(running[0], first, "a new job of the previous definition");
    assert_eq!(code_hash(&running[0]), code_hash(first), "previous program");
    let (path, is_savepoint) = restored_from(base, &running[0]).expect("restored");
    assert!(is_savepoint, "{path}");
    let dir = repo.savepoints.display().to_string();
    assert!(path.contains(&dir), "{path} is a savepoint of this apply");
    running[0].clone()
}

fn a_job_failing_after_start_is_rolled_back_from_the_new_savepoint(v: Version) {
    let cluster = cluster(v);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("rollback");
    let first = deployed(&repo, base, &name, 20);

    repo.write(
        &format!("jobs/{name}.yaml"),
        &job(&name, "t1", Some(20), 20),
    );
    repo.commit("fails at runtime");
    let applied = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(applied.all().contains("rolled back: "), "{}", applied.all());
    assert!(
        applied.all().contains("--fail-after-records 20 reached"),
        "Flink's cause is named: {}",
        applied.all()
    );
    assert_rolled_back(&repo, base, &name, &first);

    // Never fights Git: the change is still pending, marked as rolled back.
    let plan = plan_json(&repo, 2);
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "redeploy", "{plan:#}");
    assert!(
        change["rolledBack"]["reason"]
            .as_str()
            .unwrap()
            .contains("health window"),
        "{plan:#}"
    );
    // The audit trail says so.
    let history = repo.weir(&["history", "--format", "json"]).ok().json();
    let text = history.to_string();
    assert!(text.contains("rolled back"), "{history:#}");
}

#[test]
fn a_job_failing_after_start_is_rolled_back_on_flink_2() {
    a_job_failing_after_start_is_rolled_back_from_the_new_savepoint(Version::V2);
}

#[test]
fn a_job_failing_after_start_is_rolled_back_on_flink_1_20() {
    a_job_failing_after_start_is_rolled_back_from_the_new_savepoint(Version::V1_20);
}

#[test]
fn a_rollback_killed_after_cancelling_the_new_job_is_finished_by_the_next_apply() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("rbcrash");
    let first = deployed(&repo, base, &name, 10);

    repo.write(
        &format!("jobs/{name}.yaml"),
        &job(&name, "t1", Some(20), 10),
    );
    repo.commit("fails at runtime");
    // Only a rollback cancels in a savepoint redeploy: the crash is between the rollback's
    // cancel of the new job and its submission of the previous definition.
    let crashed = repo.weir_env(
        &["apply", "--auto-approve"],
        &[("WEIR_FAULT_CRASH_AT", "after:cancel")],
    );
    assert!(
        crashed.stderr.contains("aborting at after:cancel"),
        "{}",
        crashed.all()
    );
    assert!(running_named(base, &name).is_empty(), "nothing runs");

    // The next apply finishes the rollback first (and then tries the change again, which is
    // rolled back again: `weir apply` retries on purpose, the daemon does not).
    let resumed = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(
        resumed.all().contains("interrupted apply"),
        "{}",
        resumed.all()
    );
    assert!(resumed.all().contains("rolled back"), "{}", resumed.all());
    assert_rolled_back(&repo, base, &name, &first);
}

/// The daemon applies a change that fails after start, rolls it back, reports it blocked and
/// does not try the same definition again on the next reconciles.
#[test]
fn the_daemon_does_not_retry_a_rolled_back_change() {
    use crate::daemon::{Options, Remote};
    use std::time::Duration;

    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("rbserve");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &job(&name, "t0", None, 15));
    remote.push(&repo, "healthy");
    let d = Options::following(&remote).start();
    let first = d.wait_job(&name, "Synced", "RUNNING")["jobId"]
        .as_str()
        .unwrap()
        .to_string();

    repo.write(&file, &job(&name, "t1", Some(20), 15));
    remote.push(&repo, "fails at runtime");
    d.sync();
    let s = d.wait_for("the rollback", Duration::from_secs(180), |s| {
        s["blocked"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["job"] == name.as_str()))
            && s["lastApply"]["outcome"] != "running"
    });
    assert_eq!(s["lastApply"]["outcome"], "failed", "{s:#}");
    let rolled_back = s["lastApply"]["id"].clone();
    assert_rolled_back(&repo, base, &name, &first);

    // The next reconciles hold the change back, with the reason.
    let s = d.sync_and_wait();
    assert_eq!(s["lastApply"]["id"], rolled_back, "not retried: {s:#}");
    assert_eq!(s["lastReconcile"]["outcome"], "blocked", "{s:#}");
    let block = s["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["job"] == name.as_str())
        .unwrap()
        .clone();
    assert!(
        block["error"]
            .as_str()
            .unwrap()
            .starts_with("rolled back: "),
        "{block:#}"
    );
    assert_eq!(running_named(base, &name).len(), 1);
}

/// A program the cluster refuses at pre-flight is a failed revision of its job: reported once
/// (the plan's error), then held as blocked, not pre-flighted again, until the revision changes.
#[test]
fn the_daemon_holds_a_program_refused_at_preflight_until_the_revision_changes() {
    use crate::daemon::{Options, Remote};

    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("pf-block");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "a", ""));
    remote.push(&repo, "a job");
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    let first = d.wait_job(&name, "Synced", "RUNNING")["jobId"].clone();

    repo.write(
        &file,
        &jar_job_args(&name, 1, &["--topic", "a", "--fail-in-main", "boom"]),
    );
    remote.push(&repo, "a broken main");
    let s = d.sync_and_wait();
    assert_eq!(s["lastReconcile"]["outcome"], "error", "{s:#}");
    // The same revision again: held, not pre-flighted again.
    let s = d.sync_and_wait();
    assert_eq!(s["lastReconcile"]["outcome"], "blocked", "{s:#}");
    let block = s["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["job"] == name.as_str())
        .unwrap()
        .clone();
    assert!(
        block["error"]
            .as_str()
            .unwrap()
            .contains("pre-flight failed"),
        "{block:#}"
    );
    assert_eq!(
        running_named(base, &name),
        vec![first.as_str().unwrap().to_string()]
    );

    // A new revision is pre-flighted (and applied) again.
    repo.write(&file, &jar_job(&name, 1, "b", ""));
    remote.push(&repo, "fixed");
    d.sync();
    let s = d.wait_for(
        "the fixed revision",
        std::time::Duration::from_secs(90),
        |s| {
            crate::daemon::job_of(s, &name).is_some_and(|j| j["jobId"] != first)
                && s["blocked"].as_array().is_some_and(|b| b.is_empty())
        },
    );
    assert_eq!(s["lastApply"]["outcome"], "succeeded", "{s:#}");
}
