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
