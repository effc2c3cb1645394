//! Hostile input (issue 9): entries weir cannot read are errors that keep prune from deleting,
//! secrets in URLs are refused without being echoed, and control characters cannot forge lines.

use std::process::Command;

use crate::harness::*;

const GOOD: &str = "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: good\nspec:\n  cluster: local\n  parallelism: 1\n  jar:\n    path: artifacts/app.jar\n";

fn offline_repo() -> Repo {
    let repo = Repo::new("http://127.0.0.1:9", None);
    repo.write("artifacts/app.jar", "jar bytes");
    repo.write("jobs/good.yaml", GOOD);
    repo
}

#[test]
fn entries_weir_cannot_read_fail_validate() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("other.yaml"),
        GOOD.replace("name: good", "name: other"),
    )
    .unwrap();
    let repo = offline_repo();
    std::os::unix::fs::symlink(outside.path(), repo.root.join("jobs/team")).unwrap();
    std::fs::create_dir_all(repo.root.join("jobs/dir.yaml")).unwrap();
    let fifo = repo.root.join("jobs/pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let run = repo.weir(&["validate"]).code(1);
    for needle in [
        "jobs/team:1:1: `jobs/team` is a symbolic link",
        "jobs/dir.yaml:1:1: `jobs/dir.yaml` is a directory",
        "jobs/pipe.yaml:1:1: `jobs/pipe.yaml` is a FIFO",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} in:\n{}",
            run.stderr
        );
    }

    // `jobs/` itself a symlink.
    let repo = offline_repo();
    std::fs::remove_dir_all(repo.root.join("jobs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.root.join("jobs")).unwrap();
    let run = repo.weir(&["validate"]).code(1);
    assert!(
        run.stderr.contains("jobs:1:1: cannot list `jobs`") && run.stderr.contains("symbolic link"),
        "{}",
        run.stderr
    );
}

/// A job whose file moves behind a symlinked directory is not "deleted": with `prune: true`
/// nothing is planned and the job keeps running.
#[test]
fn prune_never_deletes_a_job_whose_file_cannot_be_read() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    repo.write_config(true);
    let name = repo.unique("hidden");
    let file = format!("jobs/team/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("add job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let running = running_named(&cluster.url, &name);
    assert_eq!(running.len(), 1);

    // The team directory now lives elsewhere and is linked in.
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("team");
    std::fs::rename(repo.root.join("jobs/team"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, repo.root.join("jobs/team")).unwrap();

    let plan = repo.weir(&["plan"]);
    assert_ne!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stderr.contains("jobs/team:1:1:") && !plan.stdout.contains("to delete"),
        "{}",
        plan.all()
    );
    let apply = repo.weir(&["apply", "--auto-approve"]);
    assert_ne!(apply.code, 0, "{}", apply.all());
    assert_eq!(running_named(&cluster.url, &name), running);
}
