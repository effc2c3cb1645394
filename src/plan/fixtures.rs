//! Shared test fixtures for the planner and the renderers.

use super::*;
use crate::desired::{JarLocation, JarRef};
use crate::spec::{ClusterConfig, RepoConfig};
// The types the builders take and return, for the tests that use them.
pub(crate) use crate::desired::{Program, Revision};
pub(crate) use crate::observe::JobState;
pub(crate) use crate::spec::{RunState, UpgradeMode};

pub(crate) fn config(prune: bool) -> RepoConfig {
    RepoConfig {
        clusters: [(
            "local".to_string(),
            ClusterConfig {
                url: "http://127.0.0.1:8081".into(),
                savepoint_dir: Some("file:///sp".into()),
                bearer_token_env: None,
                headers_from_env: Default::default(),
                timeout_seconds: None,
            },
        )]
        .into(),
        sql_runner: None,
        prune,
        savepoints: None,
        health: None,
        notifications: None,
        maven_repositories: Vec::new(),
        variables: Default::default(),
        environments: Default::default(),
        rollback: None,
    }
}

pub(crate) fn job(name: &str) -> DesiredJob {
    DesiredJob {
        name: name.into(),
        file: format!("jobs/{name}.yaml").into(),
        cluster: "local".into(),
        state: RunState::Running,
        upgrade_mode: UpgradeMode::Savepoint,
        parallelism: 2,
        program: Program::Jar {
            jar: JarRef {
                location: JarLocation::Repo {
                    path: "artifacts/app.jar".into(),
                },
                sha256: "ab".repeat(32),
            },
            entry_class: Some("com.acme.App".into()),
            args: vec!["--topic".into(), "orders".into()],
        },
        flink_configuration: [(
            "execution.checkpointing.interval".to_string(),
            "10s".to_string(),
        )]
        .into(),
        initial_savepoint: None,
        allow_non_restored_state: false,
        savepoint_dir: Some("file:///sp".into()),
        restart_nonce: 0,
        labels: Default::default(),
        preflight: true,
        sql_origin: None,
        dependencies: Vec::new(),
        secrets: Default::default(),
        mode: Default::default(),
        schedule: None,
        // Unit tests do not wait out a health window unless they ask for one.
        rollback: crate::desired::Rollback {
            enabled: true,
            health_window_seconds: 0,
        },
        lifecycle: Default::default(),
    }
}

pub(crate) fn desired(jobs: Vec<DesiredJob>, prune: bool) -> DesiredState {
    DesiredState {
        revision: Revision {
            commit: Some("c0ffee".into()),
            dirty: false,
            digest: "d".repeat(64),
        },
        config: config(prune),
        jobs,
        environment: None,
        jobs_elsewhere: Vec::new(),
    }
}

pub(crate) fn running(d: &DesiredJob, nonce: u32, state: JobState) -> ObservedJob {
    let ident = submission_identity(d, nonce);
    ObservedJob {
        id: ident.job_id(),
        name: d.name.to_string(),
        state,
        start_time_ms: Some(1000 + nonce as i64),
        end_time_ms: None,
        identity: Some(ident),
        latest_savepoint: None,
        latest_checkpoint: None,
    }
}

pub(crate) fn observation(jobs: Vec<ObservedJob>) -> Observation {
    Observation {
        clusters: [(
            "local".to_string(),
            ClusterObservation::Reachable {
                url: "http://127.0.0.1:8081".into(),
                flink_version: Some("2.3.0".into()),
                jobs,
            },
        )]
        .into(),
    }
}

pub(crate) fn run(
    d: &DesiredState,
    o: &Observation,
    h: &BTreeMap<String, JobHistory>,
    invalid: &[String],
) -> Plan {
    plan(&PlanInput {
        plan_id: "p1".into(),
        created_at_ms: 42,
        desired: d,
        invalid_files: invalid,
        observation: o,
        history: h,
    })
}

pub(crate) fn history_for(d: &DesiredJob, current: &ObservedJob) -> JobHistory {
    JobHistory {
        cluster: d.cluster.to_string(),
        current_job_id: Some(current.id),
        spec: Some(d.clone()),
        suspended: false,
        last_savepoint: Some("file:///sp/savepoint-1".into()),
        stopped_by_weir: Default::default(),
        rolled_back: None,
        known_savepoints: Default::default(),
    }
}
