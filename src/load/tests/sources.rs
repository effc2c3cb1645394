//! Where a load reads from (a commit, a work tree), its parse cache, and loads of many files on
//! several threads.

use super::*;

fn write(root: &Path, path: &str, content: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

fn commit_all(repo: &git2::Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

#[test]
fn git_tree_source_reads_the_commit_not_the_work_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = git2::Repository::init(root).unwrap();
    write(root, "weir.yaml", CONFIG);
    write(root, "runner/sql-runner.jar", "runner-bytes");
    write(root, "jars/orders.jar", "orders-v1");
    write(root, "jobs/orders.yaml", JAR_JOB);
    let first = commit_all(&repo, "first");
    write(root, "jars/orders.jar", "orders-v2");
    write(
        root,
        "jobs/report.yaml",
        &job_with_spec("  parallelism: 1\n  sqlFile: sql/report.sql\n").replace("orders", "report"),
    );
    write(root, "sql/report.sql", "SELECT 1");
    let second = commit_all(&repo, "second");
    // Uncommitted work: a broken job and a changed jar.
    write(root, "jobs/broken.yaml", "apiVersion: [");
    write(root, "jars/orders.jar", "orders-v3-uncommitted");

    let head = load_repo(&RepoSource::git_tree(root, "HEAD").unwrap());
    assert!(head.is_clean(), "{:?}", rendered(&head));
    let desired = head.desired.unwrap();
    assert_eq!(desired.revision.commit, Some(second.to_string()));
    assert!(!desired.revision.dirty);
    let names: Vec<&str> = desired.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["orders", "report"]);
    assert_eq!(desired.jobs[0].jar().sha256, sha("orders-v2"));
    assert_eq!(
        desired.revision.to_string(),
        second.to_string()[..12].to_string()
    );

    let prev = load_repo(&RepoSource::git_tree(root, "HEAD~1").unwrap());
    assert!(prev.is_clean(), "{:?}", rendered(&prev));
    let prev = prev.desired.unwrap();
    assert_eq!(prev.revision.commit, Some(first.to_string()));
    assert_eq!(prev.jobs.len(), 1);
    assert_eq!(prev.jobs[0].jar().sha256, sha("orders-v1"));
    assert_ne!(prev.revision.digest, desired.revision.digest);

    // The work tree sees the uncommitted state and reports it as dirty against HEAD.
    let work = load_repo(&RepoSource::work_tree(root).unwrap());
    assert_eq!(work.invalid_files, ["jobs/broken.yaml"]);
    let work_desired = work.desired.unwrap();
    assert_eq!(work_desired.revision.commit, Some(second.to_string()));
    assert!(work_desired.revision.dirty);
    assert_eq!(
        work_desired.jobs[0].jar().sha256,
        sha("orders-v3-uncommitted")
    );
    assert!(work_desired.revision.to_string().contains("+dirty."));

    // Once the work tree matches HEAD again it is clean, and its digest equals HEAD's.
    std::fs::remove_file(root.join("jobs/broken.yaml")).unwrap();
    write(root, "jars/orders.jar", "orders-v2");
    let clean = load_repo(&RepoSource::work_tree(root).unwrap())
        .desired
        .unwrap();
    assert!(!clean.revision.dirty);
    assert_eq!(clean.revision.digest, desired.revision.digest);
}

#[test]
fn work_tree_outside_git_has_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "weir.yaml", CONFIG);
    write(dir.path(), "runner/sql-runner.jar", "r");
    write(
        dir.path(),
        "jobs/q.yaml",
        &job_with_spec("  parallelism: 1\n  sql: SELECT 1\n"),
    );
    let o = load_repo(&RepoSource::work_tree(dir.path()).unwrap());
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let revision = o.desired.unwrap().revision;
    assert_eq!(revision.commit, None);
    assert!(!revision.dirty);
    assert!(revision.to_string().starts_with("worktree."));
}

// --- Parse cache -----------------------------------------------------------------------------

/// A load through the cache, checked against a load without it.
#[track_caller]
fn load_cached_and_compare(root: &Path, cache: &ParseCache) -> LoadOutcome {
    let source = RepoSource::git_tree(root, "HEAD").unwrap();
    let cached = load_repo_cached(&source, cache);
    let fresh = load_repo(&source);
    assert_eq!(
        serde_json::to_value(&cached).unwrap(),
        serde_json::to_value(&fresh).unwrap(),
        "a cached load differs from a fresh one"
    );
    cached
}

fn sql_program(o: &LoadOutcome, name: &str) -> String {
    let job = o
        .desired
        .as_ref()
        .unwrap()
        .jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap();
    format!("{:?}", job.program)
}

#[test]
fn cached_parses_follow_every_file_a_job_depends_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = git2::Repository::init(root).unwrap();
    write(root, "weir.yaml", CONFIG);
    write(root, "runner/sql-runner.jar", "runner-bytes");
    write(root, "jars/orders.jar", "orders-bytes");
    write(root, "jobs/orders.yaml", JAR_JOB);
    let sql_job = job_with_spec("  parallelism: 1\n  sqlFile: sql/report.sql\n")
        .replace("name: orders", "name: report");
    write(root, "jobs/report.yaml", &sql_job);
    write(root, "sql/report.sql", "SELECT 1;");
    commit_all(&repo, "first");
    let cache = ParseCache::new();

    let first = load_cached_and_compare(root, &cache);
    assert!(first.is_clean(), "{:?}", rendered(&first));
    assert_eq!(cache.last_load_stats(), (0, 2), "(reused, parsed)");

    // Nothing changed: nothing parsed.
    load_cached_and_compare(root, &cache);
    assert_eq!(cache.last_load_stats(), (2, 0));

    // One job file, the SQL file and weir.yaml change: only that job file is parsed again, and
    // the unchanged SQL job reads its new SQL.
    write(
        root,
        "jobs/orders.yaml",
        &JAR_JOB.replace("parallelism: 2", "parallelism: 3"),
    );
    write(root, "sql/report.sql", "SELECT 2;");
    write(
        root,
        "weir.yaml",
        &CONFIG.replace("s3://bucket/savepoints", "s3://bucket/other"),
    );
    commit_all(&repo, "second");
    let second = load_cached_and_compare(root, &cache);
    assert_eq!(cache.last_load_stats(), (1, 1));
    assert_ne!(
        sql_program(&first, "report"),
        sql_program(&second, "report")
    );
    let orders = |o: &LoadOutcome| {
        let d = o.desired.as_ref().unwrap();
        let j = d.jobs.iter().find(|j| j.name == "orders").unwrap();
        (j.parallelism, j.savepoint_dir.clone())
    };
    assert_eq!(orders(&second), (3, Some("s3://bucket/other".to_string())));

    // weir.yaml drops the cluster both jobs use: both become invalid, from cached parses.
    write(
        root,
        "weir.yaml",
        &CONFIG.replace("  prod:", "  production:"),
    );
    commit_all(&repo, "third");
    let third = load_cached_and_compare(root, &cache);
    assert_eq!(cache.last_load_stats(), (2, 0));
    assert_eq!(
        third.invalid_files,
        ["jobs/orders.yaml", "jobs/report.yaml"]
    );

    // A second file with the same content as a cached one: a duplicate name, like without cache.
    write(root, "weir.yaml", CONFIG);
    write(root, "jobs/copy.yaml", &sql_job);
    commit_all(&repo, "fourth");
    let fourth = load_cached_and_compare(root, &cache);
    assert!(fourth.invalid_files.contains(&"jobs/copy.yaml".to_string()));
}

/// Many job files take the parallel parsing path; the outcome is the one file-by-file order.
#[test]
fn many_job_files_load_in_order_with_their_problems() {
    let mut files = base();
    for i in 0..300 {
        let content = if i % 7 == 0 {
            // An invalid one now and then: its problems stay with its file.
            job_with_spec("  parallelism: 0\n  jar:\n    path: jars/orders.jar\n")
                .replace("name: orders", &format!("name: job-{i:03}"))
        } else {
            JAR_JOB.replace("name: orders", &format!("name: job-{i:03}"))
        };
        files = files.with(&format!("jobs/d{}/job-{i:03}.yaml", i % 5), content);
    }
    let outcome = load_from(&files);
    let jobs = &outcome.desired.as_ref().unwrap().jobs;
    assert_eq!(jobs.len(), 300 - 43);
    assert_eq!(outcome.invalid_files.len(), 43);
    assert_eq!(outcome.diagnostics.len(), 43);
    for d in &outcome.diagnostics {
        assert!(d.to_string().contains("spec.parallelism"), "{d}");
    }
}

/// Job files are read, parsed and checked on several threads, each recording into its own
/// records: the outcome (jobs, every diagnostic in its order, the revision digest over every
/// file read) is exactly the one of a load on one thread. The repo mixes everything a check
/// records: shared and missing jars, SQL files (one missing, one shared), invalid files,
/// duplicate names, jobs of another environment's cluster, more files than one chunk.
#[test]
fn a_load_on_several_threads_records_what_one_thread_does() {
    let mut files = base()
        .with("sql/shared.sql", "INSERT INTO t SELECT * FROM s;")
        .with("jars/other.jar", "other-bytes");
    for i in 0..1100 {
        let name = format!("job-{i:04}");
        let spec = match i % 9 {
            0 => "  parallelism: 0\n  jar:\n    path: jars/orders.jar\n".to_string(),
            1 => "  parallelism: 1\n  sqlFile: sql/shared.sql\n".to_string(),
            2 => "  parallelism: 1\n  sqlFile: sql/missing.sql\n".to_string(),
            3 => "  parallelism: 1\n  jar:\n    path: jars/missing.jar\n".to_string(),
            4 => "  parallelism: 1\n  jar:\n    path: jars/other.jar\n    args: [\"--password\", \"hunter2hunter2\"]\n".to_string(),
            5 => "  parallelism: 1\n  cluster: nowhere\n  jar:\n    path: jars/orders.jar\n".to_string(),
            6 => "  parallelism: 2\n  jar:\n    path: jars/orders.jar\n  paralelism: 3\n".to_string(),
            _ => "  parallelism: 2\n  jar:\n    path: jars/orders.jar\n".to_string(),
        };
        // Every 100th file repeats its predecessor's name.
        let named = if i % 100 == 99 {
            format!("job-{:04}", i - 1)
        } else {
            name
        };
        let content = job_with_spec(&spec).replace("name: orders", &format!("name: {named}"));
        files = files.with(&format!("jobs/d{}/{i:04}.yaml", i % 7), content);
    }
    let one = load_on_threads(&files, 1);
    assert!(
        !one.diagnostics.is_empty() && one.desired.as_ref().is_some_and(|d| !d.jobs.is_empty())
    );
    for threads in [2, 4] {
        let several = load_on_threads(&files, threads);
        assert_eq!(
            serde_json::to_value(&several).unwrap(),
            serde_json::to_value(&one).unwrap(),
            "{threads} threads"
        );
    }
}

/// The cache keeps a parse packed, with the deserialized job file only when the tree cannot
/// give it again (a number where the file wants a string: the tree's fast path declines it);
/// unpacked, it is the parse, value included.
#[test]
fn a_kept_parse_unpacks_to_the_parse_and_holds_a_job_file_only_when_its_tree_cannot_give_it() {
    use crate::load::cache::KeptParse;
    use crate::load::job_parse::{JOB_FILE_EXPECTED, parse_yaml_text};
    let schema = schema::cached_job_file_schema();
    let from_text = JAR_JOB.replace(
        "  name: orders\n",
        "  name: orders\n  labels:\n    tier: 1\n",
    );
    let invalid = JAR_JOB.replace("parallelism: 2", "parallelism: two");
    for (text, in_tree) in [
        (JAR_JOB.to_string(), true),
        (from_text, false),
        (invalid, false),
    ] {
        let parse = parse_yaml_text(text.as_bytes(), schema, JOB_FILE_EXPECTED);
        assert_eq!(parse.value_in_tree, in_tree, "{text}");
        let kept = KeptParse::of(&parse);
        assert_eq!(
            kept.holds_a_job_file(),
            !in_tree && parse.problems.is_empty()
        );
        let unpacked = kept.unpack().expect("a kept parse unpacks");
        let (tree, value) = parse.parsed.as_ref().unwrap();
        let (unpacked_tree, unpacked_value) = unpacked.parsed.as_ref().unwrap();
        assert_eq!(unpacked_value, value, "{text}");
        assert_eq!(value.is_some(), parse.problems.is_empty());
        assert_eq!(unpacked.problems, parse.problems);
        assert_eq!(unpacked.value_in_tree, parse.value_in_tree);
        // The same tree, but for the byte ranges only the parse reads.
        assert_eq!(unpacked_tree.pack(), tree.pack());
    }
    // A file that did not parse is kept as such.
    let broken = parse_yaml_text(b"apiVersion: [", schema, JOB_FILE_EXPECTED);
    let unpacked = KeptParse::of(&broken).unpack().unwrap();
    assert!(unpacked.parsed.is_none());
    assert_eq!(unpacked.problems, broken.problems);
}

/// A kept parse is small whatever it holds: the cache keeps one per job file for as long as the
/// file is in the repo (a `JobFile` inline made each 600 bytes).
#[test]
fn a_kept_parse_stays_small() {
    assert!(std::mem::size_of::<crate::load::cache::KeptParse>() <= 64);
}
