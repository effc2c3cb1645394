//! Files that are not the YAML a job file must be, and positions, paths and suggestions in
//! messages.

use super::*;

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
