//! What a job runs: one jar (repo path or URL) or SQL (inline or a file, with a runner), and its
//! parallelism.

use super::*;

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
