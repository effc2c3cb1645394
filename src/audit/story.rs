//! The story of one apply (`weir show APPLY_ID`), assembled purely from its records: the plan,
//! the journal (typed by [`crate::store::journal`]), how each change ended, and events.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{CommitRef, json, str_at, strings};
use crate::plan::Step;
use crate::store::audit::{ApplyEvent, ApplyEventKind, ChangeResult, RecordOrigin};
use crate::store::{
    ApplyOutcome, ApplyRecord, JournalEntry, JournalStatus, PlanRecord, StepDetail, StepKind,
    Store, StoreError,
};

/// One step of one change of an apply: what was planned, what was journaled, what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStory {
    pub job: String,
    /// 1-based position within its change.
    pub seq: u32,
    /// `stop_with_savepoint`, `cancel`, `submit`, `await_running`, `forget`.
    pub kind: String,
    /// The planned step in words.
    pub description: Option<String>,
    /// The Flink REST call that makes the change, e.g. `POST /jobs/{id}/stop`.
    pub call: Option<String>,
    /// The REST call polled for its completion, e.g. `GET /jobs/{id}/savepoints/{request}`.
    pub polls: Option<String>,
    /// `succeeded`, `failed`, `pending` (intent recorded, outcome not) or `not_run`.
    pub status: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// The Flink job the step acted on (for a submit: the id it submitted).
    pub flink_job_id: Option<String>,
    /// The savepoint request id Flink returned for a stop.
    pub request_id: Option<String>,
    /// The savepoint or checkpoint a submit restored from.
    pub savepoint_used: Option<String>,
    /// The savepoint a stop took, or the retained checkpoint a cancel left.
    pub savepoint_produced: Option<String>,
    pub error: Option<String>,
    /// Interruptions and resumptions around this step.
    pub notes: Vec<String>,
}

/// One change (one job) of an apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStory {
    pub job: String,
    pub cluster: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub upgrade_mode: Option<String>,
    /// The Flink job the change stopped or replaced.
    pub from_job_id: Option<String>,
    /// Fields whose change caused this (from the plan's redacted diff).
    pub changed_fields: Vec<String>,
    /// The plan's field diffs (redacted when the plan was recorded).
    pub diff: Vec<Value>,
    pub warnings: Vec<String>,
    pub steps: Vec<StepStory>,
    /// `succeeded`, `failed`, `unfinished`, `not_started`, `interrupted` or `incomplete`.
    pub outcome: String,
    pub message: Option<String>,
    pub new_job_id: Option<String>,
}

/// The plan an apply applied, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanBrief {
    pub id: String,
    pub created_at_ms: i64,
    pub trigger: String,
    pub actor: Option<String>,
    pub summary: String,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// Something that happened to an apply as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventStory {
    pub at_ms: i64,
    pub kind: String,
    pub message: String,
}

/// The full story of one apply (`weir show APPLY_ID`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyStory {
    /// Always `apply`.
    pub kind: String,
    pub id: String,
    pub plan_id: String,
    pub trigger: String,
    pub actor: Option<String>,
    pub revision: String,
    pub commit: Option<CommitRef>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// `succeeded`, `failed`, `interrupted` or `unfinished` (no outcome recorded yet).
    pub outcome: String,
    pub error: Option<String>,
    pub plan: Option<PlanBrief>,
    pub events: Vec<EventStory>,
    pub jobs: Vec<JobStory>,
}

/// Everything [`assemble_apply`] needs.
#[derive(Debug, Clone)]
pub struct ApplyRecords {
    pub apply: ApplyRecord,
    pub origin: Option<RecordOrigin>,
    pub plan: Option<PlanRecord>,
    pub plan_origin: Option<RecordOrigin>,
    pub journal: Vec<JournalEntry>,
    pub changes: Vec<ChangeResult>,
    pub events: Vec<ApplyEvent>,
}

/// The Flink REST call a journaled step makes, and the one it polls, from its detail.
pub fn rest_calls(kind: StepKind, detail: Option<&StepDetail>) -> (Option<String>, Option<String>) {
    let job = detail.and_then(StepDetail::job_id);
    match (kind, job, detail) {
        (StepKind::StopWithSavepoint, Some(job), detail) => {
            let request = match detail {
                Some(StepDetail::StopWithSavepoint(d)) => d.request_id.clone(),
                _ => None,
            };
            (
                Some(format!("POST /jobs/{job}/stop")),
                Some(format!(
                    "GET /jobs/{job}/savepoints/{}",
                    request.unwrap_or_else(|| "{requestId}".into())
                )),
            )
        }
        (StepKind::Cancel, Some(job), _) => (
            Some(format!("PATCH /jobs/{job}?mode=cancel")),
            Some(format!("GET /jobs/{job}")),
        ),
        (StepKind::Submit, _, detail) => {
            let jar = match detail {
                Some(StepDetail::Submit(d)) => d.jar_id.clone(),
                _ => None,
            };
            (
                Some(format!(
                    "POST /jars/{}/run",
                    jar.unwrap_or_else(|| "{jarId}".into())
                )),
                None,
            )
        }
        (StepKind::AwaitRunning, Some(job), _) => (None, Some(format!("GET /jobs/{job}"))),
        _ => (None, None),
    }
}

/// A planned step (as stored in the plan JSON): its journal kind, description and the job it
/// acts on.
pub(super) fn planned_step(v: &Value) -> (String, Option<String>, Option<String>) {
    let tag = v.get("step").and_then(Value::as_str).unwrap_or("unknown");
    let kind = serde_json::from_value::<StepKind>(Value::String(tag.to_string()))
        .map(|k| k.as_str().to_string())
        .unwrap_or_else(|_| tag.replace('-', "_"));
    let description = serde_json::from_value::<Step>(v.clone())
        .ok()
        .map(|s| s.describe());
    (kind, description, str_at(v, "jobId"))
}

fn step_from(
    job: &str,
    seq: u32,
    planned: Option<&Value>,
    entry: Option<&JournalEntry>,
) -> StepStory {
    let (planned_kind, description, planned_job) = planned
        .map(planned_step)
        .unwrap_or_else(|| ("unknown".into(), None, None));
    let Some(e) = entry else {
        return StepStory {
            job: job.to_string(),
            seq: seq + 1,
            kind: planned_kind,
            description,
            call: None,
            polls: None,
            status: "not_run".into(),
            started_at_ms: None,
            finished_at_ms: None,
            duration_ms: None,
            flink_job_id: planned_job,
            request_id: None,
            savepoint_used: None,
            savepoint_produced: None,
            error: None,
            notes: Vec::new(),
        };
    };
    // The latest detail holds what progress added (a stop's request id) on top of the intent.
    let detail = e.detail().or_else(|| e.intent());
    let result = e.result();
    let (call, polls) = rest_calls(e.kind, detail.as_ref());
    let savepoint_used = match (&result, &detail) {
        (Some(crate::store::StepResult::Submitted { savepoint_path, .. }), _)
            if savepoint_path.is_some() =>
        {
            savepoint_path.clone()
        }
        (_, Some(StepDetail::Submit(d))) => d.savepoint_path.clone(),
        _ => None,
    };
    let request_id = match &detail {
        Some(StepDetail::StopWithSavepoint(d)) => d.request_id.clone(),
        _ => None,
    };
    StepStory {
        job: job.to_string(),
        seq: seq + 1,
        kind: e.kind.as_str().to_string(),
        description,
        call,
        polls,
        status: e.status.as_str().to_string(),
        started_at_ms: Some(e.created_at_ms),
        finished_at_ms: e.finished_at_ms,
        duration_ms: e.finished_at_ms.map(|f| f - e.created_at_ms),
        flink_job_id: detail
            .as_ref()
            .and_then(StepDetail::job_id)
            .map(|id| id.to_string())
            .or(planned_job),
        request_id,
        savepoint_used,
        savepoint_produced: result
            .as_ref()
            .and_then(|r| r.produced())
            .map(str::to_string),
        // Records of older versions were stored unscrubbed: scrubbed when read, too.
        error: result
            .as_ref()
            .and_then(|r| r.error())
            .map(crate::redact::text),
        notes: Vec::new(),
    }
}

/// The outcome of an apply as the stories spell it (`unfinished` while it has none).
pub(super) fn outcome_text(outcome: Option<ApplyOutcome>) -> String {
    outcome
        .map(|o| o.as_str().to_string())
        .unwrap_or_else(|| "unfinished".into())
}

/// The planned changes of a stored plan.
fn planned_changes(plan: Option<&Value>) -> Vec<&Value> {
    plan.and_then(|p| p.get("changes"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Assembles the story of one apply from its records. Pure.
pub fn assemble_apply(r: &ApplyRecords) -> ApplyStory {
    let plan = r.plan.as_ref().map(|p| json(Some(&p.plan_json)));
    let planned = planned_changes(plan.as_ref());
    let resumes: Vec<&ApplyEvent> = r
        .events
        .iter()
        .filter(|e| e.kind == ApplyEventKind::Resumed)
        .collect();

    // Jobs in plan order, then any other job the records mention.
    let mut names: Vec<String> = planned.iter().filter_map(|c| str_at(c, "job")).collect();
    let extra: BTreeSet<String> = r
        .apply
        .job_names
        .iter()
        .cloned()
        .chain(r.journal.iter().map(|e| e.job.clone()))
        .chain(r.changes.iter().map(|c| c.job.clone()))
        .filter(|j| !names.contains(j))
        .collect();
    names.extend(extra);
    let jobs = names
        .iter()
        .map(|name| {
            let change = planned
                .iter()
                .find(|c| c.get("job").and_then(Value::as_str) == Some(name.as_str()))
                .copied();
            job_story(r, name, change, &resumes)
        })
        .collect();

    let commit = r
        .origin
        .as_ref()
        .and_then(CommitRef::from_origin)
        .or_else(|| r.plan_origin.as_ref().and_then(CommitRef::from_origin));
    ApplyStory {
        kind: "apply".into(),
        id: r.apply.id.clone(),
        plan_id: r.apply.plan_id.clone(),
        trigger: r.apply.trigger.to_string(),
        actor: r.origin.as_ref().and_then(|o| o.actor.clone()),
        revision: r.apply.revision.clone(),
        commit,
        started_at_ms: r.apply.started_at_ms,
        finished_at_ms: r.apply.finished_at_ms,
        duration_ms: r.apply.finished_at_ms.map(|f| f - r.apply.started_at_ms),
        outcome: outcome_text(r.apply.outcome),
        error: r.apply.error.as_deref().map(crate::redact::text),
        plan: r
            .plan
            .as_ref()
            .map(|p| plan_brief(p, plan.as_ref(), r.plan_origin.as_ref())),
        events: r
            .events
            .iter()
            .map(|e| EventStory {
                at_ms: e.at_ms,
                kind: e.kind.as_str().to_string(),
                message: crate::redact::text(&e.message),
            })
            .collect(),
        jobs,
    }
}

fn plan_brief(p: &PlanRecord, plan: Option<&Value>, origin: Option<&RecordOrigin>) -> PlanBrief {
    PlanBrief {
        id: p.id.clone(),
        created_at_ms: p.created_at_ms,
        trigger: p.trigger.to_string(),
        actor: origin.and_then(|o| o.actor.clone()),
        summary: p.summary.clone(),
        warnings: plan.map(|v| strings(&v["warnings"])).unwrap_or_default(),
        errors: plan
            .map(|v| strings(&v["errors"]))
            .unwrap_or_default()
            .iter()
            .map(|e| crate::redact::text(e))
            .collect(),
    }
}

/// The story of one job (one change) of the apply.
fn job_story(
    r: &ApplyRecords,
    name: &str,
    change: Option<&Value>,
    resumes: &[&ApplyEvent],
) -> JobStory {
    let planned_steps: Vec<&Value> = change
        .and_then(|c| c.get("steps"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut by_seq: BTreeMap<u32, &JournalEntry> = BTreeMap::new();
    for e in r.journal.iter().filter(|e| e.job == name) {
        // The latest entry of a seq is the one that counts (as when resuming).
        by_seq.insert(e.seq, e);
    }
    let count = (planned_steps.len() as u32).max(by_seq.keys().next_back().map_or(0, |s| s + 1));
    let mut steps: Vec<StepStory> = (0..count)
        .map(|seq| {
            step_from(
                name,
                seq,
                planned_steps.get(seq as usize).copied(),
                by_seq.get(&seq).copied(),
            )
        })
        .collect();
    annotate_interruptions(&mut steps, resumes, r.apply.outcome.is_none());
    let result = r.changes.iter().find(|c| c.job == name);
    let (job_outcome, message) = job_outcome(&steps, result, &r.apply, !resumes.is_empty());
    let diff: Vec<Value> = change
        .and_then(|c| c.get("diff"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    JobStory {
        job: name.to_string(),
        cluster: change.and_then(|c| str_at(c, "cluster")),
        action: change
            .and_then(|c| str_at(c, "action"))
            .or_else(|| result.map(|c| c.action.clone())),
        reason: change.and_then(|c| str_at(c, "reason")),
        upgrade_mode: change.and_then(|c| str_at(c, "upgradeMode")),
        from_job_id: change
            .and_then(|c| c.get("currentJob"))
            .and_then(|c| str_at(c, "jobId")),
        changed_fields: diff.iter().filter_map(|d| str_at(d, "field")).collect(),
        diff,
        warnings: change.map(|c| strings(&c["warnings"])).unwrap_or_default(),
        steps,
        outcome: job_outcome,
        message,
        new_job_id: result.and_then(|c| c.new_job_id.clone()),
    }
}

/// Notes where the process running the apply died and where a later one took over.
fn annotate_interruptions(steps: &mut [StepStory], resumes: &[&ApplyEvent], unfinished: bool) {
    for resume in resumes {
        let t = resume.at_ms;
        let at = crate::clock::table_time(t);
        let Some(last) = steps
            .iter_mut()
            .rfind(|s| s.started_at_ms.is_some_and(|s| s <= t))
        else {
            continue;
        };
        if last.finished_at_ms.is_none_or(|f| f > t) {
            last.notes.push(format!(
                "interrupted during this step: the process running the apply stopped after \
                 journaling it; the apply was resumed at {at} and the step settled against the cluster"
            ));
        } else {
            last.notes.push(format!(
                "interrupted after this step: the process running the apply stopped here; \
                 the apply was resumed at {at}"
            ));
        }
    }
    if unfinished {
        for s in steps
            .iter_mut()
            .filter(|s| s.status == JournalStatus::Pending.as_str())
        {
            s.notes.push(
                "outcome not recorded: the apply is still running or its process died; the next \
                 `weir apply` settles this step against the cluster"
                    .into(),
            );
        }
    }
}

fn job_outcome(
    steps: &[StepStory],
    result: Option<&ChangeResult>,
    apply: &ApplyRecord,
    resumed: bool,
) -> (String, Option<String>) {
    if let Some(c) = result {
        let outcome = if c.ok { "succeeded" } else { "failed" };
        return (outcome.into(), Some(crate::redact::text(&c.message)));
    }
    let started = steps.iter().any(|s| s.status != "not_run");
    if apply.outcome.is_none() {
        let msg = started.then(|| "no outcome recorded yet".to_string());
        return ("unfinished".into(), msg);
    }
    if !started {
        let msg = if resumed {
            "had not started when the apply was interrupted; left to the next plan"
        } else {
            "not started"
        };
        return ("not_started".into(), Some(msg.into()));
    }
    if apply.outcome == Some(ApplyOutcome::Interrupted) {
        return (
            "interrupted".into(),
            apply.error.as_deref().map(crate::redact::text),
        );
    }
    if steps.iter().any(|s| s.status == "failed") {
        return ("failed".into(), None);
    }
    if steps.iter().all(|s| s.status == "succeeded") {
        return ("succeeded".into(), None);
    }
    ("incomplete".into(), None)
}

/// Loads the records of apply `id` and assembles its story; `None` when there is no such apply.
pub async fn load_apply(store: &Store, id: &str) -> Result<Option<ApplyStory>, StoreError> {
    let Some(apply) = store.apply(id).await? else {
        return Ok(None);
    };
    let plan = store.plan(&apply.plan_id).await?;
    let plan_origin = store.origin(&apply.plan_id).await?;
    let records = ApplyRecords {
        origin: store.origin(id).await?,
        plan,
        plan_origin,
        journal: store.journal(id).await?,
        changes: store.apply_changes(id).await?,
        events: store.apply_events(id).await?,
        apply,
    };
    Ok(Some(assemble_apply(&records)))
}
