use std::collections::BTreeMap;

use super::*;
use crate::clock::{rfc3339, table_time as time_text};
use crate::desired::Revision;
use crate::git::RepoSource;
use crate::store::audit::{ApplyEvent, ApplyEventKind, ChangeResult, RecordKind, RecordOrigin};
use crate::store::{
    ApplyOutcome, ApplyRecord, JobRef, JournalEntry, JournalStatus, NewApply, NewJournalEntry,
    PlanRecord, SavepointKind, SavepointRecord, SavepointRestore, StepDetail, StepKind, StepResult,
    StopDetail, SubmitDetail,
};

const OLD: &str = "3e00000000000000000000000000aaaa";
const NEW: &str = "3e00000000000000000000000000bbbb";
const SP: &str = "file:/sp/savepoint-aaaa-1";

/// A plan JSON as `weir plan` stores it: a redeploy of `orders` through a savepoint.
fn plan_json() -> String {
    serde_json::json!({
        "id": "plan-1",
        "changes": [{
            "job": "orders",
            "cluster": "local",
            "action": "redeploy",
            "reason": "sql changed",
            "upgradeMode": "savepoint",
            "steps": [
                {"step": "stop-with-savepoint", "jobId": OLD, "targetDir": null},
                {"step": "submit", "parallelism": 1, "restore": {"from": "stop-savepoint"}},
                {"step": "await-running"}
            ],
            "diff": [
                {"field": "sql", "severity": "redeploy", "before": "A", "after": "B"},
                {"field": "flinkConfiguration.s3.secret-key", "severity": "redeploy",
                 "before": "<redacted>", "after": "<redacted>"}
            ],
            "currentJob": {"jobId": OLD, "state": "RUNNING"},
            "restore": {"from": "stop-savepoint"},
            "warnings": []
        }],
        "errors": [],
        "warnings": ["a plan warning"]
    })
    .to_string()
}

fn plan_record() -> PlanRecord {
    PlanRecord {
        id: "plan-1".into(),
        created_at_ms: 1_000,
        revision: "0123456789ab".into(),
        trigger: "cli".into(),
        summary: "Plan: 0 to create, 1 to redeploy, 0 to delete.".into(),
        plan_json: plan_json(),
        job_names: vec!["orders".into()],
    }
}

fn origin_of(id: &str, kind: RecordKind) -> RecordOrigin {
    RecordOrigin {
        record_id: id.into(),
        kind,
        actor: Some("alice".into()),
        commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        dirty: false,
        author_name: Some("Ann Author".into()),
        author_email: Some("ann@example.com".into()),
        authored_at_ms: Some(900),
        message: Some("speed up orders\n\nlonger body".into()),
        recorded_at_ms: 1_000,
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    id: i64,
    seq: u32,
    kind: &str,
    status: JournalStatus,
    intent: Value,
    detail: Option<Value>,
    result: Option<Value>,
    at: (i64, Option<i64>),
) -> JournalEntry {
    JournalEntry {
        id,
        apply_id: "apply-1".into(),
        job: "orders".into(),
        seq,
        kind: serde_json::from_value(Value::String(kind.into())).unwrap(),
        status,
        intent_json: intent.to_string(),
        detail_json: detail.unwrap_or_else(|| intent.clone()).to_string(),
        result_json: result.map(|r| r.to_string()),
        created_at_ms: at.0,
        progress_at_ms: None,
        finished_at_ms: at.1,
    }
}

fn stop_entry(finished: Option<i64>) -> JournalEntry {
    entry(
        1,
        0,
        "stop_with_savepoint",
        if finished.is_some() {
            JournalStatus::Succeeded
        } else {
            JournalStatus::Pending
        },
        serde_json::json!({"jobId": OLD, "targetDir": null}),
        Some(serde_json::json!({"jobId": OLD, "targetDir": null, "requestId": "req-7"})),
        finished.map(|_| serde_json::json!({"savepoint": SP})),
        (2_000, finished),
    )
}

fn apply_record(outcome: Option<ApplyOutcome>, error: Option<&str>) -> ApplyRecord {
    ApplyRecord {
        id: "apply-1".into(),
        plan_id: "plan-1".into(),
        started_at_ms: 1_500,
        revision: "0123456789ab".into(),
        trigger: "cli".into(),
        job_names: vec!["orders".into()],
        finished_at_ms: outcome.map(|_| 9_000),
        outcome,
        error: error.map(str::to_string),
    }
}

fn failed_apply() -> ApplyRecords {
    let err = "orders: the program failed: SELECT statements are not supported";
    ApplyRecords {
        apply: apply_record(Some(ApplyOutcome::Failed), Some(err)),
        origin: Some(origin_of("apply-1", RecordKind::Apply)),
        plan: Some(plan_record()),
        plan_origin: Some(origin_of("plan-1", RecordKind::Plan)),
        journal: vec![
            stop_entry(Some(5_200)),
            entry(
                2,
                1,
                "submit",
                JournalStatus::Failed,
                serde_json::json!({"jobId": NEW, "jarId": "abc_runner.jar", "savepointPath": SP, "parallelism": 1}),
                None,
                Some(
                    serde_json::json!({"error": "the program failed: SELECT statements are not supported"}),
                ),
                (5_300, Some(5_750)),
            ),
        ],
        changes: vec![ChangeResult {
            job: "orders".into(),
            action: "redeploy".into(),
            ok: false,
            message: err.into(),
            new_job_id: None,
            savepoint: None,
        }],
        events: vec![],
    }
}

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

#[test]
fn since_takes_durations_times_and_dates() {
    let now = 1_700_000_000_000;
    assert_eq!(parse_since("90s", now), Ok(now - 90_000));
    assert_eq!(parse_since("30m", now), Ok(now - 1_800_000));
    assert_eq!(parse_since("1h30m", now), Ok(now - 5_400_000));
    assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
    assert_eq!(parse_since("2w", now), Ok(now - 14 * 86_400_000));
    assert_eq!(
        parse_since("2024-01-31T12:00:00Z", now),
        Ok(1_706_702_400_000)
    );
    assert_eq!(
        parse_since("2024-01-31T13:00:00+01:00", now),
        Ok(1_706_702_400_000)
    );
    assert_eq!(parse_since("2024-01-31", now), Ok(1_706_659_200_000));
    for bad in ["", "h", "10", "10x", "yesterday", "99999999999999999999d"] {
        assert!(parse_since(bad, now).is_err(), "{bad:?}");
    }
}

#[test]
fn times_and_durations_render_compactly() {
    assert_eq!(duration_text(850), "850ms");
    assert_eq!(duration_text(3_240), "3.2s");
    assert_eq!(duration_text(125_000), "2m05s");
    assert_eq!(duration_text(3_720_000), "1h02m");
    // One precision everywhere (crate::clock): milliseconds always shown.
    assert_eq!(rfc3339(1_706_702_400_000), "2024-01-31T12:00:00.000Z");
    assert_eq!(time_text(1_706_702_400_000), "2024-01-31 12:00:00Z");
}

#[test]
fn lineage_names_the_applies_that_took_and_restored_each_savepoint() {
    let savepoints = vec![
        SavepointRecord {
            job: "orders".into(),
            path: SP.into(),
            kind: SavepointKind::Savepoint,
            flink_job_id: OLD.into(),
            produced_by_apply: Some("apply-2".into()),
            at_ms: 5_000,
            restores: vec![SavepointRestore {
                apply_id: "apply-3".into(),
                job_id: NEW.into(),
                at_ms: 6_000,
            }],
        },
        SavepointRecord {
            job: "orders".into(),
            path: "s3://bucket/initial".into(),
            kind: SavepointKind::Savepoint,
            flink_job_id: String::new(),
            produced_by_apply: None,
            at_ms: 1_000,
            restores: vec![],
        },
    ];
    let mut applies = BTreeMap::new();
    applies.insert(
        "apply-2".to_string(),
        ApplyRef {
            apply_id: "apply-2".into(),
            action: Some("redeploy".into()),
            outcome: Some("failed".into()),
            revision: Some("0123456789ab".into()),
            commit: CommitRef::from_origin(&origin_of("apply-2", RecordKind::Apply)),
        },
    );
    let lineage = assemble_lineage("orders", &savepoints, &applies);
    assert_eq!(lineage.savepoints.len(), 2);
    let first = &lineage.savepoints[0];
    assert_eq!(first.flink_job_id.as_deref(), Some(OLD));
    assert_eq!(first.produced_by.as_ref().unwrap().apply_id, "apply-2");
    assert_eq!(first.restores[0].by.apply_id, "apply-3");
    assert_eq!(first.restores[0].by.action, None, "unknown apply: id only");
    assert_eq!(lineage.savepoints[1].flink_job_id, None);

    let text = lineage_text(&lineage);
    for needle in [
        "Savepoints of orders (newest first):",
        SP,
        &format!(
            "savepoint of Flink job {OLD}, taken 1970-01-01 00:00:05Z by apply apply-2 \
             (redeploy, failed; 0123456789ab by Ann Author <ann@example.com>: speed up orders)"
        ),
        &format!("restored 1970-01-01 00:00:06Z as Flink job {NEW} by apply apply-3"),
        "s3://bucket/initial\n  savepoint, not taken by weir (first used 1970-01-01 00:00:01Z)\n  never restored",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let json = serde_json::to_value(&lineage).unwrap();
    assert_eq!(json["savepoints"][0]["restores"][0]["flink_job_id"], NEW);
    assert_eq!(json["savepoints"][0]["pinned"], false);

    // What the savepoint lifecycle knows: a periodic savepoint, a pin and a disposal.
    let facts = LifecycleFacts {
        origins: [("s3://bucket/initial".to_string(), "periodic".to_string())].into(),
        pinned: [SP.to_string()].into(),
        disposed: ["s3://bucket/initial".to_string()].into(),
    };
    let lineage = assemble_lineage_with("orders", &savepoints, &applies, &facts);
    let text = lineage_text(&lineage);
    for needle in [
        "s3://bucket/initial\n  savepoint, taken 1970-01-01 00:00:01Z by weir (periodic)\n  \
         disposed through Flink (its files are gone)",
        "pinned: retention keeps it",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let json = serde_json::to_value(&lineage).unwrap();
    assert_eq!(json["savepoints"][0]["pinned"], true);
    assert_eq!(json["savepoints"][1]["origin"], "periodic");
    assert_eq!(json["savepoints"][1]["disposed"], true);
    assert_eq!(
        lineage_text(&assemble_lineage("x", &[], &BTreeMap::new())),
        "No savepoints or retained checkpoints recorded for x.\n"
    );
}

#[test]
fn plans_show_their_changes_and_applies() {
    let applies = [apply_record(Some(ApplyOutcome::Failed), Some("boom"))];
    let origin = origin_of("plan-1", RecordKind::Plan);
    let story = assemble_plan(&plan_record(), Some(&origin), &applies);
    assert_eq!(story.kind, "plan");
    assert_eq!(story.changes[0].steps.len(), 3);
    assert_eq!(story.applies[0].outcome, "failed");
    let text = plan_text(&story);
    for needle in [
        "Plan plan-1: Plan: 0 to create, 1 to redeploy, 0 to delete.",
        "applied:   apply-1 at 1970-01-01 00:00:01Z: failed",
        "orders: redeploy — sql changed",
        &format!("1. stop {OLD} with a savepoint (cluster default directory)"),
        "3. wait until the job is RUNNING",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

fn history_entry(kind: HistoryKind, id: &str, at: i64) -> HistoryEntry {
    HistoryEntry {
        kind,
        id: id.into(),
        at_ms: at,
        revision: "0123456789ab".into(),
        trigger: "cli".into(),
        summary_or_outcome: match kind {
            HistoryKind::Plan => "Plan: 1 to create, 0 to redeploy, 0 to delete.".into(),
            HistoryKind::Apply => "failed".into(),
        },
        error: (kind == HistoryKind::Apply).then(|| "orders: boom".into()),
        plan_id: (kind == HistoryKind::Apply).then(|| "plan-1".into()),
        finished_at_ms: (kind == HistoryKind::Apply).then_some(at + 2_500),
    }
}

#[test]
fn history_renders_as_a_table_and_as_json_lines() {
    let records = vec![
        bare_record(history_entry(HistoryKind::Apply, "apply-1", 2_000)),
        HistoryRecord {
            actor: Some("alice".into()),
            commit: CommitRef::from_origin(&origin_of("plan-1", RecordKind::Plan)),
            ..bare_record(history_entry(HistoryKind::Plan, "plan-1", 1_000))
        },
    ];
    let text = history_text(&records);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("TIME"), "{text}");
    assert!(
        lines[1].contains("apply-1") && lines[1].ends_with("failed in 2.5s: orders: boom"),
        "{text}"
    );
    assert!(
        lines[2].contains("cli (alice)") && lines[2].contains("Ann Author"),
        "{text}"
    );
    assert_eq!(history_text(&[]), "No plans or applies recorded yet.\n");

    let exported = jsonl(&records).unwrap();
    let parsed: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0]["kind"], "apply");
    assert_eq!(parsed[0]["id"], "apply-1");
    assert_eq!(parsed[0]["at"], "1970-01-01T00:00:02.000Z");
    assert_eq!(parsed[0]["duration_ms"], 2_500);
    assert_eq!(parsed[0]["summary_or_outcome"], "failed");
    assert_eq!(parsed[1]["commit"]["author_name"], "Ann Author");
    assert!(exported.ends_with('\n'));
}

/// Records what the CLI records for plan `plan-1` and its apply `apply-1`: a redeploy of
/// `orders` stopped with savepoint `SP`, interrupted, resumed and submitted from it.
async fn record_a_resumed_redeploy(store: &Store) {
    store.insert_plan(&plan_record()).await.unwrap();
    store
        .insert_origin(&origin_of("plan-1", RecordKind::Plan))
        .await
        .unwrap();
    store
        .insert_origin(&origin_of("apply-1", RecordKind::Apply))
        .await
        .unwrap();
    store
        .insert_apply(&NewApply {
            id: "apply-1".into(),
            plan_id: "plan-1".into(),
            started_at_ms: 1_500,
            revision: "0123456789ab".into(),
            trigger: "cli".into(),
            job_names: vec!["orders".into()],
        })
        .await
        .unwrap();
    let stop = store
        .journal_intent(&NewJournalEntry {
            apply_id: "apply-1".into(),
            job: "orders".into(),
            seq: 0,
            detail: StepDetail::StopWithSavepoint(StopDetail {
                job_id: OLD.parse().unwrap(),
                request_id: None,
                target_dir: None,
            }),
            at_ms: 2_000,
        })
        .await
        .unwrap();
    store
        .journal_result(
            stop,
            &StepResult::Stopped {
                savepoint: SP.into(),
            },
            2_600,
        )
        .await
        .unwrap();
    store
        .insert_savepoint(&SavepointRecord {
            job: "orders".into(),
            path: SP.into(),
            kind: SavepointKind::Savepoint,
            flink_job_id: OLD.into(),
            produced_by_apply: Some("apply-1".into()),
            at_ms: 2_600,
            restores: vec![],
        })
        .await
        .unwrap();
    resume_and_submit_from_the_savepoint(store).await;
}

/// The resumed half of [`record_a_resumed_redeploy`]: the submit from `SP` and the finish.
async fn resume_and_submit_from_the_savepoint(store: &Store) {
    store
        .insert_apply_event(&ApplyEvent {
            apply_id: "apply-1".into(),
            at_ms: 3_000,
            kind: ApplyEventKind::Resumed,
            message: "resumed".into(),
        })
        .await
        .unwrap();
    let submit = store
        .journal_intent(&NewJournalEntry {
            apply_id: "apply-1".into(),
            job: "orders".into(),
            seq: 1,
            detail: StepDetail::Submit(SubmitDetail {
                jar_id: Some("j.jar".into()),
                job_id: NEW.parse().unwrap(),
                parallelism: None,
                savepoint_path: Some(SP.into()),
            }),
            at_ms: 3_100,
        })
        .await
        .unwrap();
    store
        .journal_result(
            submit,
            &StepResult::Submitted {
                job_id: NEW.parse().unwrap(),
                savepoint_path: Some(SP.into()),
            },
            3_200,
        )
        .await
        .unwrap();
    store
        .mark_savepoint_restored(SP, "apply-1", NEW, 3_200)
        .await
        .unwrap();
    store
        .finish_apply_with_changes(
            "apply-1",
            ApplyOutcome::Succeeded,
            None,
            &[ChangeResult {
                job: "orders".into(),
                action: "redeploy".into(),
                ok: true,
                message: "done".into(),
                new_job_id: Some(NEW.into()),
                savepoint: Some(SP.into()),
            }],
            4_000,
        )
        .await
        .unwrap();
}

/// The whole path through a store: what the CLI records is what `show`, `history` and
/// `savepoints` tell.
#[tokio::test]
async fn records_in_the_store_come_back_as_one_story() {
    let store = Store::open_in_memory().await.unwrap();
    record_a_resumed_redeploy(&store).await;

    let Some(Shown::Apply(story)) = load_shown(&store, "apply-1").await.unwrap() else {
        panic!("an apply");
    };
    assert_eq!(story.outcome, "succeeded");
    assert_eq!(story.jobs[0].outcome, "succeeded");
    assert_eq!(
        story.jobs[0].steps[0].savepoint_produced.as_deref(),
        Some(SP)
    );
    assert_eq!(story.jobs[0].steps[1].savepoint_used.as_deref(), Some(SP));
    assert!(story.jobs[0].steps[0].notes[0].starts_with("interrupted after"));
    assert_eq!(story.jobs[0].steps[2].status, "not_run");
    assert!(matches!(
        load_shown(&store, "plan-1").await.unwrap(),
        Some(Shown::Plan(p)) if p.applies.len() == 1
    ));
    assert_eq!(load_shown(&store, "nope").await.unwrap(), None);

    let history = load_history(&store, &HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].entry.id, "apply-1");
    assert_eq!(history[0].duration_ms, Some(2_500));
    assert_eq!(history[0].steps.as_ref().unwrap().len(), 3);
    assert_eq!(history[0].jobs, ["orders"]);
    assert_eq!(history[1].changes.as_ref().unwrap()[0].job, "orders");
    assert_eq!(history[1].actor.as_deref(), Some("alice"));

    let lineage = load_lineage(&store, "orders").await.unwrap();
    let sp = &lineage.savepoints[0];
    let by = sp.produced_by.as_ref().unwrap();
    assert_eq!(
        (
            by.apply_id.as_str(),
            by.action.as_deref(),
            by.outcome.as_deref()
        ),
        ("apply-1", Some("redeploy"), Some("succeeded"))
    );
    assert_eq!(sp.restores[0].flink_job_id, NEW);
    assert_eq!(sp.restores[0].by.apply_id, "apply-1");
}

#[test]
fn origins_carry_the_commit_author_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("weir.yaml"), "clusters: {}\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(std::path::Path::new("weir.yaml")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let who = git2::Signature::new(
        "Ann Author",
        "ann@example.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap();
    let sha = repo
        .commit(
            Some("HEAD"),
            &who,
            &who,
            "add weir.yaml\n\nwhy it matters\n",
            &tree,
            &[],
        )
        .unwrap()
        .to_string();

    let source = RepoSource::work_tree(dir.path()).unwrap();
    let revision = Revision {
        commit: Some(sha.clone()),
        dirty: true,
        digest: "d".repeat(64),
    };
    let o = RecordOrigin::of(
        RecordKind::Plan,
        "plan-9",
        &source,
        &revision,
        Some("bob".into()),
        42,
    );
    assert_eq!(o.commit_sha.as_deref(), Some(sha.as_str()));
    assert!(o.dirty);
    assert_eq!(o.author_name.as_deref(), Some("Ann Author"));
    assert_eq!(o.author_email.as_deref(), Some("ann@example.com"));
    assert_eq!(o.authored_at_ms, Some(1_700_000_000_000));
    assert_eq!(
        o.message.as_deref(),
        Some("add weir.yaml\n\nwhy it matters")
    );
    assert_eq!(o.actor.as_deref(), Some("bob"));
    assert_eq!(o.recorded_at_ms, 42);
    let tree_source = RepoSource::git_tree(dir.path(), "HEAD").unwrap();
    assert_eq!(
        tree_source.commit_info("HEAD").map(|c| c.sha),
        Some(sha.clone())
    );
    let text = CommitRef::from_origin(&o).unwrap().text();
    assert_eq!(
        text,
        format!(
            "{} (plus uncommitted changes) by Ann Author <ann@example.com>: add weir.yaml",
            &sha[..12]
        )
    );

    // Not a Git repository: no commit, no author.
    let plain = tempfile::tempdir().unwrap();
    let source = RepoSource::work_tree(plain.path()).unwrap();
    let none = Revision {
        commit: None,
        dirty: false,
        digest: "d".repeat(64),
    };
    let o = RecordOrigin::of(RecordKind::Apply, "apply-9", &source, &none, None, 42);
    assert_eq!((o.commit_sha, o.author_name, o.message), (None, None, None));
    assert_eq!(source.commit_info(&sha), None);
}

#[test]
fn tables_are_left_aligned_columns_two_spaces_apart() {
    let rows = vec![
        vec!["x".to_string(), "yé".to_string(), "last".to_string()],
        vec!["long".to_string(), "z".to_string(), String::new()],
    ];
    assert_eq!(
        text::columns(&["A", "BB", "C"], &rows),
        "A     BB  C\nx     yé  last\nlong  z\n"
    );
}

/// Records written by older versions (or by anything that skipped the store's scrubbing) are
/// scrubbed and escaped when read: the story (JSON of `weir show` and the API) and its text.
#[test]
fn unscrubbed_records_are_scrubbed_and_escaped_when_shown() {
    let leak = "main() failed: jdbc:postgresql://app:Old-Pa55word@db/x\u{1b}[2J";
    let mut records = failed_apply();
    records.apply.error = Some(leak.into());
    records.changes[0].message = leak.into();
    records.journal[1].result_json = Some(serde_json::json!({ "error": leak }).to_string());
    let story = assemble_apply(&records);
    let json = serde_json::to_string(&story).unwrap();
    assert!(!json.contains("Old-Pa55word"), "{json}");
    let text = apply_text(&story);
    assert!(!text.contains("Old-Pa55word"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
}
