//! The published JSON Schemas accept every file in examples/, and weir accepts the examples.

use std::path::{Path, PathBuf};

use crate::harness::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas").join(name)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn every_example_validates_against_the_published_schema() {
    let repo_schema = schema("weir.schema.json");
    let job_schema = schema("flinkjob.schema.json");
    let mut files = Vec::new();
    yaml_files(&root().join("examples"), &mut files);
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let validator = if file.ends_with("weir.yaml") {
            &repo_schema
        } else if file.components().any(|c| c.as_os_str() == "jobs") {
            &job_schema
        } else {
            continue;
        };
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        checked += 1;
    }
    assert!(
        checked >= 3,
        "weir.yaml and the job files were checked ({checked})"
    );
}

#[test]
fn the_schema_rejects_what_weir_rejects() {
    let job_schema = schema("flinkjob.schema.json");
    let bad: serde_json::Value = serde_saphyr::from_str(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {cluster: local, parallelism: 1, paralelism: 2}\n",
    )
    .unwrap();
    assert!(
        !job_schema.is_valid(&bad),
        "unknown fields are rejected by the schema too"
    );
}

#[test]
fn weir_validates_the_examples() {
    // The jars are build outputs (scripts/build-java.sh); stand-ins are enough to validate.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("examples"), dir.path());
    for jar in ["weir-test-job.jar", "weir-test-udf.jar"] {
        std::fs::write(dir.path().join("artifacts").join(jar), b"stand-in").unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    let run =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{run}");
    assert!(run.contains("3 job definitions valid"), "{run}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn plan_at_an_older_revision_reads_the_tree_without_a_checkout() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("atref");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "old-topic", ""));
    let old = repo.commit("old");
    repo.write(&file, &jar_job(&name, 1, "new-topic", ""));
    repo.commit("new");
    repo.weir(&["apply", "--auto-approve"]).ok();
    // Break the working tree: --ref must not read it.
    repo.write(&file, "not: [valid");
    let plan = repo
        .weir(&[
            "plan",
            "--ref",
            "HEAD~1",
            "--format",
            "json",
            "--detailed-exitcode",
        ])
        .code(2)
        .json();
    assert_eq!(plan["revision"]["commit"], old.as_str(), "{plan:#}");
    let (before, after) = diff_of(change(&plan, &name), "args");
    assert!(
        before.to_string().contains("new-topic") && after.to_string().contains("old-topic"),
        "{plan:#}"
    );
    let md = repo
        .weir(&["plan", "--ref", "HEAD", "--format", "markdown"])
        .ok();
    assert!(
        md.stdout.starts_with("<!-- weir-plan-preview -->\n")
            && md
                .stdout
                .contains("\n**Plan: 0 to create, 0 to redeploy, 0 to delete.**\n"),
        "{}",
        md.stdout
    );
    repo.weir(&["validate", "--ref", "HEAD"]).ok();
    repo.weir(&["validate"]).code(1);
}

/// examples/variables and examples/environments are jobs repos of their own; weir accepts them
/// (every environment of the second).
#[test]
fn weir_validates_the_variables_and_environments_examples() {
    for (example, expected) in [
        ("variables", "1 job definition valid."),
        (
            "environments",
            "2 job definitions valid in every environment (prod, staging).",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&root().join("examples").join(example), dir.path());
        std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
        for jar in ["weir-test-job.jar", "weir-sql-runner.jar"] {
            std::fs::write(dir.path().join("artifacts").join(jar), b"stand-in").unwrap();
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["validate", "--repo"])
            .arg(dir.path())
            .env_remove("WEIR_ENV")
            .output()
            .unwrap();
        let run = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{example}: {run}");
        assert!(run.contains(expected), "{example}: {run}");
    }
}
