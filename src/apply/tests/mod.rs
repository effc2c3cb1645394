//! Unit tests of the executor against the fake Flink (`src/testing/fake_flink.rs`) and a temp
//! SQLite store: the safety invariants of a redeploy, resume and failures, in milliseconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;

use super::*;
use crate::desired::{DesiredJob, Program};
use crate::flink::JobState;
use crate::plan::fixtures;
use crate::plan::{self, JobHistory, Restore};
use crate::spec::{ClusterConfig, UpgradeMode};
use crate::store::{
    ApplyOutcome, NewJournalEntry, PlanRecord, StepDetail, StepResult, StopDetail, SubmitDetail,
};
use crate::testing::fake_flink::{Fake, FakeJob, Request};

const STOP: &str = "POST /jobs/{jobid}/stop";
const RUN: &str = "POST /jars/{jarid}/run";

/// A fake cluster, a store in a temp dir, and a redeploy of `orders` through a savepoint.
pub(super) struct World {
    pub(super) fake: Arc<Fake>,
    pub(super) store: Store,
    pub(super) applier: Applier,
    pub(super) plan: Plan,
    pub(super) old_id: JobId,
    pub(super) new_job: DesiredJob,
    pub(super) progress: Arc<Mutex<Vec<String>>>,
    pub(super) _dir: tempfile::TempDir,
}

/// The running definition: the desired one with other program arguments.
pub(super) fn old_job() -> DesiredJob {
    let mut job = fixtures::job("orders");
    if let Program::Jar { args, .. } = &mut job.program {
        args.push("--old".into());
    }
    job
}

async fn world() -> World {
    world_with(UpgradeMode::Savepoint).await
}

/// The world of a redeploy with `upgrade` as the job's upgrade mode.
async fn world_with(upgrade: UpgradeMode) -> World {
    world_from(upgrade, |_| {}).await
}

/// The world of a redeploy to the fixture definition as `change` alters it.
pub(super) async fn world_from(
    upgrade: UpgradeMode,
    change: impl FnOnce(&mut DesiredJob),
) -> World {
    let (fake, url) = Fake::serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("weir.db")).await.unwrap();
    let (mut old, mut new) = (old_job(), fixtures::job("orders"));
    change(&mut new);
    old.upgrade_mode = upgrade;
    new.upgrade_mode = upgrade;
    let old_id = plan::submission_identity(&old, 1).job_id();
    fake.insert_jobs([FakeJob {
        id: old_id.to_string(),
        name: "orders".into(),
        state: "RUNNING",
        parallelism: 2,
        start_ms: 1_000,
        end_ms: None,
    }]);
    // The jar is on the cluster already (as an earlier apply left it): nothing to upload.
    let jar = new.jar();
    fake.insert_jar(&format!("weir-{}-{}", &jar.sha256[..16], jar.file_name()));

    let observed = fixtures::running(&old, 1, JobState::Running);
    let history = BTreeMap::from([(
        "orders".to_string(),
        JobHistory {
            cluster: "local".into(),
            current_job_id: Some(old_id),
            spec: Some(old.clone()),
            suspended: false,
            last_savepoint: None,
            stopped_by_weir: Default::default(),
            rolled_back: None,
            known_savepoints: Default::default(),
        },
    )]);
    let desired = fixtures::desired(vec![new.clone()], false);
    let plan = fixtures::run(
        &desired,
        &fixtures::observation(vec![observed]),
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

    let cluster = ClusterConfig {
        url,
        savepoint_dir: Some("file:///sp".into()),
        bearer_token_env: None,
        headers_from_env: Default::default(),
        timeout_seconds: Some(5),
    };
    let client = Arc::new(FlinkClient::new("local", &cluster).unwrap());
    let progress = Arc::new(Mutex::new(Vec::new()));
    let said = progress.clone();
    let applier = Applier {
        store: store.clone(),
        clients: BTreeMap::from([("local".to_string(), client)]),
        source: Arc::new(RepoSource::work_tree(dir.path()).unwrap()),
        concurrency: 2,
        slots: None,
        savepoint_timeout: Duration::from_secs(5),
        start_timeout: Duration::from_secs(5),
        run_timeout: Duration::from_secs(5),
        submit_settle: Duration::from_secs(5),
        progress: Arc::new(move |m: &str| said.lock().unwrap().push(m.to_string())),
        on_change_done: None,
        jar_ids: Default::default(),
        overviews: Default::default(),
        trigger: Trigger::Cli,
        artifacts: crate::artifact::ArtifactSettings {
            policy: Default::default(),
            cache: dir.path().join("artifacts"),
        },
    };
    World {
        fake,
        store,
        applier,
        plan,
        old_id,
        new_job: new,
        progress,
        _dir: dir,
    }
}

pub(super) fn calls<'a>(requests: &'a [Request], endpoint: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.endpoint == endpoint).collect()
}

impl World {
    /// Starts an apply of the plan as `weir apply` would, without running it.
    async fn begin(&self, apply_id: &str) {
        self.store
            .insert_apply(&NewApply {
                id: apply_id.into(),
                plan_id: self.plan.id.clone(),
                started_at_ms: 2_000,
                revision: self.plan.revision.to_string(),
                trigger: Trigger::Cli,
                job_names: vec!["orders".into()],
            })
            .await
            .unwrap();
    }

    async fn journal(&self, apply_id: &str, seq: u32, detail: StepDetail) -> i64 {
        self.store
            .journal_intent(&NewJournalEntry {
                apply_id: apply_id.into(),
                job: "orders".into(),
                seq,
                detail,
                at_ms: 2_100,
            })
            .await
            .unwrap()
    }

    /// An apply whose stop completed and whose submission (with the id chosen from `nonce`) was
    /// journaled, without its outcome: what a crash right after sending it leaves. Returns the
    /// submission's job id and the stop's savepoint.
    async fn interrupted_submit(&self, apply_id: &str, nonce: u32) -> (JobId, String) {
        let savepoint = format!("file:///sp/savepoint-{apply_id}");
        let new_id = plan::submission_identity(&self.new_job, nonce).job_id();
        self.begin(apply_id).await;
        let stop = StepDetail::StopWithSavepoint(StopDetail {
            job_id: self.old_id,
            request_id: Some("r-1".into()),
            target_dir: Some("file:///sp".into()),
        });
        let stop = self.journal(apply_id, 0, stop).await;
        let stopped = StepResult::Stopped {
            savepoint: savepoint.clone(),
        };
        self.store
            .journal_result(stop, &stopped, 2_200)
            .await
            .unwrap();
        let submit = StepDetail::Submit(SubmitDetail {
            jar_id: None,
            job_id: new_id,
            parallelism: Some(2),
            savepoint_path: Some(savepoint.clone()),
        });
        self.journal(apply_id, 1, submit).await;
        (new_id, savepoint)
    }
}

mod leases;
mod lost_answers;
mod secrets;
mod steps;
