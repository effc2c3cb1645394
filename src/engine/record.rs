//! Recording a plan: the plan itself (and the jobs it touches), and where it came from.

use crate::git::RepoSource;
use crate::plan::Plan;
use crate::store::audit::{RecordKind, record_origin};
use crate::store::{PlanRecord, Store, Trigger};

use super::EngineError;

/// Records `plan` with its trigger, and its origin: the commit's author and message when the
/// files came from a commit, and `actor` (who asked for it).
pub async fn record_plan(
    store: &Store,
    plan: &Plan,
    trigger: Trigger,
    source: &RepoSource,
    actor: Option<String>,
) -> Result<(), EngineError> {
    store
        .insert_plan(&PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger,
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(plan)?,
            job_names: plan.changes.iter().map(|c| c.job.clone()).collect(),
        })
        .await?;
    record_origin(
        store,
        RecordKind::Plan,
        &plan.id,
        source,
        &plan.revision,
        actor,
        crate::clock::now_ms(),
    )
    .await?;
    Ok(())
}
