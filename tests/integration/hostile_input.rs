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

#[test]
fn cluster_urls_with_credentials_or_a_query_fail_validate_without_the_secret() {
    for (url, needle) in [
        ("http://admin:hunter2@127.0.0.1:9", "user name or password"),
        ("http://127.0.0.1:9/?token=hunter2", "query or fragment"),
    ] {
        let repo = Repo::new(url, None);
        repo.write("artifacts/app.jar", "jar bytes");
        repo.write("jobs/good.yaml", GOOD);
        let run = repo.weir(&["validate"]).code(1);
        assert!(
            run.stderr.contains("weir.yaml:3:10: clusters.local.url: ")
                && run.stderr.contains(needle),
            "{}",
            run.stderr
        );
        assert!(!run.all().contains("hunter2"), "{}", run.all());
    }
}

#[test]
fn unknown_tags_and_quoted_numbers_fail_validate() {
    let repo = offline_repo();
    repo.write(
        "jobs/good.yaml",
        &GOOD.replace(
            "parallelism: 1",
            "parallelism: \"2\"\n  flinkConfiguration:\n    a: !Ref other",
        ),
    );
    let run = repo.weir(&["validate"]).code(1);
    assert!(
        run.stderr.contains("jobs/good.yaml:")
            && run.stderr.contains("unsupported YAML tag `!Ref`"),
        "{}",
        run.stderr
    );
    repo.write(
        "jobs/good.yaml",
        &GOOD.replace("parallelism: 1", "parallelism: \"2\""),
    );
    let run = repo.weir(&["validate"]).code(1);
    assert!(
        run.stderr.contains(
            "jobs/good.yaml:7:16: spec.parallelism: invalid type: string \"2\", expected u32"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_escapes_control_characters_in_file_names_and_values() {
    let repo = offline_repo();
    repo.write(
        "jobs/\u{1b}[2Kevil.yaml",
        &GOOD.replace(
            "cluster: local",
            "cluster: \"x\\e[31m\\nOK: 1 job definition valid.\"",
        ),
    );
    let run = repo.weir(&["validate"]).code(1);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("jobs/\\u{1b}[2Kevil.yaml:6:"),
        "{}",
        run.stderr
    );
    assert!(
        !run.all().lines().any(|l| l.starts_with("OK:")),
        "{}",
        run.all()
    );
}

/// Values as written reach the plan (what is submitted), and a plan cannot forge lines.
#[test]
fn plan_shows_values_as_written_and_escapes_control_characters() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("hostile");
    let job = jar_job_args(
        &name,
        1,
        &[
            "--topic",
            "x\nPlan: 0 to create, 0 to redeploy, 0 to delete.\u{1b}[2K\r",
        ],
    ) + "  flinkConfiguration:\n    big: 12345678901234567890\n    one: 1.0\n    answer: yes\n    hex: 0x1F\n";
    repo.write(&format!("jobs/{name}.yaml"), &job);
    repo.commit("hostile job");
    let plan = repo.weir(&["plan"]).ok();
    assert!(
        !plan.stdout.contains('\u{1b}') && !plan.stdout.contains('\r'),
        "{:?}",
        plan.stdout
    );
    assert!(
        !plan
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("Plan: 0 to create")),
        "{}",
        plan.stdout
    );
    for written in [
        "big: 12345678901234567890",
        "one: 1.0",
        "answer: yes",
        "hex: 0x1F",
    ] {
        assert!(
            plan.stdout.contains(written),
            "{written} in:\n{}",
            plan.stdout
        );
    }
    let markdown = repo.weir(&["plan", "--format", "markdown"]).ok();
    assert!(!markdown.stdout.contains('\u{1b}'), "{:?}", markdown.stdout);
}
