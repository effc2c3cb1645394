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
    Ok(assemble_lineage(job, &savepoints, &applies))
}
