//! The story of an apply from its journal: steps, REST calls, savepoints, interruptions.

use super::*;

#[test]
fn a_failed_apply_tells_every_step_with_its_rest_call_and_savepoints() {
    let story = assemble_apply(&failed_apply());
    assert_eq!(story.kind, "apply");
    assert_eq!(story.outcome, "failed");
    assert_eq!(story.duration_ms, Some(7_500));
    assert_eq!(story.actor.as_deref(), Some("alice"));
    let commit = story.commit.as_ref().unwrap();
    assert_eq!(commit.author_name.as_deref(), Some("Ann Author"));
    assert_eq!(story.plan.as_ref().unwrap().warnings, ["a plan warning"]);
    assert_eq!(story.jobs.len(), 1);
    let job = &story.jobs[0];
    assert_eq!(job.action.as_deref(), Some("redeploy"));
    assert_eq!(job.reason.as_deref(), Some("sql changed"));
    assert_eq!(job.from_job_id.as_deref(), Some(OLD));
    assert_eq!(
        job.changed_fields,
        ["sql", "flinkConfiguration.s3.secret-key"]
    );
    assert_eq!(job.outcome, "failed");
    let [stop, submit, wait] = &job.steps[..] else {
        panic!("three steps: {:?}", job.steps);
    };
    assert_eq!(stop.kind, "stop_with_savepoint");
    assert_eq!(stop.status, "succeeded");
    assert_eq!(
        stop.call.as_deref(),
        Some(&*format!("POST /jobs/{OLD}/stop"))
    );
    assert_eq!(
        stop.polls.as_deref(),
        Some(&*format!("GET /jobs/{OLD}/savepoints/req-7"))
    );
    assert_eq!(stop.request_id.as_deref(), Some("req-7"));
    assert_eq!(stop.duration_ms, Some(3_200));
    assert_eq!(stop.savepoint_produced.as_deref(), Some(SP));
    assert_eq!(submit.status, "failed");
    assert_eq!(
        submit.call.as_deref(),
        Some("POST /jars/abc_runner.jar/run")
    );
    assert_eq!(submit.flink_job_id.as_deref(), Some(NEW));
    assert_eq!(submit.savepoint_used.as_deref(), Some(SP));
    assert_eq!(submit.duration_ms, Some(450));
    assert!(submit.error.as_deref().unwrap().contains("SELECT"));
    assert_eq!(wait.kind, "await_running");
    assert_eq!(wait.status, "not_run");
    assert_eq!(wait.call, None);
    assert_eq!(
        wait.description.as_deref(),
        Some("wait until the job is RUNNING")
    );

    let text = apply_text(&story);
    for needle in [
        "Apply apply-1: failed",
        "plan-1 (Plan: 0 to create, 1 to redeploy, 0 to delete.)",
        "0123456789ab by Ann Author <ann@example.com>: speed up orders",
        "trigger:   cli by alice",
        "(7.5s)",
        "orders (cluster local): redeploy — failed",
        "why:       sql changed",
        "1. stop_with_savepoint  succeeded  3.2s",
        &format!("call:      POST /jobs/{OLD}/stop"),
        &format!("savepoint: {SP}"),
        "2. submit  failed  450ms",
        "call:      POST /jars/abc_runner.jar/run",
        &format!("restored:  {SP}"),
        "error:     the program failed: SELECT",
        "3. await_running  not run",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(
        !text.contains("longer body"),
        "only the subject line: {text}"
    );
    assert!(text.contains("warning:   a plan warning"), "{text}");
    let mut many = story.clone();
    many.plan.as_mut().unwrap().warnings = vec!["w".into(); 4];
    let many = apply_text(&many);
    assert!(
        many.contains("warnings:  the plan had 4 warnings; `weir show plan-1` lists them"),
        "{many}"
    );

    let json = serde_json::to_value(Shown::Apply(story)).unwrap();
    assert_eq!(json["kind"], "apply");
    assert_eq!(json["jobs"][0]["steps"][1]["savepoint_used"], SP);
    assert_eq!(json["commit"]["message"], "speed up orders\n\nlonger body");
}

#[test]
fn an_apply_resumed_after_a_crash_says_where_it_was_interrupted() {
    let mut records = failed_apply();
    records.apply = apply_record(Some(ApplyOutcome::Succeeded), None);
    // Crash after the stop was journaled; resumed at 4000.
    records.journal = vec![
        stop_entry(Some(2_500)),
        entry(
            2,
            1,
            "submit",
            JournalStatus::Succeeded,
            serde_json::json!({"jobId": NEW, "jarId": "j.jar", "savepointPath": SP}),
            None,
            Some(serde_json::json!({"jobId": NEW, "savepointPath": SP})),
            (4_100, Some(4_300)),
        ),
        entry(
            3,
            2,
            "await_running",
            JournalStatus::Succeeded,
            serde_json::json!({"jobId": NEW}),
            None,
            Some(serde_json::json!({"state": "RUNNING"})),
            (4_300, Some(6_000)),
        ),
    ];
    records.events = vec![ApplyEvent {
        apply_id: "apply-1".into(),
        at_ms: 4_000,
        kind: ApplyEventKind::Resumed,
        message: "resumed from the journal".into(),
    }];
    records.changes = vec![ChangeResult {
        job: "orders".into(),
        action: "redeploy".into(),
        ok: true,
        message: format!("redeploy done: running as {NEW}"),
        new_job_id: Some(NEW.into()),
        savepoint: Some(SP.into()),
    }];
    let story = assemble_apply(&records);
    assert_eq!(story.outcome, "succeeded");
    assert_eq!(story.events.len(), 1);
    let steps = &story.jobs[0].steps;
    assert_eq!(steps[0].notes.len(), 1, "{:?}", steps[0].notes);
    assert!(steps[0].notes[0].starts_with("interrupted after this step"));
    assert!(steps[1].notes.is_empty() && steps[2].notes.is_empty());
    assert_eq!(story.jobs[0].new_job_id.as_deref(), Some(NEW));
    let text = apply_text(&story);
    assert!(text.contains("resumed:"), "{text}");
    assert!(
        text.contains("note:      interrupted after this step"),
        "{text}"
    );
    assert!(text.contains("await_running  succeeded  1.7s"), "{text}");

    // Died while the submit was in flight: the step is settled on resume.
    records.journal[1].created_at_ms = 3_000;
    let story = assemble_apply(&records);
    let steps = &story.jobs[0].steps;
    assert!(steps[0].notes.is_empty());
    assert!(steps[1].notes[0].starts_with("interrupted during this step"));
}

#[test]
fn an_unfinished_apply_shows_the_pending_step() {
    let mut records = failed_apply();
    records.apply = apply_record(None, None);
    records.journal = vec![stop_entry(None)];
    records.changes = vec![];
    let story = assemble_apply(&records);
    assert_eq!(story.outcome, "unfinished");
    assert_eq!(story.duration_ms, None);
    let job = &story.jobs[0];
    assert_eq!(job.outcome, "unfinished");
    assert_eq!(job.steps[0].status, "pending");
    assert!(job.steps[0].notes[0].contains("next `weir apply` settles"));
    assert_eq!(job.steps[1].status, "not_run");
    let text = apply_text(&story);
    assert!(text.contains("finished:  not recorded"), "{text}");
    assert!(text.contains("1. stop_with_savepoint  pending"), "{text}");
}

#[test]
fn records_without_a_plan_still_show_the_journal() {
    let mut records = failed_apply();
    records.plan = None;
    records.plan_origin = None;
    records.origin = None;
    let story = assemble_apply(&records);
    assert_eq!(story.commit, None);
    assert_eq!(story.jobs[0].steps.len(), 2);
    assert_eq!(story.jobs[0].steps[0].kind, "stop_with_savepoint");
    assert!(apply_text(&story).contains("plan-1 (not recorded)"));
}

#[test]
fn rest_calls_follow_the_journal_detail() {
    let d = StepDetail::Cancel(JobRef {
        job_id: OLD.parse().unwrap(),
    });
    let d = Some(&d);
    assert_eq!(
        rest_calls(StepKind::Cancel, d),
        (
            Some(format!("PATCH /jobs/{OLD}?mode=cancel")),
            Some(format!("GET /jobs/{OLD}"))
        )
    );
    assert_eq!(
        rest_calls(StepKind::AwaitRunning, d),
        (None, Some(format!("GET /jobs/{OLD}")))
    );
    assert_eq!(rest_calls(StepKind::Forget, d), (None, None));
    assert_eq!(
        rest_calls(StepKind::Submit, None).0.as_deref(),
        Some("POST /jars/{jarId}/run")
    );
}
