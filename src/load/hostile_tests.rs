//! Hostile and unusual input (issue 9): values reach Flink as written, unreadable entries are
//! diagnostics, URLs and tags are checked.

use super::*;
use crate::git::MemoryFiles;

const CONFIG: &str = "\
clusters:
  prod:
    url: http://flink-prod:8081
";

fn job(spec_tail: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\nspec:\n  cluster: prod\n  \
         parallelism: 2\n  jar:\n    path: jars/orders.jar\n{spec_tail}"
    )
}

fn load(job_text: &str) -> LoadOutcome {
    load_from(
        &MemoryFiles::new()
            .with("weir.yaml", CONFIG)
            .with("jars/orders.jar", "orders-bytes")
            .with("jobs/a.yaml", job_text),
    )
}

fn rendered(o: &LoadOutcome) -> String {
    o.diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identity stability (safety invariant 5): configuration written the ordinary way (plain
/// strings, integers, booleans, simple decimals) keeps the code fingerprint it had before values
/// were kept as written. The expected value was computed with the code before that change.
#[test]
fn ordinary_configuration_keeps_its_fingerprint() {
    let o = load(&job(
        "  flinkConfiguration:\n    state.backend: rocksdb\n    taskmanager.numberOfTaskSlots: 2\n    \
         pipeline.object-reuse: true\n    some.ratio: 0.5\n    execution.checkpointing.interval: 10s\n",
    ));
    assert!(o.is_clean(), "{}", rendered(&o));
    let job = &o.desired.unwrap().jobs[0];
    assert_eq!(
        hex::encode(job.code_fingerprint()),
        "23ae1840ac9a45f32d6f74eef320289f8317d8af4493d363253d528df7ba9e7c"
    );
}

#[test]
fn configuration_values_reach_flink_as_written() {
    let o = load(&job(
        "  flinkConfiguration:\n    big: 12345678901234567890\n    one: 1.0\n    answer: yes\n    \
         hex: 0x1F\n    under: 1_000\n    exp: 1e3\n    plus: +5\n    quoted: \"0x1F\"\n    \
         anchored: &v 0o17\n    alias: *v\n    text: plain words\n",
    ));
    assert!(o.is_clean(), "{}", rendered(&o));
    let config = &o.desired.unwrap().jobs[0].flink_configuration;
    let expect = [
        ("alias", "0o17"),
        ("anchored", "0o17"),
        ("answer", "yes"),
        ("big", "12345678901234567890"),
        ("exp", "1e3"),
        ("hex", "0x1F"),
        ("one", "1.0"),
        ("plus", "+5"),
        ("quoted", "0x1F"),
        ("text", "plain words"),
        ("under", "1_000"),
    ];
    let got: Vec<(&str, &str)> = config.iter().collect();
    assert_eq!(got, expect);
}

#[test]
fn quoted_numbers_and_booleans_are_not_numbers() {
    let o = load(&job("  restartNonce: \"3\"\n").replace("parallelism: 2", "parallelism: \"2\""));
    let all = rendered(&o);
    assert!(
        all.contains(
            "jobs/a.yaml:7:16: spec.parallelism: invalid type: string \"2\", expected u32"
        ),
        "{all}"
    );
    assert!(
        all.contains("spec.restartNonce: invalid type: string \"3\""),
        "{all}"
    );
    let o = load(&job("  savepoint:\n    allowNonRestoredState: \"true\"\n"));
    assert!(
        rendered(&o).contains("spec.savepoint.allowNonRestoredState: invalid type: string"),
        "{}",
        rendered(&o)
    );
    let o = load(&job("").replace("parallelism: 2", "parallelism: 99999999999"));
    assert!(rendered(&o).contains("spec.parallelism: invalid value: integer `99999999999`"));
}

#[test]
fn unknown_tags_are_errors() {
    let o = load(&job("  flinkConfiguration:\n    a: !Ref other\n"));
    let all = rendered(&o);
    assert!(all.contains("jobs/a.yaml:11:13: "), "{all}");
    assert!(all.contains("unsupported YAML tag `!Ref`"), "{all}");
    let o = load(&job("").replace("  cluster: prod", "  !secret cluster: prod"));
    assert!(
        rendered(&o).contains("unsupported YAML tag"),
        "{}",
        rendered(&o)
    );
    // Standard tags keep working.
    let o = load(&job("  flinkConfiguration:\n    a: !!str 10\n"));
    assert!(o.is_clean(), "{}", rendered(&o));
    assert_eq!(o.desired.unwrap().jobs[0].flink_configuration["a"], "10");
}

fn write(root: &std::path::Path, path: &str, content: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

/// A work tree with a valid `jobs/a.yaml`.
fn work_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "weir.yaml", CONFIG);
    write(dir.path(), "jars/orders.jar", "orders-bytes");
    write(dir.path(), "jobs/a.yaml", &job(""));
    dir
}

fn load_dir(dir: &std::path::Path) -> LoadOutcome {
    load_repo(&crate::git::RepoSource::work_tree(dir).unwrap())
}

#[cfg(unix)]
#[test]
fn entries_weir_cannot_read_are_diagnostics() {
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        "b.yaml",
        &job("").replace("name: orders", "name: other"),
    );
    let dir = work_tree();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("jobs/team")).unwrap();
    std::fs::create_dir_all(dir.path().join("jobs/x.yaml")).unwrap();
    let _socket =
        std::os::unix::net::UnixListener::bind(dir.path().join("jobs/agent.sock")).unwrap();
    // Hidden entries (editor lock files are dangling symlinks) stay ignored.
    std::os::unix::fs::symlink("nowhere", dir.path().join("jobs/.#a.yaml")).unwrap();
    let o = load_dir(dir.path());
    let all = rendered(&o);
    assert!(
        all.contains("jobs/team:1:1: `jobs/team` is a symbolic link"),
        "{all}"
    );
    assert!(
        all.contains("jobs/x.yaml:1:1: `jobs/x.yaml` is a directory"),
        "{all}"
    );
    assert!(
        all.contains("jobs/agent.sock:1:1: `jobs/agent.sock` is a socket"),
        "{all}"
    );
    assert_eq!(o.diagnostics.len(), 3, "{all}");
    assert_eq!(
        o.invalid_files,
        ["jobs/agent.sock", "jobs/team", "jobs/x.yaml"]
    );
    // The readable job is still loaded.
    assert_eq!(o.desired.unwrap().jobs.len(), 1);
}

#[cfg(unix)]
#[test]
fn jobs_directory_that_is_a_symlink_or_a_file_is_a_diagnostic() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "a.yaml", &job(""));
    let dir = work_tree();
    std::fs::remove_dir_all(dir.path().join("jobs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("jobs")).unwrap();
    let o = load_dir(dir.path());
    assert!(
        rendered(&o).starts_with("jobs:1:1: cannot list `jobs`"),
        "{}",
        rendered(&o)
    );
    assert!(rendered(&o).contains("symbolic link"), "{}", rendered(&o));
    assert_eq!(o.invalid_files, ["jobs"]);

    std::fs::remove_file(dir.path().join("jobs")).unwrap();
    write(dir.path(), "jobs", "not a directory");
    let o = load_dir(dir.path());
    assert!(
        rendered(&o).contains("is not a directory"),
        "{}",
        rendered(&o)
    );
    assert_eq!(o.invalid_files, ["jobs"]);
}

#[test]
fn symlinks_directories_and_submodules_in_a_commit_are_diagnostics() {
    let dir = work_tree();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    // A symlink blob `jobs/team` and a submodule `jobs/sub.yaml`, written into the index.
    let link = repo.blob(b"../elsewhere").unwrap();
    let entry = |path: &str, id: git2::Oid, mode: u32| git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: 0,
        id,
        flags: path.len() as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    };
    index.add(&entry("jobs/team", link, 0o120000)).unwrap();
    index.add(&entry("jobs/sub.yaml", link, 0o160000)).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
        .unwrap();
    let source = crate::git::RepoSource::git_tree(dir.path(), "HEAD").unwrap();
    let o = load_repo(&source);
    let all = rendered(&o);
    assert!(
        all.contains("jobs/team:1:1: `jobs/team` is a symbolic link"),
        "{all}"
    );
    assert!(
        all.contains("jobs/sub.yaml:1:1: `jobs/sub.yaml` is a submodule"),
        "{all}"
    );
    assert_eq!(o.desired.unwrap().jobs.len(), 1);
}

#[test]
fn cluster_urls_apply_would_refuse_are_errors_without_the_password() {
    for (url, needle) in [
        ("http://admin:hunter2@flink:8081", "user name or password"),
        ("http://flink:8081/?token=hunter2", "query or fragment"),
        ("http://flink:8081/#hunter2", "query or fragment"),
    ] {
        let o = load_from(
            &MemoryFiles::new().with("weir.yaml", format!("clusters:\n  prod:\n    url: {url}\n")),
        );
        let all = rendered(&o);
        assert!(
            all.starts_with("weir.yaml:3:10: clusters.prod.url: ") && all.contains(needle),
            "{all}"
        );
        assert!(!all.contains("hunter2"), "{all}");
    }
}

#[test]
fn numeric_configuration_keys_keep_their_values_as_written() {
    let o = load(&job("  flinkConfiguration:\n    0x1F: 1.0\n    10: yes\n"));
    assert!(o.is_clean(), "{}", rendered(&o));
    let config = &o.desired.unwrap().jobs[0].flink_configuration;
    let got: Vec<(&str, &str)> = config.iter().collect();
    assert_eq!(got, [("0x1F", "1.0"), ("10", "yes")]);
}
