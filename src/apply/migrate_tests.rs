//! A migrate on two fake clusters: stop with a savepoint on the old one, start from it on the
//! new one, one copy at every step; and its rollback onto the old cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::tests::{calls, old_job};
use super::*;
use crate::desired::{DesiredJob, Program};
use crate::flink::JobState;
use crate::observe::{ClusterObservation, Observation};
use crate::plan::{self, fixtures};
use crate::spec::ClusterConfig;
use crate::store::{JobRecord, PlanRecord};
use crate::testing::fake_flink::{Fake, FakeJob};

const RUN: &str = "POST /jars/{jarid}/run";
const STOP: &str = "POST /jobs/{jobid}/stop";

struct Move {
    old: Arc<Fake>,
    new: Arc<Fake>,
    store: Store,
    applier: Applier,
    plan: Plan,
    old_id: JobId,
    _dir: tempfile::TempDir,
}

fn client(name: &str, url: String) -> Arc<FlinkClient> {
    let cluster = ClusterConfig {
        url,
        savepoint_dir: Some("file:///sp".into()),
        bearer_token_env: None,
        headers_from_env: Default::default(),
        timeout_seconds: Some(5),
    };
    Arc::new(FlinkClient::new(name, &cluster).unwrap())
}

fn active(fake: &Fake) -> Vec<String> {
    fake.jobs()
        .into_iter()
        .filter(|j| matches!(j.state, "RUNNING" | "CREATED" | "RESTARTING"))
        .map(|j| j.id)
        .collect()
}

/// `orders` runs on cluster `old` as `old_job()`; its definition now says cluster `local`
/// (changed further by `change`).
async fn moving(change: impl FnOnce(&mut DesiredJob)) -> Move {
    let ((old, old_url), (new, new_url)) = (Fake::serve().await, Fake::serve().await);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("weir.db")).await.unwrap();
    let mut was = old_job();
    was.cluster = "old".into();
    let mut now = fixtures::job("orders");
    change(&mut now);
    let old_id = plan::submission_identity(&was, 1).job_id();
    old.insert_jobs([FakeJob {
        id: old_id.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 1_000,
        end_ms: None,
    }]);
    for (fake, job) in [(&old, &was), (&new, &now)] {
        let jar = job.jar();
        fake.insert_jar(&format!("weir-{}-{}", &jar.sha256[..16], jar.file_name()));
    }
    store
        .upsert_job(&JobRecord {
            name: "orders".into(),
            cluster: "old".into(),
            current_job_id: Some(old_id.to_string()),
            spec_json: Some(serde_json::to_string(&was.redacted()).unwrap()),
            suspended: false,
            last_savepoint: None,
            last_savepoint_at_ms: None,
            updated_at_ms: 1,
            deleted: false,
        })
        .await
        .unwrap();
    let running = fixtures::running(&was, 1, JobState::Running);
    let mut observation: Observation = fixtures::observation(vec![]);
    observation.clusters.insert(
        "old".into(),
        ClusterObservation::Reachable {
            url: "http://old".into(),
            flink_version: Some("2.3.0".into()),
            jobs: vec![running.clone()],
        },
    );
    let history = BTreeMap::from([("orders".to_string(), fixtures::history_for(&was, &running))]);
    let plan = fixtures::run(
        &fixtures::desired(vec![now], false),
        &observation,
        &history,
        &[],
    );
    store
        .insert_plan(&PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger: Trigger::Cli,
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(&plan).unwrap(),
            job_names: vec!["orders".into()],
        })
        .await
        .unwrap();
    let applier = Applier {
        store: store.clone(),
        clients: BTreeMap::from([
            ("old".to_string(), client("old", old_url)),
            ("local".to_string(), client("local", new_url)),
        ]),
        source: Arc::new(RepoSource::work_tree(dir.path()).unwrap()),
        concurrency: 2,
        slots: None,
        savepoint_timeout: Duration::from_secs(5),
        start_timeout: Duration::from_secs(5),
        run_timeout: Duration::from_secs(5),
        submit_settle: Duration::from_secs(5),
        progress: Arc::new(|_: &str| {}),
        on_change_done: None,
        jar_ids: Default::default(),
        overviews: Default::default(),
        trigger: Trigger::Cli,
        artifacts: crate::artifact::ArtifactSettings {
            policy: Default::default(),
            cache: dir.path().join("artifacts"),
        },
    };
    Move {
        old,
        new,
        store,
        applier,
        plan,
        old_id,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_migrate_stops_on_the_old_cluster_and_starts_from_that_savepoint_on_the_new_one() {
    let m = moving(|_| {}).await;
    assert_eq!(m.plan.changes[0].action, Action::Migrate);
    let (old_mark, new_mark) = (m.old.mark(), m.new.mark());
    let outcomes = m.applier.apply(&m.plan, "apply-1").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let savepoint = outcomes[0].savepoint.clone().unwrap();
    let new_id = outcomes[0].new_job_id.unwrap();

    let (on_old, on_new) = (m.old.since(old_mark), m.new.since(new_mark));
    assert_eq!(calls(&on_old, STOP).len(), 1);
    assert!(
        calls(&on_old, RUN).is_empty(),
        "never restarted on the old cluster"
    );
    assert!(calls(&on_new, STOP).is_empty());
    let runs = calls(&on_new, RUN);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].json.as_ref().unwrap()["savepointPath"],
        savepoint.as_str()
    );
    assert!(active(&m.old).is_empty());
    assert_eq!(active(&m.new), [new_id.to_string()]);
    // One job, now on the new cluster, same name (identity) and lineage.
    let record = m.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.cluster, "local");
    assert_eq!(record.current_job_id, Some(new_id.to_string()));
    let lineage = m.store.savepoints("orders").await.unwrap();
    let taken = lineage.iter().find(|s| s.path == savepoint).unwrap();
    assert_eq!(taken.flink_job_id, m.old_id.to_string());
}

#[tokio::test]
async fn a_migrated_job_that_fails_on_the_new_cluster_is_rolled_back_onto_the_old_one() {
    let m = moving(|job| {
        if let Program::Jar { args, .. } = &mut job.program {
            args.extend(["--fail-after-records".into(), "0".into()]);
        }
    })
    .await;
    let old_mark = m.old.mark();
    let outcomes = m.applier.apply(&m.plan, "apply-1").await.unwrap();
    let o = &outcomes[0];
    assert!(!o.ok && o.rolled_back.is_some(), "{o:?}");
    let back = o.new_job_id.unwrap();
    assert!(active(&m.new).is_empty(), "{:?}", m.new.jobs());
    assert_eq!(active(&m.old), [back.to_string()]);
    let on_old = m.old.since(old_mark);
    let stop_savepoint = m
        .store
        .savepoints("orders")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.flink_job_id == m.old_id.to_string())
        .unwrap()
        .path;
    let runs = calls(&on_old, RUN);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].json.as_ref().unwrap()["savepointPath"],
        stop_savepoint.as_str()
    );
    let record = m.store.job("orders").await.unwrap().unwrap();
    assert_eq!(record.cluster, "old");
    assert_eq!(record.current_job_id, Some(back.to_string()));
}
