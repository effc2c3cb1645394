//! A job's savepoint lineage (`weir savepoints JOB`): where each snapshot came from and every
//! job started from it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::CommitRef;
use super::json;
use super::plan::planned_changes;
use super::story::outcome_text;
use crate::store::{SavepointRecord, Store, StoreError};

/// The apply that took or restored a savepoint, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyRef {
    pub apply_id: String,
    /// The apply's action for this job, e.g. `redeploy`.
    pub action: Option<String>,
    /// The apply's outcome (`unfinished` while it has none).
    pub outcome: Option<String>,
    pub revision: Option<String>,
    pub commit: Option<CommitRef>,
}

/// One start of a job from a savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreStory {
    pub at_ms: i64,
    /// The Flink job started from the savepoint.
    pub flink_job_id: String,
    pub by: ApplyRef,
}

/// One savepoint or retained checkpoint of a job, with where it came from and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavepointStory {
    pub path: String,
    /// `savepoint` or `checkpoint`.
    pub kind: String,
    pub at_ms: i64,
    /// The Flink job it was taken from (unknown for paths weir did not take itself).
    pub flink_job_id: Option<String>,
    /// The apply that took it; `None` for a path weir only restored (an initial savepoint, a
    /// checkpoint found on the cluster).
    pub produced_by: Option<ApplyRef>,
    /// Every start of a job from it, oldest first.
    pub restores: Vec<RestoreStory>,
    /// Who asked for it when no apply took it: `periodic` (the daemon's schedule) or `manual`
    /// (`weir savepoint JOB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Pinned (`weir savepoints pin`): retention never disposes it.
    pub pinned: bool,
    /// Flink confirmed its disposal (retention or `weir savepoints prune`): the files are gone.
    pub disposed: bool,
}

/// What the savepoint lifecycle knows of a job's savepoints, by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleFacts {
    /// Savepoints taken outside an apply, and why (`periodic`, `manual`).
    pub origins: BTreeMap<String, String>,
    pub pinned: BTreeSet<String>,
    pub disposed: BTreeSet<String>,
}

/// `weir savepoints JOB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub job: String,
    /// Newest first.
    pub savepoints: Vec<SavepointStory>,
}

/// Assembles a job's savepoint lineage; `applies` describes the applies the lineage names. Pure.
pub fn assemble_lineage(
    job: &str,
    savepoints: &[SavepointRecord],
    applies: &BTreeMap<String, ApplyRef>,
) -> Lineage {
    assemble_lineage_with(job, savepoints, applies, &LifecycleFacts::default())
}

/// [`assemble_lineage`] with what the savepoint lifecycle knows (origins, pins, disposals).
pub fn assemble_lineage_with(
    job: &str,
    savepoints: &[SavepointRecord],
    applies: &BTreeMap<String, ApplyRef>,
    facts: &LifecycleFacts,
) -> Lineage {
    let apply_ref = |id: &str| {
        applies.get(id).cloned().unwrap_or_else(|| ApplyRef {
            apply_id: id.to_string(),
            action: None,
            outcome: None,
            revision: None,
            commit: None,
        })
    };
    Lineage {
        job: job.to_string(),
        savepoints: savepoints
            .iter()
            .map(|s| SavepointStory {
                path: s.path.clone(),
                kind: s.kind.as_str().to_string(),
                at_ms: s.at_ms,
                flink_job_id: Some(s.flink_job_id.clone()).filter(|j| !j.is_empty()),
                produced_by: s.produced_by_apply.as_deref().map(apply_ref),
                restores: s
                    .restores
                    .iter()
                    .map(|r| RestoreStory {
                        at_ms: r.at_ms,
                        flink_job_id: r.job_id.clone(),
                        by: apply_ref(&r.apply_id),
                    })
                    .collect(),
                origin: facts.origins.get(&s.path).cloned(),
                pinned: facts.pinned.contains(&s.path),
                disposed: facts.disposed.contains(&s.path),
            })
            .collect(),
    }
}

pub async fn load_lineage(store: &Store, job: &str) -> Result<Lineage, StoreError> {
    let savepoints = store.savepoints(job).await?;
    let ids: BTreeSet<&str> = savepoints
        .iter()
        .flat_map(|s| {
            s.produced_by_apply
                .as_deref()
                .into_iter()
                .chain(s.restores.iter().map(|r| r.apply_id.as_str()))
        })
        .collect();
    let mut applies = BTreeMap::new();
    for id in ids {
        let Some(apply) = store.apply(id).await? else {
            continue;
        };
        let mut action = store
            .apply_changes(id)
            .await?
            .into_iter()
            .find(|c| c.job == job)
            .map(|c| c.action);
        let plan = store.plan(&apply.plan_id).await?;
        if action.is_none()
            && let Some(plan) = &plan
        {
            action = planned_changes(&json(Some(&plan.plan_json)))
                .into_iter()
                .find(|c| c.job == job)
                .and_then(|c| c.action);
        }
        let commit = match store.origin(id).await? {
            Some(o) => CommitRef::from_origin(&o),
            None => store
                .origin(&apply.plan_id)
                .await?
                .as_ref()
                .and_then(CommitRef::from_origin),
        };
        applies.insert(
            id.to_string(),
            ApplyRef {
                apply_id: id.to_string(),
                action,
                outcome: Some(outcome_text(apply.outcome)),
                revision: Some(apply.revision.clone()),
                commit,
            },
        );
    }
    let facts = lifecycle_facts(store, job).await?;
    Ok(assemble_lineage_with(job, &savepoints, &applies, &facts))
}

async fn lifecycle_facts(store: &Store, job: &str) -> Result<LifecycleFacts, StoreError> {
    use crate::store::lifecycle::{OperationKind, OperationOutcome};
    let origins = store
        .savepoint_operations(job)
        .await?
        .into_iter()
        .filter(|o| {
            o.kind == OperationKind::Trigger && o.outcome == Some(OperationOutcome::Succeeded)
        })
        .filter_map(|o| Some((o.path?, o.origin.as_str().to_string())))
        .collect();
    let pinned = store
        .savepoint_pins(job)
        .await?
        .into_iter()
        .map(|p| p.path)
        .collect();
    Ok(LifecycleFacts {
        origins,
        pinned,
        disposed: store.disposed_savepoints(job).await?,
    })
}
