use std::path::Path;

use super::*;
use crate::desired::{JarLocation, Program};
use crate::git::MemoryFiles;
use crate::spec::{self, RunState, UpgradeMode};
use yaml::Seg;

const CONFIG: &str = "\
clusters:
  prod:
    url: http://flink-prod:8081
    savepointDir: s3://bucket/savepoints
  staging:
    url: https://flink-staging:8081
sqlRunner:
  jar: runner/sql-runner.jar
";

/// A valid jar job; line 9 is the jar path.
const JAR_JOB: &str = "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: orders
spec:
  cluster: prod
  parallelism: 2
  jar:
    path: jars/orders.jar
";

fn base() -> MemoryFiles {
    MemoryFiles::new()
        .with("weir.yaml", CONFIG)
        .with("runner/sql-runner.jar", "runner-bytes")
        .with("jars/orders.jar", "orders-bytes")
}

fn sha(bytes: &str) -> String {
    hex::encode(Sha256::digest(bytes.as_bytes()))
}

fn rendered(o: &LoadOutcome) -> Vec<String> {
    o.diagnostics.iter().map(ToString::to_string).collect()
}

/// Assert a diagnostic starts with `prefix` (e.g. `jobs/a.yaml:7:16: spec.parallelism: `) and
/// contains `needle`.
#[track_caller]
fn assert_diag(o: &LoadOutcome, prefix: &str, needle: &str) {
    let all = rendered(o);
    assert!(
        all.iter()
            .any(|d| d.starts_with(prefix) && d.contains(needle)),
        "no diagnostic `{prefix}...{needle}...` in:\n{}",
        all.join("\n")
    );
}

/// Load the base repo plus one job file with `content`.
fn load_job(content: &str) -> LoadOutcome {
    load_from(&base().with("jobs/a.yaml", content))
}

fn job_with_spec(spec_lines: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\nspec:\n  cluster: prod\n{spec_lines}"
    )
}

#[test]
fn happy_path_with_jar_url_sql_and_sql_file_jobs() {
    let files = base()
        .with("jobs/orders.yaml", JAR_JOB)
        .with(
            "jobs/team-b/fetched.yml",
            "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: fetched
  labels:
    team: b
spec:
  cluster: staging
  parallelism: 4
  state: suspended
  upgradeMode: last-state
  jar:
    url: https://repo.example.com/fetched-1.0.jar
    sha256: ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789
    entryClass: com.example.Fetched
    args: [--mode, fast]
  flinkConfiguration:
    state.backend: rocksdb
    execution.checkpointing.interval: 10s
    taskmanager.numberOfTaskSlots: 2
    pipeline.object-reuse: true
    some.ratio: 0.5
  savepoint:
    directory: s3://other/sp
    initialPath: s3://other/sp/savepoint-1
    allowNonRestoredState: true
  restartNonce: 3
",
        )
        .with(
            "jobs/inline.yaml",
            "\
apiVersion: weir/v1
kind: FlinkJob
metadata: {name: inline-sql}
spec:
  cluster: prod
  parallelism: 1
  sql: |
    INSERT INTO sink SELECT * FROM source;
",
        )
        .with(
            "jobs/from-file.yaml",
            "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: from-file
spec:
  cluster: prod
  parallelism: 1
  sqlFile: ./sql/../sql/report.sql
",
        )
        .with("sql/report.sql", "SELECT 1;\n")
        .with("jobs/README.md", "not a job")
        .with("jobs/.#orders.yaml", "editor lock file")
        .with("other/ignored.yaml", "not under jobs/");
    let mut files = files;
    files.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let o = load_from(&files);
    assert!(o.is_clean(), "{:#?}", rendered(&o));
    assert!(o.invalid_files.is_empty());
    let desired = o.desired.unwrap();
    let names: Vec<&str> = desired.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["fetched", "from-file", "inline-sql", "orders"]);

    let runner = JarRef {
        location: JarLocation::Repo {
            path: "runner/sql-runner.jar".into(),
        },
        sha256: sha("runner-bytes"),
    };

    let fetched = &desired.jobs[0];
    assert_eq!(fetched.file, "jobs/team-b/fetched.yml");
    assert_eq!(fetched.cluster, "staging");
    assert_eq!(fetched.state, RunState::Suspended);
    assert_eq!(fetched.upgrade_mode, UpgradeMode::LastState);
    assert_eq!(fetched.parallelism, 4);
    assert_eq!(
        fetched.program,
        Program::Jar {
            jar: JarRef {
                location: JarLocation::Url {
                    url: "https://repo.example.com/fetched-1.0.jar".into()
                },
                sha256: "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789".into(),
            },
            entry_class: Some("com.example.Fetched".into()),
            args: vec!["--mode".into(), "fast".into()],
        }
    );
    let config: Vec<(&str, &str)> = fetched
        .flink_configuration
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        config,
        [
            ("execution.checkpointing.interval", "10s"),
            ("pipeline.object-reuse", "true"),
            ("some.ratio", "0.5"),
            ("state.backend", "rocksdb"),
            ("taskmanager.numberOfTaskSlots", "2"),
        ]
    );
    assert_eq!(fetched.savepoint_dir.as_deref(), Some("s3://other/sp"));
    assert_eq!(
        fetched.initial_savepoint.as_deref(),
        Some("s3://other/sp/savepoint-1")
    );
    assert!(fetched.allow_non_restored_state);
    assert_eq!(fetched.restart_nonce, 3);
    assert_eq!(fetched.labels.get("team").map(String::as_str), Some("b"));

    let from_file = &desired.jobs[1];
    assert_eq!(
        from_file.program,
        Program::Sql {
            script: "SELECT 1;\n".into(),
            source_file: Some("sql/report.sql".into()),
            runner: runner.clone(),
            runner_class: spec::DEFAULT_SQL_RUNNER_CLASS.into(),
        }
    );

    let inline = &desired.jobs[2];
    assert_eq!(
        inline.program,
        Program::Sql {
            script: "INSERT INTO sink SELECT * FROM source;\n".into(),
            source_file: None,
            runner,
            runner_class: spec::DEFAULT_SQL_RUNNER_CLASS.into(),
        }
    );

    let orders = &desired.jobs[3];
    assert_eq!(orders.file, "jobs/orders.yaml");
    assert_eq!(orders.state, RunState::Running);
    assert_eq!(orders.upgrade_mode, UpgradeMode::Savepoint);
    assert_eq!(
        orders.program,
        Program::Jar {
            jar: JarRef {
                location: JarLocation::Repo {
                    path: "jars/orders.jar".into()
                },
                sha256: sha("orders-bytes"),
            },
            entry_class: None,
            args: vec![],
        }
    );
    // The cluster's savepoint directory is the default.
    assert_eq!(
        orders.savepoint_dir.as_deref(),
        Some("s3://bucket/savepoints")
    );

    assert_eq!(
        desired.revision.commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert!(!desired.revision.dirty);
    assert_eq!(desired.revision.digest.len(), 64);
}

#[test]
fn digest_covers_every_file_read() {
    let digest = |files: &MemoryFiles| load_from(files).desired.unwrap().revision.digest;
    let files = base()
        .with("jobs/a.yaml", JAR_JOB)
        .with(
            "jobs/sql.yaml",
            job_with_spec("  parallelism: 1\n  sqlFile: q.sql\n").replace("orders", "sql"),
        )
        .with("q.sql", "SELECT 1");
    let d0 = digest(&files);
    assert_eq!(d0, digest(&files), "deterministic");
    // Every input changes it: config, job file, SQL file, repo jar, runner jar.
    for (path, content) in [
        ("weir.yaml", format!("{CONFIG}prune: false\n")),
        ("jobs/a.yaml", format!("{JAR_JOB}# comment\n")),
        ("q.sql", "SELECT 2".to_string()),
        ("jars/orders.jar", "other".to_string()),
        ("runner/sql-runner.jar", "other".to_string()),
    ] {
        let changed = files.clone().with(path, content);
        assert_ne!(digest(&changed), d0, "{path} must be part of the digest");
    }
    // Files that are not read do not.
    assert_eq!(digest(&files.clone().with("docs/x.md", "x")), d0);
}

#[test]
fn wrong_scalar_type_names_the_field() {
    let o = load_job(&JAR_JOB.replace("parallelism: 2", "parallelism: two"));
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:7:16: spec.parallelism: invalid type: string \"two\", expected u32"]
    );
    assert_eq!(o.diagnostics[0].field.as_deref(), Some("spec.parallelism"));
    assert_eq!(o.invalid_files, ["jobs/a.yaml"]);
    assert!(o.desired.unwrap().jobs.is_empty());
}

#[test]
fn type_errors_only_serde_sees_are_reported() {
    // `-1` and `1.5` are caught by the structural check, `0x1G` only by serde-saphyr.
    let o = load_job(&JAR_JOB.replace("parallelism: 2", "parallelism: -1"));
    assert_diag(
        &o,
        "jobs/a.yaml:7:16: spec.parallelism: ",
        "invalid value: integer `-1`, expected u32",
    );
    let o = load_job(&JAR_JOB.replace("parallelism: 2", "parallelism: 1.5"));
    assert_diag(&o, "jobs/a.yaml:7:16: spec.parallelism: ", "expected u32");
    let o = load_job(&JAR_JOB.replace("parallelism: 2", "parallelism: '0x1G'"));
    assert_eq!(o.diagnostics.len(), 1, "{:?}", rendered(&o));
    assert_diag(&o, "jobs/a.yaml:7:16: spec.parallelism: ", "expected u32");
    let o = load_job(&format!("{JAR_JOB}  restartNonce: [1]\n"));
    assert_diag(
        &o,
        "jobs/a.yaml:10:17: spec.restartNonce: ",
        "expected u64, found a list",
    );
    let o = load_job(&format!(
        "{JAR_JOB}  savepoint:\n    allowNonRestoredState: 1\n"
    ));
    assert_diag(
        &o,
        "jobs/a.yaml:11:28: spec.savepoint.allowNonRestoredState: ",
        "expected a boolean",
    );
    let o = load_job(&format!("{JAR_JOB}    args: [a, [b]]\n"));
    assert_diag(
        &o,
        "jobs/a.yaml:10:15: spec.jar.args[1]: ",
        "expected a string, found a list",
    );
}

#[test]
fn unknown_fields_get_a_suggestion_and_all_are_reported() {
    let o = load_job(
        "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: orders
  label: {a: b}
spec:
  cluster: prod
  paralelism: 2
  jar:
    path: jars/orders.jar
    entry_class: com.X
  frobnicate: true
",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:5:3: metadata.label: ",
        "unknown field `label`; did you mean `labels`?",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:8:3: spec.paralelism: ",
        "unknown field `paralelism`; did you mean `parallelism`?",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:11:5: spec.jar.entry_class: ",
        "did you mean `entryClass`?",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:12:3: spec.frobnicate: ",
        "unknown field `frobnicate`; expected one of `cluster`",
    );
    // The required field the typo left out is reported too, at the `spec` key.
    assert_diag(
        &o,
        "jobs/a.yaml:6:1: spec.parallelism: ",
        "missing required field",
    );
    assert_eq!(o.diagnostics.len(), 5, "{:#?}", rendered(&o));
}

#[test]
fn api_version_and_kind_values() {
    let o = load_job(
        &JAR_JOB
            .replace("weir/v1", "weir/v2")
            .replace("FlinkJob", "Job"),
    );
    assert_diag(
        &o,
        "jobs/a.yaml:1:13: apiVersion: ",
        "must be `weir/v1`, found `weir/v2`",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:2:7: kind: ",
        "must be `FlinkJob`, found `Job`",
    );
    assert_eq!(o.diagnostics.len(), 2);
}

#[test]
fn enum_values_get_a_suggestion() {
    let o = load_job(&format!(
        "{JAR_JOB}  state: paused\n  upgradeMode: last_state\n"
    ));
    assert_diag(
        &o,
        "jobs/a.yaml:10:10: spec.state: ",
        "unknown value `paused` (expected one of `running`, `suspended`)",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:11:16: spec.upgradeMode: ",
        "unknown value `last_state`; did you mean `last-state`?",
    );
}

#[test]
fn missing_required_fields() {
    let o = load_job("apiVersion: weir/v1\nkind: FlinkJob\nspec:\n  parallelism: 1\n  sql: x\n");
    assert_diag(&o, "jobs/a.yaml:1:1: metadata: ", "missing required field");
    assert_diag(
        &o,
        "jobs/a.yaml:3:1: spec.cluster: ",
        "missing required field",
    );
    assert_eq!(o.diagnostics.len(), 2, "{:#?}", rendered(&o));
}

#[test]
fn wrong_shapes() {
    let o = load_job("apiVersion: weir/v1\nkind: FlinkJob\nmetadata: ~\nspec: [1]\n");
    assert_diag(
        &o,
        "jobs/a.yaml:3:11: metadata: ",
        "expected a mapping, found null",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:4:7: spec: ",
        "expected a mapping, found a list",
    );
    let o = load_job(&format!(
        "{JAR_JOB}  flinkConfiguration:\n    a: [1]\n    b:\n"
    ));
    assert_diag(
        &o,
        "jobs/a.yaml:11:8: spec.flinkConfiguration.a: ",
        "expected a string, number or boolean, found a list",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:12:",
        "spec.flinkConfiguration.b: expected a string, number or boolean, found null",
    );
}

#[test]
fn job_name_rules() {
    let o = load_job(&JAR_JOB.replace("name: orders", "name: Orders_1"));
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:4:9: metadata.name: invalid job name `Orders_1`: must start with a lowercase letter"
        ]
    );
}

#[test]
fn duplicate_names_name_both_files() {
    let o = load_from(
        &base()
            .with("jobs/a.yaml", JAR_JOB)
            .with("jobs/sub/b.yaml", JAR_JOB)
            .with(
                "jobs/c.yaml",
                JAR_JOB
                    .replace("orders", "other")
                    .replace("jars/other.jar", "jars/orders.jar"),
            ),
    );
    let msg =
        "metadata.name: duplicate job name `orders`: defined in jobs/a.yaml and jobs/sub/b.yaml";
    assert_diag(&o, "jobs/a.yaml:4:9: ", msg);
    assert_diag(&o, "jobs/sub/b.yaml:4:9: ", msg);
    assert_eq!(o.invalid_files, ["jobs/a.yaml", "jobs/sub/b.yaml"]);
    let desired = o.desired.unwrap();
    assert_eq!(desired.jobs.len(), 1);
    assert_eq!(desired.jobs[0].name, "other");
}

#[test]
fn duplicate_names_are_found_even_in_otherwise_invalid_files() {
    let o = load_from(&base().with("jobs/a.yaml", JAR_JOB).with(
        "jobs/b.yaml",
        JAR_JOB.replace("parallelism: 2", "parallelism: x"),
    ));
    assert_diag(&o, "jobs/a.yaml:4:9: ", "duplicate job name `orders`");
    assert_diag(&o, "jobs/b.yaml:4:9: ", "duplicate job name `orders`");
    assert_diag(&o, "jobs/b.yaml:7:16: ", "expected u32");
}

#[test]
fn unknown_cluster_lists_the_known_ones() {
    let o = load_job(&JAR_JOB.replace("cluster: prod", "cluster: prdo"));
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:6:12: spec.cluster: unknown cluster `prdo`; did you mean `prod`? (clusters in weir.yaml: `prod`, `staging`)"
        ]
    );
    let o = load_job(&JAR_JOB.replace("cluster: prod", "cluster: qa"));
    assert_diag(
        &o,
        "jobs/a.yaml:6:12: spec.cluster: ",
        "unknown cluster `qa`; (clusters in weir.yaml: `prod`, `staging`)",
    );
}

#[test]
fn exactly_one_program() {
    let o = load_job(&job_with_spec("  parallelism: 1\n"));
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:5:1: spec: one of `jar`, `sql` or `sqlFile` is required"]
    );
    let o = load_job(&format!("{JAR_JOB}  sql: SELECT 1\n  sqlFile: q.sql\n"));
    assert_diag(
        &o,
        "jobs/a.yaml:10:3: spec.sql: ",
        "`jar` and `sql` are mutually exclusive",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:11:3: spec.sqlFile: ",
        "`jar` and `sqlFile` are mutually exclusive",
    );
    assert_eq!(o.diagnostics.len(), 2);
}

#[test]
fn jar_path_rules() {
    let jar = |lines: &str| {
        load_job(&job_with_spec(&format!(
            "  parallelism: 1\n  jar:\n{lines}"
        )))
    };
    let o = jar("    path: /abs/x.jar\n");
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:9:11: spec.jar.path: invalid path `/abs/x.jar`: must be relative to the repository root (no leading '/')"
        ]
    );
    let o = jar("    path: jars/../../x.jar\n");
    assert_diag(
        &o,
        "jobs/a.yaml:9:11: spec.jar.path: ",
        "must not point outside the repository",
    );
    let o = jar("    path: jars/missing.jar\n");
    assert_diag(
        &o,
        "jobs/a.yaml:9:11: spec.jar.path: ",
        "`jars/missing.jar` does not exist in in-memory repo",
    );
    let o = jar("    path: jars/orders.jar\n    url: https://x/y.jar\n");
    assert_diag(
        &o,
        "jobs/a.yaml:10:5: spec.jar: ",
        "set exactly one of `path` or `url`, not both",
    );
    let o = jar("    entryClass: com.X\n");
    assert_diag(
        &o,
        "jobs/a.yaml:8:3: spec.jar: ",
        "one of `path` (a jar in the repo) or `url` is required",
    );
    let o = jar(
        "    path: jars/orders.jar\n    sha256: 0000000000000000000000000000000000000000000000000000000000000000\n",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:10:13: spec.jar.sha256: ",
        "does not match `jars/orders.jar`",
    );
    let o = jar(&format!(
        "    path: jars/orders.jar\n    sha256: {}\n",
        sha("orders-bytes").to_uppercase()
    ));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let o = jar("    path: jars/orders.jar\n    entryClass: ''\n");
    assert_diag(
        &o,
        "jobs/a.yaml:10:17: spec.jar.entryClass: ",
        "not a valid class name",
    );
}

#[test]
fn jar_url_rules() {
    let jar = |lines: &str| {
        load_job(&job_with_spec(&format!(
            "  parallelism: 1\n  jar:\n{lines}"
        )))
    };
    let o = jar("    url: https://repo.example.com/x.jar\n");
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:9:5: spec.jar.sha256: required with `url`: the SHA-256 (64 hexadecimal characters) the downloaded jar must match"
        ]
    );
    let o = jar("    url: ftp://repo.example.com/x.jar\n    sha256: 0123\n");
    assert_diag(
        &o,
        "jobs/a.yaml:10:13: spec.jar.sha256: ",
        "must be 64 hexadecimal characters",
    );
    let good_sha = "a".repeat(64);
    let o = jar(&format!(
        "    url: ftp://repo.example.com/x.jar\n    sha256: {good_sha}\n"
    ));
    assert_diag(
        &o,
        "jobs/a.yaml:9:10: spec.jar.url: ",
        "must use http, https, or file, not `ftp`",
    );
    let o = jar(&format!("    url: not a url\n    sha256: {good_sha}\n"));
    assert_diag(
        &o,
        "jobs/a.yaml:9:10: spec.jar.url: ",
        "invalid URL `not a url`",
    );
    let o = jar(&format!(
        "    url: file:///opt/jars/x.jar\n    sha256: {good_sha}\n"
    ));
    assert!(o.is_clean(), "{:?}", rendered(&o));
}

#[test]
fn sql_rules() {
    let o = load_job(&job_with_spec("  parallelism: 1\n  sql: '  '\n"));
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:8:8: spec.sql: must not be empty"]
    );

    let sql_file = |files: MemoryFiles| {
        load_from(&files.with(
            "jobs/a.yaml",
            job_with_spec("  parallelism: 1\n  sqlFile: q.sql\n"),
        ))
    };
    let o = sql_file(base());
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:8:12: spec.sqlFile: `q.sql` does not exist in in-memory repo"]
    );
    let o = sql_file(base().with("q.sql", "\n  \n"));
    assert_diag(&o, "jobs/a.yaml:8:12: spec.sqlFile: ", "`q.sql` is empty");
    let mut bad = b"SELECT 1;\nSELECT '".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    let o = sql_file(base().with("q.sql", bad));
    assert_diag(
        &o,
        "jobs/a.yaml:8:12: spec.sqlFile: ",
        "`q.sql` is not valid UTF-8 (line 2, column 9)",
    );
    let o = sql_file(base().with("q.sql", vec![b'-'; MAX_SQL_BYTES as usize + 1]));
    assert_diag(
        &o,
        "jobs/a.yaml:8:12: spec.sqlFile: ",
        "SQL files are limited to 4 MiB",
    );
    let o = load_job(&job_with_spec("  parallelism: 1\n  sqlFile: /etc/passwd\n"));
    assert_diag(&o, "jobs/a.yaml:8:12: spec.sqlFile: ", "no leading '/'");
}

#[test]
fn sql_jobs_need_a_valid_runner() {
    let no_runner = MemoryFiles::new()
        .with("weir.yaml", "clusters:\n  prod: {url: 'http://f:8081'}\n")
        .with(
            "jobs/a.yaml",
            job_with_spec("  parallelism: 1\n  sql: SELECT 1\n"),
        );
    // No `sqlRunner`: the runner built into weir (chosen per cluster when staged).
    let o = load_from(&no_runner);
    assert_eq!(rendered(&o), Vec::<String>::new());
    let job = &o.desired.as_ref().unwrap().jobs[0];
    assert_eq!(job.jar().location, JarLocation::Embedded);
    assert_eq!(job.jar().sha256, crate::desired::EMBEDDED_RUNNER_ID);
    assert_eq!(job.entry_class(), Some("dev.weir.sqlrunner.SqlRunner"));

    let broken_runner = MemoryFiles::new()
        .with(
            "weir.yaml",
            "clusters:\n  prod: {url: 'http://f:8081'}\nsqlRunner:\n  jar: nope.jar\n",
        )
        .with(
            "jobs/a.yaml",
            job_with_spec("  parallelism: 1\n  sql: SELECT 1\n"),
        );
    let o = load_from(&broken_runner);
    assert_eq!(
        rendered(&o),
        [
            "weir.yaml:4:8: sqlRunner.jar: `nope.jar` does not exist in in-memory repo",
            "jobs/a.yaml:8:3: spec.sql: the `sqlRunner` in weir.yaml is invalid (see its diagnostics)",
        ]
    );
    assert_eq!(o.invalid_files, ["jobs/a.yaml", "weir.yaml"]);

    let url_runner = MemoryFiles::new()
        .with(
            "weir.yaml",
            format!(
                "clusters:\n  prod: {{url: 'http://f:8081'}}\nsqlRunner:\n  url: https://x/runner.jar\n  sha256: {}\n  entryClass: com.example.Runner\n",
                "B".repeat(64)
            ),
        )
        .with("jobs/a.yaml", job_with_spec("  parallelism: 1\n  sql: SELECT 1\n"));
    let o = load_from(&url_runner);
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let job = &o.desired.unwrap().jobs[0];
    assert_eq!(
        job.program,
        Program::Sql {
            script: "SELECT 1".into(),
            source_file: None,
            runner: JarRef {
                location: JarLocation::Url {
                    url: "https://x/runner.jar".into()
                },
                sha256: "b".repeat(64),
            },
            runner_class: "com.example.Runner".into(),
        }
    );

    let runner_without_location = MemoryFiles::new().with(
        "weir.yaml",
        "clusters:\n  prod: {url: 'http://f:8081'}\nsqlRunner: {entryClass: X}\n",
    );
    let o = load_from(&runner_without_location);
    assert_diag(
        &o,
        "weir.yaml:3:1: sqlRunner: ",
        "one of `jar` (a jar in the repo) or `url` is required",
    );
}

#[test]
fn parallelism_range() {
    for (value, col) in [("0", 16), ("32769", 16)] {
        let o = load_job(&JAR_JOB.replace("parallelism: 2", &format!("parallelism: {value}")));
        assert_eq!(
            rendered(&o),
            [format!(
                "jobs/a.yaml:7:{col}: spec.parallelism: must be between 1 and 32768, found {value}"
            )]
        );
    }
    let o = load_job(&JAR_JOB.replace("parallelism: 2", "parallelism: 32768"));
    assert!(o.is_clean());
}

#[test]
fn config_keys_and_savepoint_settings() {
    let o = load_job(&format!(
        "{JAR_JOB}  flinkConfiguration:\n    '': x\n    ' ': y\n  savepoint:\n    directory: /tmp/sp\n    initialPath: ''\n"
    ));
    assert_diag(
        &o,
        "jobs/a.yaml:11:5: spec.flinkConfiguration.\"\": ",
        "configuration keys must not be empty",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:12:5: spec.flinkConfiguration.\" \": ",
        "configuration keys must not be empty",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:14:16: spec.savepoint.directory: ",
        "must be a URI such as",
    );
    assert_diag(
        &o,
        "jobs/a.yaml:15:18: spec.savepoint.initialPath: ",
        "must not be empty",
    );
    assert_eq!(o.diagnostics.len(), 4, "{:#?}", rendered(&o));
}

#[test]
fn repo_config_checks() {
    let o = load_from(&MemoryFiles::new().with(
        "weir.yaml",
        "\
clusters:
  a:
    url: ftp://flink:8081
    savepointDir: /tmp/savepoints
    bearerTokenEnv: MY-TOKEN
    headersFromEnv:
      X-Team: TEAM_ENV
      'bad header': 1ENV
    timeoutSeconds: 0
  b:
    url: localhost:8081
  c:
    url: not a url
",
    ));
    assert_diag(
        &o,
        "weir.yaml:3:10: clusters.a.url: ",
        "must use http or https, not `ftp`",
    );
    assert_diag(
        &o,
        "weir.yaml:4:19: clusters.a.savepointDir: ",
        "must be a URI",
    );
    assert_diag(
        &o,
        "weir.yaml:5:21: clusters.a.bearerTokenEnv: ",
        "`MY-TOKEN` is not a valid environment variable name",
    );
    assert_diag(
        &o,
        "weir.yaml:8:7: clusters.a.headersFromEnv.\"bad header\": ",
        "not a valid HTTP header name",
    );
    assert_diag(
        &o,
        "weir.yaml:8:21: clusters.a.headersFromEnv.\"bad header\": ",
        "`1ENV` is not a valid environment variable name",
    );
    assert_diag(
        &o,
        "weir.yaml:9:21: clusters.a.timeoutSeconds: ",
        "must be at least 1",
    );
    assert_diag(
        &o,
        "weir.yaml:11:10: clusters.b.url: ",
        "must use http or https, not `localhost`",
    );
    assert_diag(
        &o,
        "weir.yaml:13:10: clusters.c.url: ",
        "invalid URL `not a url`",
    );
    assert_eq!(o.diagnostics.len(), 8, "{:#?}", rendered(&o));
    // Semantic problems keep the config usable (the file is still reported invalid).
    assert!(o.desired.is_some());
    assert_eq!(o.invalid_files, ["weir.yaml"]);

    let o = load_from(&MemoryFiles::new().with("weir.yaml", "clusters: {}\n"));
    assert_eq!(
        rendered(&o),
        ["weir.yaml:1:11: clusters: at least one cluster is required"]
    );
}

#[test]
fn unusable_repo_config_still_checks_every_job() {
    let files = MemoryFiles::new()
        .with("weir.yaml", "cluster:\n  prod: {url: 'http://x'}\n")
        .with("jars/orders.jar", "j")
        .with("jobs/a.yaml", JAR_JOB)
        .with("jobs/b.yaml", JAR_JOB.replace("name: orders", "name: B"));
    let o = load_from(&files);
    assert!(o.desired.is_none());
    assert_diag(
        &o,
        "weir.yaml:1:1: cluster: ",
        "unknown field `cluster`; did you mean `clusters`?",
    );
    assert_diag(&o, "weir.yaml:1:1: clusters: ", "missing required field");
    assert_diag(
        &o,
        "jobs/b.yaml:4:9: metadata.name: ",
        "invalid job name `B`",
    );
    assert_eq!(o.invalid_files, ["jobs/b.yaml", "weir.yaml"]);
    // weir.yaml comes first.
    assert_eq!(o.diagnostics[0].file, "weir.yaml");

    let o = load_from(&MemoryFiles::new().with("jobs/a.yaml", JAR_JOB));
    assert!(o.desired.is_none());
    assert_eq!(
        rendered(&o),
        [
            "weir.yaml:1:1: weir.yaml not found in in-memory repo; a jobs repo needs one at its root",
            "jobs/a.yaml:9:11: spec.jar.path: `jars/orders.jar` does not exist in in-memory repo",
        ]
    );
}

#[test]
fn valid_jobs_survive_invalid_neighbours() {
    let o = load_from(
        &base()
            .with("jobs/a.yaml", JAR_JOB)
            .with("jobs/b.yaml", "not: [valid")
            .with("jobs/c.yaml", "")
            .with(
                "jobs/d.yaml",
                JAR_JOB
                    .replace("orders", "dd")
                    .replace("jars/dd.jar", "jars/orders.jar")
                    .replace("cluster: prod", "cluster: nope"),
            ),
    );
    assert_eq!(
        o.invalid_files,
        ["jobs/b.yaml", "jobs/c.yaml", "jobs/d.yaml"]
    );
    let desired = o.desired.unwrap();
    assert_eq!(desired.jobs.len(), 1);
    assert_eq!(desired.jobs[0].name, "orders");
    assert_eq!(o.diagnostics.len(), 3, "{:#?}", o.diagnostics);
}

#[test]
fn malformed_yaml() {
    let o = load_job("apiVersion: weir/v1\nkind: [FlinkJob\n");
    assert_eq!(o.diagnostics.len(), 1);
    assert_diag(&o, "jobs/a.yaml:2:7: ", "invalid YAML: unclosed bracket");
    let o = load_job("a: b\n c: d\n");
    assert_diag(
        &o,
        "jobs/a.yaml:2:3: ",
        "invalid YAML: mapping values are not allowed",
    );
    let o = load_job(&format!("{JAR_JOB}  parallelism: 3\n"));
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:10:3: spec.parallelism: duplicate key `parallelism`"]
    );
}

#[test]
fn empty_multi_document_and_non_mapping_files() {
    for empty in ["", "\n\n", "# just a comment\n", "---\n", "~\n"] {
        let o = load_job(empty);
        assert_eq!(
            rendered(&o),
            [
                "jobs/a.yaml:1:1: empty file; expected one job definition (`apiVersion: weir/v1`, `kind: FlinkJob`, `metadata`, `spec`)"
            ],
            "{empty:?}"
        );
    }
    let o = load_job(&format!(
        "{JAR_JOB}---\n{}",
        JAR_JOB.replace("orders", "second")
    ));
    assert_eq!(o.diagnostics.len(), 1);
    assert_diag(
        &o,
        "jobs/a.yaml:11:1: ",
        "more than one YAML document (`---`); the file must hold exactly one",
    );
    let o = load_job(&"a: 1\n---\n".repeat(100));
    assert_diag(&o, "jobs/a.yaml:", "more than one YAML document");
    let o = load_job("- a\n- b\n");
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:1:1: expected a mapping at the top level (one job definition (`apiVersion: weir/v1`, `kind: FlinkJob`, `metadata`, `spec`)), found a list"
        ]
    );
    let o = load_job("just text\n");
    assert_diag(&o, "jobs/a.yaml:1:1: ", "found string \"just text\"");
    let o = load_from(&MemoryFiles::new().with("weir.yaml", ""));
    assert_diag(
        &o,
        "weir.yaml:1:1: ",
        "empty file; expected the repo configuration with `clusters`",
    );
}

#[test]
fn yaml_bombs_and_deep_nesting_fail_fast() {
    let mut lol = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        lol.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let o = load_job(&lol);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.diagnostics.len(), 1, "{:#?}", rendered(&o));
    assert!(
        o.diagnostics[0].message.contains("YAML bomb"),
        "{}",
        o.diagnostics[0]
    );
    assert!(o.diagnostics[0].to_string().starts_with("jobs/a.yaml:"));

    // Nested flow collections.
    let o = load_job(&format!("a: {}1{}\n", "[".repeat(500), "]".repeat(500)));
    assert_eq!(o.diagnostics.len(), 1, "{:#?}", rendered(&o));
    assert!(
        o.diagnostics[0].message.contains("nested too deeply"),
        "{}",
        o.diagnostics[0]
    );

    // Nested block mappings.
    let mut deep = String::new();
    for i in 0..200 {
        deep.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    let o = load_job(&deep);
    assert_eq!(o.diagnostics.len(), 1, "{:#?}", rendered(&o));
    assert_diag(
        &o,
        "jobs/a.yaml:",
        "YAML is nested too deeply (more than 32 levels)",
    );

    // Legitimate anchors and aliases still work.
    let o = load_job(&format!(
        "{JAR_JOB}  flinkConfiguration:\n    a: &v 10s\n    b: *v\n"
    ));
    assert!(o.is_clean(), "{:?}", rendered(&o));
}

#[test]
fn oversized_and_non_utf8_files() {
    let mut big = JAR_JOB.to_string();
    big.push_str(&format!("# {}\n", "x".repeat(MAX_YAML_BYTES as usize)));
    let o = load_job(&big);
    assert_eq!(
        rendered(&o),
        [format!(
            "jobs/a.yaml:1:1: `jobs/a.yaml` is {} bytes; YAML files are limited to 1 MiB",
            big.len()
        )]
    );

    let mut bytes = JAR_JOB.as_bytes().to_vec();
    bytes.extend_from_slice(b"  restartNonce: \xff\n");
    let o = load_from(&base().with("jobs/a.yaml", bytes));
    assert_eq!(rendered(&o), ["jobs/a.yaml:10:17: file is not valid UTF-8"]);
}

#[test]
fn positions_through_flow_style_and_comments() {
    let o = load_job(
        "# header comment\n\napiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: orders}\nspec: {cluster: prod, parallelism: two, jar: {path: jars/orders.jar}}\n",
    );
    assert_eq!(
        rendered(&o),
        ["jobs/a.yaml:6:36: spec.parallelism: invalid type: string \"two\", expected u32"]
    );
}

#[test]
fn field_paths_quote_dotted_keys() {
    use super::yaml::format_path;
    let p = vec![
        Seg::Key("spec".into()),
        Seg::Key("flinkConfiguration".into()),
        Seg::Key("state.backend".into()),
    ];
    assert_eq!(format_path(&p), "spec.flinkConfiguration.\"state.backend\"");
    let p = vec![
        Seg::Key("spec".into()),
        Seg::Key("jar".into()),
        Seg::Key("args".into()),
        Seg::Index(2),
    ];
    assert_eq!(format_path(&p), "spec.jar.args[2]");
}

#[test]
fn suggestions() {
    use super::yaml::suggest;
    let fields = ["cluster", "parallelism", "sqlFile", "flinkConfiguration"];
    assert_eq!(suggest("paralelism", fields), Some("parallelism"));
    assert_eq!(suggest("sql_file", fields), Some("sqlFile"));
    assert_eq!(suggest("flinkConfig", fields), None);
    assert_eq!(suggest("xyz", fields), None);
    assert_eq!(suggest("clustr", fields), Some("cluster"));
}

// --- Git sources -----------------------------------------------------------------------------

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
