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

mod jobs;
mod programs;
mod repo_config;
mod sources;
mod yaml_input;
