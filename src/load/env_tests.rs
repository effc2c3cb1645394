//! Loader tests of variables, `${env:…}` secrets and environments.

use super::*;
use crate::desired::Program;
use crate::git::MemoryFiles;
use crate::spec::RunState;

const CONFIG: &str = "\
clusters:
  main:
    url: http://flink:8081
variables:
  brokers: kafka:9092
  interval: 10s
sqlRunner:
  jar: runner.jar
environments:
  staging:
    variables:
      brokers: kafka-staging:9092
  prod:
    clusters:
      main:
        url: http://flink-prod:8081
    variables:
      brokers: kafka-prod:9092
";

fn repo(job: &str) -> MemoryFiles {
    MemoryFiles::new()
        .with("weir.yaml", CONFIG)
        .with("runner.jar", "runner")
        .with("app.jar", "app")
        .with("jobs/a.yaml", job)
}

fn rendered(o: &LoadOutcome) -> Vec<String> {
    o.diagnostics.iter().map(ToString::to_string).collect()
}

const SQL_JOB: &str = "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: orders
spec:
  cluster: main
  parallelism: 1
  flinkConfiguration:
    execution.checkpointing.interval: ${interval}
    sasl: \"user=${env:WEIR_TEST_UNSET_SECRET_1}\"
  sql: |
    CREATE TABLE t WITH ('brokers' = '${brokers}');
    SELECT '$${brokers}';
  overrides:
    prod:
      parallelism: 8
      state: suspended
      flinkConfiguration:
        execution.checkpointing.interval: 1m
";

#[test]
fn variables_of_the_environment_fill_sql_and_configuration() {
    let o = load_in(&repo(SQL_JOB), Some("staging"));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let d = o.desired.unwrap();
    assert_eq!(d.environment.as_deref(), Some("staging"));
    let job = &d.jobs[0];
    let Program::Sql { script, .. } = &job.program else {
        panic!("not SQL")
    };
    assert!(script.contains("'kafka-staging:9092'"), "{script}");
    // The escape stays for the edge, which writes it as `${`.
    assert!(script.contains("'$${brokers}'"), "{script}");
    assert_eq!(
        job.flink_configuration["execution.checkpointing.interval"],
        "10s"
    );
    // The secret stays a reference; it is unset here, which the planner reports.
    assert_eq!(
        job.flink_configuration["sasl"],
        "user=${env:WEIR_TEST_UNSET_SECRET_1}"
    );
    assert_eq!(job.secrets.get("WEIR_TEST_UNSET_SECRET_1"), Some(&None));
    assert_eq!(job.parallelism, 1);
    assert_eq!(d.config.clusters["main"].url, "http://flink:8081");
}

#[test]
fn overrides_and_clusters_of_the_environment_apply() {
    let o = load_in(&repo(SQL_JOB), Some("prod"));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let d = o.desired.unwrap();
    let job = &d.jobs[0];
    assert_eq!(job.parallelism, 8);
    assert_eq!(job.state, RunState::Suspended);
    assert_eq!(
        job.flink_configuration["execution.checkpointing.interval"],
        "1m"
    );
    assert_eq!(job.flink_configuration.len(), 2);
    assert_eq!(d.config.clusters["main"].url, "http://flink-prod:8081");
    let Program::Sql { script, .. } = &job.program else {
        panic!("not SQL")
    };
    assert!(script.contains("'kafka-prod:9092'"), "{script}");
}

#[test]
fn an_environment_must_be_chosen_and_exist() {
    let o = load_in(&repo(SQL_JOB), None);
    assert!(o.desired.is_none());
    assert!(
        rendered(&o)[0].starts_with("weir.yaml:")
            && rendered(&o)[0].contains("choose one with `--env NAME` or WEIR_ENV"),
        "{:?}",
        rendered(&o)
    );
    let o = load_in(&repo(SQL_JOB), Some("prd"));
    assert!(o.desired.is_none());
    assert!(
        rendered(&o)[0]
            .contains("unknown environment `prd` (--env or WEIR_ENV); did you mean `prod`?"),
        "{:?}",
        rendered(&o)
    );
    let plain = MemoryFiles::new().with(
        "weir.yaml",
        "clusters:\n  main:\n    url: http://flink:8081\n",
    );
    let o = load_in(&plain, Some("prod"));
    assert!(
        rendered(&o)[0].contains("defines no `environments`"),
        "{:?}",
        rendered(&o)
    );
    let clusterless = MemoryFiles::new().with(
        "weir.yaml",
        "clusters: {}\nenvironments:\n  prod:\n    variables:\n      a: b\n",
    );
    let o = load_in(&clusterless, Some("prod"));
    assert!(
        rendered(&o)[0].ends_with(
            "environment `prod` has no clusters (neither its own `clusters` nor top-level ones)"
        ),
        "{:?}",
        rendered(&o)
    );
}

#[test]
fn undefined_variables_are_errors_at_their_position() {
    let job = "\
apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: orders
spec:
  cluster: main
  parallelism: 1
  flinkConfiguration:
    a: \"x-${nope}\"
  jar:
    path: app.jar
    args: [--topic, \"${topik}\"]
";
    let o = load_in(&repo(job), Some("prod"));
    let all = rendered(&o);
    assert!(o.desired.as_ref().unwrap().jobs.is_empty());
    assert_eq!(o.invalid_files, vec!["jobs/a.yaml".to_string()]);
    assert!(
        all.iter().any(|d| d.starts_with(
            "jobs/a.yaml:9:11: spec.flinkConfiguration.a: undefined variable `${nope}`"
        )),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|d| d
                .starts_with("jobs/a.yaml:12:22: spec.jar.args[1]: undefined variable `${topik}`")),
        "{all:?}"
    );
    let sql = job_with_sql_lines("  sql: |\n    SELECT 1;\n    SELECT ${brokers}, ${missing};\n");
    let all = rendered(&load_in(&repo(&sql), Some("prod")));
    assert!(
        all.iter()
            .any(|d| d.starts_with("jobs/a.yaml:10:24: spec.sql: undefined variable `${missing}`")),
        "{all:?}"
    );
}

fn job_with_sql_lines(lines: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\nspec:\n  cluster: main\n  parallelism: 1\n{lines}"
    )
}

#[test]
fn sql_file_variables_are_reported_in_the_sql_file() {
    let job = job_with_sql_lines("  sqlFile: sql/orders.sql\n");
    let files = repo(&job).with("sql/orders.sql", "SELECT 1;\n  SELECT ${brokerz};\n");
    let o = load_in(&files, Some("staging"));
    let all = rendered(&o);
    assert!(
        all.iter()
            .any(|d| d.starts_with("sql/orders.sql:2:10: undefined variable `${brokerz}`")),
        "{all:?}"
    );
    // The job file is invalid too, so the job is never taken for deleted.
    assert!(
        o.invalid_files.contains(&"jobs/a.yaml".to_string()),
        "{all:?}"
    );
    let files = repo(&job).with("sql/orders.sql", "SELECT '${brokers}';\n");
    let o = load_in(&files, Some("staging"));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let Program::Sql { script, .. } = &o.desired.unwrap().jobs[0].program else {
        panic!()
    };
    assert_eq!(script, "SELECT 'kafka-staging:9092';\n");
}

#[test]
fn jobs_limited_to_other_environments_are_left_out() {
    let job = job_with_sql_lines("  environments: [prod]\n  sql: SELECT 1\n");
    let o = load_in(&repo(&job), Some("staging"));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let d = o.desired.unwrap();
    assert!(d.jobs.is_empty());
    assert_eq!(d.jobs_elsewhere, vec!["orders".to_string()]);
    let o = load_in(&repo(&job), Some("prod"));
    assert_eq!(o.desired.unwrap().jobs.len(), 1);
    let bad = job_with_sql_lines("  environments: [prd]\n  sql: SELECT 1\n");
    let all = rendered(&load_in(&repo(&bad), Some("prod")));
    assert!(
        all.iter()
            .any(|d| d
                .starts_with("jobs/a.yaml:8:18: spec.environments[0]: unknown environment `prd`")),
        "{all:?}"
    );
}

#[test]
fn validation_checks_every_environment() {
    // `${only_prod}` is defined in prod only: staging's load fails, and says so.
    let config = CONFIG.replace(
        "      brokers: kafka-prod:9092\n",
        "      brokers: kafka-prod:9092\n      only_prod: x\n",
    );
    let job = job_with_sql_lines("  sql: SELECT '${only_prod}'\n");
    let files = repo(&job).with("weir.yaml", config);
    let o = load_every_environment(&files);
    let all = rendered(&o);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("jobs/a.yaml:8:16: spec.sql: undefined variable `${only_prod}`"),
        "{all:?}"
    );
    assert!(all[0].ends_with("(environment `staging`)"), "{all:?}");
    assert!(o.desired.is_none());
}

#[test]
fn repos_without_variables_load_as_before() {
    let job = job_with_sql_lines("  sql: SELECT '$5 ${' || x\n");
    let plain = MemoryFiles::new()
        .with(
            "weir.yaml",
            "clusters:\n  main:\n    url: http://flink:8081\nsqlRunner:\n  jar: runner.jar\n",
        )
        .with("runner.jar", "r")
        .with("jobs/a.yaml", job.as_str());
    let all = rendered(&load_in(&plain, None));
    assert!(
        all.iter().any(|d| d.contains("without a closing brace")),
        "{all:?}"
    );
}

/// A pull request cannot choose where an environment connects: previews load it with the base
/// revision's clusters of that environment, whatever its own `environments` say.
#[test]
fn previews_take_the_environments_clusters_from_the_base() {
    let base = load_in(&repo(SQL_JOB), Some("prod")).desired.unwrap();
    let moved = CONFIG.replace("http://flink-prod:8081", "http://attacker:8081");
    let head = repo(SQL_JOB).with("weir.yaml", moved);
    let (outcome, changed) =
        clusters::load_with_clusters_in(&head, &base.config.clusters, Some("prod"));
    assert!(changed);
    let desired = outcome.desired.unwrap();
    assert_eq!(
        desired.config.clusters["main"].url,
        "http://flink-prod:8081"
    );
    assert_eq!(desired.jobs.len(), 1);
}

#[test]
fn variables_may_hold_secrets() {
    let config = CONFIG.replace(
        "  interval: 10s\n",
        "  interval: 10s\n  jaas: \"user=app password=${env:WEIR_TEST_UNSET_SECRET_2}\"\n",
    );
    let job = job_with_sql_lines("  sql: SELECT '${jaas}'\n");
    let o = load_in(&repo(&job).with("weir.yaml", config), Some("staging"));
    assert!(o.is_clean(), "{:?}", rendered(&o));
    let job = &o.desired.unwrap().jobs[0];
    assert_eq!(job.secrets.get("WEIR_TEST_UNSET_SECRET_2"), Some(&None));
    let Program::Sql { script, .. } = &job.program else {
        panic!()
    };
    assert_eq!(
        script,
        "SELECT 'user=app password=${env:WEIR_TEST_UNSET_SECRET_2}'"
    );
}
