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
    // Forgotten once disposed: the next prune does not list it.
    let again = repo
        .weir(&["savepoints", "prune", "--dry-run", "--format", "json"])
        .ok()
        .json();
    assert!(
        !again.to_string().contains(m2.as_str()),
        "m2 forgotten: {again:#}"
    );

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
