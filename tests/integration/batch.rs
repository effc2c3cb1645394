//! Batch jobs (`spec.mode: batch`) on real Flink: a bounded SQL job finishes and stays finished
//! across plans and a daemon reconcile, a restartNonce bump runs it again, and a schedule fires
//! runs that `weir runs` and the daemon's API list.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{Options, Remote, job_of};
use crate::harness::*;

/// A bounded SQL job: 200 generated rows into a blackhole, in Flink's batch runtime.
fn batch_job(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  parallelism: 1\n  mode: batch\n{extra_spec}  sql: |\n    CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '200');\n    CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');\n    INSERT INTO sink SELECT id FROM src;\n"
    )
}

/// Waits until every Flink job of `name` has ended and `n` of them FINISHED; returns their ids.
#[track_caller]
fn wait_finished(base: &str, name: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = jobs_named(base, name);
        let finished: Vec<String> = jobs
            .iter()
            .filter(|(_, s)| s == "FINISHED")
            .map(|(id, _)| id.clone())
            .collect();
        if finished.len() >= n && finished.len() == jobs.len() {
            return finished;
        }
        assert!(
            Instant::now() < deadline,
            "{n} finished jobs of {name} expected: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Flink ran job `id` in its batch runtime (`execution.runtime-mode: BATCH`).
#[track_caller]
fn assert_job_type_batch(base: &str, id: &str) {
    let job = get(&format!("{base}/jobs/{id}"));
    assert_eq!(job["job-type"], "BATCH", "{job:#}");
}

fn runs(repo: &Repo, name: &str) -> Vec<Value> {
    repo.weir(&["runs", name, "--format", "json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn a_batch_job_finishes_and_stays_finished(version: Version) {
    let cluster = cluster(version);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let name = repo.unique("batch");
    repo.write(&format!("jobs/{name}.yaml"), &batch_job(&name, ""));
    repo.commit("a batch job");
    let plan = plan_json(&repo, 2);
    assert_eq!(change(&plan, &name)["action"], "create", "{plan:#}");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = wait_finished(base, &name, 1);
    assert_eq!(first.len(), 1);
    assert_job_type_batch(base, &first[0]);

    // FINISHED is done: no recover, no drift.
    let plan = plan_json(&repo, 0);
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    assert_eq!(status_row(&repo, &name)["sync"], "Synced");
    let listed = runs(&repo, &name);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["jobId"], first[0].as_str());
    assert_eq!(listed[0]["trigger"], "apply");
    assert_eq!(listed[0]["outcome"], "finished", "{listed:#?}");
    assert!(listed[0]["durationMs"].as_i64().is_some(), "{listed:#?}");

    // A restartNonce bump runs it again (nothing to stop: the finished job is not touched).
    repo.write(
        &format!("jobs/{name}.yaml"),
        &batch_job(&name, "  restartNonce: 1\n"),
    );
    repo.commit("run again");
    let plan = plan_json(&repo, 2);
    let again = change(&plan, &name);
    assert_eq!(again["action"], "redeploy", "{again:#}");
    assert_eq!(step_names(again), ["submit", "await-running"], "{again:#}");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let both = wait_finished(base, &name, 2);
    assert_eq!(both.len(), 2);
    plan_json(&repo, 0);
    let listed = runs(&repo, &name);
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(
        listed.iter().all(|r| r["outcome"] == "finished"),
        "{listed:#?}"
    );
}

#[test]
fn batch_job_finishes_and_stays_finished_flink2() {
    a_batch_job_finishes_and_stays_finished(Version::V2);
}

#[test]
fn batch_job_finishes_and_stays_finished_flink1_20() {
    a_batch_job_finishes_and_stays_finished(Version::V1_20);
}

/// A daemon reconcile leaves a finished batch job alone.
#[test]
fn batch_job_daemon_does_not_resubmit_a_finished_job() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("batchd");
    repo.write(&format!("jobs/{name}.yaml"), &batch_job(&name, ""));
    remote.push(&repo, "a batch job");
    let serve = Options::following(&remote).start();
    serve.wait_for("the batch job to finish", Duration::from_secs(120), |_| {
        jobs_named(base, &name).iter().any(|(_, s)| s == "FINISHED")
    });
    for _ in 0..2 {
        let s = serve.sync_and_wait();
        let job = job_of(&s, &name).cloned().unwrap_or_default();
        assert_eq!(job["sync"], "Synced", "{s:#}");
    }
    let jobs = jobs_named(base, &name);
    assert_eq!(jobs.len(), 1, "no resubmission");
    assert_job_type_batch(base, &jobs[0].0);
    let runs = serve.get(&format!("/api/v1/jobs/{name}/runs"));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
}

/// A schedule every 5 seconds fires (at least) twice; each run is its own Flink job.
#[test]
fn batch_job_schedule_fires_twice() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("sched");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &batch_job(
            &name,
            "  schedule: \"*/5 * * * * *\"\n  timeZone: Europe/Berlin\n",
        ),
    );
    remote.push(&repo, "a scheduled batch job");
    // A plan does not start a scheduled job: the daemon's scheduler does.
    let plan = plan_json(&repo, 0);
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let serve = Options::following(&remote).start();
    let deadline = Instant::now() + Duration::from_secs(150);
    let started = loop {
        let runs = serve.get(&format!("/api/v1/jobs/{name}/runs"));
        let started: Vec<Value> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["jobId"].is_string() && r["outcome"] == "finished")
            .cloned()
            .collect();
        if started.len() >= 2 {
            break started;
        }
        assert!(
            Instant::now() < deadline,
            "two finished scheduled runs expected: {runs:#}\n--- daemon log\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let ids: std::collections::BTreeSet<&str> = started
        .iter()
        .map(|r| r["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), started.len(), "each run has its own job id");
    assert!(
        started
            .iter()
            .all(|r| r["trigger"] == "schedule" && r["dueMs"].is_i64()),
        "{started:#?}"
    );
    // `weir runs` lists them too (from the daemon's store).
    let listed = serve.cli(&["runs", &name, "--format", "json"]);
    let listed_ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["jobId"].as_str())
        .collect();
    for id in &ids {
        assert!(listed_ids.contains(id), "{listed:#}");
    }
    let text = serve.cli_text(&["runs", &name]);
    assert!(
        text.contains("schedule") && text.contains("finished"),
        "{text}"
    );
    // Stop the daemon so that nothing fires while the repo cancels its jobs.
    drop(serve);
}

/// A run that takes longer than the schedule's period: the fire times in between are recorded
/// as skipped, never a second copy.
#[test]
fn batch_job_schedule_skips_while_a_run_is_active() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("slow");
    // 60 rows at 6 rows per second: each run takes about ten seconds.
    let job = batch_job(&name, "  schedule: \"*/3 * * * * *\"\n").replace(
        "'number-of-rows' = '200'",
        "'number-of-rows' = '60', 'rows-per-second' = '6'",
    );
    repo.write(&format!("jobs/{name}.yaml"), &job);
    remote.push(&repo, "a slow scheduled batch job");
    let serve = Options::following(&remote).start();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let active = jobs_named(base, &name)
            .iter()
            .filter(|(_, s)| s != "FINISHED" && s != "FAILED" && s != "CANCELED")
            .count();
        assert!(
            active <= 1,
            "never two runs at once: {:?}",
            jobs_named(base, &name)
        );
        let runs = serve.get(&format!("/api/v1/jobs/{name}/runs"));
        let runs = runs.as_array().unwrap();
        let skipped = runs.iter().find(|r| r["outcome"] == "skipped");
        if let Some(skipped) = skipped {
            assert!(skipped["jobId"].is_null(), "{skipped:#}");
            assert!(
                skipped["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("still")),
                "{skipped:#}"
            );
            let started = runs.iter().filter(|r| r["jobId"].is_string()).count();
            assert!(started >= 1, "{runs:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a skipped run expected: {runs:#?}\n--- daemon log\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(serve);
}

/// A batch job that FAILED is reported: the plan recovers it (the daemon only with self-heal)
/// and `weir runs` says it failed.
#[test]
fn batch_job_that_failed_is_reported() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let name = repo.unique("failing");
    // Division by zero at run time (not at planning): the job starts, then FAILS.
    let job = batch_job(&name, "").replace("SELECT id FROM src", "SELECT id / (id - id) FROM src");
    repo.write(&format!("jobs/{name}.yaml"), &job);
    repo.commit("a failing batch job");
    repo.weir(&["apply", "--auto-approve"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let failed = loop {
        let jobs = jobs_named(base, &name);
        if let Some((id, _)) = jobs.iter().find(|(_, s)| s == "FAILED") {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "a FAILED job expected: {jobs:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let plan = plan_json(&repo, 2);
    let recover = change(&plan, &name);
    assert_eq!(recover["action"], "recover", "{recover:#}");
    assert_eq!(
        recover["reason"],
        format!("batch job {failed} is FAILED"),
        "{recover:#}"
    );
    assert_eq!(status_row(&repo, &name)["sync"], "OutOfSync");
    let listed = runs(&repo, &name);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["jobId"], failed.as_str());
    assert_eq!(listed[0]["outcome"], "failed", "{listed:#?}");
}

/// Fire times missed while the daemon was down give one catch-up run when it starts again.
#[test]
fn batch_job_schedule_catches_up_once_after_a_restart() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("catchup");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &batch_job(&name, "  schedule: \"*/5 * * * * *\"\n"),
    );
    remote.push(&repo, "a scheduled batch job");
    let mut serve = Options::following(&remote).start();
    let runs_of = |serve: &crate::daemon::Serve| -> Vec<Value> {
        serve
            .get(&format!("/api/v1/jobs/{name}/runs"))
            .as_array()
            .unwrap()
            .clone()
    };
    serve.wait_for("a first scheduled run", Duration::from_secs(60), |_| {
        jobs_named(base, &name).iter().any(|(_, s)| s == "FINISHED")
    });
    assert_eq!(serve.terminate(), Some(0));
    // Down for more than two fire times.
    std::thread::sleep(Duration::from_secs(12));
    serve.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = runs_of(&serve);
        let catch_ups: Vec<&Value> = runs.iter().filter(|r| r["trigger"] == "catch-up").collect();
        // Wait for a scheduled run after the catch-up: the catch-up was the only one.
        let newest_is_scheduled = runs.first().is_some_and(|r| r["trigger"] == "schedule");
        if !catch_ups.is_empty() && newest_is_scheduled {
            assert_eq!(catch_ups.len(), 1, "{runs:#?}");
            assert!(catch_ups[0]["jobId"].is_string(), "{runs:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one catch-up run, then scheduled runs: {runs:#?}\n--- daemon log\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(serve);
}
