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
