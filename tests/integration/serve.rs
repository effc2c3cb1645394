//! `weir serve`: the real daemon process against a real bare Git repo (pushed to with the git
//! CLI) and the real Flink 2.x session cluster.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const TOKEN: &str = "api-token-for-tests";
const GITHUB_SECRET: &str = "github-secret-for-tests";

#[test]
fn push_and_signed_webhook_redeploy_from_a_savepoint() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-push");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    // A long poll interval: only the webhook can explain a reconcile.
    let d = Daemon::start(&remote, "pollIntervalSeconds: 3600\n");
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    wait_checkpoint(base, &first[0]);

    // Unsigned and badly signed deliveries are refused.
    let body = format!(r#"{{"ref":"refs/heads/main","after":"x","name":"{name}"}}"#);
    let r = d.post_raw(
        "/api/v1/webhooks/github",
        &body,
        &[("X-GitHub-Event", "push")],
    );
    assert_eq!(r.0, 401, "{}", r.1);
    assert!(r.1.contains("error"), "{}", r.1);
    let bad = weir::serve::webhook::sign(b"wrong secret", body.as_bytes());
    let r = d.post_raw(
        "/api/v1/webhooks/github",
        &body,
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &bad)],
    );
    assert_eq!(r.0, 401, "{}", r.1);
    // A push to another branch is ignored.
    let other = r#"{"ref":"refs/heads/feature"}"#;
    let r = d.github(other);
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(r.1.contains("\"triggered\":false"), "{}", r.1);

    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    let commit = remote.push(&repo, "change the topic");
    let reconciles = d.status()["reconciles"].as_u64().unwrap();
    let sent = Instant::now();
    let r = d.github(&body);
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
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-broken");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let d = Daemon::start(&remote, "pollIntervalSeconds: 3600\n");
    d.wait_job(&name, "Synced", "RUNNING");
    let before = running_named(base, &name);

    repo.write(
        &file,
        &jar_job(&name, 1, "orders", "").replace("parallelism: 1", "parallelism: lots"),
    );
    remote.push(&repo, "break it");
    // Mutating endpoints need the token.
    assert_eq!(d.post_raw("/api/v1/sync", "", &[]).0, 401);
    assert_eq!(
        d.post_raw("/api/v1/sync", "", &[("Authorization", "Bearer nope")])
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
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-heal");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = Daemon::start(
        &remote,
        "pollIntervalSeconds: 3600\nsync: {selfHeal: true, selfHealBackoffSeconds: 1}\n",
    );
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

#[test]
fn cancelled_job_is_reported_as_drift_without_self_heal() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-drift");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = Daemon::start(&remote, "pollIntervalSeconds: 3600\n");
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
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-term");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let mut d = Daemon::start(
        &remote,
        "pollIntervalSeconds: 3600\nshutdownGraceSeconds: 1\n",
    );
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

    let d = Daemon::start_again(&remote, d);
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
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-remote");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(&repo, "job");
    let d = Daemon::start(&remote, "pollIntervalSeconds: 3600\n");
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
    let remote = Remote::new(&repo);
    let name = repo.unique("serve-manual");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    remote.push(&repo, "job");
    let d = Daemon::start(
        &remote,
        "pollIntervalSeconds: 3600\nsync: {policy: manual}\n",
    );
    let s = d.wait_for("a pending plan", Duration::from_secs(30), |s| {
        s["pendingPlan"]["id"].is_string()
    });
    assert!(running_named(base, &name).is_empty(), "nothing applied yet");
    let id = s["pendingPlan"]["id"].as_str().unwrap().to_string();
    let r = d.post_raw(&format!("/api/v1/plans/{id}/apply"), "", &[]);
    assert_eq!(r.0, 401);
    let r = d.post_raw(
        "/api/v1/plans/plan-nope/apply",
        "",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(r.0, 404, "{}", r.1);
    let r = d.post_raw(
        &format!("/api/v1/plans/{id}/apply"),
        "",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(r.0, 202, "{}", r.1);
    d.wait_job(&name, "Synced", "RUNNING");
    assert_eq!(running_named(base, &name).len(), 1);
    // The same plan again is stale now (the cluster changed).
    let r = d.post_raw(
        &format!("/api/v1/plans/{id}/apply"),
        "",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(r.0, 409, "{}", r.1);
}

// ---- helpers ---------------------------------------------------------------------------------

/// Applies of independent jobs run side by side: while one job's submission is slow, another
/// job's change goes through; the slow job is left to its own apply meanwhile.
#[test]
fn a_slow_apply_does_not_hold_back_other_jobs() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new(&repo);
    let slow = repo.unique("serve-slow");
    let quick = repo.unique("serve-quick");
    repo.write(&format!("jobs/{slow}.yaml"), &jar_job(&slow, 1, "a", ""));
    repo.write(&format!("jobs/{quick}.yaml"), &jar_job(&quick, 1, "b", ""));
    remote.push(&repo, "two jobs");
    let d = Daemon::start(&remote, "pollIntervalSeconds: 3600\n");
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
    let local = Remote {
        _dir: tempfile::tempdir().unwrap(),
        bare: repo.root.clone(),
    };
    let d = Daemon::start(
        &local,
        "pollIntervalSeconds: 3600\nwatch: {debounceMilliseconds: 200}\nsync: {policy: manual}\n",
    );
    d.wait_for("the first plan", Duration::from_secs(30), |s| {
        s["pendingPlan"]["summary"]
            .as_str()
            .is_some_and(|p| p.contains("1 to create"))
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
    assert!(
        s["pendingPlan"]["summary"]
            .as_str()
            .unwrap()
            .contains("1 to create"),
        "{s}"
    );

    let commit = repo.commit("second job");
    let s = d.wait_for("the plan of the new commit", Duration::from_secs(10), |s| {
        s["pendingPlan"]["revision"].as_str() == Some(&commit[..12])
    });
    assert!(
        s["pendingPlan"]["summary"]
            .as_str()
            .unwrap()
            .contains("2 to create"),
        "{s}"
    );
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
    let remote = Remote::new(&repo);
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
    let mut d = Daemon::start_with_env(
        &remote,
        &format!("pollIntervalSeconds: 3600\nsync:\n  jobs:\n    {gated}: {{policy: manual}}\n"),
        &[
            ("WEIR_TEST_HOOK_URL", sink.url.as_str()),
            ("WEIR_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    );
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

    // The auto job's apply was announced, signed in the Standard Webhooks way.
    let got = sink.wait_for(Duration::from_secs(30), |b| {
        b["event"] == "apply.succeeded" && b["job"] == auto.as_str()
    });
    let key = weir::notify::SigningKey::parse(HOOK_SECRET).unwrap();
    let id = got.header("webhook-id");
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!(
        key.verify(&id, ts, &got.body, &got.header("webhook-signature")),
        "signature verifies"
    );
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["revision"], commit.as_str(), "{body}");
    assert_eq!(body["author"], "weir test <test@weir.dev>", "{body}");

    // Approving the waiting plan applies it.
    let r = d.post_raw(
        &format!("/api/v1/plans/{pending}/apply"),
        "",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(r.0, 202, "{}", r.1);
    d.wait_job(&gated, "Synced", "RUNNING");

    // A job whose program fails at submission: its create fails once and is not retried.
    let broken = repo.unique("serve-broken");
    repo.write(
        &format!("jobs/{broken}.yaml"),
        &jar_job_args(&broken, 1, &["--fail-in-main", "boom"]),
    );
    remote.push(&repo, "broken job");
    d.sync();
    let s = d.wait_for("the failed create", Duration::from_secs(60), |s| {
        s["blocked"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["job"] == broken.as_str()))
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
    let d = Daemon::start_again(&remote, d);
    let s = d.wait_for("the first reconcile", Duration::from_secs(60), |s| {
        s["reconciles"].as_u64().unwrap() >= 1
    });
    assert_eq!(s["lastReconcile"]["outcome"], "blocked", "{s}");
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

/// `job.failed` when a managed job is found FAILED (and drift, self-heal being off), and
/// `savepoint.failed` when the savepoint of a redeploy fails (the job keeps running).
#[test]
fn failed_jobs_and_failed_savepoints_are_announced() {
    let sink = Sink::start();
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new(&repo);
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
    let d = Daemon::start_with_env(
        &remote,
        "pollIntervalSeconds: 2\napply: {savepointTimeoutSeconds: 20}\n",
        &[("WEIR_TEST_HOOK_URL", sink.url.as_str())],
    );
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

/// A real HTTP receiver of the daemon's notifications (its own runtime on a thread).
struct Sink {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

impl Sink {
    fn start() -> Sink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let store = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let store = store.clone();
                    async move {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| {
                                (k.to_string(), v.to_str().unwrap_or_default().to_string())
                            })
                            .collect();
                        store.lock().unwrap().push(Delivery {
                            headers,
                            body: body.to_vec(),
                        });
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/hook"),
            got,
            _runtime: runtime,
        }
    }

    #[track_caller]
    fn wait_for(&self, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Delivery {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.lock().unwrap().clone();
            if let Some(d) = got.iter().find(|d| {
                serde_json::from_slice::<Value>(&d.body)
                    .map(|b| ok(&b))
                    .unwrap_or(false)
            }) {
                return d.clone();
            }
            if Instant::now() > deadline {
                let bodies: Vec<String> = got
                    .iter()
                    .map(|d| String::from_utf8_lossy(&d.body).into_owned())
                    .collect();
                panic!("no such notification; received:\n{}", bodies.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn job_of<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["jobs"].as_array()?.iter().find(|j| j["name"] == name)
}

/// A bare repo in a temp dir that the test pushes the jobs repo to.
struct Remote {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
}

impl Remote {
    fn new(repo: &Repo) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("jobs.git");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "jobs.git"],
        );
        let _ = repo;
        Remote { _dir: dir, bare }
    }

    /// Commits everything and pushes `main`; returns the commit.
    fn push(&self, repo: &Repo, message: &str) -> String {
        let commit = repo.commit(message);
        git(
            &repo.root,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), "main"],
        );
        commit
    }
}

/// The `weir serve` process.
struct Daemon {
    child: Option<std::process::Child>,
    base: String,
    state_dir: tempfile::TempDir,
    extra: String,
    env: Vec<(String, String)>,
}

impl Daemon {
    fn start(remote: &Remote, extra: &str) -> Daemon {
        Daemon::spawn(remote, tempfile::tempdir().unwrap(), extra)
    }

    /// Starts again on the same state directory (store and mirror).
    fn start_again(remote: &Remote, mut old: Daemon) -> Daemon {
        let _ = old.child.take();
        let state_dir = std::mem::replace(&mut old.state_dir, tempfile::tempdir().unwrap());
        let env: Vec<(&str, &str)> = old
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Daemon::spawn_env(remote, state_dir, &old.extra.clone(), &env)
    }

    /// Starts with extra environment variables (e.g. notification URLs and secrets).
    fn start_with_env(remote: &Remote, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_env(remote, tempfile::tempdir().unwrap(), extra, env)
    }

    fn spawn(remote: &Remote, state_dir: tempfile::TempDir, extra: &str) -> Daemon {
        Daemon::spawn_env(remote, state_dir, extra, &[])
    }

    fn spawn_env(
        remote: &Remote,
        state_dir: tempfile::TempDir,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let cfg = state_dir.path().join("serve.yaml");
        // `extra` may set its own `apply:` settings.
        let apply = if extra.contains("apply:") {
            ""
        } else {
            "apply: {savepointTimeoutSeconds: 120, startTimeoutSeconds: 120}\n"
        };
        std::fs::write(
            &cfg,
            format!(
                "repo:\n  url: file://{}\n  branch: main\nlisten: 127.0.0.1:0\nstateDir: {}\n\
                 api:\n  tokens: [{{env: WEIR_TEST_API_TOKEN}}]\n\
                 webhooks:\n  github: {{env: WEIR_TEST_GITHUB_SECRET}}\n{apply}{extra}",
                remote.bare.display(),
                state_dir.path().display()
            ),
        )
        .unwrap();
        let addr_file = state_dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir.path().join("serve.log"))
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .arg("--address-file")
            .arg(&addr_file)
            .env_remove("WEIR_STATE")
            .env_remove("WEIR_FAULT_CRASH_AT")
            .env("WEIR_LOG", "info,sqlx=warn,tower_http=warn")
            .env("WEIR_TEST_API_TOKEN", TOKEN)
            .env("WEIR_TEST_GITHUB_SECRET", GITHUB_SECRET)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting weir serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                break a;
            }
            assert!(Instant::now() < deadline, "weir serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Daemon {
            child: Some(child),
            base: format!("http://{addr}"),
            state_dir,
            extra: extra.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("serve.log")).unwrap_or_default()
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn get(&self, path: &str) -> Value {
        let r = Daemon::client()
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    fn get_text(&self, path: &str) -> String {
        Daemon::client()
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    fn status(&self) -> Value {
        self.get("/api/v1/status")
    }

    fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = Daemon::client()
            .post(format!("{}{path}", self.base))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn github(&self, body: &str) -> (u16, String) {
        let sig = weir::serve::webhook::sign(GITHUB_SECRET.as_bytes(), body.as_bytes());
        self.post_raw(
            "/api/v1/webhooks/github",
            body,
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sig),
                ("Content-Type", "application/json"),
            ],
        )
    }

    fn sync(&self) {
        let r = self.post_raw(
            "/api/v1/sync",
            "",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(r.0, 202, "{}", r.1);
    }

    /// Triggers a reconcile and waits until one started after the trigger has finished.
    fn sync_and_wait(&self) -> Value {
        let before = self.status()["reconciles"].as_u64().unwrap();
        self.sync();
        // The trigger may coalesce with one in progress, which schedules exactly one more.
        self.wait_for("a reconcile", Duration::from_secs(60), |s| {
            s["reconciles"].as_u64().unwrap() >= before + 2
                || (s["reconciles"].as_u64().unwrap() > before
                    && s["lastReconcile"]["triggers"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "api")))
        })
    }

    #[track_caller]
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status:\n{}\n--- daemon log\n{}",
                    serde_json::to_string_pretty(&s).unwrap(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[track_caller]
    fn wait_job(&self, name: &str, sync: &str, health: &str) -> Value {
        let s = self.wait_for(
            &format!("{name} {sync} {health}"),
            Duration::from_secs(120),
            |s| job_of(s, name).is_some_and(|j| j["sync"] == sync && j["health"] == health),
        );
        job_of(&s, name).unwrap().clone()
    }

    /// SIGTERM; returns the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("weir serve did not exit after SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
