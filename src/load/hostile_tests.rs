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

#[test]
fn configuration_values_reach_flink_as_written() {
    let o = load(&job(
        "  flinkConfiguration:\n    big: 12345678901234567890\n    one: 1.0\n    answer: yes\n    \
         hex: 0x1F\n    under: 1_000\n    exp: 1e3\n    plus: +5\n    quoted: \"0x1F\"\n    \
         anchored: &v 0o17\n    alias: *v\n    text: plain words\n",
    ));
    assert!(o.is_clean(), "{}", rendered(&o));
    let config = &o.desired.unwrap().jobs[0].flink_configuration;
    let expect = [
        ("alias", "0o17"),
        ("anchored", "0o17"),
        ("answer", "yes"),
        ("big", "12345678901234567890"),
        ("exp", "1e3"),
        ("hex", "0x1F"),
        ("one", "1.0"),
        ("plus", "+5"),
        ("quoted", "0x1F"),
        ("text", "plain words"),
        ("under", "1_000"),
    ];
    let got: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expect);
}

#[test]
fn quoted_numbers_and_booleans_are_not_numbers() {
    let o = load(&job("  restartNonce: \"3\"\n").replace("parallelism: 2", "parallelism: \"2\""));
    let all = rendered(&o);
    assert!(
        all.contains(
            "jobs/a.yaml:7:16: spec.parallelism: invalid type: string \"2\", expected u32"
        ),
        "{all}"
    );
    assert!(
        all.contains("spec.restartNonce: invalid type: string \"3\""),
        "{all}"
    );
    let o = load(&job("  savepoint:\n    allowNonRestoredState: \"true\"\n"));
    assert!(
        rendered(&o).contains("spec.savepoint.allowNonRestoredState: invalid type: string"),
        "{}",
        rendered(&o)
    );
    let o = load(&job("").replace("parallelism: 2", "parallelism: 99999999999"));
    assert!(rendered(&o).contains("spec.parallelism: invalid value: integer `99999999999`"));
}

#[test]
fn unknown_tags_are_errors() {
    let o = load(&job("  flinkConfiguration:\n    a: !Ref other\n"));
    let all = rendered(&o);
    assert!(all.contains("jobs/a.yaml:11:13: "), "{all}");
    assert!(all.contains("unsupported YAML tag `!Ref`"), "{all}");
    let o = load(&job("").replace("  cluster: prod", "  !secret cluster: prod"));
    assert!(
        rendered(&o).contains("unsupported YAML tag"),
        "{}",
        rendered(&o)
    );
    // Standard tags keep working.
    let o = load(&job("  flinkConfiguration:\n    a: !!str 10\n"));
    assert!(o.is_clean(), "{}", rendered(&o));
    assert_eq!(o.desired.unwrap().jobs[0].flink_configuration["a"], "10");
}
