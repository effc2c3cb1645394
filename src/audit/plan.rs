//! The record of one plan (`weir show PLAN_ID`), assembled purely from the stored plan.

use serde::Serialize;
use serde_json::Value;

use super::story::{outcome_text, planned_step};
use super::{CommitRef, json, str_at, strings};
use crate::store::audit::RecordOrigin;
use crate::store::{ApplyRecord, PlanRecord, Store, StoreError};

/// One change of a plan, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedChange {
    pub job: String,
    pub cluster: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub changed_fields: Vec<String>,
    pub steps: Vec<String>,
}

/// An apply of a plan, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyBrief {
    pub id: String,
    pub started_at_ms: i64,
    pub outcome: String,
}

/// The record of one plan (`weir show PLAN_ID`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStory {
    /// Always `plan`.
    pub kind: String,
    pub id: String,
    pub created_at_ms: i64,
    pub trigger: String,
    pub actor: Option<String>,
    pub revision: String,
    pub commit: Option<CommitRef>,
    pub summary: String,
    pub changes: Vec<PlannedChange>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub applies: Vec<ApplyBrief>,
}

pub(super) fn planned_changes(plan: &Value) -> Vec<PlannedChange> {
    plan.get("changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| PlannedChange {
            job: str_at(c, "job").unwrap_or_default(),
            cluster: str_at(c, "cluster"),
            action: str_at(c, "action"),
            reason: str_at(c, "reason"),
            changed_fields: c
                .get("diff")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| str_at(d, "field"))
                .collect(),
            steps: c
                .get("steps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|s| {
                    let (kind, description, _) = planned_step(s);
                    description.unwrap_or(kind)
                })
                .collect(),
        })
        .collect()
}

/// Assembles the record of one plan. Pure.
pub fn assemble_plan(
    plan: &PlanRecord,
    origin: Option<&RecordOrigin>,
    applies: &[ApplyRecord],
) -> PlanStory {
    let v = json(Some(&plan.plan_json));
    PlanStory {
        kind: "plan".into(),
        id: plan.id.clone(),
        created_at_ms: plan.created_at_ms,
        trigger: plan.trigger.to_string(),
        actor: origin.and_then(|o| o.actor.clone()),
        revision: plan.revision.clone(),
        commit: origin.and_then(CommitRef::from_origin),
        summary: plan.summary.clone(),
        changes: planned_changes(&v),
        warnings: strings(&v["warnings"]),
        errors: strings(&v["errors"]),
        applies: applies
            .iter()
            .map(|a| ApplyBrief {
                id: a.id.clone(),
                started_at_ms: a.started_at_ms,
                outcome: outcome_text(a.outcome),
            })
            .collect(),
    }
}

pub async fn load_plan(store: &Store, id: &str) -> Result<Option<PlanStory>, StoreError> {
    let Some(plan) = store.plan(id).await? else {
        return Ok(None);
    };
    let origin = store.origin(id).await?;
    let applies = store.applies_of_plan(id).await?;
    Ok(Some(assemble_plan(&plan, origin.as_ref(), &applies)))
}
