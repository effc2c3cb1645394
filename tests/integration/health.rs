//! Job health on a real Flink 2.x cluster: a job whose checkpoints start failing (its checkpoint
//! directory replaced by a file, which no process can write into, root included) turns Degraded
//! in `weir serve`'s status, `weir status` and `/metrics`, and `checkpoint.failing` reaches a
//! real SMTP server by email.

use std::time::{Duration, Instant};

use crate::channels::{SMTP_PASSWORD, SMTP_USER, SmtpSink, Tls, unfold};
use crate::daemon::{Options, Remote, job_of};
use crate::harness::*;

/// The directory of the job's checkpoints (the parent of its latest `chk-N`).
fn checkpoint_dir(base: &str, id: &str) -> std::path::PathBuf {
    let v = get(&format!("{base}/jobs/{id}/checkpoints"));
    let path = v["latest"]["completed"]["external_path"]
        .as_str()
        .unwrap_or_else(|| panic!("no completed checkpoint: {v}"));
    let local = path
        .strip_prefix("file://")
        .or_else(|| path.strip_prefix("file:"))
        .unwrap_or(path);
    std::path::Path::new(local).parent().unwrap().to_path_buf()
}

#[test]
fn failing_checkpoints_degrade_a_job_and_email_checkpoint_failing() {
    let sink = SmtpSink::start(Tls::Implicit, true, 0);
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("sick");
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}health:\n  checkpointFailures: 2\n  windowMinutes: 5\n\
             notifications:\n  routes:\n    - name: mail\n      \
             events: [checkpoint.failing]\n      format: email\n      \
             smtpUrlFromEnv: WEIR_TEST_SMTP_URL\n      from: weir@example.com\n      \
             to: [ops@example.com]\n"
        ),
    );
    // Failed checkpoints must not fail the job: it keeps running, sick.
    let spec =
        "  flinkConfiguration:\n    execution.checkpointing.tolerable-failed-checkpoints: 1000\n";
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "h", spec));
    remote.push(&repo, "a job about to get sick");
    let url = format!(
        "smtps://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?cafile={}",
        sink.port,
        sink.ca_file().display()
    );
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 600\nlifecycle: {tickSeconds: 1, healthIntervalSeconds: 1}\n")
        .env("WEIR_TEST_SMTP_URL", &url)
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let id = running_named(base, &name)[0].clone();
    wait_checkpoint(base, &id);
    d.wait_for("healthy", Duration::from_secs(30), |s| {
        job_of(s, &name).is_some_and(|j| j["jobHealth"] == "healthy")
    });

    // The job's checkpoint directory becomes a file: every new chk-N fails to be created.
    let dir = checkpoint_dir(base, &id);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();

    let s = d.wait_for("degraded", Duration::from_secs(90), |s| {
        job_of(s, &name)
            .is_some_and(|j| j["jobHealth"] == "degraded" || j["jobHealth"] == "failing")
    });
    let job = job_of(&s, &name).unwrap();
    let reasons = job["jobHealthReasons"].to_string();
    assert!(reasons.contains("checkpoints failed"), "{job:#}");

    let (raw, _) = sink.message(1, Duration::from_secs(60));
    let text = unfold(&raw);
    assert!(
        text.contains(&format!(
            "Subject: [weir] Checkpoints failing: {name} on local"
        )),
        "{text}"
    );
    assert!(
        text.contains("checkpoints failed in the last 5 min"),
        "{text}"
    );

    // The CLI reads the same: HEALTH column and JSON health.
    let row = status_row(&repo, &name);
    assert!(
        row["health"] == "degraded" || row["health"] == "failing",
        "{row:#}"
    );
    let table = repo.weir(&["status"]).ok().stdout;
    assert!(table.contains("HEALTH"), "{table}");
    let metrics = d.get_text("/metrics");
    assert!(
        metrics.contains(&format!(
            "weir_job_health{{job=\"{name}\",cluster=\"local\"}} 1"
        )) || metrics.contains(&format!(
            "weir_job_health{{job=\"{name}\",cluster=\"local\"}} 2"
        )),
        "{metrics}"
    );
    // Reported once while it stays sick.
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        d.log().matches("CheckpointFailing").count() <= 1,
        "deduplicated: {}",
        d.log()
    );
    // Undo, so the shared cluster's directory is a directory again.
    std::fs::remove_file(&dir).unwrap();
}
