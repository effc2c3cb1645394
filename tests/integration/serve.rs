//! `weir serve`: the real daemon process against a real bare Git repo (pushed to with the git
//! CLI) and the real Flink 2.x session cluster.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{API_TOKEN, Options, Remote, Sink, job_of, pending_summary};
use crate::harness::*;

#[test]
fn push_and_signed_webhook_redeploy_from_a_savepoint() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-push");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    // A long poll interval: only the webhook can explain a reconcile.
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    wait_checkpoint(base, &first[0]);

    // Unsigned and badly signed deliveries are refused.
    let body = format!(r#"{{"ref":"refs/heads/main","after":"x","name":"{name}"}}"#);
    let r = d.post(
        "/api/v1/webhooks/github",
        &body,
        &[("X-GitHub-Event", "push")],
    );
    assert_eq!(r.0, 401, "{}", r.1);
    assert!(r.1.contains("error"), "{}", r.1);
    let bad = weir::serve::webhook::sign(b"wrong secret", body.as_bytes());
    let r = d.post(
        "/api/v1/webhooks/github",
        &body,
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &bad)],
    );
    assert_eq!(r.0, 401, "{}", r.1);
    // A push to another branch is ignored.
    let other = r#"{"ref":"refs/heads/feature"}"#;
    let r = d.github("push", other);
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(r.1.contains("\"triggered\":false"), "{}", r.1);

    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    let commit = remote.push(&repo, "change the topic");
    let reconciles = d.status()["reconciles"].as_u64().unwrap();
    let sent = Instant::now();
    let r = d.github("push", &body);
    assert_eq!(r.0, 202, "{}", r.1);
    // The reconcile starts at once: its plan (of the pushed commit) is recorded within seconds.
    d.wait_for("a plan of the pushed commit", Duration::from_secs(3), |s| {
        s["lastPlan"]["revision"].as_str() == Some(&commit[..12])
    });
    eprintln!("webhook → plan recorded in {:?}", sent.elapsed());
    d.wait_for("the apply to finish", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded" && s["reconciles"].as_u64().unwrap() > reconciles
    });
    d.wait_job(&name, "Synced", "RUNNING");
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1, "exactly one running job");
    assert_ne!(first, second);
    let (path, is_savepoint) = restored_from(base, &second[0]).expect("restored from state");
    assert!(is_savepoint, "restored from a savepoint: {path}");
    let trigger = d.status()["lastPlan"].clone();
    assert!(
        trigger["summary"]
            .as_str()
            .unwrap()
            .contains("1 to redeploy")
    );

    let metrics = d.get_text("/metrics");
    assert!(
        metrics.contains("weir_applies_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("weir_webhook_deliveries_total{receiver=\"github\",outcome=\"rejected\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_last_successful_sync_timestamp_seconds{cluster=\"local\"}"));
    assert!(
        metrics.contains(
            "weir_apply_step_duration_seconds_count{step=\"stop_with_savepoint\",outcome=\"succeeded\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_jobs_by_health{health=\"RUNNING\"} 1"),
        "{metrics}"
    );
    let plans = d.get("/api/v1/plans");
    assert!(!plans["plans"].as_array().unwrap().is_empty(), "{plans}");
    let apply_id = d.status()["lastApply"]["id"].as_str().unwrap().to_string();
    let apply = d.get(&format!("/api/v1/applies/{apply_id}"));
    assert_eq!(apply["apply"]["outcome"], "succeeded", "{apply}");
    let job = d.get(&format!("/api/v1/jobs/{name}"));
    assert_eq!(job["job"]["health"], "RUNNING", "{job}");
}

#[test]
fn broken_job_file_leaves_its_job_running_and_is_reported() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-broken");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let before = running_named(base, &name);

    repo.write(
        &file,
        &jar_job(&name, 1, "orders", "").replace("parallelism: 1", "parallelism: lots"),
    );
    remote.push(&repo, "break it");
    // Mutating endpoints need the token.
    assert_eq!(d.post("/api/v1/sync", "", &[]).0, 401);
    assert_eq!(
        d.post("/api/v1/sync", "", &[("Authorization", "Bearer nope")])
            .0,
        401
    );
    d.sync();
    let s = d.wait_for("the file error", Duration::from_secs(30), |s| {
        s["invalidFiles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == file.as_str())
    });
    assert!(
        s["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("parallelism")),
        "{s}"
    );
    let job = d.wait_job(&name, "InvalidDefinition", "RUNNING");
    assert_eq!(job["file"], file.as_str());
    // Several more reconciles change nothing.
    for _ in 0..2 {
        d.sync_and_wait();
    }
    assert_eq!(running_named(base, &name), before, "the job kept running");
}

#[test]
fn cancelled_job_is_recovered_with_self_heal() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-heal");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\nsync: {selfHeal: true, selfHealBackoffSeconds: 1}\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);
    let created = d.status()["lastApply"]["id"].clone();
    cancel(base, &first[0]);
    d.sync();
    let s = d.wait_for("the recover", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded" && s["lastApply"]["id"] != created
    });
    assert!(
        s["lastPlan"]["summary"]
            .as_str()
            .unwrap()
            .contains("1 to recover"),
        "{s}"
    );
    d.sync_and_wait();
    d.wait_job(&name, "Synced", "RUNNING");
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1, "{:?}", jobs_named(base, &name));
    assert_ne!(first, second);
    assert!(
        d.get_text("/metrics")
            .contains("weir_self_heal_attempts_total")
    );
}

/// The self-heal attempt limit is kept in the store: a restarted daemon does not start counting
/// again, so a job that keeps dying is not restarted forever by restarting weir.
#[test]
fn self_heal_limit_survives_a_restart() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-heal-limit");
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "o", ""));
    remote.push(&repo, "job");
    let mut d = daemon(&remote)
        .config(
            "pollIntervalSeconds: 3600\nsync: {selfHeal: true, selfHealMaxAttempts: 1, \
             selfHealBackoffSeconds: 1}\n",
        )
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);
    let created = d.status()["lastApply"]["id"].clone();
    cancel(base, &first[0]);
    d.sync();
    d.wait_for("the one recover", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded" && s["lastApply"]["id"] != created
    });
    d.wait_job(&name, "Synced", "RUNNING");
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    wait_checkpoint(base, &second[0]);

    // Dies again: the one attempt is used up.
    cancel(base, &second[0]);
    d.sync();
    let gave_up = |s: &Value| {
        job_of(s, &name).is_some_and(|j| {
            j["selfHeal"]["gaveUp"] == true
                && j["drift"]
                    .as_str()
                    .is_some_and(|d| d.contains("gave up after 1 attempts"))
        })
    };
    d.wait_for("self-heal to give up", Duration::from_secs(60), gave_up);

    assert_eq!(d.terminate(), Some(0));
    d.restart();
    let s = d.wait_for("the first reconcile", Duration::from_secs(60), |s| {
        s["reconciles"].as_u64().unwrap() >= 1
    });
    assert!(gave_up(&s), "still given up after the restart: {s}");
    assert!(
        s["lastApply"].is_null(),
        "nothing applied after the restart: {s}"
    );
    assert!(running_named(base, &name).is_empty());
}

/// The audit record of an apply survives the daemon dying in the middle of it (an abort right
/// after Flink accepted the stop, before its result was journaled): the restarted daemon
/// finishes it, and the record tells the whole story, the resume included.
#[test]
fn audit_record_survives_a_daemon_crash_mid_apply() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-crash");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "o", ""));
    remote.push(&repo, "job");
    let mut d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .env("WEIR_FAULT_CRASH_AT", "sent:stop_with_savepoint")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let before = running_named(base, &name);
    wait_checkpoint(base, &before[0]);

    repo.write(&file, &jar_job(&name, 1, "o-v2", ""));
    remote.push(&repo, "new topic");
    d.sync();
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "the daemon aborted: {status}");

    d.forget_env("WEIR_FAULT_CRASH_AT");
    d.restart();
    d.wait_for(
        "the interrupted apply to be finished",
        Duration::from_secs(120),
        |s| {
            job_of(s, &name).is_some_and(|j| {
                j["sync"] == "Synced"
                    && j["health"] == "RUNNING"
                    && j["jobId"] != before[0].as_str()
            })
        },
    );
    let after = running_named(base, &name);
    assert_eq!(
        after.len(),
        1,
        "exactly one job: {:?}",
        jobs_named(base, &name)
    );

    let (code, body) = d.get_raw(&format!("/api/v1/history?job={name}"), None);
    assert_eq!(code, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    let redeploy = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "apply" && e["steps"][0]["kind"] == "stop_with_savepoint")
        .unwrap_or_else(|| panic!("the redeploy's record: {history:#}"));
    let id = redeploy["id"].as_str().unwrap();
    let story = d.get(&format!("/api/v1/records/{id}"));
    assert_eq!(story["outcome"], "succeeded", "{story:#}");
    assert_eq!(story["events"][0]["kind"], "resumed", "{story:#}");
    let stop = &story["jobs"][0]["steps"][0];
    assert_eq!(
        stop["call"],
        format!("POST /jobs/{}/stop", before[0]),
        "{story:#}"
    );
    assert!(stop["savepoint_produced"].is_string(), "{stop}");
    let (restored, is_savepoint) = restored_from(base, &after[0]).expect("restored");
    assert!(is_savepoint);
    assert_eq!(stop["savepoint_produced"], restored.as_str(), "{story:#}");
}

#[test]
fn cancelled_job_is_reported_as_drift_without_self_heal() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-drift");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    cancel(base, &first[0]);
    d.sync();
    let s = d.wait_for("the drift report", Duration::from_secs(30), |s| {
        job_of(s, &name).is_some_and(|j| j["drift"].is_string())
    });
    let job = job_of(&s, &name).unwrap();
    assert_eq!(job["sync"], "OutOfSync", "{job}");
    assert!(
        job["drift"].as_str().unwrap().contains("self-heal is off"),
        "{job}"
    );
    d.sync_and_wait();
    assert!(running_named(base, &name).is_empty(), "not recovered");
}

#[test]
fn sigterm_mid_apply_then_restart_finishes_with_no_duplicate() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-term");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let mut d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\nshutdownGraceSeconds: 1\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);

    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    remote.push(&repo, "change");
    d.sync();
    d.wait_for("the apply to start", Duration::from_secs(30), |s| {
        s["lastApply"]["outcome"] == "running"
    });
    let code = d.terminate();
    assert_eq!(code, Some(0), "clean exit on SIGTERM");

    d.restart();
    d.wait_job(&name, "Synced", "RUNNING");
    let running = running_named(base, &name);
    assert_eq!(running.len(), 1, "exactly one running job: {running:?}");
    assert_ne!(running, first);
    let active: Vec<_> = jobs_named(base, &name)
        .into_iter()
        .filter(|(_, s)| !matches!(s.as_str(), "FINISHED" | "CANCELED" | "FAILED"))
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    let s = d.status();
    assert!(s["pendingPlan"].is_null(), "{s}");
    // When the grace period cut the apply short, the restart finished it from the journal.
    let log = d.log();
    if log.contains("still busy") {
        assert!(log.contains("resuming interrupted apply"), "{log}");
    }
}

#[test]
fn remote_going_away_keeps_the_last_good_state_and_recovers() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-remote");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);

    let moved = remote.bare.with_extension("moved");
    std::fs::rename(&remote.bare, &moved).unwrap();
    d.sync();
    let s = d.wait_for("the fetch error", Duration::from_secs(30), |s| {
        s["repo"]["error"].is_string()
    });
    assert_eq!(s["repo"]["errorHost"], "local", "{s}");
    assert!(
        s["repo"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot fetch"),
        "{s}"
    );
    // The last good desired state is kept: the job is still managed and in sync.
    let s = d.sync_and_wait();
    assert_eq!(job_of(&s, &name).unwrap()["sync"], "Synced", "{s}");
    assert_eq!(running_named(base, &name), first);

    std::fs::rename(&moved, &remote.bare).unwrap();
    repo.write(&file, &jar_job(&name, 2, "orders", ""));
    let commit = remote.push(&repo, "rescale");
    // Retries with backoff pick the remote up again without any trigger.
    d.wait_for(
        "the remote to be fetched again",
        Duration::from_secs(60),
        |s| s["repo"]["error"].is_null() && s["repo"]["commit"] == commit.as_str(),
    );
    // Wait on the cluster itself: the status may still describe the previous revision's apply.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let now = loop {
        let now = running_named(base, &name);
        if now.len() == 1 && now != first && job_parallelism(base, &now[0]) == 2 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rescale did not happen: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(now.len(), 1);
    assert_eq!(job_parallelism(base, &now[0]), 2);
}

#[test]
fn manual_policy_waits_for_an_approved_plan() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("serve-manual");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\nsync: {policy: manual}\n")
        .start();
    let s = d.wait_for("a pending plan", Duration::from_secs(30), |s| {
        s["pendingPlan"]["id"].is_string()
    });
    assert!(running_named(base, &name).is_empty(), "nothing applied yet");
    let id = s["pendingPlan"]["id"].as_str().unwrap().to_string();
    let r = d.post(&format!("/api/v1/plans/{id}/apply"), "", &[]);
    assert_eq!(r.0, 401);
    let r = d.post(
        "/api/v1/plans/plan-nope/apply",
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(r.0, 404, "{}", r.1);
    let r = d.post(
        &format!("/api/v1/plans/{id}/apply"),
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(r.0, 202, "{}", r.1);
    d.wait_job(&name, "Synced", "RUNNING");
    assert_eq!(running_named(base, &name).len(), 1);
    // The same plan again is stale now (the cluster changed).
    let r = d.post(
        &format!("/api/v1/plans/{id}/apply"),
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(r.0, 409, "{}", r.1);
}

/// Applies of independent jobs run side by side: while one job's submission is slow, another
/// job's change goes through; the slow job is left to its own apply meanwhile.
#[test]
fn a_slow_apply_does_not_hold_back_other_jobs() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let slow = repo.unique("serve-slow");
    let quick = repo.unique("serve-quick");
    repo.write(&format!("jobs/{slow}.yaml"), &jar_job(&slow, 1, "a", ""));
    repo.write(&format!("jobs/{quick}.yaml"), &jar_job(&quick, 1, "b", ""));
    remote.push(&repo, "two jobs");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    d.wait_job(&slow, "Synced", "RUNNING");
    let quick_first = d.wait_job(&quick, "Synced", "RUNNING")["jobId"].clone();

    // The slow job's new program sleeps in main(), which Flink runs inside POST /jars/{id}/run.
    repo.write(
        &format!("jobs/{slow}.yaml"),
        &jar_job_args(&slow, 1, &["--topic", "a", "--sleep-in-main-ms", "15000"]),
    );
    remote.push(&repo, "slow submission");
    d.sync();
    let s = d.wait_for("the slow apply to start", Duration::from_secs(30), |s| {
        job_of(s, &slow).is_some_and(|j| j["applying"].is_string())
    });
    let slow_apply = job_of(&s, &slow).unwrap()["applying"].clone();

    repo.write(
        &format!("jobs/{quick}.yaml"),
        &jar_job(&quick, 1, "b-v2", ""),
    );
    remote.push(&repo, "quick change");
    d.sync();
    let s = d.wait_for("the quick job's redeploy", Duration::from_secs(60), |s| {
        job_of(s, &quick).is_some_and(|j| {
            j["sync"] == "Synced"
                && j["health"] == "RUNNING"
                && j["jobId"] != quick_first
                && j["applying"].is_null()
        })
    });
    assert_eq!(
        job_of(&s, &slow).unwrap()["applying"],
        slow_apply,
        "the slow apply is still running when the quick job is done: {s}"
    );

    d.wait_for("the slow apply to finish", Duration::from_secs(90), |s| {
        job_of(s, &slow).is_some_and(|j| {
            j["applying"].is_null() && j["sync"] == "Synced" && j["health"] == "RUNNING"
        })
    });
    assert_eq!(running_named(base, &slow).len(), 1, "one running slow job");
    assert_eq!(
        running_named(base, &quick).len(),
        1,
        "one running quick job"
    );
    let apply = d.get(&format!("/api/v1/applies/{}", slow_apply.as_str().unwrap()));
    assert_eq!(apply["apply"]["outcome"], "succeeded", "{apply}");
}

/// Development mode: the daemon watches a local repo and reconciles as soon as a commit lands
/// (the poll interval is an hour); uncommitted edits are not deployed.
#[test]
fn watched_local_repo_reconciles_on_commit() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("serve-watch");
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "a", ""));
    repo.commit("first");
    // The daemon follows the working repo itself (not a bare copy).
    let d = Options::url(&format!("file://{}", repo.root.display()))
        .github_webhook()
        .config(
            "pollIntervalSeconds: 3600\nwatch: {debounceMilliseconds: 200}\nsync: {policy: manual}\n",
        )
        .start();
    d.wait_for("the first plan", Duration::from_secs(30), |s| {
        pending_summary(s).contains("1 to create")
    });

    // An uncommitted edit wakes the daemon, but what it plans is still the last commit.
    let reconciles = d.status()["reconciles"].as_u64().unwrap();
    repo.write(
        &format!("jobs/{name}-2.yaml"),
        &jar_job(&format!("{name}-2"), 1, "b", ""),
    );
    let s = d.wait_for("a reconcile after the edit", Duration::from_secs(10), |s| {
        s["reconciles"].as_u64().unwrap() > reconciles
    });
    assert!(
        s["lastReconcile"]["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "watch"),
        "{s}"
    );
    assert!(pending_summary(&s).contains("1 to create"), "{s}");

    let commit = repo.commit("second job");
    let s = d.wait_for("the plan of the new commit", Duration::from_secs(10), |s| {
        s["pendingPlan"]["revision"].as_str() == Some(&commit[..12])
    });
    assert!(pending_summary(&s).contains("2 to create"), "{s}");
}

const HOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Per-job sync policy: one job is applied at once, the other waits for approval. The daemon's
/// `apply.succeeded` reaches a real receiver, signed. A create that fails is not retried, also
/// not by a restarted daemon, until the revision changes.
#[test]
fn per_job_policy_signed_notifications_and_failures_remembered_across_restarts() {
    let sink = Sink::start();
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let auto = repo.unique("serve-auto");
    let gated = repo.unique("serve-gated");
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  dedupWindowSeconds: 0\n  routes:\n    - name: audit\n      \
             events: [\"*\"]\n      urlFromEnv: WEIR_TEST_HOOK_URL\n      \
             secretFromEnv: WEIR_TEST_HOOK_SECRET\n"
        ),
    );
    repo.write(&format!("jobs/{auto}.yaml"), &jar_job(&auto, 1, "a", ""));
    repo.write(&format!("jobs/{gated}.yaml"), &jar_job(&gated, 1, "g", ""));
    let commit = remote.push(&repo, "two jobs");
    let mut d = daemon(&remote)
        .config(&format!(
            "pollIntervalSeconds: 3600\nsync:\n  jobs:\n    {gated}: {{policy: manual}}\n"
        ))
        .env("WEIR_TEST_HOOK_URL", &sink.url)
        .env("WEIR_TEST_HOOK_SECRET", HOOK_SECRET)
        .start();
    d.wait_job(&auto, "Synced", "RUNNING");
    let s = d.wait_for("the gated job's plan", Duration::from_secs(30), |s| {
        s["pendingPlan"]["id"].is_string()
    });
    let gated_status = job_of(&s, &gated).unwrap();
    assert_eq!(gated_status["policy"]["policy"], "manual", "{s}");
    assert_eq!(job_of(&s, &auto).unwrap()["policy"]["policy"], "auto");
    assert!(running_named(base, &gated).is_empty(), "not applied yet");
    let pending = s["pendingPlan"]["id"].as_str().unwrap().to_string();
    let plan = d.get(&format!("/api/v1/plans/{pending}"));
    let jobs: Vec<&str> = plan["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, [gated.as_str()], "{plan}");

    announced_signed(&sink, &auto, &commit);

    // Approving the waiting plan applies it.
    let r = d.post(
        &format!("/api/v1/plans/{pending}/apply"),
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(r.0, 202, "{}", r.1);
    d.wait_job(&gated, "Synced", "RUNNING");

    // A job whose program fails at submission: its create fails once and is not retried.
    // (Pre-flight is off for it: it would make the failure a plan error, never applied.)
    let broken = repo.unique("serve-broken");
    repo.write(
        &format!("jobs/{broken}.yaml"),
        &format!(
            "{}  preflight: false\n",
            jar_job_args(&broken, 1, &["--fail-in-main", "boom"])
        ),
    );
    remote.push(&repo, "broken job");
    d.sync();
    // The block is recorded as the change fails, a moment before the apply as a whole ends.
    let s = d.wait_for("the failed create", Duration::from_secs(60), |s| {
        s["blocked"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["job"] == broken.as_str()))
            && s["lastApply"]["outcome"] != "running"
    });
    let failed_apply = s["lastApply"]["id"].clone();
    assert_eq!(s["lastApply"]["outcome"], "failed", "{s}");
    let s = d.sync_and_wait();
    assert_eq!(s["lastReconcile"]["outcome"], "blocked", "{s}");
    assert_eq!(s["lastApply"]["id"], failed_apply, "not retried: {s}");
    sink.wait_for(Duration::from_secs(30), |b| {
        b["event"] == "apply.failed" && b["job"] == broken.as_str()
    });

    // A restarted daemon remembers the failure and does not retry it either.
    assert_eq!(d.terminate(), Some(0));
    d.restart();
    let s = d.wait_for("the first reconcile", Duration::from_secs(60), |s| {
        s["reconciles"].as_u64().unwrap() >= 1
    });
    assert_eq!(
        s["lastReconcile"]["outcome"],
        "blocked",
        "{s}\n--- daemon log\n{}",
        d.log()
    );
    assert!(s["lastApply"].is_null(), "no apply after the restart: {s}");
    assert!(running_named(base, &broken).is_empty());

    // A new revision is tried again.
    repo.write(
        &format!("jobs/{broken}.yaml"),
        &jar_job(&broken, 1, "fixed", ""),
    );
    remote.push(&repo, "fix the job");
    d.sync();
    d.wait_job(&broken, "Synced", "RUNNING");
    assert!(d.status()["blocked"].as_array().unwrap().is_empty());
}

/// The apply of job `auto` at `commit` was announced to `sink`, signed in the Standard Webhooks
/// way.
fn announced_signed(sink: &Sink, auto: &str, commit: &str) {
    let got = sink.wait_for(Duration::from_secs(30), |b| {
        b["event"] == "apply.succeeded" && b["job"] == auto
    });
    let key = weir::notify::SigningKey::parse(HOOK_SECRET).unwrap();
    let id = got.header("webhook-id");
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!(
        key.verify(&id, ts, &got.body, &got.header("webhook-signature")),
        "signature verifies"
    );
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["revision"], commit, "{body}");
    assert_eq!(body["author"], "weir test <test@weir.dev>", "{body}");
}

/// `job.failed` when a managed job is found FAILED (and drift, self-heal being off), and
/// `savepoint.failed` when the savepoint of a redeploy fails (the job keeps running).
#[test]
fn failed_jobs_and_failed_savepoints_are_announced() {
    let sink = Sink::start();
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let crashing = repo.unique("serve-crashing");
    let stuck = repo.unique("serve-stuck");
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  routes:\n    - name: ops\n      \
             events: [job.failed, savepoint.failed, drift.detected]\n      \
             urlFromEnv: WEIR_TEST_HOOK_URL\n"
        ),
    );
    // No checkpointing and no restart strategy: the first failure is final.
    repo.write(
        &format!("jobs/{crashing}.yaml"),
        &jar_job_args(
            &crashing,
            1,
            &[
                "--fail-after-records",
                "20",
                "--checkpoint-interval-ms",
                "0",
            ],
        ),
    );
    repo.write(&format!("jobs/{stuck}.yaml"), &jar_job(&stuck, 1, "s", ""));
    remote.push(&repo, "two jobs");
    let d = daemon(&remote)
        .config("pollIntervalSeconds: 2\n")
        .apply("{savepointTimeoutSeconds: 20}")
        .env("WEIR_TEST_HOOK_URL", &sink.url)
        .start();
    let got = sink.wait_for(Duration::from_secs(60), |b| {
        b["event"] == "job.failed" && b["job"] == crashing.as_str()
    });
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["cluster"], "local", "{body}");
    sink.wait_for(Duration::from_secs(30), |b| {
        b["event"] == "drift.detected" && b["job"] == crashing.as_str()
    });

    let first = d.wait_job(&stuck, "Synced", "RUNNING")["jobId"].clone();
    // A redeploy whose savepoint cannot be written.
    repo.write(
        &format!("jobs/{stuck}.yaml"),
        &jar_job(
            &stuck,
            1,
            "s2",
            "  savepoint:\n    directory: file:///proc/weir-cannot-write-here\n",
        ),
    );
    remote.push(&repo, "unwritable savepoint directory");
    d.sync();
    d.wait_for("the failed redeploy", Duration::from_secs(90), |s| {
        s["blocked"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["job"] == stuck.as_str()))
    });
    let got = sink.wait_for(Duration::from_secs(120), |b| {
        b["event"] == "savepoint.failed" && b["job"] == stuck.as_str()
    });
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    eprintln!("savepoint.failed: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("savepoint"),
        "{body}"
    );
    let running = running_named(base, &stuck);
    assert_eq!(running, [first.as_str().unwrap()], "still the old job");
}

// ---- helpers ---------------------------------------------------------------------------------

/// A daemon following `remote`, with the GitHub receiver (the config of every test here).
fn daemon(remote: &Remote) -> Options {
    Options::following(remote).github_webhook()
}
