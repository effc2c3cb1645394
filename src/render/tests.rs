//! Snapshot tests of the three renderings of one plan that holds every kind of change.

use std::collections::BTreeMap;

use crate::desired::{JarLocation, JarRef, Program};
use crate::observe::{ClusterObservation, JobState, ObservedJob};
use crate::plan::fixtures::*;
use crate::plan::{JobHistory, Plan};
use crate::spec::{ClusterConfig, RunState, UpgradeMode};

fn sample_plan() -> Plan {
    // redeploy: args and a secret config value changed
    let old = job("orders-enricher");
    let old_run = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    if let Program::Jar { args, .. } = &mut new.program {
        args[1] = "payments".into();
    }
    new.flink_configuration
        .insert("s3.secret-key".into(), "TOPSECRET".into());

    // rescale with last-state
    let mut scaled = job("clickstream");
    scaled.upgrade_mode = UpgradeMode::LastState;
    let scaled_run = running(&scaled, 2, JobState::Running);
    let mut scaled_new = scaled.clone();
    scaled_new.parallelism = 4;

    // suspend
    let mut paused = job("nightly-audit");
    let paused_run = running(&paused, 3, JobState::Running);
    paused.state = RunState::Suspended;

    // recover a failed job from its retained checkpoint
    let failing = job("fraud-scores");
    let mut failed_run = running(&failing, 4, JobState::Failed);
    failed_run.latest_checkpoint = Some("file:/checkpoints/fraud/chk-42".into());

    // create a SQL job
    let mut sql = job("revenue-sql");
    sql.program = Program::Sql {
        script: "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'password' = 'hunter2');\nINSERT INTO sink SELECT id FROM src;\n".into(),
        source_file: Some("sql/revenue.sql".into()),
        runner: JarRef {
            location: JarLocation::Repo { path: "artifacts/weir-sql-runner.jar".into() },
            sha256: "cd".repeat(32),
        },
        runner_class: "dev.weir.sqlrunner.SqlRunner".into(),
    };
    sql.flink_configuration.clear();

    // a job on an unreachable cluster
    let mut remote = job("remote-job");
    remote.cluster = "remote".into();

    // deleted definition, pruned
    let gone = job("legacy-export");
    let gone_run = running(&gone, 5, JobState::Running);

    // two copies of one definition: the older one is stopped
    let doubled = job("session-join");
    let doubled_old = running(&doubled, 6, JobState::Running);
    let doubled_new = running(&doubled, 7, JobState::Running);

    let foreign = ObservedJob {
        id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".parse().unwrap(),
        name: "ad-hoc notebook job".into(),
        state: JobState::Running,
        start_time_ms: Some(1),
        end_time_ms: None,
        identity: None,
        latest_savepoint: None,
        latest_checkpoint: None,
    };

    let mut d = desired(
        vec![
            new.clone(),
            scaled_new,
            paused,
            failing.clone(),
            sql,
            remote,
            doubled,
        ],
        true,
    );
    d.config.clusters.insert(
        "remote".into(),
        ClusterConfig {
            url: "http://10.0.0.9:8081".into(),
            savepoint_dir: None,
            bearer_token_env: None,
            headers_from_env: Default::default(),
            timeout_seconds: None,
        },
    );
    let mut obs = observation(vec![
        old_run.clone(),
        scaled_run.clone(),
        paused_run,
        failed_run.clone(),
        gone_run.clone(),
        foreign,
        doubled_old,
        doubled_new,
    ]);
    obs.clusters.insert(
        "remote".into(),
        ClusterObservation::Unreachable {
            url: "http://10.0.0.9:8081".into(),
            error: "cannot reach Flink at http://10.0.0.9:8081: connection refused".into(),
        },
    );
    let hist: BTreeMap<String, JobHistory> = [
        ("orders-enricher".to_string(), history_for(&old, &old_run)),
        ("clickstream".to_string(), history_for(&scaled, &scaled_run)),
        (
            "fraud-scores".to_string(),
            history_for(&failing, &failed_run),
        ),
        ("legacy-export".to_string(), history_for(&gone, &gone_run)),
    ]
    .into();
    run(&d, &obs, &hist, &[])
}

#[test]
fn text() {
    let plan = sample_plan();
    let out = super::text(&plan);
    assert!(!out.contains("TOPSECRET") && !out.contains("hunter2"));
    insta::assert_snapshot!(out);
}

#[test]
fn markdown() {
    let plan = sample_plan();
    let out = super::markdown(&plan);
    assert!(!out.contains("TOPSECRET") && !out.contains("hunter2"));
    insta::assert_snapshot!(out);
}

#[test]
fn json() {
    let plan = sample_plan();
    let out = super::json(&plan);
    assert!(!out.contains("TOPSECRET") && !out.contains("hunter2"));
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    for change in value["changes"].as_array().unwrap() {
        for key in ["job", "cluster", "action", "reason", "steps", "diff"] {
            assert!(change.get(key).is_some(), "{key} in {change}");
        }
    }
    insta::assert_snapshot!(out);
}

/// The preview of a repo with invalid files: every diagnostic first, then the valid jobs (the
/// planner holds deletes back).
#[test]
fn markdown_with_invalid_files() {
    use crate::diagnostic::Diagnostic;
    let old = job("orders-enricher");
    let current = running(&old, 1, JobState::Running);
    let gone = job("legacy-export");
    let gone_run = running(&gone, 5, JobState::Running);
    let mut new = old.clone();
    new.parallelism = 3;
    let hist: BTreeMap<String, JobHistory> = [
        ("orders-enricher".to_string(), history_for(&old, &current)),
        ("legacy-export".to_string(), history_for(&gone, &gone_run)),
    ]
    .into();
    let invalid = vec!["jobs/broken.yaml".to_string(), "jobs/typo.yaml".to_string()];
    let plan = run(
        &desired(vec![new], true),
        &observation(vec![current, gone_run]),
        &hist,
        &invalid,
    );
    let diagnostics = vec![
        Diagnostic::new(
            "jobs/broken.yaml",
            8,
            16,
            Some("spec.parallelism".into()),
            "spec.parallelism: invalid type: string \"two\", expected u32",
        ),
        Diagnostic::new(
            "jobs/typo.yaml",
            9,
            3,
            Some("spec.paralelism".into()),
            "spec.paralelism: unknown field `paralelism`, did you mean `parallelism`?",
        ),
        Diagnostic::new(
            "jobs/typo.yaml",
            12,
            5,
            Some("spec.cluster".into()),
            "spec.cluster: unknown cluster `locl` (clusters: `local`)",
        ),
    ];
    let out = crate::render::markdown::Preview::new(Some(&plan), &diagnostics).to_markdown();
    insta::assert_snapshot!(out);
}

/// Every way state may not survive a change is called out.
#[test]
fn markdown_state_risks() {
    // Stateless redeploy of a running job.
    let wipe = job("wipe-redeploy");
    let wipe_run = running(&wipe, 1, JobState::Running);
    let mut wipe_new = wipe.clone();
    wipe_new.upgrade_mode = UpgradeMode::Stateless;
    wipe_new.restart_nonce = 1;
    // Savepoint redeploy that may drop state no operator claims.
    let lax = job("lax-redeploy");
    let lax_run = running(&lax, 2, JobState::Running);
    let mut lax_new = lax.clone();
    lax_new.allow_non_restored_state = true;
    lax_new.restart_nonce = 1;
    // Stateless suspend: cancelled, no savepoint.
    let pause = job("stateless-suspend");
    let pause_run = running(&pause, 3, JobState::Running);
    let mut pause_new = pause.clone();
    pause_new.upgrade_mode = UpgradeMode::Stateless;
    pause_new.state = RunState::Suspended;
    // Recover of a failed job with a checkpoint that stateless ignores.
    let lost = job("stateless-recover");
    let mut lost_run = running(&lost, 4, JobState::Failed);
    lost_run.latest_checkpoint = Some("file:/checkpoints/chk-7".into());
    let mut lost_new = lost.clone();
    lost_new.upgrade_mode = UpgradeMode::Stateless;
    // Recover with nothing to restore.
    let empty = job("empty-recover");
    let empty_run = running(&empty, 5, JobState::Failed);

    let hist: BTreeMap<String, JobHistory> = [
        ("wipe-redeploy".to_string(), history_for(&wipe, &wipe_run)),
        ("lax-redeploy".to_string(), history_for(&lax, &lax_run)),
    ]
    .into();
    let plan = run(
        &desired(vec![wipe_new, lax_new, pause_new, lost_new, empty], false),
        &observation(vec![wipe_run, lax_run, pause_run, lost_run, empty_run]),
        &hist,
        &[],
    );
    let risky: Vec<(&str, &[crate::plan::StateRisk])> = plan
        .changes
        .iter()
        .map(|c| (c.job.as_str(), c.state_risks.as_slice()))
        .collect();
    use crate::plan::StateRisk::*;
    assert_eq!(
        risky,
        vec![
            ("empty-recover", &[NoKnownState][..]),
            ("lax-redeploy", &[NonRestoredStateAllowed][..]),
            ("stateless-recover", &[StatelessDropsState][..]),
            ("stateless-suspend", &[StatelessDropsState][..]),
            ("wipe-redeploy", &[StatelessDropsState][..]),
        ]
    );
    let out = super::markdown(&plan);
    insta::assert_snapshot!(out);
}

/// Secrets in configuration, program arguments and SQL (before and after a change, in a new
/// job, in a diagnostic) appear in no rendering and no comment part.
#[test]
fn previews_never_show_secrets() {
    use crate::diagnostic::Diagnostic;
    const SECRETS: &[&str] = &[
        "CONF-OLD-1",
        "CONF-NEW-1",
        "ARG-OLD-2",
        "ARG-NEW-2",
        "ARG-EQ-3",
        "SQL-OLD-4",
        "SQL-NEW-4",
        "SQL-SET-5",
        "JAAS-6",
        "DIAG-7",
    ];
    let mut old = job("secretive");
    old.flink_configuration
        .insert("s3.secret-key".into(), "CONF-OLD-1".into());
    if let Program::Jar { args, .. } = &mut old.program {
        args.extend(["--db-password".into(), "ARG-OLD-2".into()]);
    }
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    new.flink_configuration
        .insert("s3.secret-key".into(), "CONF-NEW-1".into());
    new.flink_configuration.insert(
        "properties.sasl.jaas.config".into(),
        "org.apache.kafka.common.security.plain.PlainLoginModule password=\"JAAS-6\";".into(),
    );
    if let Program::Jar { args, .. } = &mut new.program {
        args.truncate(2);
        args.extend([
            "--db-password".into(),
            "ARG-NEW-2".into(),
            "--api-token=ARG-EQ-3".into(),
        ]);
    }
    let sql_script = |secret: &str| {
        format!(
            "SET 'table.exec.secret' = 'SQL-SET-5';\nCREATE TABLE t (x INT) WITH ('connector' = 'jdbc', 'password' = '{secret}');\nINSERT INTO s SELECT x FROM t;\n"
        )
    };
    let mut sql_old = job("secret-sql");
    sql_old.program = Program::Sql {
        script: sql_script("SQL-OLD-4"),
        source_file: None,
        runner: JarRef {
            location: JarLocation::Repo {
                path: "artifacts/weir-sql-runner.jar".into(),
            },
            sha256: "cd".repeat(32),
        },
        runner_class: "dev.weir.sqlrunner.SqlRunner".into(),
    };
    let sql_run = running(&sql_old, 2, JobState::Running);
    let mut sql_new = sql_old.clone();
    if let Program::Sql { script, .. } = &mut sql_new.program {
        *script = sql_script("SQL-NEW-4");
    }
    let mut created = sql_new.clone();
    created.name = "secret-sql-copy".into();
    let hist: BTreeMap<String, JobHistory> = [
        ("secretive".to_string(), history_for(&old, &current)),
        ("secret-sql".to_string(), history_for(&sql_old, &sql_run)),
    ]
    .into();
    let plan = run(
        &desired(vec![new, sql_new, created], false),
        &observation(vec![current, sql_run]),
        &hist,
        &["jobs/bad.yaml".to_string()],
    );
    assert_eq!(plan.changes.len(), 3, "{:?}", plan.changes);
    let diagnostics = vec![Diagnostic::new(
        "jobs/bad.yaml",
        10,
        7,
        Some("spec.flinkConfiguration.\"fs.s3a.secret.key\"".into()),
        "spec.flinkConfiguration.\"fs.s3a.secret.key\": expected a scalar, found \"DIAG-7\"",
    )];
    let preview = crate::render::markdown::Preview::new(Some(&plan), &diagnostics);
    let mut outputs = vec![
        super::text(&plan),
        super::json(&plan),
        super::markdown(&plan),
        preview.to_markdown(),
    ];
    outputs.extend(preview.split(crate::render::markdown::MIN_LIMIT));
    for out in &outputs {
        for secret in SECRETS {
            assert!(!out.contains(secret), "{secret} in:\n{out}");
        }
    }
    let md = preview.to_markdown();
    assert!(md.contains("+--api-token=<redacted>"), "{md}");
    assert!(md.contains("'password' = '<redacted>'"), "{md}");
    assert!(md.contains("s3.secret-key: <redacted>"), "{md}");
}

/// Control characters in args, configuration, SQL, names and messages cannot forge lines or
/// send terminal escapes in any human rendering (issue 9 item 11).
#[test]
fn control_characters_are_escaped_in_text_and_markdown() {
    let old = job("orders-enricher");
    let old_run = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    if let Program::Jar { args, .. } = &mut new.program {
        args[1] = "x\nPlan: 0 to create, 0 to redeploy, 0 to delete.\u{1b}[2K\r".into();
    }
    new.flink_configuration.insert(
        "key\u{7}".into(),
        "v\u{1b}]0;owned\u{7}\nforged: line".into(),
    );
    let mut sql = job("revenue-sql");
    sql.program = Program::Sql {
        script: "INSERT INTO sink\nSELECT '\u{1b}[31mred\r' FROM src;\n".into(),
        source_file: None,
        runner: JarRef {
            location: JarLocation::Repo {
                path: "artifacts/weir-sql-runner.jar".into(),
            },
            sha256: "cd".repeat(32),
        },
        runner_class: "dev.weir.sqlrunner.SqlRunner".into(),
    };
    sql.file = "jobs/\u{1b}[8mhidden.yaml".into();
    let d = desired(vec![new, sql], false);
    let obs = observation(vec![old_run.clone()]);
    let hist: BTreeMap<String, JobHistory> =
        [("orders-enricher".to_string(), history_for(&old, &old_run))].into();
    let mut plan = run(&d, &obs, &hist, &[]);
    plan.warnings
        .push("Flink said: boom\nError: forged\u{9b}31m".into());
    let text = super::text(&plan);
    let markdown = super::markdown(&plan);
    for out in [&text, &markdown] {
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{out}"
        );
        assert!(!out.contains("\nforged: line"), "{out}");
        assert!(
            !out.lines().any(|l| l.starts_with("Plan: 0 to create")),
            "{out}"
        );
        assert!(
            !out.lines().any(|l| l.starts_with("Error: forged")),
            "{out}"
        );
    }
    insta::assert_snapshot!("escaped_text", text);
    insta::assert_snapshot!("escaped_markdown", markdown);
}
