//! Checks of `spec.mode`, `spec.schedule` and `spec.timeZone`: a schedule only on a batch job,
//! a cron expression and time zone that parse, and no `execution.runtime-mode` that contradicts
//! the mode.

use std::collections::BTreeMap;

use crate::desired::Schedule;
use crate::spec::{ConfigValue, JobMode, JobSpec};

use super::yaml::{Node, Problem, Seg, path};

const RUNTIME_MODE: &str = "execution.runtime-mode";

/// The job's schedule when `spec` is consistent; problems otherwise.
pub(super) fn check_batch(
    tree: &Node,
    spec: &JobSpec,
    problems: &mut Vec<Problem>,
) -> Option<Schedule> {
    check_runtime_mode(tree, spec.mode, &spec.flink_configuration, problems);
    if spec.schedule.is_none() {
        if spec.time_zone.is_some() {
            let p = path(&["spec", "timeZone"]);
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                "is only meaningful with `spec.schedule`",
            ));
        }
        return None;
    }
    let cron = spec.schedule.clone().unwrap_or_default();
    let p = path(&["spec", "schedule"]);
    if spec.mode != JobMode::Batch {
        problems.push(Problem::new(
            tree.key_pos(&p),
            p,
            "only batch jobs can be scheduled (add `mode: batch`); a streaming job runs \
             continuously",
        ));
        return None;
    }
    match crate::schedule::Parsed::new(&cron, spec.time_zone.as_deref()) {
        Ok(_) => Some(Schedule {
            cron,
            time_zone: spec.time_zone.clone(),
        }),
        Err(e @ crate::schedule::ScheduleError::TimeZone(_)) => {
            let p = path(&["spec", "timeZone"]);
            problems.push(Problem::new(tree.value_pos(&p), p, e.to_string()));
            None
        }
        Err(e) => {
            problems.push(Problem::new(
                tree.value_pos(&p),
                p,
                format!(
                    "{e}; expected 5 fields (minute hour day-of-month month day-of-week) or 6 \
                     with leading seconds, e.g. `0 2 * * *`"
                ),
            ));
            None
        }
    }
}

/// `execution.runtime-mode` written in `flinkConfiguration` must agree with `spec.mode` (weir
/// sets it for batch jobs).
fn check_runtime_mode(
    tree: &Node,
    mode: JobMode,
    config: &BTreeMap<String, ConfigValue>,
    problems: &mut Vec<Problem>,
) {
    let Some(written) = config.get(RUNTIME_MODE) else {
        return;
    };
    let written = written.to_string();
    let agrees = match mode {
        JobMode::Batch => written.eq_ignore_ascii_case("batch"),
        JobMode::Streaming => written.eq_ignore_ascii_case("streaming"),
    };
    if !agrees {
        let mut p = path(&["spec", "flinkConfiguration"]);
        p.push(Seg::Key(RUNTIME_MODE.to_string()));
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            format!(
                "`{written}` contradicts `spec.mode: {}`; set `spec.mode` instead (weir submits \
                 batch jobs with `{RUNTIME_MODE}: BATCH`)",
                mode.as_str()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::desired::Schedule;
    use crate::git::MemoryFiles;
    use crate::load::{LoadOutcome, load_from};
    use crate::spec::JobMode;

    const CONFIG: &str = "clusters:\n  prod:\n    url: http://flink-prod:8081\n";

    /// A jar job with `extra` appended to its spec; line 9 is the first line of `extra`.
    fn load(extra: &str) -> LoadOutcome {
        let job = format!(
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: nightly\nspec:\n  \
             cluster: prod\n  parallelism: 1\n  jar: {{path: jars/a.jar}}\n{extra}"
        );
        let files = MemoryFiles::new()
            .with("weir.yaml", CONFIG)
            .with("jars/a.jar", "bytes")
            .with("jobs/nightly.yaml", job);
        load_from(&files)
    }

    fn diagnostics(o: &LoadOutcome) -> String {
        o.diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_scheduled_batch_job_loads() {
        let o = load("  mode: batch\n  schedule: \"0 2 * * *\"\n  timeZone: Europe/Berlin\n");
        assert!(o.is_clean(), "{}", diagnostics(&o));
        let job = &o.desired.as_ref().unwrap().jobs[0];
        assert_eq!(job.mode, JobMode::Batch);
        assert_eq!(
            job.schedule,
            Some(Schedule {
                cron: "0 2 * * *".into(),
                time_zone: Some("Europe/Berlin".into())
            })
        );
    }

    #[test]
    fn streaming_is_the_default_mode() {
        let o = load("");
        let job = &o.desired.as_ref().unwrap().jobs[0];
        assert_eq!(job.mode, JobMode::Streaming);
        assert_eq!(job.schedule, None);
    }

    #[test]
    fn a_schedule_needs_a_batch_job() {
        let o = load("  schedule: \"0 2 * * *\"\n");
        let d = diagnostics(&o);
        assert!(
            d.contains("jobs/nightly.yaml:9:3: spec.schedule: only batch jobs can be scheduled"),
            "{d}"
        );
        assert!(o.desired.as_ref().unwrap().jobs.is_empty());
    }

    #[test]
    fn bad_cron_expressions_and_time_zones_are_refused_where_written() {
        let d = diagnostics(&load("  mode: batch\n  schedule: \"0 25 * * *\"\n"));
        assert!(
            d.contains("jobs/nightly.yaml:10:13: spec.schedule: invalid cron expression"),
            "{d}"
        );
        let d = diagnostics(&load(
            "  mode: batch\n  schedule: \"0 2 * * *\"\n  timeZone: Mars/Olympus\n",
        ));
        assert!(
            d.contains("jobs/nightly.yaml:11:13: spec.timeZone: unknown time zone `Mars/Olympus`"),
            "{d}"
        );
        let d = diagnostics(&load("  mode: batch\n  timeZone: UTC\n"));
        assert!(d.contains("spec.timeZone: is only meaningful"), "{d}");
    }

    #[test]
    fn a_runtime_mode_contradicting_the_mode_is_refused() {
        let d = diagnostics(&load(
            "  mode: batch\n  flinkConfiguration:\n    execution.runtime-mode: STREAMING\n",
        ));
        assert!(
            d.contains("`STREAMING` contradicts `spec.mode: batch`"),
            "{d}"
        );
        let d = diagnostics(&load(
            "  flinkConfiguration:\n    execution.runtime-mode: batch\n",
        ));
        assert!(d.contains("contradicts `spec.mode: streaming`"), "{d}");
    }
}
