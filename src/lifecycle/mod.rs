//! The savepoint lifecycle between deploys and job health (issue 12): savepoints of a running
//! job taken on demand or on a schedule, retention disposing old ones through Flink, and the
//! health of running jobs.
//!
//! Used by the CLI (`weir savepoint`, `weir savepoints prune|pin|unpin`, `weir status`) and by
//! `weir serve`'s timers. The decisions are pure ([`retention::select`], [`health::classify`]);
//! this module does the IO around them, recording every operation in the store before Flink is
//! asked (see [`crate::store::lifecycle`]).

pub mod health;
pub mod retention;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::flink::{FlinkClient, FlinkError, SavepointStatus};
use crate::identity::JobId;
use crate::store::lifecycle::{
    NewSavepointOperation, OperationKind, OperationOrigin, OperationOutcome, SavepointOperation,
};
use crate::store::{SavepointKind, SavepointRecord, Store, StoreError};

pub use crate::desired::RetainPolicy;

/// A failed lifecycle operation.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("savepoint of {job} on cluster {cluster}")]
    Savepoint {
        job: String,
        cluster: String,
        #[source]
        source: FlinkError,
    },
    #[error(
        "the savepoint of {job} is still in progress after {waited:?}; weir records it when \
         Flink reports it (operation {operation} in the store)"
    )]
    StillInProgress {
        job: String,
        waited: Duration,
        operation: i64,
    },
    #[error("disposing {path} of {job}")]
    Dispose {
        job: String,
        path: String,
        #[source]
        source: FlinkError,
    },
}

/// The running job a savepoint is taken of.
#[derive(Debug, Clone)]
pub struct SavepointTarget {
    pub job: String,
    pub cluster: String,
    pub flink_job_id: JobId,
    /// Target directory; `None` uses the cluster's configured one.
    pub savepoint_dir: Option<String>,
}

/// How long to wait for Flink.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// Takes a savepoint of a running job (the job keeps running) and records it as `origin`.
/// The intent is recorded before Flink is asked and Flink's request id as soon as it answers,
/// so a crash or a timeout leaves a pending operation that [`resume_pending`] completes: the
/// savepoint, once Flink writes it, is never forgotten.
pub async fn take_savepoint(
    store: &Store,
    client: &FlinkClient,
    target: &SavepointTarget,
    origin: OperationOrigin,
    actor: Option<String>,
    waits: Waits,
    progress: impl FnMut(Duration),
) -> Result<SavepointRecord, LifecycleError> {
    let id = store
        .begin_savepoint_operation(&NewSavepointOperation {
            kind: OperationKind::Trigger,
            origin,
            job: target.job.clone(),
            cluster: target.cluster.clone(),
            flink_job_id: Some(target.flink_job_id.to_string()),
            path: None,
            actor,
            started_at_ms: crate::clock::now_ms(),
        })
        .await?;
    let flink_err = |source| LifecycleError::Savepoint {
        job: target.job.clone(),
        cluster: target.cluster.clone(),
        source,
    };
    let request = match client
        .trigger_savepoint(&target.flink_job_id, target.savepoint_dir.as_deref())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            fail(store, id, &e.to_string()).await?;
            return Err(flink_err(e));
        }
    };
    store.savepoint_operation_requested(id, &request).await?;
    let waited = client
        .wait_for_savepoint(
            &target.flink_job_id,
            &request,
            waits.timeout,
            waits.poll_interval,
            progress,
        )
        .await;
    match waited {
        Ok(location) => {
            let record = savepoint_record(&target.job, &target.flink_job_id.to_string(), location);
            store
                .complete_savepoint_trigger(id, &record, record.at_ms)
                .await?;
            Ok(record)
        }
        // Flink may still finish it: the operation stays pending with its request id.
        Err(FlinkError::WaitTimeout { .. }) => Err(LifecycleError::StillInProgress {
            job: target.job.clone(),
            waited: waits.timeout,
            operation: id,
        }),
        Err(e) => {
            fail(store, id, &e.to_string()).await?;
            Err(flink_err(e))
        }
    }
}

fn savepoint_record(job: &str, flink_job_id: &str, path: String) -> SavepointRecord {
    SavepointRecord {
        job: job.to_string(),
        path,
        kind: SavepointKind::Savepoint,
        flink_job_id: flink_job_id.to_string(),
        produced_by_apply: None,
        at_ms: crate::clock::now_ms(),
        restores: vec![],
    }
}

async fn fail(store: &Store, id: i64, error: &str) -> Result<(), StoreError> {
    store
        .finish_savepoint_operation(
            id,
            OperationOutcome::Failed,
            Some(error),
            crate::clock::now_ms(),
        )
        .await
}

/// What [`resume_pending`] did with one interrupted operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    pub operation: i64,
    pub job: String,
    /// `recorded PATH`, `failed: ...`, `still in progress`.
    pub result: String,
}

/// Completes operations a crash (or a timeout) left pending: a trigger Flink answered is polled
/// once and its savepoint recorded when done; a trigger Flink never answered and an interrupted
/// disposal end as failed (the disposal is retried by the next retention round, its savepoint
/// stays known). `client_of` gives the client of a cluster (`None`: unknown cluster, left
/// pending).
pub async fn resume_pending(
    store: &Store,
    client_of: impl Fn(&str) -> Option<FlinkClient>,
) -> Result<Vec<Resumed>, StoreError> {
    let mut out = Vec::new();
    for op in store.pending_savepoint_operations().await? {
        let Some(client) = client_of(&op.cluster) else {
            continue;
        };
        let result = resume_one(store, &client, &op).await?;
        out.push(Resumed {
            operation: op.id,
            job: op.job.clone(),
            result,
        });
    }
    Ok(out)
}

async fn resume_one(
    store: &Store,
    client: &FlinkClient,
    op: &SavepointOperation,
) -> Result<String, StoreError> {
    let job_id = op
        .flink_job_id
        .as_deref()
        .and_then(|j| j.parse::<JobId>().ok());
    let (OperationKind::Trigger, Some(request), Some(job_id)) =
        (op.kind, op.request_id.as_deref(), job_id)
    else {
        let why = match op.kind {
            OperationKind::Trigger => "interrupted before Flink acknowledged the savepoint",
            OperationKind::Dispose => "interrupted; the disposal is retried by retention",
        };
        fail(store, op.id, why).await?;
        return Ok(format!("failed: {why}"));
    };
    match client.savepoint_status(&job_id, request).await {
        Ok(SavepointStatus::Completed { location }) => {
            let record = savepoint_record(&op.job, &job_id.to_string(), location.clone());
            store
                .complete_savepoint_trigger(op.id, &record, record.at_ms)
                .await?;
            Ok(format!("recorded {location}"))
        }
        Ok(SavepointStatus::Failed { cause }) => {
            fail(store, op.id, &cause).await?;
            Ok(format!("failed: {cause}"))
        }
        Ok(SavepointStatus::InProgress) => Ok("still in progress".into()),
        Err(e) if e.is_not_found() => {
            let why = "Flink no longer knows the request (restarted, or the result expired); \
                       a savepoint it wrote is not recorded";
            fail(store, op.id, why).await?;
            Ok(format!("failed: {why}"))
        }
        Err(e) => Ok(format!("left pending: {e}")),
    }
}

/// Disposes `path` through Flink and only then forgets it: the disposal is recorded as pending
/// first, marked succeeded when Flink confirms, failed otherwise (the savepoint then stays known
/// and a later round tries again).
pub async fn dispose(
    store: &Store,
    client: &FlinkClient,
    job: &str,
    path: &str,
    origin: OperationOrigin,
    actor: Option<String>,
    waits: Waits,
) -> Result<(), LifecycleError> {
    let id = store
        .begin_savepoint_operation(&NewSavepointOperation {
            kind: OperationKind::Dispose,
            origin,
            job: job.to_string(),
            cluster: client.name().to_string(),
            flink_job_id: None,
            path: Some(path.to_string()),
            actor,
            started_at_ms: crate::clock::now_ms(),
        })
        .await?;
    let result = async {
        let request = client.dispose_savepoint(path).await?;
        store
            .savepoint_operation_requested(id, &request)
            .await
            .map_err(|e| FlinkError::DisposalFailed {
                path: path.to_string(),
                cause: e.to_string(),
            })?;
        client
            .wait_for_disposal(path, &request, waits.timeout, waits.poll_interval)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            store
                .finish_savepoint_operation(
                    id,
                    OperationOutcome::Succeeded,
                    None,
                    crate::clock::now_ms(),
                )
                .await?;
            Ok(())
        }
        Err(source) => {
            fail(store, id, &source.to_string()).await?;
            Err(LifecycleError::Dispose {
                job: job.to_string(),
                path: path.to_string(),
                source,
            })
        }
    }
}

/// What retention needs to know about `job` from the store.
pub async fn job_savepoints(
    store: &Store,
    job: &str,
) -> Result<retention::JobSavepoints, StoreError> {
    let record = store.job(job).await?;
    let unfinished: Vec<_> = store.unfinished_applies().await?;
    let apply_in_flight = unfinished
        .iter()
        .any(|a| a.job_names.iter().any(|j| j == job));
    Ok(retention::JobSavepoints {
        savepoints: store.savepoints(job).await?,
        disposed: store.disposed_savepoints(job).await?,
        pinned: store
            .savepoint_pins(job)
            .await?
            .into_iter()
            .map(|p| p.path)
            .collect(),
        current_job_id: record.as_ref().and_then(|r| r.current_job_id.clone()),
        record_last_savepoint: record.and_then(|r| r.last_savepoint),
        unfinished_applies: unfinished
            .into_iter()
            .map(|a| a.id)
            .collect::<BTreeSet<_>>(),
        apply_in_flight,
    })
}

/// One savepoint's fate in a prune.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub job: String,
    #[serde(flatten)]
    pub decision: retention::Decision,
    /// For a savepoint that goes: `disposed`, `would dispose` (dry run) or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The disposal failed; the savepoint stays known and is retried next time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// Applies `policy` to `job`'s savepoints: decides with [`retention::select`] and disposes what
/// goes (nothing with `dry_run`).
#[allow(clippy::too_many_arguments)]
pub async fn prune_job(
    store: &Store,
    client: &FlinkClient,
    job: &str,
    policy: &RetainPolicy,
    dry_run: bool,
    origin: OperationOrigin,
    actor: Option<String>,
    waits: Waits,
) -> Result<Vec<Pruned>, StoreError> {
    let facts = job_savepoints(store, job).await?;
    let decisions = retention::select(&facts, policy, crate::clock::now_ms());
    let mut out = Vec::new();
    for decision in decisions {
        let (result, failed) = if !decision.disposes() {
            (None, false)
        } else if dry_run {
            (Some("would dispose".to_string()), false)
        } else {
            match dispose(
                store,
                client,
                job,
                &decision.path,
                origin,
                actor.clone(),
                waits,
            )
            .await
            {
                Ok(()) => (Some("disposed".to_string()), false),
                Err(LifecycleError::Store(e)) => return Err(e),
                Err(e) => (Some(crate::text::error_chain(&e)), true),
            }
        };
        out.push(Pruned {
            job: job.to_string(),
            decision,
            result,
            failed,
        });
    }
    Ok(out)
}

/// The health of a job in `state` (read from Flink: [`FlinkClient::health_facts`]); `None` when
/// the job is not running or Flink does not know it. `samples` are earlier (time,
/// `counts.failed`) readings of the job (see [`health::add_counted_failures`]); the reading made
/// now is appended to them (and readings older than the window dropped).
pub async fn health_of(
    client: &FlinkClient,
    job_id: &JobId,
    state: &crate::flink::JobState,
    thresholds: &health::Thresholds,
    samples: &mut Vec<(i64, u64)>,
) -> Result<Option<health::HealthReport>, FlinkError> {
    use crate::flink::JobState;
    if !matches!(
        state,
        JobState::Running | JobState::Restarting | JobState::Failing
    ) {
        return Ok(None);
    }
    let Some(mut facts) = client.health_facts(job_id).await? else {
        return Ok(None);
    };
    let now = crate::clock::now_ms();
    health::add_counted_failures(&mut facts, samples, thresholds.window_ms, now);
    samples.retain(|(at, _)| *at >= now - thresholds.window_ms);
    samples.push((now, facts.checkpoints_failed));
    Ok(Some(health::classify(state, &facts, thresholds, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterConfig;
    use crate::store::lifecycle::OperationOutcome;
    use crate::testing::fake_flink::{Fake, FakeJob};

    const JOB_ID: &str = "0123456789abcdef0123456789abcdef";

    async fn world() -> (std::sync::Arc<Fake>, FlinkClient, Store, SavepointTarget) {
        let (fake, url) = Fake::serve().await;
        fake.insert_jobs([FakeJob {
            id: JOB_ID.into(),
            name: "orders".into(),
            state: "RUNNING",
            parallelism: 1,
            start_ms: 1_000,
            end_ms: None,
        }]);
        let cluster = ClusterConfig {
            url,
            savepoint_dir: None,
            bearer_token_env: None,
            headers_from_env: Default::default(),
            timeout_seconds: Some(5),
        };
        let client = FlinkClient::new("local", &cluster).unwrap();
        let store = Store::open_in_memory().await.unwrap();
        let target = SavepointTarget {
            job: "orders".into(),
            cluster: "local".into(),
            flink_job_id: JOB_ID.parse().unwrap(),
            savepoint_dir: None,
        };
        (fake, client, store, target)
    }

    fn waits() -> Waits {
        Waits {
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn a_manual_savepoint_is_recorded_and_the_job_keeps_running() {
        let (fake, client, store, target) = world().await;
        let sp = take_savepoint(
            &store,
            &client,
            &target,
            OperationOrigin::Manual,
            None,
            waits(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(store.savepoints("orders").await.unwrap()[0].path, sp.path);
        let ops = store.savepoint_operations("orders").await.unwrap();
        assert_eq!(ops[0].origin, OperationOrigin::Manual);
        assert_eq!(ops[0].outcome, Some(OperationOutcome::Succeeded));
        assert_eq!(fake.job(JOB_ID).unwrap().state, "RUNNING");
    }

    /// Invariant 3: a savepoint Flink acknowledged before weir died is recorded on the next
    /// start; one it never acknowledged is reported failed, not left dangling.
    #[tokio::test]
    async fn interrupted_triggers_are_completed_or_reported() {
        let (_fake, client, store, target) = world().await;
        let new = |at| NewSavepointOperation {
            kind: OperationKind::Trigger,
            origin: OperationOrigin::Periodic,
            job: "orders".into(),
            cluster: "local".into(),
            flink_job_id: Some(JOB_ID.into()),
            path: None,
            actor: None,
            started_at_ms: at,
        };
        // Acknowledged by Flink, then the process died.
        let acked = store.begin_savepoint_operation(&new(1)).await.unwrap();
        let request = client
            .trigger_savepoint(&target.flink_job_id, None)
            .await
            .unwrap();
        store
            .savepoint_operation_requested(acked, &request)
            .await
            .unwrap();
        // Died before Flink answered.
        let unacked = store.begin_savepoint_operation(&new(2)).await.unwrap();

        let done = resume_pending(&store, |_| Some(client.clone()))
            .await
            .unwrap();
        assert_eq!(done.len(), 2);
        assert!(done[0].result.starts_with("recorded file:"), "{done:?}");
        assert!(done[1].result.starts_with("failed:"), "{done:?}");
        assert_eq!(store.savepoints("orders").await.unwrap().len(), 1);
        assert!(
            store
                .pending_savepoint_operations()
                .await
                .unwrap()
                .is_empty()
        );
        let ops = store.savepoint_operations("orders").await.unwrap();
        let by_id = |id| ops.iter().find(|o| o.id == id).unwrap();
        assert_eq!(by_id(acked).outcome, Some(OperationOutcome::Succeeded));
        assert_eq!(by_id(unacked).outcome, Some(OperationOutcome::Failed));
    }

    /// Dispose-then-forget: a disposal Flink refuses leaves the savepoint known (FLINK-39439
    /// dropped the history entry first).
    #[tokio::test]
    async fn a_failed_disposal_forgets_nothing() {
        let (fake, client, store, target) = world().await;
        let sp = take_savepoint(
            &store,
            &client,
            &target,
            OperationOrigin::Manual,
            None,
            waits(),
            |_| {},
        )
        .await
        .unwrap();
        fake.fail(
            "POST /savepoint-disposal",
            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            "java.io.IOException: disk on fire",
            None,
        );
        let err = dispose(
            &store,
            &client,
            "orders",
            &sp.path,
            OperationOrigin::Retention,
            None,
            waits(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, LifecycleError::Dispose { .. }), "{err}");
        assert!(
            store
                .disposed_savepoints("orders")
                .await
                .unwrap()
                .is_empty()
        );
        let d = &store.savepoint_operations("orders").await.unwrap()[0];
        assert_eq!(d.kind, OperationKind::Dispose);
        assert_eq!(d.outcome, Some(OperationOutcome::Failed));
        // Retention still selects it: retried next time.
        let facts = job_savepoints(&store, "orders").await.unwrap();
        assert!(facts.savepoints.iter().any(|s| s.path == sp.path));
        assert!(!facts.disposed.contains(&sp.path));
    }
}
