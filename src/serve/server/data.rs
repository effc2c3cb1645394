//! The typed data behind the API's JSON: each function here is the one code path that both an
//! API handler (which serializes it) and a console page (which renders it) call, so the console
//! never shows a figure the API does not.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{ApiError, AppState};
use crate::audit::{self, ApplyStory, Lineage};
use crate::notify::RouteSummary;
use crate::serve::pull::PreviewRecord;
use crate::serve::reconcile::{ApplyRequest, JobStatus, PlanInfo};
use crate::store::{
    ApplyRecord, HistoryEntry, HistoryKind, JournalEntry, SavepointRecord, Trigger,
};
use crate::textmap::TextMap;

/// How many applies of a job its detail carries (newest first).
const JOB_APPLIES: usize = 5;

/// One row of `GET /api/v1/jobs` (the console's jobs page): the job's status plus what the store
/// knows of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRow {
    #[serde(flatten)]
    pub status: JobStatus,
    /// `metadata.labels` (e.g. `team`) of the definition at the current revision, else of the
    /// last applied one (a job whose file no longer loads).
    pub labels: TextMap,
    pub last_savepoint_at_ms: Option<i64>,
    pub last_apply: Option<LastApply>,
}

/// The newest apply that touched a job.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastApply {
    pub id: String,
    pub at_ms: i64,
    /// `succeeded`, `failed`, `interrupted` or `unfinished`.
    pub outcome: String,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsOverview {
    pub jobs: Vec<JobRow>,
}

/// Every job the daemon reports, with labels, last savepoint time and last apply.
pub async fn jobs_overview(state: &AppState) -> Result<JobsOverview, ApiError> {
    let status = state.shared.status();
    let store = &state.shared.store;
    let records: BTreeMap<String, crate::store::JobRecord> = store
        .jobs()
        .await?
        .into_iter()
        .map(|j| (j.name.clone(), j))
        .collect();
    let mut jobs = Vec::with_capacity(status.jobs.len());
    for job in status.jobs {
        let record = records.get(job.name.as_str());
        let last_apply = store
            .history(Some(&job.name), 10)
            .await?
            .into_iter()
            .find(|e| e.kind == HistoryKind::Apply)
            .map(|e| LastApply {
                id: e.id,
                at_ms: e.at_ms,
                outcome: e.summary_or_outcome,
            });
        jobs.push(JobRow {
            labels: if job.labels.is_empty() {
                record.map(labels_of).unwrap_or_default()
            } else {
                job.labels.clone()
            },
            last_savepoint_at_ms: record.and_then(|r| r.last_savepoint_at_ms),
            last_apply,
            status: job,
        });
    }
    Ok(JobsOverview { jobs })
}

fn labels_of(record: &crate::store::JobRecord) -> TextMap {
    definition_of(record)
        .and_then(|d| serde_json::from_value(d.get("labels")?.clone()).ok())
        .unwrap_or_default()
}

/// The last applied definition (stored redacted by the applier).
fn definition_of(record: &crate::store::JobRecord) -> Option<Value> {
    serde_json::from_str(record.spec_json.as_deref()?).ok()
}

/// `GET /api/v1/jobs/{name}` (the console's job page).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    pub job: JobStatus,
    pub history: Vec<HistoryEntry>,
    pub savepoints: Vec<SavepointRecord>,
    /// The definition as last applied (redacted), i.e. at the deployed revision.
    pub definition: Option<Value>,
    pub lineage: Lineage,
    /// The newest applies of the job, with every step.
    pub applies: Vec<ApplyStory>,
    /// The change waiting for the job in the pending (or else the last) plan, with that plan's id.
    pub pending_change: Option<PendingChange>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    pub plan_id: String,
    /// The plan's change of this job, as the plan JSON holds it (redacted).
    pub change: Value,
}

pub async fn job_detail(state: &AppState, name: &str) -> Result<JobDetail, ApiError> {
    let status = state.shared.status();
    let Some(job) = status.jobs.iter().find(|j| j.name == name).cloned() else {
        return Err(ApiError::UnknownJob(name.to_string()));
    };
    let store = &state.shared.store;
    let history = store.history(Some(name), 20).await?;
    let savepoints = store.savepoints(name).await?;
    let definition = store.job(name).await?.as_ref().and_then(definition_of);
    let lineage = audit::load_lineage(store, name).await?;
    let mut applies = Vec::new();
    for e in history.iter().filter(|e| e.kind == HistoryKind::Apply) {
        if applies.len() == JOB_APPLIES {
            break;
        }
        if let Some(story) = audit::load_apply(store, &e.id).await? {
            applies.push(story);
        }
    }
    let mut pending_change = None;
    if job.sync != "Synced" {
        let plan = status.pending_plan.as_ref().or(status.last_plan.as_ref());
        if let Some(info) = plan
            && let Some(record) = store.plan(&info.id).await?
        {
            let plan: Value = serde_json::from_str(&record.plan_json)?;
            let change = plan["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["job"] == name)
                .cloned();
            pending_change = change.map(|change| PendingChange {
                plan_id: record.id,
                change,
            });
        }
    }
    Ok(JobDetail {
        job,
        history,
        savepoints,
        definition,
        lineage,
        applies,
        pending_change,
    })
}

/// `GET /api/v1/plans`.
#[derive(Debug, Clone, Serialize)]
pub struct PlansList {
    pub pending: Option<PlanInfo>,
    pub plans: Vec<HistoryEntry>,
}

pub async fn plans_list(state: &AppState, limit: usize) -> Result<PlansList, ApiError> {
    let plans = state
        .shared
        .store
        .history(None, limit * 2)
        .await?
        .into_iter()
        .filter(|e| e.kind == HistoryKind::Plan)
        .take(limit)
        .collect();
    Ok(PlansList {
        pending: state.shared.status().pending_plan,
        plans,
    })
}

/// `GET /api/v1/plans/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDetail {
    pub id: String,
    pub trigger: Trigger,
    /// The plan as recorded (redacted).
    pub plan: Value,
}

pub async fn plan_detail(state: &AppState, id: &str) -> Result<PlanDetail, ApiError> {
    let Some(record) = state.shared.store.plan(id).await? else {
        return Err(ApiError::UnknownPlan(id.to_string()));
    };
    Ok(PlanDetail {
        plan: serde_json::from_str(&record.plan_json)?,
        id: record.id,
        trigger: record.trigger,
    })
}

/// `GET /api/v1/applies/{id}`: the story of an apply (as `weir show APPLY_ID --format json`),
/// plus the raw `apply` row and `journal` this endpoint has always returned.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyDetail {
    #[serde(flatten)]
    pub story: ApplyStory,
    pub apply: ApplyRecord,
    pub journal: Vec<JournalEntry>,
}

pub async fn apply_detail(state: &AppState, id: &str) -> Result<ApplyDetail, ApiError> {
    let store = &state.shared.store;
    let not_found = || ApiError::UnknownApply(id.to_string());
    let apply = store.apply(id).await?.ok_or_else(not_found)?;
    let story = audit::load_apply(store, id).await?.ok_or_else(not_found)?;
    let journal = store.journal(id).await?;
    Ok(ApplyDetail {
        story,
        apply,
        journal,
    })
}

/// `GET /api/v1/previews`.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewsList {
    pub enabled: bool,
    pub previews: Vec<PreviewRecord>,
}

pub fn previews_list(state: &AppState) -> PreviewsList {
    PreviewsList {
        enabled: state.previews.is_some(),
        previews: state
            .previews
            .as_ref()
            .map(|p| p.records())
            .unwrap_or_default(),
    }
}

/// `GET /api/v1/notifications`: where events go (destinations masked) and which routes of
/// `weir.yaml` could not be used, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRoutes {
    pub routes: Vec<RouteSummary>,
    pub problems: Vec<String>,
}

pub fn notification_routes(state: &AppState) -> NotificationRoutes {
    let (routes, problems) = state.shared.notification_routes();
    NotificationRoutes { routes, problems }
}

/// An approved plan's apply (`POST /api/v1/plans/{id}/apply`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    pub apply_id: String,
    pub plan_id: String,
}

/// Applies plan `id` through the reconcile worker, which refuses a stale plan. The caller has
/// checked the token.
pub async fn approve_plan(state: &AppState, id: &str) -> Result<Approved, ApiError> {
    // A preview plans a pull request, not the branch: it is never applied.
    if let Some(record) = state.shared.store.plan(id).await?
        && record.trigger == Trigger::PullRequest
    {
        return Err(ApiError::PreviewNotApplicable(id.to_string()));
    }
    let (reply, rx) = oneshot::channel();
    state
        .shared
        .apply_tx
        .send(ApplyRequest {
            plan_id: id.to_string(),
            reply,
        })
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    match rx.await {
        Ok(Ok(apply_id)) => Ok(Approved {
            apply_id,
            plan_id: id.to_string(),
        }),
        Ok(Err(refusal)) => Err(refusal.into()),
        Err(_) => Err(ApiError::ShuttingDown),
    }
}
