//! Whole loads of valid jobs, and each problem a job file's fields can have.

use super::*;

/// A jar job fetched from a URL, with every optional field set (see [`assert_fetched_job`]).
const FETCHED_JOB: &str = "\
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
";

/// [`FETCHED_JOB`] as loaded.
#[track_caller]
fn assert_fetched_job(fetched: &DesiredJob) {
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
    let config: Vec<(&str, &str)> = fetched.flink_configuration.iter().collect();
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
    assert_eq!(fetched.labels.get("team"), Some("b"));
}

#[test]
fn happy_path_with_jar_url_sql_and_sql_file_jobs() {
    let files = base()
        .with("jobs/orders.yaml", JAR_JOB)
        .with("jobs/team-b/fetched.yml", FETCHED_JOB)
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

    assert_fetched_job(&desired.jobs[0]);

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

/// The daemon keeps every definition between reconciles: its short texts (name, file, cluster,
/// args) are kept inline instead of in allocations of their own scattered over the heap.
#[test]
fn short_texts_of_a_loaded_job_need_no_allocation_of_their_own() {
    let o = load_from(&base().with("jobs/team-b/fetched.yml", FETCHED_JOB));
    let desired = o.desired.unwrap();
    let job = &desired.jobs[0];
    assert_fetched_job(job);
    let Program::Jar { args, .. } = &job.program else {
        panic!("a jar job")
    };
    for text in [&job.name, &job.file, &job.cluster].into_iter().chain(args) {
        assert!(!text.is_heap_allocated(), "{text:?} was allocated");
    }
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
