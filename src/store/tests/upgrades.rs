//! Rows in the exact text earlier versions of weir wrote read back typed (invariant 5).

use super::*;

/// A journal row as stored: (seq, kind, status, intent, detail, result).
type StoredRow = (
    i32,
    &'static str,
    &'static str,
    String,
    String,
    Option<String>,
);

/// The rows of a redeploy of job `old` to `new`, as earlier versions wrote them with
/// `serde_json::json!`.
fn rows_of_earlier_versions(old: &str, new: &str) -> [StoredRow; 5] {
    [
        (
            0,
            "stop_with_savepoint",
            "succeeded",
            format!(r#"{{"jobId":"{old}","targetDir":"file:/sp"}}"#),
            format!(r#"{{"jobId":"{old}","requestId":"r-1","targetDir":"file:/sp"}}"#),
            Some(r#"{"savepoint":"file:/sp/savepoint-1"}"#.to_string()),
        ),
        (
            1,
            "cancel",
            "succeeded",
            format!(r#"{{"jobId":"{old}"}}"#),
            format!(r#"{{"jobId":"{old}"}}"#),
            Some(r#"{"latestCheckpoint":null}"#.to_string()),
        ),
        (
            2,
            "submit",
            "succeeded",
            format!(
                r#"{{"jarId":"j_weir.jar","jobId":"{new}","parallelism":2,"savepointPath":"file:/sp/savepoint-1"}}"#
            ),
            format!(
                r#"{{"jarId":"j_weir.jar","jobId":"{new}","parallelism":2,"savepointPath":"file:/sp/savepoint-1"}}"#
            ),
            Some(format!(
                r#"{{"jobId":"{new}","savepointPath":"file:/sp/savepoint-1"}}"#
            )),
        ),
        (
            3,
            "await_running",
            "failed",
            format!(r#"{{"jobId":"{new}"}}"#),
            format!(r#"{{"jobId":"{new}"}}"#),
            Some(r#"{"error":"job failed"}"#.to_string()),
        ),
        (
            4,
            "forget",
            "pending",
            "{}".to_string(),
            "{}".to_string(),
            None,
        ),
    ]
}

/// Writes `rows` to apply `a1`'s journal with SQL, as the version that wrote them did.
async fn insert_raw_journal_rows(store: &Store, rows: &[StoredRow]) {
    for (seq, kind, status, intent, detail, result) in rows {
        sqlx::query(
            "INSERT INTO journal (apply_id, job, seq, kind, status, intent_json, detail_json,
                                  result_json, created_at_ms)
             VALUES ('a1', 'orders', $1, $2, 'pending', $3, $4, NULL, 1)",
        )
        .bind(seq)
        .bind(kind)
        .bind(intent)
        .bind(detail)
        .execute(&store.pool)
        .await
        .unwrap();
        if let Some(result) = result {
            sqlx::query(
                "UPDATE journal SET status = $2, result_json = $3, finished_at_ms = 2
                 WHERE apply_id = 'a1' AND seq = $1",
            )
            .bind(seq)
            .bind(status)
            .bind(result)
            .execute(&store.pool)
            .await
            .unwrap();
        }
    }
}

/// Rows written by earlier versions of weir (the exact text their executor stored) read back as
/// the typed journal, and the typed journal writes exactly the same text.
#[tokio::test]
async fn journal_rows_of_earlier_versions_read_back_typed() {
    let store = seeded().await;
    let old = "3e00000000000000000000000000aaaa";
    let new = "3e00000000000000000000000000bbbb";
    let rows = rows_of_earlier_versions(old, new);
    insert_raw_journal_rows(&store, &rows).await;
    let entries = store.journal("a1").await.unwrap();
    assert_eq!(entries.len(), rows.len());
    let kinds: Vec<StepKind> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::StopWithSavepoint,
            StepKind::Cancel,
            StepKind::Submit,
            StepKind::AwaitRunning,
            StepKind::Forget
        ]
    );
    let (old_id, new_id) = (old.parse().unwrap(), new.parse().unwrap());
    assert_eq!(
        entries[0].detail(),
        Some(StepDetail::StopWithSavepoint(StopDetail {
            job_id: old_id,
            request_id: Some("r-1".into()),
            target_dir: Some("file:/sp".into()),
        }))
    );
    assert_eq!(
        entries[0].intent().map(|d| d.to_json()),
        Some(rows[0].3.clone())
    );
    assert_eq!(entries[0].result(), Some(stopped("file:/sp/savepoint-1")));
    assert_eq!(
        entries[1].result(),
        Some(StepResult::Cancelled {
            latest_checkpoint: None
        })
    );
    assert_eq!(
        entries[2].detail(),
        Some(StepDetail::Submit(SubmitDetail {
            jar_id: Some("j_weir.jar".into()),
            job_id: new_id,
            parallelism: Some(2),
            savepoint_path: Some("file:/sp/savepoint-1".into()),
        }))
    );
    assert_eq!(
        entries[2].result(),
        Some(StepResult::Submitted {
            job_id: new_id,
            savepoint_path: Some("file:/sp/savepoint-1".into()),
        })
    );
    assert_eq!(entries[3].status, JournalStatus::Failed);
    assert_eq!(entries[3].result(), Some(failed("job failed")));
    assert_eq!(entries[4].result(), None);
    assert_eq!(entries[4].detail(), Some(StepDetail::Forget));
    // What the typed journal writes is byte for byte what was stored.
    for (entry, row) in entries.iter().zip(&rows) {
        assert_eq!(entry.kind.as_str(), row.1);
        assert_eq!(entry.detail().unwrap().to_json(), row.4, "{}", row.1);
        if let (Some(result), Some(text)) = (entry.result(), &row.5) {
            assert_eq!(&result.to_json(), text, "{}", row.1);
        }
    }
    // The API returns the entries with the kind as stored.
    let json = serde_json::to_value(&entries[0]).unwrap();
    assert_eq!(json["kind"], "stop_with_savepoint");
    assert_eq!(json["status"], "succeeded");
}
