//! `weir runs JOB`: the runs of a batch job as text (JSON is the records themselves).

use std::fmt::Write;

use super::duration_text;
use crate::clock::table_time;
use crate::store::runs::RunRecord;

/// The runs of `job`, newest first: time, Flink job id, trigger, outcome, duration.
pub fn runs_text(job: &str, runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return format!("No runs recorded for {job}.\n");
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["STARTED", "JOB ID", "TRIGGER", "OUTCOME", "DURATION"]);
    for r in runs {
        let outcome = match &r.detail {
            Some(why) => format!("{} ({why})", r.outcome.as_str()),
            None => r.outcome.as_str().to_string(),
        };
        table.add_row([
            table_time(r.started_at_ms),
            r.job_id.clone().unwrap_or_else(|| "-".into()),
            r.trigger.as_str().to_string(),
            crate::text::escape_controls(&outcome).into_owned(),
            r.duration_ms()
                .map(duration_text)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = format!("Runs of {job} (newest first):\n");
    let _ = writeln!(out, "{table}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{RunOutcome, RunTrigger};

    #[test]
    fn runs_are_listed_with_outcome_and_duration() {
        let runs = vec![
            RunRecord {
                job: "nightly".into(),
                cluster: "local".into(),
                job_id: None,
                trigger: RunTrigger::Schedule,
                due_ms: Some(7_200_000),
                started_at_ms: 7_200_100,
                ended_at_ms: Some(7_200_100),
                duration_ms: Some(0),
                outcome: RunOutcome::Skipped,
                detail: Some("the previous run still runs".into()),
            },
            RunRecord {
                job: "nightly".into(),
                cluster: "local".into(),
                job_id: Some("0123456789abcdef0123456789abcdef".into()),
                trigger: RunTrigger::Apply,
                due_ms: None,
                started_at_ms: 0,
                ended_at_ms: Some(65_000),
                duration_ms: Some(65_000),
                outcome: RunOutcome::Finished,
                detail: None,
            },
        ];
        let text = runs_text("nightly", &runs);
        assert!(
            text.starts_with("Runs of nightly (newest first):"),
            "{text}"
        );
        assert!(
            text.contains("skipped (the previous run still runs)"),
            "{text}"
        );
        assert!(text.contains("0123456789abcdef0123456789abcdef"), "{text}");
        assert!(text.contains("finished"), "{text}");
        assert!(text.contains("1m05s"), "{text}");
        assert_eq!(runs_text("x", &[]), "No runs recorded for x.\n");
    }
}
