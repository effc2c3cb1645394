//! Moving a job between two real Flink 2.3 session clusters (`spec.cluster` changed): one
//! `migrate` change, stop with a savepoint on the old cluster, start from it on the new one,
//! never two copies; a `kill -9` between the stop and the submission is finished on the new
//! cluster by the next `weir apply`, never by restarting the old job.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// A second Flink session cluster of this machine, started for one test and stopped after it.
struct SpareCluster {
    url: String,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flink.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SpareCluster {
    fn start(version: &str) -> SpareCluster {
        let dir = tempfile::tempdir().unwrap();
        let (rest, rpc) = (free_port(), free_port());
        let out = Command::new("bash")
            .arg(script())
            .args(["start", version])
            .arg(dir.path())
            .args([rest.to_string(), rpc.to_string(), "4".to_string()])
            .env("WEIR_FLINK_JM_MEMORY", "768m")
            .env("WEIR_FLINK_TM_MEMORY", "1280m")
            .output()
            .expect("running scripts/flink.sh");
        assert!(
            out.status.success(),
            "starting a second Flink {version} cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SpareCluster {
            url: format!("http://127.0.0.1:{rest}"),
            dir,
        }
    }
}

impl Drop for SpareCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// `weir.yaml` with clusters `a` and `b` sharing the repo's savepoint directory.
fn two_cluster_config(repo: &Repo, a: &str, b: &str) {
    let sp = repo.savepoints.display();
    repo.write(
        "weir.yaml",
        &format!(
            "clusters:\n  a:\n    url: {a}\n    savepointDir: file://{sp}\n  b:\n    url: {b}\n    \
             savepointDir: file://{sp}\nrollback:\n  healthWindowSeconds: 0\n"
        ),
    );
}

fn on(cluster: &str, name: &str) -> String {
    jar_job(name, 1, "t0", "").replace("cluster: local", &format!("cluster: {cluster}"))
}

#[test]
fn a_job_moves_between_two_clusters_with_its_state_and_survives_a_kill_mid_move() {
    let a = cluster(Version::V2);
    let b = SpareCluster::start("2.3.0");
    let repo = Repo::new(&a.url, Some(&a.jars));
    two_cluster_config(&repo, &a.url, &b.url);
    let name = repo.unique("migrate");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &on("a", &name));
    repo.commit("on a");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(&a.url, &name);
    assert_eq!(first.len(), 1);

    // Moving it is one migrate change.
    repo.write(&file, &on("b", &name));
    repo.commit("to b");
    let plan = plan_json(&repo, 2);
    let c = change(&plan, &name);
    assert_eq!(c["action"], "migrate", "{plan:#}");
    assert_eq!(c["fromCluster"], "a");
    assert_eq!(c["cluster"], "b");
    assert_eq!(c["currentJob"]["jobId"], first[0].as_str());
    assert!(plan["changes"].as_array().unwrap().len() == 1, "{plan:#}");

    // Killed right after the stop's savepoint was recorded: nothing runs anywhere.
    let crashed = repo.weir_env(
        &["apply", "--auto-approve"],
        &[("WEIR_FAULT_CRASH_AT", "after:stop_with_savepoint")],
    );
    assert!(
        crashed
            .stderr
            .contains("aborting at after:stop_with_savepoint"),
        "{}",
        crashed.all()
    );
    assert!(running_named(&a.url, &name).is_empty());
    assert!(running_named(&b.url, &name).is_empty());

    // The next apply starts it on b from that savepoint; a stays stopped.
    let resumed = repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(
        resumed.all().contains("interrupted apply"),
        "{}",
        resumed.all()
    );
    assert!(
        running_named(&a.url, &name).is_empty(),
        "{:?}",
        jobs_named(&a.url, &name)
    );
    let moved = running_named(&b.url, &name);
    assert_eq!(moved.len(), 1, "{:?}", jobs_named(&b.url, &name));
    assert_eq!(
        jobs_named(&b.url, &name).len(),
        1,
        "exactly one submission on b"
    );
    let (path, is_savepoint) = restored_from(&b.url, &moved[0]).expect("restored");
    assert!(is_savepoint, "{path}");
    assert!(path.contains(&repo.savepoints.display().to_string()));
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);

    // One job in weir's eyes, now on b.
    let status = repo.weir(&["status", "--format", "json"]).ok().json();
    let text = status.to_string();
    assert!(text.contains(&moved[0]), "{status:#}");

    // And back, without a crash.
    repo.write(&file, &on("a", &name));
    repo.commit("back to a");
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(running_named(&b.url, &name).is_empty());
    let back = running_named(&a.url, &name);
    assert_eq!(back.len(), 1);
    let (path, is_savepoint) = restored_from(&a.url, &back[0]).expect("restored");
    assert!(is_savepoint && path.contains(&repo.savepoints.display().to_string()));
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}

/// From the Flink 1.20 cluster to the Flink 2.3 one, with the jar built for each: the 1.20
/// savepoint restores on 2.3 (the test job uses only state both versions read the same), or,
/// if it did not, the job is rolled back onto 1.20; either way exactly one copy runs.
#[test]
fn a_job_moves_from_flink_1_20_to_2_3() {
    let (old, new) = (cluster(Version::V1_20), cluster(Version::V2));
    let repo = Repo::new(&old.url, None);
    two_cluster_config(&repo, &old.url, &new.url);
    for (jars, file) in [(&old.jars, "job-1.jar"), (&new.jars, "job-2.jar")] {
        std::fs::create_dir_all(repo.root.join("artifacts")).unwrap();
        std::fs::copy(
            jars.join("weir-test-job.jar"),
            repo.root.join("artifacts").join(file),
        )
        .unwrap();
    }
    let name = repo.unique("upgrade");
    let file = format!("jobs/{name}.yaml");
    let on_jar = |cluster: &str, jar: &str| {
        on(cluster, &name).replace("artifacts/weir-test-job.jar", &format!("artifacts/{jar}"))
    };
    repo.write(&file, &on_jar("a", "job-1.jar"));
    repo.commit("on 1.20");
    repo.weir(&["apply", "--auto-approve"]).ok();
    assert_eq!(running_named(&old.url, &name).len(), 1);

    repo.write(&file, &on_jar("b", "job-2.jar"));
    repo.commit("to 2.3");
    let plan = plan_json(&repo, 2);
    let c = change(&plan, &name);
    assert_eq!(c["action"], "migrate", "{plan:#}");
    assert!(
        c["warnings"].to_string().contains("across Flink versions"),
        "{plan:#}"
    );
    let applied = repo.weir(&["apply", "--auto-approve"]);
    let (on_old, on_new) = (
        running_named(&old.url, &name),
        running_named(&new.url, &name),
    );
    assert_eq!(
        on_old.len() + on_new.len(),
        1,
        "exactly one copy: {}",
        applied.all()
    );
    eprintln!(
        "1.20 → 2.3 migrate: exit {}\n{}",
        applied.code,
        applied.all()
    );
    if applied.code == 0 {
        assert_eq!(on_new.len(), 1);
        let (path, is_savepoint) = restored_from(&new.url, &on_new[0]).expect("restored");
        assert!(is_savepoint, "{path}");
    } else {
        assert!(applied.all().contains("rolled back"), "{}", applied.all());
        assert_eq!(on_old.len(), 1);
    }
    // The repo cancels its jobs on its own (the old) cluster only.
    for id in on_new {
        cancel(&new.url, &id);
    }
}
