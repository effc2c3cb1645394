//! The console in a real browser: Debian's headless Chromium driven by playwright-core
//! (tests/browser/console.js) against the real `weir serve` and the real Flink 2.x cluster.
//! Screenshots of every page go to `target/console-screenshots/` for review (not compared).
//! Needs `/usr/bin/chromium` and `npm ci` in tests/browser (scripts/test.sh installs both); the
//! test fails, never skips, without them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{API_TOKEN, Options, Remote, job_of};
use crate::harness::*;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

#[test]
fn the_console_in_a_browser_lists_filters_shows_lineage_and_approves() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (scripts/test.sh does)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    let auto = repo.unique("console-auto");
    let manual = repo.unique("console-manual");
    let auto_file = format!("jobs/{auto}.yaml");
    repo.write(&auto_file, &jar_job(&auto, 1, "orders", ""));
    repo.write(
        &format!("jobs/{manual}.yaml"),
        &jar_job(&manual, 1, "payments", "").replace("team: test", "team: payments"),
    );
    remote.push(&repo, "two jobs");
    // The manual job waits for approval; the other is applied (and redeployed) by itself.
    let d = Options::following(&remote)
        .config(&format!(
            "pollIntervalSeconds: 3600\nsync:\n  policy: manual\n  jobs:\n    {auto}: {{policy: auto}}\n"
        ))
        .start();
    let first = d.wait_job(&auto, "Synced", "RUNNING")["jobId"].clone();
    wait_checkpoint(&cluster.url, first.as_str().unwrap());
    repo.write(&auto_file, &jar_job(&auto, 1, "orders-v2", ""));
    remote.push(&repo, "redeploy the auto job");
    d.sync();
    d.wait_for("the redeploy", Duration::from_secs(120), |s| {
        job_of(s, &auto).is_some_and(|j| {
            j["sync"] == "Synced" && j["health"] == "RUNNING" && j["jobId"] != first
        }) && s["pendingPlan"]["id"].is_string()
    });

    // The jobs page's figures come from `GET /api/v1/jobs`: labels of the applied definition.
    let jobs = d.get("/api/v1/jobs");
    let row = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == auto.as_str())
        .unwrap_or_else(|| panic!("{jobs}"));
    assert_eq!(row["labels"]["team"], "test", "{jobs}");
    assert_eq!(row["lastApply"]["outcome"], "succeeded", "{jobs}");
    // A job never applied (waiting for approval) has the labels of its definition in Git.
    let waiting = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == manual.as_str())
        .unwrap_or_else(|| panic!("{jobs}"));
    assert_eq!(waiting["labels"]["team"], "payments", "{jobs}");
    assert!(waiting["lastApply"].is_null(), "{jobs}");

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("console.js"))
        .current_dir(browser_dir())
        .env("WEIR_CONSOLE_URL", &d.base)
        .env("WEIR_API_TOKEN", API_TOKEN)
        .env("WEIR_JOB_AUTO", &auto)
        .env("WEIR_JOB_MANUAL", &manual)
        .env("WEIR_SCREENSHOTS", &shots)
        .env("WEIR_PROFILE", profile.path())
        .output()
        .expect("running node (install Node.js)");
    let report = format!(
        "--- browser stdout\n{}\n--- browser stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{report}\n--- daemon log\n{}",
        d.log()
    );
    // The approval went through the API's path: the manual job runs now.
    d.wait_job(&manual, "Synced", "RUNNING");
    assert_eq!(running_named(&cluster.url, &manual).len(), 1, "{report}");
    eprintln!("{report}\nscreenshots in {}", shots.display());
}
