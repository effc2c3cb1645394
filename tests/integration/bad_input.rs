//! Bad input: every error is reported with file:line:col and the field, and nothing on any
//! cluster changes (safety invariant 2).

use crate::harness::*;

const GOOD: &str = "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: good\nspec:\n  cluster: local\n  parallelism: 1\n  jar:\n    path: artifacts/app.jar\n";

fn repo_with(files: &[(&str, &str)]) -> Repo {
    let repo = Repo::new("http://127.0.0.1:9", None);
    repo.write("artifacts/app.jar", "jar bytes");
    for (path, content) in files {
        repo.write(path, content);
    }
    repo.commit("files");
    repo
}

#[track_caller]
fn expect_error(files: &[(&str, &str)], needles: &[&str]) {
    let repo = repo_with(files);
    let run = repo.weir(&["validate"]).code(1);
    for n in needles {
        assert!(run.stderr.contains(n), "expected {n:?} in:\n{}", run.stderr);
    }
}

#[test]
fn valid_repo_validates() {
    let repo = repo_with(&[("jobs/good.yaml", GOOD)]);
    let run = repo.weir(&["validate"]).ok();
    assert!(
        run.stdout.contains("1 job definition valid"),
        "{}",
        run.stdout
    );
}

#[test]
fn malformed_yaml() {
    expect_error(
        &[("jobs/a.yaml", "apiVersion: weir/v1\nkind: [FlinkJob\n")],
        &["jobs/a.yaml:"],
    );
}

#[test]
fn unknown_field_with_hint() {
    let bad = GOOD.replace("  parallelism: 1\n", "  parallelism: 1\n  paralelism: 2\n");
    expect_error(
        &[("jobs/a.yaml", &bad)],
        &["jobs/a.yaml:8:", "paralelism", "did you mean `parallelism`"],
    );
}

#[test]
fn wrong_type() {
    let bad = GOOD.replace("parallelism: 1", "parallelism: two");
    expect_error(&[("jobs/a.yaml", &bad)], &["jobs/a.yaml:7:", "parallelism"]);
}

#[test]
fn duplicate_names_name_both_files() {
    expect_error(
        &[("jobs/a.yaml", GOOD), ("jobs/sub/b.yml", GOOD)],
        &["jobs/a.yaml:4:", "jobs/sub/b.yml:4:", "duplicate"],
    );
}

#[test]
fn unknown_cluster() {
    let bad = GOOD.replace("cluster: local", "cluster: locl");
    expect_error(
        &[("jobs/a.yaml", &bad)],
        &["jobs/a.yaml:6:", "spec.cluster", "locl", "local"],
    );
}

#[test]
fn missing_sql_file_and_jar() {
    let sql = GOOD.replace(
        "  jar:\n    path: artifacts/app.jar\n",
        "  sqlFile: sql/missing.sql\n",
    );
    let jar = GOOD.replace("artifacts/app.jar", "artifacts/missing.jar");
    expect_error(
        &[
            ("jobs/a.yaml", &sql.replace("name: good", "name: a")),
            ("jobs/b.yaml", &jar.replace("name: good", "name: b")),
        ],
        &[
            "jobs/a.yaml:",
            "sql/missing.sql",
            "jobs/b.yaml:9:",
            "artifacts/missing.jar",
        ],
    );
}

#[test]
fn invalid_name() {
    let bad = GOOD.replace("name: good", "name: Bad_Name");
    expect_error(
        &[("jobs/a.yaml", &bad)],
        &["jobs/a.yaml:4:", "metadata.name"],
    );
}

#[test]
fn both_jar_and_sql() {
    let bad = GOOD.replace(
        "  parallelism: 1\n",
        "  parallelism: 1\n  sql: INSERT INTO x SELECT 1;\n",
    );
    expect_error(
        &[("jobs/a.yaml", &bad)],
        &["jobs/a.yaml:", "exactly one of"],
    );
}

#[test]
fn yaml_bomb_and_huge_file() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (key, p) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .into_iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!(
            "{key}: &{key} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    let huge = format!("{GOOD}# {}\n", "x".repeat(3 * 1024 * 1024));
    let started = std::time::Instant::now();
    expect_error(
        &[("jobs/bomb.yaml", &bomb), ("jobs/huge.yaml", &huge)],
        &["jobs/bomb.yaml:", "jobs/huge.yaml:"],
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "bombs are refused quickly"
    );
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let a = GOOD
        .replace("parallelism: 1", "parallelism: 0")
        .replace("name: good", "name: a");
    let b = GOOD
        .replace("cluster: local", "cluster: nowhere")
        .replace("name: good", "name: b");
    expect_error(
        &[("jobs/a.yaml", &a), ("jobs/b.yaml", &b)],
        &["jobs/a.yaml:7:", "jobs/b.yaml:6:"],
    );
}

#[test]
fn broken_definition_never_stops_its_running_job() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("broken");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "a", ""));
    repo.write_config(true);
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let running = running_named(base, &name);
    assert_eq!(running.len(), 1);

    // Broken YAML in the job's own file, with prune on: plan and apply fail, the job keeps running.
    repo.write(
        &file,
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: [\n",
    );
    repo.commit("break it");
    let plan = repo.weir(&["plan"]).code(1);
    assert!(plan.stderr.contains(&file), "{}", plan.all());
    let apply = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(
        apply.stderr.contains("no job was touched"),
        "{}",
        apply.all()
    );
    assert_eq!(running_named(base, &name), running);
}
