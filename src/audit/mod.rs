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
//! Assembly ([`assemble_apply`], [`assemble_plan`], [`assemble_lineage`]) and rendering
//! ([`text`]) are pure; the `load_*` functions only gather the records.

use serde::Serialize;
use serde_json::Value;

use crate::clock::rfc3339;
use crate::store::audit::{HistoryFilter, RecordOrigin};
use crate::store::{HistoryEntry, HistoryKind, Store, StoreError};

mod lineage;
mod plan;
mod runs;
mod story;
pub mod text;
mod time;

pub use lineage::{
    ApplyRef, LifecycleFacts, Lineage, RestoreStory, SavepointStory, assemble_lineage,
    assemble_lineage_with, load_lineage,
};
pub use plan::{ApplyBrief, PlanStory, PlannedChange, assemble_plan, load_plan};
pub use runs::runs_text;
pub use story::{
    ApplyRecords, ApplyStory, EventStory, JobStory, PlanBrief, StepStory, assemble_apply,
    load_apply, rest_calls,
};
pub use text::{
    apply_text, history_text, lineage_text, plan_text, prune_log_text, prune_text, shown_text,
};
pub use time::{SinceError, duration_text, parse_since};

/// Where records come from; written by the store layer, re-exported for the callers of old.
pub use crate::store::audit::{cli_actor, record_origin};

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
    pub(crate) fn from_origin(o: &RecordOrigin) -> Option<CommitRef> {
        Some(CommitRef {
            sha: o.commit_sha.clone()?,
            dirty: o.dirty,
            author_name: o.author_name.clone(),
            author_email: o.author_email.clone(),
            authored_at_ms: o.authored_at_ms,
            message: o.message.clone(),
        })
    }
}

pub(crate) fn json(s: Option<&str>) -> Value {
    s.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

pub(crate) fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
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
    for mut entry in entries {
        // Records of older versions were stored unscrubbed.
        entry.error = entry.error.as_deref().map(crate::redact::text);
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

#[cfg(test)]
mod tests;
