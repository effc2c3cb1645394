//! The audit trail: the full story of every plan and apply, assembled from the append-only store
//! and rendered for `weir history`, `weir show` and `weir savepoints`.
//!
//! Everything here reads records that the store never rewrites: the plan (already redacted when it
//! was recorded), the apply and its outcome, the journal (one entry per side effect, with its
//! intent, result and times), how each change ended, events such as a resume after a crash,
//! savepoint lineage, and where each record came from (trigger, actor, commit author and message).
//! The Flink REST call of a step is derived from its journaled intent (e.g. `POST
//! /jobs/{id}/stop`), so older records show it too.
//!
//! Assembly ([`assemble_apply`], [`assemble_plan`], [`assemble_lineage`]) and rendering are pure;
//! the `load_*` functions only gather the records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::desired::Revision;
use crate::git::RepoSource;
use crate::plan::Step;
use crate::store::audit::{
    ApplyEvent, ChangeResult, EVENT_RESUMED, HistoryFilter, RecordKind, RecordOrigin,
};
use crate::store::retention::{PruneRecord, PruneReport};
use crate::store::{
    ApplyRecord, HistoryEntry, HistoryKind, JournalEntry, PlanRecord, SavepointRecord, Store,
    StoreError,
};

/// What starts a plan or an apply; stored as the record's `trigger`. Who was behind it (the local
/// user, a token's name, ...) is the record's actor.
pub mod trigger {
    /// The `weir` command line.
    pub const CLI: &str = "cli";
    /// A push to the tracked branch.
    pub const PUSH: &str = "push";
    /// A pull/merge request preview.
    pub const PULL_REQUEST: &str = "pull_request";
    /// A periodic poll of the repo or the clusters.
    pub const POLL: &str = "poll";
    /// A person approving a plan by hand.
    pub const MANUAL: &str = "manual";
    /// The daemon API; the actor is the token's name.
    pub const API: &str = "api";
}

/// The local user running the CLI, as the actor of its plans and applies.
pub fn cli_actor() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// Where a plan or apply made from `source` at `revision` came from, with the commit's author and
/// message when the files came from a Git commit.
pub fn origin(
    kind: RecordKind,
    id: &str,
    source: &RepoSource,
    revision: &Revision,
    actor: Option<String>,
    now_ms: i64,
) -> RecordOrigin {
    let info = revision
        .commit
        .as_deref()
        .and_then(|c| source.commit_info(c));
    RecordOrigin {
        record_id: id.to_string(),
        kind,
        actor,
        commit_sha: revision.commit.clone(),
        dirty: revision.dirty,
        author_name: info.as_ref().map(|i| i.author_name.clone()),
        author_email: info.as_ref().map(|i| i.author_email.clone()),
        authored_at_ms: info.as_ref().map(|i| i.authored_at_ms),
        message: info.map(|i| i.message),
        recorded_at_ms: now_ms,
    }
}

/// Records [`origin`] in the store. [`crate::apply::Applier::apply`] records an apply's origin
/// itself (the local user as the actor for `cli`) unless one was recorded before it started, so a
/// caller that knows a better actor (e.g. the API token's name) records it first.
pub async fn record_origin(
    store: &Store,
    kind: RecordKind,
    id: &str,
    source: &RepoSource,
    revision: &Revision,
    actor: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .insert_origin(&origin(kind, id, source, revision, actor, now_ms))
        .await
}

// ---------------------------------------------------------------------------------------------
// Time

/// `--since`: a duration back from `now_ms` (`90s`, `30m`, `24h`, `7d`, `2w`, `1h30m`), an RFC 3339
/// time (`2025-01-31T12:00:00Z`) or a date (`2025-01-31`, midnight UTC). Returns epoch ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "`{s}` is neither a duration (e.g. 30m, 24h, 7d, 1h30m) nor a time (RFC 3339, e.g. \
             2025-01-31T12:00:00Z, or a date such as 2025-01-31)"
        )
    };
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut units = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_ms: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        units += 1;
    }
    if units == 0 || !digits.is_empty() {
        return Err(bad());
    }
    Ok(now_ms.saturating_sub(total))
}

/// `2025-01-31T12:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `2025-01-31 12:00:00Z` (as `weir status` shows times).
fn time_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `850ms`, `3.2s`, `2m05s`, `1h02m`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// The commit a plan or apply was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRef {
    pub sha: String,
    /// The files read had uncommitted changes on top of the commit.
    pub dirty: bool,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub authored_at_ms: Option<i64>,
    pub message: Option<String>,
}

impl CommitRef {
    fn from_origin(o: &RecordOrigin) -> Option<CommitRef> {
        Some(CommitRef {
            sha: o.commit_sha.clone()?,
            dirty: o.dirty,
            author_name: o.author_name.clone(),
            author_email: o.author_email.clone(),
            authored_at_ms: o.authored_at_ms,
            message: o.message.clone(),
        })
    }

    /// `1a2b3c4d5e6f by Ann <ann@x.org>: subject line`.
    fn text(&self) -> String {
        let mut s = self.sha[..self.sha.len().min(12)].to_string();
        if self.dirty {
            s.push_str(" (plus uncommitted changes)");
        }
        match (&self.author_name, &self.author_email) {
            (Some(n), Some(e)) if !e.is_empty() => {
                let _ = write!(s, " by {n} <{e}>");
            }
            (Some(n), _) => {
                let _ = write!(s, " by {n}");
            }
            _ => {}
        }
        if let Some(subject) = self.message.as_deref().and_then(|m| m.lines().next()) {
            let _ = write!(s, ": {subject}");
        }
        s
    }
}

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

fn json(s: Option<&str>) -> Value {
    s.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            w.as_str()
                .map(str::to_string)
                .or_else(|| str_at(w, "message"))
        })
        .collect()
}

/// The Flink REST call a journaled step makes, and the one it polls, from its detail.
pub fn rest_calls(kind: &str, detail: &Value) -> (Option<String>, Option<String>) {
    let job = str_at(detail, "jobId");
    match (kind, job) {
        ("stop_with_savepoint", Some(job)) => (
            Some(format!("POST /jobs/{job}/stop")),
            Some(format!(
                "GET /jobs/{job}/savepoints/{}",
                str_at(detail, "requestId").unwrap_or_else(|| "{requestId}".into())
            )),
        ),
        ("cancel", Some(job)) => (
            Some(format!("PATCH /jobs/{job}?mode=cancel")),
            Some(format!("GET /jobs/{job}")),
        ),
        ("submit", _) => (
            Some(format!(
                "POST /jars/{}/run",
                str_at(detail, "jarId").unwrap_or_else(|| "{jarId}".into())
            )),
            None,
        ),
        ("await_running", Some(job)) => (None, Some(format!("GET /jobs/{job}"))),
        _ => (None, None),
    }
}

/// A planned step (as stored in the plan JSON): its journal kind, description and the job it acts on.
fn planned_step(v: &Value) -> (String, Option<String>, Option<String>) {
    let kind = v
        .get("step")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .replace('-', "_");
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
    let intent = json(Some(&e.intent_json));
    let detail = json(Some(&e.detail_json));
    let result = json(e.result_json.as_deref());
    // The latest detail holds what progress added (a stop's request id); the intent is the rest.
    let mut merged = intent.clone();
    if let (Some(m), Some(d)) = (merged.as_object_mut(), detail.as_object()) {
        for (k, v) in d {
            m.insert(k.clone(), v.clone());
        }
    }
    let (call, polls) = rest_calls(&e.kind, &merged);
    let savepoint_used = match e.kind.as_str() {
        "submit" => str_at(&result, "savepointPath").or_else(|| str_at(&merged, "savepointPath")),
        _ => None,
    };
    let savepoint_produced = match e.kind.as_str() {
        "stop_with_savepoint" => str_at(&result, "savepoint"),
        "cancel" => str_at(&result, "latestCheckpoint"),
        _ => None,
    };
    StepStory {
        job: job.to_string(),
        seq: seq + 1,
        kind: e.kind.clone(),
        description,
        call,
        polls,
        status: e.status.as_str().to_string(),
        started_at_ms: Some(e.created_at_ms),
        finished_at_ms: e.finished_at_ms,
        duration_ms: e.finished_at_ms.map(|f| f - e.created_at_ms),
        flink_job_id: str_at(&merged, "jobId").or(planned_job),
        request_id: str_at(&merged, "requestId"),
        savepoint_used,
        savepoint_produced,
        error: str_at(&result, "error"),
        notes: Vec::new(),
    }
}

/// Assembles the story of one apply from its records. Pure.
pub fn assemble_apply(r: &ApplyRecords) -> ApplyStory {
    let plan = r.plan.as_ref().map(|p| json(Some(&p.plan_json)));
    let planned: Vec<&Value> = plan
        .as_ref()
        .and_then(|p| p.get("changes"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let resumes: Vec<&ApplyEvent> = r
        .events
        .iter()
        .filter(|e| e.kind == EVENT_RESUMED)
        .collect();
    let outcome = r
        .apply
        .outcome
        .map(|o| o.as_str().to_string())
        .unwrap_or_else(|| "unfinished".into());

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
                .find(|c| c.get("job").and_then(Value::as_str) == Some(name.as_str()));
            let planned_steps: Vec<&Value> = change
                .and_then(|c| c.get("steps"))
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let mut by_seq: BTreeMap<u32, &JournalEntry> = BTreeMap::new();
            for e in r.journal.iter().filter(|e| &e.job == name) {
                // The latest entry of a seq is the one that counts (as when resuming).
                by_seq.insert(e.seq, e);
            }
            let count =
                (planned_steps.len() as u32).max(by_seq.keys().next_back().map_or(0, |s| s + 1));
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
            annotate_interruptions(&mut steps, &resumes, r.apply.outcome.is_none());
            let result = r.changes.iter().find(|c| &c.job == name);
            let (job_outcome, message) = job_outcome(&steps, result, &r.apply, !resumes.is_empty());
            let diff: Vec<Value> = change
                .and_then(|c| c.get("diff"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            JobStory {
                job: name.clone(),
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
        trigger: r.apply.trigger.clone(),
        actor: r.origin.as_ref().and_then(|o| o.actor.clone()),
        revision: r.apply.revision.clone(),
        commit,
        started_at_ms: r.apply.started_at_ms,
        finished_at_ms: r.apply.finished_at_ms,
        duration_ms: r.apply.finished_at_ms.map(|f| f - r.apply.started_at_ms),
        outcome,
        error: r.apply.error.clone(),
        plan: r.plan.as_ref().map(|p| PlanBrief {
            id: p.id.clone(),
            created_at_ms: p.created_at_ms,
            trigger: p.trigger.clone(),
            actor: r.plan_origin.as_ref().and_then(|o| o.actor.clone()),
            summary: p.summary.clone(),
            warnings: plan
                .as_ref()
                .map(|v| strings(&v["warnings"]))
                .unwrap_or_default(),
            errors: plan
                .as_ref()
                .map(|v| strings(&v["errors"]))
                .unwrap_or_default(),
        }),
        events: r
            .events
            .iter()
            .map(|e| EventStory {
                at_ms: e.at_ms,
                kind: e.kind.clone(),
                message: e.message.clone(),
            })
            .collect(),
        jobs,
    }
}

/// Notes where the process running the apply died and where a later one took over.
fn annotate_interruptions(steps: &mut [StepStory], resumes: &[&ApplyEvent], unfinished: bool) {
    for resume in resumes {
        let t = resume.at_ms;
        let at = time_text(t);
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
        for s in steps.iter_mut().filter(|s| s.status == "pending") {
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
        return (outcome.into(), Some(c.message.clone()));
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
    if apply.outcome == Some(crate::store::ApplyOutcome::Interrupted) {
        return ("interrupted".into(), apply.error.clone());
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

/// Plan warnings listed by `weir show APPLY_ID` before it only counts them.
const MAX_LISTED_WARNINGS: usize = 3;

/// `  name:      value` at `indent`.
fn kv(out: &mut String, indent: usize, name: &str, value: &str) {
    let _ = writeln!(out, "{:indent$}{:<10} {value}", "", format!("{name}:"));
}

pub fn apply_text(s: &ApplyStory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Apply {}: {}", s.id, s.outcome);
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<10} {value}", format!("{name}:"));
    };
    match &s.plan {
        Some(p) => field("plan", format!("{} ({})", p.id, p.summary)),
        None => field("plan", format!("{} (not recorded)", s.plan_id)),
    }
    field("revision", s.revision.clone());
    if let Some(c) = &s.commit {
        field("commit", c.text());
    }
    field(
        "trigger",
        match &s.actor {
            Some(a) => format!("{} by {a}", s.trigger),
            None => s.trigger.clone(),
        },
    );
    field("started", time_text(s.started_at_ms));
    match (s.finished_at_ms, s.duration_ms) {
        (Some(f), Some(d)) => field(
            "finished",
            format!("{} ({})", time_text(f), duration_text(d)),
        ),
        _ => field("finished", "not recorded".into()),
    }
    for e in &s.events {
        field(&e.kind, format!("{} {}", time_text(e.at_ms), e.message));
    }
    if let Some(err) = &s.error {
        field("error", err.clone());
    }
    if let Some(p) = &s.plan {
        if p.warnings.len() > MAX_LISTED_WARNINGS {
            field(
                "warnings",
                format!(
                    "the plan had {} warnings; `weir show {}` lists them",
                    p.warnings.len(),
                    p.id
                ),
            );
        } else {
            for w in &p.warnings {
                field("warning", w.clone());
            }
        }
        for e in &p.errors {
            field("plan error", e.clone());
        }
    }
    for j in &s.jobs {
        out.push('\n');
        let _ = writeln!(
            out,
            "{}{}: {} — {}",
            j.job,
            j.cluster
                .as_ref()
                .map(|c| format!(" (cluster {c})"))
                .unwrap_or_default(),
            j.action.as_deref().unwrap_or("change"),
            j.outcome
        );
        if let Some(r) = &j.reason {
            kv(&mut out, 2, "why", r);
        }
        if !j.changed_fields.is_empty() {
            kv(&mut out, 2, "changed", &j.changed_fields.join(", "));
        }
        if let Some(m) = &j.upgrade_mode {
            kv(&mut out, 2, "upgrade", m);
        }
        if let Some(id) = &j.from_job_id {
            kv(&mut out, 2, "from job", id);
        }
        for w in &j.warnings {
            kv(&mut out, 2, "warning", w);
        }
        for st in &j.steps {
            let timing = match st.duration_ms {
                Some(d) => format!("  {}", duration_text(d)),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {}. {}  {}{}",
                st.seq,
                st.kind,
                st.status.replace('_', " "),
                timing
            );
            if let Some(d) = &st.description {
                kv(&mut out, 7, "planned", d);
            }
            if let Some(c) = &st.call {
                kv(&mut out, 7, "call", c);
            }
            if let Some(p) = &st.polls {
                kv(&mut out, 7, "polled", p);
            }
            if let Some(t) = st.started_at_ms {
                kv(&mut out, 7, "started", &time_text(t));
            }
            if st.kind == "submit"
                && let Some(id) = &st.flink_job_id
            {
                kv(&mut out, 7, "job id", id);
            }
            if let Some(sp) = &st.savepoint_used {
                kv(&mut out, 7, "restored", sp);
            }
            if let Some(sp) = &st.savepoint_produced {
                let what = if st.kind == "cancel" {
                    "checkpoint"
                } else {
                    "savepoint"
                };
                kv(&mut out, 7, what, sp);
            }
            if let Some(e) = &st.error {
                kv(&mut out, 7, "error", e);
            }
            for n in &st.notes {
                kv(&mut out, 7, "note", n);
            }
        }
        if let Some(m) = &j.message {
            kv(&mut out, 2, "result", m);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Plans

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

fn planned_changes(plan: &Value) -> Vec<PlannedChange> {
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
        trigger: plan.trigger.clone(),
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
                outcome: a
                    .outcome
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_else(|| "unfinished".into()),
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

pub fn plan_text(p: &PlanStory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan {}: {}", p.id, p.summary);
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<10} {value}", format!("{name}:"));
    };
    field("made", time_text(p.created_at_ms));
    field("revision", p.revision.clone());
    if let Some(c) = &p.commit {
        field("commit", c.text());
    }
    field(
        "trigger",
        match &p.actor {
            Some(a) => format!("{} by {a}", p.trigger),
            None => p.trigger.clone(),
        },
    );
    for w in &p.warnings {
        field("warning", w.clone());
    }
    for e in &p.errors {
        field("error", e.clone());
    }
    if p.applies.is_empty() {
        field("applied", "never".into());
    }
    for a in &p.applies {
        field(
            "applied",
            format!("{} at {}: {}", a.id, time_text(a.started_at_ms), a.outcome),
        );
    }
    for c in &p.changes {
        let _ = writeln!(
            out,
            "\n{}: {}{}",
            c.job,
            c.action.as_deref().unwrap_or("change"),
            c.reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        for (i, s) in c.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {s}", i + 1);
        }
    }
    out
}

/// `weir show ID`: an apply or a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Shown {
    Apply(ApplyStory),
    Plan(PlanStory),
}

/// The apply or plan with this id.
pub async fn load_shown(store: &Store, id: &str) -> Result<Option<Shown>, StoreError> {
    if let Some(a) = load_apply(store, id).await? {
        return Ok(Some(Shown::Apply(a)));
    }
    Ok(load_plan(store, id).await?.map(Shown::Plan))
}

pub fn shown_text(s: &Shown) -> String {
    match s {
        Shown::Apply(a) => apply_text(a),
        Shown::Plan(p) => plan_text(p),
    }
}

// ---------------------------------------------------------------------------------------------
// History

/// One line of `weir history`: a plan or an apply, complete enough to ship to a log system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRecord {
    /// `kind`, `id`, `at_ms`, `revision`, `trigger`, `summary_or_outcome`, `error`, `plan_id`,
    /// `finished_at_ms`, as before.
    #[serde(flatten)]
    pub entry: HistoryEntry,
    /// `at_ms` as RFC 3339.
    pub at: String,
    /// An apply's wall time.
    pub duration_ms: Option<i64>,
    pub actor: Option<String>,
    pub commit: Option<CommitRef>,
    pub jobs: Vec<String>,
    /// A plan's changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<PlannedChange>>,
    /// An apply's steps, every job's in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepStory>>,
}

/// Loads the history records `filter` selects.
pub async fn load_history(
    store: &Store,
    filter: &HistoryFilter,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let entries = store.history_filtered(filter).await?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let record = match entry.kind {
            HistoryKind::Apply => match load_apply(store, &entry.id).await? {
                Some(story) => HistoryRecord {
                    at: rfc3339(entry.at_ms),
                    duration_ms: story.duration_ms,
                    actor: story.actor.clone(),
                    commit: story.commit.clone(),
                    jobs: story.jobs.iter().map(|j| j.job.clone()).collect(),
                    changes: None,
                    steps: Some(story.jobs.into_iter().flat_map(|j| j.steps).collect()),
                    entry,
                },
                None => bare_record(entry),
            },
            HistoryKind::Plan => match load_plan(store, &entry.id).await? {
                Some(plan) => HistoryRecord {
                    at: rfc3339(entry.at_ms),
                    duration_ms: None,
                    actor: plan.actor.clone(),
                    commit: plan.commit.clone(),
                    jobs: plan.changes.iter().map(|c| c.job.clone()).collect(),
                    changes: Some(plan.changes),
                    steps: None,
                    entry,
                },
                None => bare_record(entry),
            },
        };
        out.push(record);
    }
    Ok(out)
}

fn bare_record(entry: HistoryEntry) -> HistoryRecord {
    HistoryRecord {
        at: rfc3339(entry.at_ms),
        duration_ms: entry.finished_at_ms.map(|f| f - entry.at_ms),
        actor: None,
        commit: None,
        jobs: Vec::new(),
        changes: None,
        steps: None,
        entry,
    }
}

/// Left-aligned columns separated by two spaces.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned())
    {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                let _ = write!(s, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

pub fn history_text(records: &[HistoryRecord]) -> String {
    if records.is_empty() {
        return "No plans or applies recorded yet.\n".into();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            let outcome = match e.kind {
                HistoryKind::Plan => e.summary_or_outcome.clone(),
                HistoryKind::Apply => {
                    let mut s = e.summary_or_outcome.clone();
                    if let Some(d) = r.duration_ms {
                        let _ = write!(s, " in {}", duration_text(d));
                    }
                    if let Some(err) = &e.error {
                        let _ = write!(s, ": {err}");
                    }
                    s
                }
            };
            vec![
                time_text(e.at_ms),
                format!("{:?}", e.kind).to_lowercase(),
                e.id.clone(),
                e.revision.clone(),
                match &r.actor {
                    Some(a) => format!("{} ({a})", e.trigger),
                    None => e.trigger.clone(),
                },
                r.commit
                    .as_ref()
                    .and_then(|c| c.author_name.clone())
                    .unwrap_or_else(|| "-".into()),
                outcome,
            ]
        })
        .collect();
    columns(
        &[
            "TIME", "KIND", "ID", "REVISION", "TRIGGER", "AUTHOR", "OUTCOME",
        ],
        &rows,
    )
}

/// Which records `weir history` (and `GET /api/v1/history`) lists: newest first and at most
/// `limit` (default [`DEFAULT_HISTORY_LIMIT`]); as JSON lines (`jsonl`) oldest first, all unless
/// `limit` is given, for shipping to a log system.
pub fn history_filter(
    job: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
    jsonl: bool,
) -> HistoryFilter {
    HistoryFilter {
        job,
        since_ms,
        limit: if jsonl {
            limit
        } else {
            Some(limit.unwrap_or(DEFAULT_HISTORY_LIMIT))
        },
        oldest_first: jsonl,
    }
}

/// How many records `weir history` lists unless told.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// One JSON document per line.
pub fn jsonl<T: Serialize>(items: &[T]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item)?);
        out.push('\n');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Savepoint lineage

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
                outcome: Some(
                    apply
                        .outcome
                        .map(|o| o.as_str().to_string())
                        .unwrap_or_else(|| "unfinished".into()),
                ),
                revision: Some(apply.revision.clone()),
                commit,
            },
        );
    }
    Ok(assemble_lineage(job, &savepoints, &applies))
}

impl ApplyRef {
    /// `apply-… (redeploy, succeeded; 1a2b3c4d5e6f by Ann: subject)`.
    fn text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = &self.action {
            parts.push(a.clone());
        }
        if let Some(o) = &self.outcome {
            parts.push(o.clone());
        }
        let mut s = self.apply_id.clone();
        let commit = self.commit.as_ref().map(CommitRef::text);
        match (parts.is_empty(), commit) {
            (true, None) => {}
            (false, None) => {
                let _ = write!(s, " ({})", parts.join(", "));
            }
            (true, Some(c)) => {
                let _ = write!(s, " ({c})");
            }
            (false, Some(c)) => {
                let _ = write!(s, " ({}; {c})", parts.join(", "));
            }
        }
        s
    }
}

pub fn lineage_text(l: &Lineage) -> String {
    if l.savepoints.is_empty() {
        return format!(
            "No savepoints or retained checkpoints recorded for {}.\n",
            l.job
        );
    }
    let mut out = format!("Savepoints of {} (newest first):\n", l.job);
    for s in &l.savepoints {
        let _ = writeln!(out, "\n{}", s.path);
        let from = s
            .flink_job_id
            .as_ref()
            .map(|j| format!(" of Flink job {j}"))
            .unwrap_or_default();
        match &s.produced_by {
            Some(by) => {
                let _ = writeln!(
                    out,
                    "  {}{from}, taken {} by apply {}",
                    s.kind,
                    time_text(s.at_ms),
                    by.text()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {}{from}, not taken by weir (first used {})",
                    s.kind,
                    time_text(s.at_ms)
                );
            }
        }
        if s.restores.is_empty() {
            let _ = writeln!(out, "  never restored");
        }
        for r in &s.restores {
            let _ = writeln!(
                out,
                "  restored {} as Flink job {} by apply {}",
                time_text(r.at_ms),
                r.flink_job_id,
                r.by.text()
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Retention

/// `3 plans`, `1 apply`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `weir prune` (and the daemon's retention) did, in words.
pub fn prune_text(r: &PruneReport) -> String {
    let d = &r.deleted;
    let k = &r.kept;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}, {}) older than {}{}",
        if r.dry_run { "Would prune" } else { "Pruned" },
        count(d.records(), "record", "records"),
        count(d.plans, "plan", "plans"),
        count(d.applies, "apply", "applies"),
        time_text(r.cutoff_ms),
        if d.records() > 0 || d.deliveries > 0 {
            ", with:"
        } else {
            "."
        }
    );
    if d.records() > 0 || d.deliveries > 0 {
        for (n, one, many) in [
            (d.journal_entries, "journal entry", "journal entries"),
            (d.apply_changes, "change result", "change results"),
            (d.apply_events, "apply event", "apply events"),
            (d.origins, "origin", "origins"),
            (d.savepoints, "savepoint record", "savepoint records"),
            (
                d.savepoint_restores,
                "savepoint restore",
                "savepoint restores",
            ),
            (
                d.deliveries,
                "notification delivery",
                "notification deliveries",
            ),
        ] {
            let _ = writeln!(out, "  {}", count(n, one, many));
        }
    }
    let _ = writeln!(
        out,
        "Kept whatever their age: {}, the newest savepoint of each job ({}), and the {} and {} \
         older than the cutoff that these need.",
        count(
            k.unfinished_applies,
            "unfinished apply",
            "unfinished applies"
        ),
        count(k.newest_savepoints, "savepoint", "savepoints"),
        count(k.old_applies, "apply", "applies"),
        count(k.old_plans, "plan", "plans"),
    );
    match r.id {
        Some(id) => {
            let _ = writeln!(out, "Recorded as prune {id}.");
        }
        None => {
            let _ = writeln!(out, "Nothing was deleted (dry run).");
        }
    }
    out
}

/// `weir prune --log`: every recorded prune, newest first.
pub fn prune_log_text(log: &[PruneRecord]) -> String {
    if log.is_empty() {
        return "No prunes recorded.\n".into();
    }
    let rows: Vec<Vec<String>> = log
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                time_text(p.at_ms),
                match &p.actor {
                    Some(a) => format!("{} ({a})", p.trigger),
                    None => p.trigger.clone(),
                },
                time_text(p.cutoff_ms),
                format!(
                    "{} plans, {} applies, {} savepoints, {} deliveries",
                    p.deleted.plans, p.deleted.applies, p.deleted.savepoints, p.deleted.deliveries
                ),
            ]
        })
        .collect();
    columns(&["ID", "TIME", "BY", "CUTOFF", "DELETED"], &rows)
}

#[cfg(test)]
mod tests;
