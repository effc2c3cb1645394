//! The pre-flight lines of the text rendering.

use std::fmt::Write;

use crate::plan::{Change, Plan, PlanError, PreflightStatus};
use crate::text::escape_controls;

/// `Flink versions: local 2.3.0, old 1.20.5` when any was observed.
pub(super) fn versions_line(plan: &Plan) -> Option<String> {
    if plan.flink_versions.is_empty() {
        return None;
    }
    let list: Vec<String> = plan
        .flink_versions
        .iter()
        .map(|(c, v)| format!("{c} {v}"))
        .collect();
    Some(format!("Flink versions: {}", list.join(", ")))
}

/// The `preflight:` and `job graph:` lines of a change.
pub(super) fn change_lines(plan: &Plan, c: &Change, out: &mut String) {
    let Some(p) = plan.preflight.iter().find(|p| p.job == c.job) else {
        return;
    };
    match (p.status, &p.checked_on) {
        (PreflightStatus::NotChecked, _) => {
            let why = p.reason.as_deref().unwrap_or("no reason recorded");
            let _ = writeln!(out, "    preflight: not checked ({why})");
        }
        (status, Some(on)) => {
            let _ = writeln!(out, "    preflight: {} on {on}", status.as_str());
        }
        (status, None) => {
            let _ = writeln!(out, "    preflight: {}", status.as_str());
        }
    }
    if let Some(graph) = &p.graph {
        let _ = writeln!(out, "    job graph: {}", graph.summary());
        for line in graph.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
}

/// An error line; pre-flight failures name their job and the cluster that refused it.
pub(super) fn error_line(plan: &Plan, e: &PlanError) -> String {
    let failed = e
        .job
        .as_deref()
        .and_then(|j| plan.preflight.iter().find(|p| p.job == j))
        .filter(|p| p.status == PreflightStatus::Failed);
    let message = escape_controls(&e.message);
    match (failed, &e.job) {
        (Some(p), Some(job)) => format!(
            "Error: {}: pre-flight on {} failed: {message}",
            escape_controls(job),
            escape_controls(p.checked_on.as_deref().unwrap_or(&e.cluster)),
        ),
        _ => format!("Error: {message}"),
    }
}
