//! State never goes backwards and a second copy is never "Synced" (issue 9 items 1, 4, 5),
//! against a real Flink cluster.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

fn post(url: &str, body: &Value) -> Value {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .post(url)
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    let v: Value = resp.json().unwrap_or_default();
    assert!(status.is_success(), "POST {url}: {status} {v}");
    v
}

/// The plan of `repo` once Flink's checkpoint statistics name the savepoint of a job that just
/// stopped (until then weir refuses to start the job without state: exit 1).
#[track_caller]
fn plan_once_the_savepoint_is_known(repo: &Repo) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = repo.weir(&["plan", "--format", "json", "--detailed-exitcode"]);
        if run.code == 2 {
            return run.json();
        }
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.all().contains("refusing to start"),
            "only the refusal to start without state may fail the plan: {}",
            run.all()
        );
        assert!(Instant::now() < deadline, "{}", run.all());
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Item 1's reproduction: the job runs from savepoint S1 (a redeploy); it is stopped outside
/// weir with savepoint S2. weir recovers from S2, says it was stopped outside weir, and
/// records S2 in the lineage. Item 4: a second store planning in that moment never starts the
/// job fresh.
#[test]
fn a_job_stopped_outside_weir_is_recovered_from_its_own_newest_savepoint() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("outside");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    repo.write(&file, &jar_job(&name, 1, "orders2", ""));
    repo.commit("change");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    let (s1, _) = restored_from(base, &second[0]).expect("runs from S1");
    wait_checkpoint(base, &second[0]);

    let outside = repo.savepoints.join("outside");
    post(
        &format!("{base}/jobs/{}/stop", second[0]),
        &json!({"targetDirectory": format!("file://{}", outside.display()), "drain": false}),
    );
    wait_state(base, &second[0], "FINISHED");

    // Another store (a second CI job) planning now never starts the job without state.
    let other = Repo::new(&cluster.url, Some(&cluster.jars));
    other.write(&file, &jar_job(&name, 1, "orders2", ""));
    other.commit("same definition");
    let theirs = plan_once_the_savepoint_is_known(&other);
    assert_eq!(
        change(&theirs, &name)["restore"]["from"],
        "path",
        "{theirs:#}"
    );

    let plan = plan_once_the_savepoint_is_known(&repo);
    let recover = change(&plan, &name);
    assert_eq!(recover["action"], "recover", "{recover:#}");
    let reason = recover["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("stopped with a savepoint outside weir"),
        "{recover:#}"
    );
    let s2 = recover["restore"]["path"].as_str().unwrap().to_string();
    assert_ne!(s2, s1, "not the savepoint the job was started from");
    assert!(s2.contains("outside"), "{s2}");

    repo.weir(&["apply", "--auto-approve"]).ok();
    let third = running_named(base, &name);
    assert_eq!(third.len(), 1);
    let (restored, _) = restored_from(base, &third[0]).expect("recovered with state");
    assert_eq!(restored, s2);
    let lineage = repo
        .weir(&["savepoints", &name, "--format", "json"])
        .ok()
        .json();
    let s2_record = lineage["savepoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == s2.as_str())
        .unwrap_or_else(|| panic!("{s2} not in the lineage: {lineage:#}"));
    assert_eq!(s2_record["flink_job_id"], second[0].as_str());
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}

/// Item 5: a second RUNNING copy of a definition (submitted by hand with a weir-shaped id) is
/// a change (exit 2 with `--detailed-exitcode`, `OutOfSync` in `weir status`) that stops the
/// extra copy with a savepoint, recorded in the lineage, and keeps the copy the store names.
#[test]
fn a_second_running_copy_is_stopped_with_a_savepoint_never_synced() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("twice");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);

    // The same program again, under the same definition's identity with another nonce.
    let id: weir::identity::JobId = first[0].parse().unwrap();
    let mut ident = weir::identity::Identity::decode(&id).unwrap();
    ident.nonce ^= 0x5a5a;
    let copy = ident.job_id().to_string();
    let jars = get(&format!("{base}/jars"));
    let jar = jars["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| {
            j["name"]
                .as_str()
                .unwrap_or_default()
                .ends_with("weir-test-job.jar")
        })
        .expect("weir uploaded the test jar")["id"]
        .as_str()
        .unwrap()
        .to_string();
    post(
        &format!("{base}/jars/{jar}/run"),
        &json!({"entryClass": "dev.weir.testjob.CounterJob",
                "programArgsList": ["--topic", "orders", "--rate", "20"],
                "parallelism": 1, "jobId": copy}),
    );
    wait_state(base, &copy, "RUNNING");

    let plan = repo
        .weir(&["plan", "--format", "json", "--detailed-exitcode"])
        .code(2)
        .json();
    assert!(plan["errors"].as_array().unwrap().is_empty(), "{plan:#}");
    let dedupe = change(&plan, &name);
    assert_eq!(dedupe["action"], "stop-duplicate", "{dedupe:#}");
    assert_eq!(
        dedupe["currentJob"]["jobId"],
        first[0].as_str(),
        "{dedupe:#}"
    );
    assert_eq!(
        step_names(dedupe),
        vec!["stop-with-savepoint"],
        "{dedupe:#}"
    );
    assert_eq!(plan["summary"]["stop_duplicate"], 1, "{plan:#}");
    assert_eq!(status_row(&repo, &name)["sync"], "OutOfSync");

    repo.weir(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        running_named(base, &name),
        first,
        "the store's copy runs on"
    );
    wait_state(base, &copy, "FINISHED");
    let lineage = repo
        .weir(&["savepoints", &name, "--format", "json"])
        .ok()
        .json();
    assert!(
        lineage["savepoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["flink_job_id"] == copy.as_str()),
        "the extra copy's savepoint is in the lineage: {lineage:#}"
    );
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    assert_eq!(status_row(&repo, &name)["sync"], "Synced");
}

/// Item 3: Flink runs main() inside `POST /jars/{id}/run`; a main() slower than the run
/// timeout makes the answer late, and the job appears after it. weir finds the job by the id it
/// chose instead of failing (and submitting another id later): one copy, in sync.
#[test]
fn a_submission_answered_after_the_run_timeout_is_found_not_doubled() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("slowmain");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job_args(&name, 1, &["--topic", "a", "--sleep-in-main-ms", "6000"]),
    );
    repo.commit("slow main");
    let run = repo
        .weir(&["apply", "--auto-approve", "--run-timeout", "2"])
        .ok();
    assert!(run.all().contains("did not answer"), "{}", run.all());
    assert_eq!(running_named(base, &name).len(), 1, "one copy");
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        jobs_named(base, &name).len(),
        1,
        "{:?}",
        jobs_named(base, &name)
    );
}
