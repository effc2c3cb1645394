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
    let failed = e
        .job
        .as_deref()
        .and_then(|j| record(plan, j))
        .filter(|p| p.status == PreflightStatus::Failed);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::observe::JobState;
    use crate::plan::fixtures::*;
    use crate::plan::{
        GraphDiff, JobHistory, JobPreflight, Plan, PlanError, PreflightStatus, StateRisk, Vertex,
    };

    fn vertex(id: &str, operators: &str) -> Vertex {
        Vertex {
            id: id.into(),
            operators: operators.into(),
            parallelism: 2,
        }
    }

    fn checked(job: &str, status: PreflightStatus) -> JobPreflight {
        JobPreflight {
            job: job.into(),
            cluster: "local".into(),
            status,
            checked_on: Some("local".into()),
            reason: None,
            graph: None,
        }
    }

    /// Two redeploys of running jobs (`typo` and `renamed`) and a create (`unchecked`).
    fn plan_of_three() -> Plan {
        let typo = job("clicks");
        let typo_run = running(&typo, 1, JobState::Running);
        let mut typo_new = typo.clone();
        typo_new.restart_nonce = 1;
        let renamed = job("counter");
        let renamed_run = running(&renamed, 2, JobState::Running);
        let mut renamed_new = renamed.clone();
        renamed_new.restart_nonce = 1;
        renamed_new.allow_non_restored_state = true;
        let hist: BTreeMap<String, JobHistory> = [
            ("clicks".to_string(), history_for(&typo, &typo_run)),
            ("counter".to_string(), history_for(&renamed, &renamed_run)),
        ]
        .into();
        let mut plan = run(
            &desired(vec![typo_new, renamed_new, job("unchecked")], false),
            &observation(vec![typo_run, renamed_run]),
            &hist,
            &[],
        );
        plan.flink_versions = [("local".to_string(), "2.3.0".to_string())].into();
        plan
    }

    /// What the engine's pre-flight leaves in a plan whose SQL job has a typo (an error, its
    /// change gone) and whose other program was not checked.
    #[test]
    fn markdown_preflight_error() {
        let mut plan = plan_of_three();
        plan.retain_changes(|c| c.job != "clicks" && c.job != "counter");
        plan.errors.push(PlanError {
            job: Some("clicks".into()),
            cluster: "local".into(),
            message: "sql/clicks.sql:18:59: Object 'clickz' not found".into(),
            drift: false,
        });
        plan.summary.errors = 1;
        let mut failed = checked("clicks", PreflightStatus::Failed);
        failed.reason = Some("the cluster refused the program".into());
        let mut unchecked = checked("unchecked", PreflightStatus::NotChecked);
        unchecked.checked_on = None;
        unchecked.reason = Some(
            "pull requests from forks are never pre-flighted (their code would run on a cluster)"
                .into(),
        );
        plan.preflight = vec![failed, unchecked];
        insta::assert_snapshot!(crate::render::markdown(&plan));
    }

    /// A redeploy whose new graph lacks a vertex of the running job's, with
    /// `allowNonRestoredState` on: a warning naming what is dropped, and the graph folded.
    #[test]
    fn markdown_preflight_state_risk() {
        let mut plan = plan_of_three();
        plan.retain_changes(|c| c.job == "counter");
        let counter = plan
            .changes
            .iter_mut()
            .find(|c| c.job == "counter")
            .unwrap();
        counter.warnings.push(
            "state of operator `count-per-key → discard: Writer` \
             (c7a6cae66b5683a6ab3ff8c64c3376c3) is dropped: the new job graph has no such vertex \
             (spec.savepoint.allowNonRestoredState is on)"
                .into(),
        );
        counter.state_risks.push(StateRisk::OperatorStateDropped);
        let source = vertex(
            "e0f150793f753442126f38f9da4ecd44",
            "Source: numbers → to-keyed",
        );
        let old = [
            source.clone(),
            vertex(
                "c7a6cae66b5683a6ab3ff8c64c3376c3",
                "count-per-key → discard: Writer",
            ),
        ];
        let new = [
            source,
            vertex(
                "6b2d0d3f21a8c8e5b5d4e2a1f0c9b8a7",
                "count-per-key → discard: Writer",
            ),
        ];
        let mut record = checked("counter", PreflightStatus::Passed);
        record.graph = Some(GraphDiff::of(&old, &new));
        plan.preflight = vec![record];
        insta::assert_snapshot!(crate::render::markdown(&plan));
    }
}
