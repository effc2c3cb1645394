//! `weir.yaml` and a job's configuration keys; a bad config or neighbour does not hide valid jobs.

use super::*;

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
