//! Times, `--since`, lineage, plans, history and tables as people and JSON read them.

use super::*;

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
