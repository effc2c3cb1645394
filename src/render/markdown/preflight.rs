//! The pre-flight parts of a preview: per job whether its program was checked on a cluster and
//! its job graph against the running job's (folded), and the programs that were not checked.

use std::fmt::Write;

use super::split::{Piece, Section};
use super::{ALERT_CHUNK, alerts, code, inline, plural};
use crate::plan::{Change, JobPreflight, Plan, PreflightStatus};

/// The pre-flight record of `job`, if it has one.
pub(super) fn record<'p>(plan: &'p Plan, job: &str) -> Option<&'p JobPreflight> {
    plan.preflight.iter().find(|p| p.job == job)
}

/// `- **Pre-flight:** ...` for a job section.
pub(super) fn status_line(plan: &Plan, c: &Change) -> Option<String> {
    let p = record(plan, &c.job)?;
    let version = |cluster: &str| {
        plan.flink_versions
            .get(cluster)
            .map(|v| format!(" (Flink {})", inline(v)))
            .unwrap_or_default()
    };
    let text = match (p.status, &p.checked_on) {
        (PreflightStatus::NotChecked, _) => format!(
            "**not checked**: {}",
            inline(p.reason.as_deref().unwrap_or("no reason recorded"))
        ),
        (status, Some(on)) => format!("{} on {}{}", status.as_str(), code(on), version(on)),
        (status, None) => status.as_str().to_string(),
    };
    Some(format!("- **Pre-flight:** {text}"))
}

/// The job graph against the running job's, folded.
pub(super) fn graph_block(plan: &Plan, c: &Change) -> Option<Piece> {
    let graph = record(plan, &c.job)?.graph.as_ref()?;
    let mut body = String::new();
    for line in graph.lines() {
        let _ = writeln!(body, "{line}");
    }
    if body.is_empty() {
        body.push_str("  (same vertices, same parallelism)\n");
    }
    Some(Piece::Block {
        open: format!(
            "<details><summary>Job graph: {}</summary>\n\n",
            inline(&graph.summary())
        ),
        fence: Some("diff"),
        body,
        close: "\n</details>\n\n".into(),
    })
}

/// A note listing the programs that were not pre-flighted, and why.
pub(super) fn not_checked_alert(plan: &Plan) -> Vec<Section> {
    let items: Vec<String> = plan
        .preflight
        .iter()
        .filter(|p| p.status == PreflightStatus::NotChecked)
        .map(|p| {
            format!(
                "- {}: {}",
                code(&p.job),
                inline(p.reason.as_deref().unwrap_or("no reason recorded"))
            )
        })
        .collect();
    if items.is_empty() {
        return Vec::new();
    }
    let title = format!(
        "**{} not pre-flighted** (no cluster checked that it starts):",
        plural(items.len(), "program was", "programs were")
    );
    alerts("NOTE", &title, &items, ALERT_CHUNK)
}

/// An error line: pre-flight failures name their job and cluster.
pub(super) fn error_item(plan: &Plan, e: &crate::plan::PlanError) -> String {
    let failed = e.job.as_deref().and_then(|j| record(plan, j)).filter(|p| p.status == PreflightStatus::Failed);
    match (failed, &e.job) {
        (Some(p), Some(job)) => format!(
            "- {} failed pre-flight on {}: {}",
            code(job),
            code(p.checked_on.as_deref().unwrap_or(&e.cluster)),
            inline(&e.message)
        ),
        _ => format!("- {}", inline(&e.message)),
    }
}
