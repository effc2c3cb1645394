//! The savepoint lifecycle on a real Flink 2.x cluster: `weir savepoint JOB` (manual, recorded),
//! pins, and retention disposing savepoints on disk through Flink while the newest, the
//! restored-from and the pinned one stay; a disposal that fails (files already gone) is
//! reported, the savepoint stays known and is retried.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::*;

/// The local directory of a `file:` savepoint location.
fn on_disk(location: &str) -> PathBuf {
    let path = location
        .strip_prefix("file://")
        .or_else(|| location.strip_prefix("file:"))
        .unwrap_or(location);
    PathBuf::from(path)
}

#[track_caller]
fn take(repo: &Repo, name: &str) -> String {
    let taken = repo
        .weir(&["savepoint", name, "--format", "json"])
        .ok()
        .json();
    assert_eq!(taken["origin"], "manual", "{taken:#}");
    assert_eq!(taken["job"], name);
    let path = taken["path"].as_str().expect("path").to_string();
    assert!(on_disk(&path).exists(), "{path} is on disk");
    path
}

/// The prune decision about `path`.
#[track_caller]
fn decision<'a>(pruned: &'a Value, path: &str) -> &'a Value {
    pruned
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("no decision about {path} in {pruned:#}"))
}

fn keeps(d: &Value) -> Vec<String> {
    d["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn manual_savepoints_pins_and_retention_on_flink_2() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("spl");
    let file = format!("jobs/{name}.yaml");
    let base = &cluster.url;
    let retain = "  savepoint:\n    retain:\n      count: 1\n";
    repo.write(&file, &jar_job(&name, 1, "orders", retain));
    repo.commit("add job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);

    // An upgrade: the new job restores from the upgrade savepoint.
    repo.write(&file, &jar_job(&name, 1, "payments", retain));
    repo.commit("change topic");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    let (upgrade, _) = restored_from(base, &second[0]).expect("restored from a savepoint");
    wait_checkpoint(base, &second[0]);

    // Three manual savepoints; the job keeps running.
    let m1 = take(&repo, &name);
    let m2 = take(&repo, &name);
    let m3 = take(&repo, &name);
    assert_eq!(running_named(base, &name), second, "the job keeps running");
    let lineage = repo
        .weir(&["savepoints", &name, "--format", "json"])
        .ok()
        .stdout;
    for m in [&m1, &m2, &m3] {
        assert!(lineage.contains(m.as_str()), "{m} recorded: {lineage}");
    }

    // Pin the oldest manual one; unknown paths are refused.
    repo.weir(&["savepoints", "pin", &name, &m1]).ok();
    let refused = repo.weir(&["savepoints", "pin", &name, "file:/nowhere"]);
    assert_eq!(refused.code, 1, "{}", refused.all());

    // Dry run: only m2 would go; nothing is touched.
    let dry = repo
        .weir(&["savepoints", "prune", "--dry-run", "--format", "json"])
        .ok()
        .json();
    assert_eq!(decision(&dry, &m2)["result"], "would dispose", "{dry:#}");
    assert!(
        keeps(decision(&dry, &m3)).contains(&"newest".into()),
        "{dry:#}"
    );
    assert!(
        keeps(decision(&dry, &m1)).contains(&"pinned".into()),
        "{dry:#}"
    );
    let up = keeps(decision(&dry, &upgrade));
    assert!(up.contains(&"restored-from".into()), "{dry:#}");
    assert!(on_disk(&m2).exists());

    // The prune disposes m2 on disk through Flink; the others stay on disk.
    let pruned = repo
        .weir(&["savepoints", "prune", "--format", "json"])
        .ok()
        .json();
    assert_eq!(decision(&pruned, &m2)["result"], "disposed", "{pruned:#}");
    assert!(!on_disk(&m2).exists(), "{m2} removed by Flink");
    for kept in [&m1, &m3, &upgrade] {
        assert!(on_disk(kept).exists(), "{kept} stays");
    }
    lineage_tells_manual_pinned_and_disposed_apart(&repo, &name, [&m1, &m2, &m3]);

    // A disposal that fails: m3's files vanish behind weir's back once m4 is newer.
    let m4 = take(&repo, &name);
    std::fs::remove_dir_all(on_disk(&m3)).unwrap();
    let failed = repo.weir(&["savepoints", "prune", "--format", "json"]);
    assert_eq!(
        failed.code,
        1,
        "a failed disposal fails the command: {}",
        failed.all()
    );
    let failed = failed.json();
    let d = decision(&failed, &m3);
    assert_eq!(d["failed"], true, "{failed:#}");
    assert!(
        d["result"]
            .as_str()
            .unwrap()
            .contains("disposal of savepoint"),
        "{failed:#}"
    );
    // Not forgotten: still known, still selected, retried by the next prune.
    let retry = repo
        .weir(&["savepoints", "prune", "--format", "json"])
        .code(1)
        .json();
    assert_eq!(decision(&retry, &m3)["failed"], true, "{retry:#}");
    assert!(on_disk(&m4).exists());

    // Unpinned, m1 goes too.
    repo.weir(&["savepoints", "unpin", &name, &m1]).ok();
    let after = repo
        .weir(&["savepoints", "prune", "--format", "json"])
        .code(1)
        .json();
    assert_eq!(decision(&after, &m1)["result"], "disposed", "{after:#}");
    assert!(!on_disk(&m1).exists());
}

/// The lineage tells the manual savepoints `m1` (pinned), `m2` (disposed) and `m3` apart; a
/// disposed savepoint is forgotten by the next prune.
fn lineage_tells_manual_pinned_and_disposed_apart(
    repo: &Repo,
    name: &str,
    [m1, m2, m3]: [&str; 3],
) {
    let lineage = repo
        .weir(&["savepoints", name, "--format", "json"])
        .ok()
        .json();
    let story = |path: &str| {
        lineage["savepoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("{path} in {lineage:#}"))
    };
    assert_eq!(story(m1)["origin"], "manual", "{lineage:#}");
    assert_eq!(story(m1)["pinned"], true, "{lineage:#}");
    assert_eq!(story(m2)["disposed"], true, "{lineage:#}");
    assert_eq!(story(m3)["disposed"], false, "{lineage:#}");
    // Forgotten once disposed: the next prune does not list it.
    let again = repo
        .weir(&["savepoints", "prune", "--dry-run", "--format", "json"])
        .ok()
        .json();
    assert!(!again.to_string().contains(m2), "m2 forgotten: {again:#}");
}

/// The savepoint directories on disk below `dir`.
fn savepoint_dirs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("savepoint-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A counter of `/metrics` (0 when absent).
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `weir serve` takes periodic savepoints on schedule (recorded as periodic), retention keeps
/// two of them on disk, health reads healthy, and with `pollIntervalSeconds: 600` a job
/// cancelled behind weir's back is healed by the observation timer without a Git fetch.
#[test]
fn daemon_periodic_savepoints_retention_and_observation_on_flink_2() {
    use crate::daemon::{Options, Remote, job_of};
    use std::time::{Duration, Instant};

    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("spl-serve");
    let spec = "  savepoint:\n    periodic: 6s\n    retain:\n      count: 2\n";
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "o", spec));
    remote.push(&repo, "a job with periodic savepoints");
    let d = Options::following(&remote)
        .config(
            "pollIntervalSeconds: 600\nobserveIntervalSeconds: 2\n\
             sync: {selfHeal: true, selfHealBackoffSeconds: 1}\n\
             lifecycle: {tickSeconds: 1, retentionIntervalSeconds: 2, healthIntervalSeconds: 2}\n",
        )
        .start();
    d.wait_job(&name, "Synced", "RUNNING");
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);

    // Three periodic savepoints and at least one disposal: two stay on disk.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = d.get_text("/metrics");
        let taken = metric(
            &m,
            "weir_savepoint_operations_total{kind=\"trigger\",outcome=\"succeeded\"}",
        );
        let disposed = metric(
            &m,
            "weir_savepoint_operations_total{kind=\"dispose\",outcome=\"succeeded\"}",
        );
        if taken >= 3 && disposed >= 1 && savepoint_dirs(&repo.savepoints).len() <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "taken {taken}, disposed {disposed}, on disk {:?}\n{}",
            savepoint_dirs(&repo.savepoints),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = d.log();
    assert!(log.contains("periodic savepoint recorded"), "{log}");
    assert!(!log.contains("periodic savepoint failed"), "{log}");

    // Health: read, and healthy.
    let s = d.wait_for("job health", Duration::from_secs(30), |s| {
        job_of(s, &name).is_some_and(|j| j["jobHealth"] == "healthy")
    });
    assert_eq!(job_of(&s, &name).unwrap()["health"], "RUNNING");
    assert!(
        d.get_text("/metrics").contains(&format!(
            "weir_job_health{{job=\"{name}\",cluster=\"local\"}} 0"
        )),
        "{}",
        d.get_text("/metrics")
    );

    // Cancelled behind weir's back: noticed by the observation timer and healed, no Git poll.
    cancel(base, &first[0]);
    let healed = d.wait_for("the heal", Duration::from_secs(90), |s| {
        running_named(base, &name).iter().any(|id| id != &first[0])
            && s["lastReconcile"]["triggers"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "observe"))
    });
    assert!(
        healed["lastPlan"]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("recover")
            || d.log().contains("recover"),
        "{healed:#}"
    );
    let fetches = d.log().matches("observe").count();
    assert!(fetches > 0);
}

/// `spec.savepoint.restoreFrom` + a bumped `redeployNonce`: the plan says so loudly, the current
/// state is still saved first, and the new job restores the chosen older savepoint (Flink's
/// `latest.restored.external_path`).
#[test]
fn redeploy_from_a_chosen_savepoint_on_flink_2() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("spl-from");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("add job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    wait_checkpoint(base, &first[0]);
    let chosen = take(&repo, &name);
    let _newer = take(&repo, &name);

    let spec = format!("  savepoint:\n    restoreFrom: {chosen}\n    redeployNonce: 1\n");
    repo.write(&file, &jar_job(&name, 1, "orders", &spec));
    repo.commit("redeploy from the chosen savepoint");
    let plan = plan_json(&repo, 2);
    let c = change(&plan, &name);
    assert_eq!(c["action"], "redeploy", "{c:#}");
    assert!(
        c["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("REDEPLOY FROM A CHOSEN SAVEPOINT"),
        "{c:#}"
    );
    assert_eq!(
        step_names(c),
        ["stop-with-savepoint", "submit", "await-running"]
    );
    let text = repo.weir(&["plan"]).stdout;
    assert!(text.contains("REDEPLOY FROM A CHOSEN SAVEPOINT"), "{text}");

    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
    let (restored, is_savepoint) = restored_from(base, &second[0]).expect("restored");
    assert!(is_savepoint);
    assert_eq!(
        on_disk(&restored),
        on_disk(&chosen),
        "restored the chosen one"
    );
    // The previous state was saved first: the stop's savepoint is in the lineage.
    let lineage = repo.weir(&["savepoints", &name]).ok().stdout;
    assert!(lineage.matches("savepoint-").count() >= 3, "{lineage}");
    // Done: the same definition plans no change.
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}
