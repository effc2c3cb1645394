use super::*;

use super::journal::{JobRef, StopDetail, SubmitDetail};

fn plan(id: &str, at: i64, jobs: &[&str]) -> PlanRecord {
    PlanRecord {
        id: id.to_string(),
        created_at_ms: at,
        revision: format!("rev-{id}"),
        trigger: Trigger::Cli,
        summary: format!("summary of {id}"),
        plan_json: format!(r#"{{"plan":"{id}"}}"#),
        job_names: jobs.iter().map(|j| j.to_string()).collect(),
    }
}

fn new_apply(id: &str, plan_id: &str, at: i64, jobs: &[&str]) -> NewApply {
    NewApply {
        id: id.to_string(),
        plan_id: plan_id.to_string(),
        started_at_ms: at,
        revision: format!("rev-{plan_id}"),
        trigger: Trigger::from("webhook"),
        job_names: jobs.iter().map(|j| j.to_string()).collect(),
    }
}

const FLINK_JOB: &str = "3e00000000000000000000000000abcd";

fn detail(kind: StepKind) -> StepDetail {
    let job_id = FLINK_JOB.parse().unwrap();
    match kind {
        StepKind::StopWithSavepoint => StepDetail::StopWithSavepoint(StopDetail {
            job_id,
            request_id: None,
            target_dir: None,
        }),
        StepKind::Cancel => StepDetail::Cancel(JobRef { job_id }),
        StepKind::Submit => StepDetail::Submit(SubmitDetail {
            jar_id: Some("j.jar".into()),
            job_id,
            parallelism: Some(2),
            savepoint_path: None,
        }),
        StepKind::AwaitRunning => StepDetail::AwaitRunning(JobRef { job_id }),
        StepKind::Forget => StepDetail::Forget,
        StepKind::WatchHealth => StepDetail::WatchHealth(JobRef { job_id }),
        StepKind::Rollback => StepDetail::Rollback(crate::store::RollbackDetail {
            reason: "failed".into(),
            new_job_id: Some(job_id),
            savepoint_path: Some("file:///sp/1".into()),
            cluster: "local".into(),
            resubmit: true,
        }),
    }
}

fn intent(apply_id: &str, job: &str, seq: u32, kind: StepKind, at: i64) -> NewJournalEntry {
    NewJournalEntry {
        apply_id: apply_id.to_string(),
        job: job.to_string(),
        seq,
        detail: detail(kind),
        at_ms: at,
    }
}

fn stopped(path: &str) -> StepResult {
    StepResult::Stopped {
        savepoint: path.into(),
    }
}

fn failed(error: &str) -> StepResult {
    StepResult::Failed {
        error: error.into(),
    }
}

fn job_record(name: &str, at: i64) -> JobRecord {
    JobRecord {
        name: name.to_string(),
        cluster: "prod".to_string(),
        current_job_id: Some("3e00000000000000000000000000abcd".to_string()),
        spec_json: Some(r#"{"name":"x"}"#.to_string()),
        suspended: false,
        last_savepoint: None,
        last_savepoint_at_ms: None,
        updated_at_ms: at,
        deleted: false,
    }
}

fn savepoint(job: &str, path: &str, at: i64, apply: Option<&str>) -> SavepointRecord {
    SavepointRecord {
        job: job.to_string(),
        path: path.to_string(),
        kind: SavepointKind::Savepoint,
        flink_job_id: "3e00000000000000000000000000abcd".to_string(),
        produced_by_apply: apply.map(str::to_string),
        at_ms: at,
        restores: Vec::new(),
    }
}

fn rejection(e: StoreError) -> Rejection {
    match e {
        StoreError::Rejected { source, .. } => source,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A store with plan `p1` (jobs a, b) and apply `a1` of it.
async fn seeded() -> Store {
    let store = Store::open_for_test().await;
    store
        .insert_plan(&plan("p1", 1_000, &["b", "a"]))
        .await
        .unwrap();
    store
        .insert_apply(&new_apply("a1", "p1", 1_100, &["a", "b"]))
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn plan_round_trip() {
    let store = Store::open_for_test().await;
    let p = plan("p1", 1_000, &["b", "a", "b"]);
    store.insert_plan(&p).await.unwrap();
    let got = store.plan("p1").await.unwrap().unwrap();
    assert_eq!(
        got,
        PlanRecord {
            job_names: vec!["a".into(), "b".into()],
            ..p.clone()
        }
    );
    assert_eq!(store.plan("nope").await.unwrap(), None);

    // Plans are append-only: the same id twice is an error and the first stays.
    let err = store
        .insert_plan(&plan("p1", 2_000, &["c"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                op: "insert_plan",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.plan("p1").await.unwrap().unwrap().created_at_ms,
        1_000
    );
    // The error names the store (`:memory:`, or the URL on PostgreSQL).
    let named = store.path().to_string_lossy().to_string();
    assert!(err.to_string().contains(&named), "{err}");
}

#[tokio::test]
async fn apply_round_trip_and_finish() {
    let store = seeded().await;
    let a = store.apply("a1").await.unwrap().unwrap();
    assert_eq!(
        a,
        ApplyRecord {
            id: "a1".into(),
            plan_id: "p1".into(),
            started_at_ms: 1_100,
            revision: "rev-p1".into(),
            trigger: Trigger::from("webhook"),
            job_names: vec!["a".into(), "b".into()],
            finished_at_ms: None,
            outcome: None,
            error: None,
        }
    );
    assert_eq!(store.apply("nope").await.unwrap(), None);

    store.insert_plan(&plan("p2", 2_000, &["a"])).await.unwrap();
    store
        .insert_apply(&new_apply("a2", "p2", 2_100, &["a"]))
        .await
        .unwrap();
    let unfinished: Vec<_> = store
        .unfinished_applies()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(unfinished, ["a1", "a2"]);

    store
        .finish_apply("a1", ApplyOutcome::Failed, Some("boom"), 1_500)
        .await
        .unwrap();
    let a = store.apply("a1").await.unwrap().unwrap();
    assert_eq!(a.finished_at_ms, Some(1_500));
    assert_eq!(a.outcome, Some(ApplyOutcome::Failed));
    assert_eq!(a.error.as_deref(), Some("boom"));
    let unfinished: Vec<_> = store
        .unfinished_applies()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(unfinished, ["a2"]);

    // Finishing is once only.
    let err = store
        .finish_apply("a1", ApplyOutcome::Succeeded, None, 1_600)
        .await
        .unwrap_err();
    assert_eq!(rejection(err), Rejection::ApplyFinished { id: "a1".into() });
    let err = store
        .finish_apply("zz", ApplyOutcome::Succeeded, None, 1_600)
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "apply",
            id: "zz".into()
        }
    );
    store
        .finish_apply("a2", ApplyOutcome::Interrupted, None, 3_000)
        .await
        .unwrap();
    assert!(store.unfinished_applies().await.unwrap().is_empty());

    // An apply needs its plan.
    let err = store
        .insert_apply(&new_apply("a3", "no-plan", 1, &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                op: "insert_apply",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.apply("a3").await.unwrap(), None);
}

#[tokio::test]
async fn journal_round_trip() {
    let store = seeded().await;
    // Written out of order on purpose: reads are ordered by job, seq, id.
    let b0 = store
        .journal_intent(&intent("a1", "b", 0, StepKind::Cancel, 10))
        .await
        .unwrap();
    let a1 = store
        .journal_intent(&intent("a1", "a", 1, StepKind::Submit, 11))
        .await
        .unwrap();
    let a0 = store
        .journal_intent(&intent("a1", "a", 0, StepKind::StopWithSavepoint, 12))
        .await
        .unwrap();
    let a1_retry = store
        .journal_intent(&intent("a1", "a", 1, StepKind::Submit, 13))
        .await
        .unwrap();

    let progress = |request: &str| {
        StepDetail::StopWithSavepoint(StopDetail {
            job_id: FLINK_JOB.parse().unwrap(),
            request_id: Some(request.into()),
            target_dir: Some("s3://sp".into()),
        })
    };
    store
        .journal_progress(a0, &progress("r1"), 20)
        .await
        .unwrap();
    store
        .journal_progress(a0, &progress("r2"), 21)
        .await
        .unwrap();
    store
        .journal_result(a0, &stopped("s3://sp/1"), 30)
        .await
        .unwrap();
    store.journal_result(a1, &failed("x"), 31).await.unwrap();

    let entries = store.journal("a1").await.unwrap();
    let order: Vec<i64> = entries.iter().map(|e| e.id).collect();
    assert_eq!(order, [a0, a1, a1_retry, b0]);
    assert_eq!(
        entries[0],
        JournalEntry {
            id: a0,
            apply_id: "a1".into(),
            job: "a".into(),
            seq: 0,
            kind: StepKind::StopWithSavepoint,
            status: JournalStatus::Succeeded,
            intent_json: format!(r#"{{"jobId":"{FLINK_JOB}","targetDir":null}}"#),
            detail_json: format!(
                r#"{{"jobId":"{FLINK_JOB}","requestId":"r2","targetDir":"s3://sp"}}"#
            ),
            result_json: Some(r#"{"savepoint":"s3://sp/1"}"#.into()),
            created_at_ms: 12,
            progress_at_ms: Some(21),
            finished_at_ms: Some(30),
        }
    );
    assert_eq!(entries[1].status, JournalStatus::Failed);
    assert_eq!(entries[2].status, JournalStatus::Pending);
    assert_eq!(entries[2].result_json, None);
    assert_eq!(entries[2].finished_at_ms, None);
    assert_eq!(entries[3].kind, StepKind::Cancel);
    assert_eq!(entries[0].result(), Some(stopped("s3://sp/1")));
    assert_eq!(entries[1].result(), Some(failed("x")));
    assert_eq!(entries[0].detail(), Some(progress("r2")));
    assert_eq!(entries[3].detail_json, entries[3].intent_json);
    assert!(store.journal("nope").await.unwrap().is_empty());

    // A completed entry is final.
    let err = store
        .journal_result(a0, &failed("again"), 40)
        .await
        .unwrap_err();
    assert_eq!(rejection(err), Rejection::EntryComplete { id: a0 });
    let err = store
        .journal_progress(a1, &StepDetail::Forget, 40)
        .await
        .unwrap_err();
    assert_eq!(rejection(err), Rejection::EntryComplete { id: a1 });
    let err = store
        .journal_progress(999, &StepDetail::Forget, 40)
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "journal entry",
            id: "999".into()
        }
    );
    let err = store
        .journal_result(999, &failed("x"), 40)
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "journal entry",
            id: "999".into()
        }
    );

    // No new intents for an unknown or finished apply; results of in-flight steps still land.
    let err = store
        .journal_intent(&intent("zz", "a", 0, StepKind::Cancel, 50))
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "apply",
            id: "zz".into()
        }
    );
    store
        .finish_apply("a1", ApplyOutcome::Interrupted, None, 60)
        .await
        .unwrap();
    let err = store
        .journal_intent(&intent("a1", "a", 2, StepKind::Forget, 61))
        .await
        .unwrap_err();
    assert_eq!(rejection(err), Rejection::ApplyFinished { id: "a1".into() });
    store
        .journal_result(a1_retry, &StepResult::Forgotten, 62)
        .await
        .unwrap();
    assert_eq!(store.journal("a1").await.unwrap().len(), 4);

    // seq covers the whole u32 range.
    store
        .insert_apply(&new_apply("a9", "p1", 70, &["a"]))
        .await
        .unwrap();
    store
        .journal_intent(&intent("a9", "a", u32::MAX, StepKind::Forget, 71))
        .await
        .unwrap();
    assert_eq!(store.journal("a9").await.unwrap()[0].seq, u32::MAX);
}

#[tokio::test]
async fn job_round_trip() {
    let store = Store::open_for_test().await;
    assert_eq!(store.job("orders").await.unwrap(), None);
    assert!(store.jobs().await.unwrap().is_empty());

    let orders = job_record("orders", 1);
    store.upsert_job(&orders).await.unwrap();
    store.upsert_job(&job_record("clicks", 2)).await.unwrap();
    assert_eq!(store.job("orders").await.unwrap(), Some(orders.clone()));

    let updated = JobRecord {
        current_job_id: None,
        spec_json: None,
        suspended: true,
        last_savepoint: Some("s3://sp/2".into()),
        last_savepoint_at_ms: Some(5),
        updated_at_ms: 6,
        deleted: true,
        ..orders
    };
    store.upsert_job(&updated).await.unwrap();
    assert_eq!(store.job("orders").await.unwrap(), Some(updated.clone()));
    let names: Vec<_> = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert_eq!(names, ["clicks", "orders"]);
    assert_eq!(store.jobs().await.unwrap()[1], updated);
}

#[tokio::test]
async fn savepoint_round_trip() {
    let store = seeded().await;
    let first = savepoint("a", "s3://sp/1", 100, Some("a1"));
    let second = SavepointRecord {
        kind: SavepointKind::Checkpoint,
        ..savepoint("a", "s3://chk/2", 200, None)
    };
    store.insert_savepoint(&first).await.unwrap();
    store.insert_savepoint(&second).await.unwrap();
    store
        .insert_savepoint(&savepoint("b", "s3://sp/b", 150, None))
        .await
        .unwrap();

    assert_eq!(
        store.savepoints("a").await.unwrap(),
        [second.clone(), first.clone()]
    );
    assert!(store.savepoints("nope").await.unwrap().is_empty());
    // The planner's one-query read of every lineage agrees with the per-job read.
    let by_job = store.savepoints_by_job().await.unwrap();
    assert_eq!(by_job.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(by_job["a"], store.savepoints("a").await.unwrap());
    assert_eq!(by_job["b"], store.savepoints("b").await.unwrap());

    // Idempotent for the same values, refused for different ones.
    store.insert_savepoint(&first).await.unwrap();
    let err = store
        .insert_savepoint(&SavepointRecord {
            at_ms: 101,
            ..first.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::SavepointConflict {
            path: "s3://sp/1".into()
        }
    );

    store
        .insert_apply(&new_apply("a2", "p1", 300, &["a"]))
        .await
        .unwrap();
    store
        .mark_savepoint_restored("s3://sp/1", "a1", "job-1", 110)
        .await
        .unwrap();
    store
        .mark_savepoint_restored("s3://sp/1", "a2", "job-2", 310)
        .await
        .unwrap();
    let err = store
        .mark_savepoint_restored("s3://nope", "a1", "j", 1)
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "savepoint",
            id: "s3://nope".into()
        }
    );
    let err = store
        .mark_savepoint_restored("s3://sp/1", "zz", "j", 1)
        .await
        .unwrap_err();
    assert_eq!(
        rejection(err),
        Rejection::NotFound {
            what: "apply",
            id: "zz".into()
        }
    );

    let got = store.savepoints("a").await.unwrap();
    assert_eq!(got[0], second);
    assert_eq!(
        got[1].restores,
        [
            SavepointRestore {
                apply_id: "a1".into(),
                job_id: "job-1".into(),
                at_ms: 110
            },
            SavepointRestore {
                apply_id: "a2".into(),
                job_id: "job-2".into(),
                at_ms: 310
            },
        ]
    );
    assert!(store.savepoints("b").await.unwrap()[0].restores.is_empty());

    // Restores given on insert are recorded; an unknown producing apply is refused.
    let with_restore = SavepointRecord {
        restores: vec![SavepointRestore {
            apply_id: "a2".into(),
            job_id: "j3".into(),
            at_ms: 9,
        }],
        ..savepoint("c", "s3://sp/c", 5, None)
    };
    store.insert_savepoint(&with_restore).await.unwrap();
    assert_eq!(store.savepoints("c").await.unwrap(), [with_restore]);
    let err = store
        .insert_savepoint(&savepoint("c", "s3://sp/d", 6, Some("zz")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                op: "insert_savepoint",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn history_filters_and_orders() {
    let store = Store::open_for_test().await;
    store
        .insert_plan(&plan("p1", 100, &["a", "b"]))
        .await
        .unwrap();
    store
        .insert_apply(&new_apply("x1", "p1", 200, &["a", "b"]))
        .await
        .unwrap();
    store
        .finish_apply("x1", ApplyOutcome::Failed, Some("boom"), 250)
        .await
        .unwrap();
    store.insert_plan(&plan("p2", 300, &["b"])).await.unwrap();
    store
        .insert_apply(&new_apply("x2", "p2", 300, &["b"]))
        .await
        .unwrap();
    store.insert_plan(&plan("p3", 400, &[])).await.unwrap();

    let all = store.history(None, 100).await.unwrap();
    let ids: Vec<_> = all.iter().map(|h| (h.kind, h.id.as_str())).collect();
    use HistoryKind::{Apply, Plan};
    assert_eq!(
        ids,
        [
            (Plan, "p3"),
            (Apply, "x2"),
            (Plan, "p2"),
            (Apply, "x1"),
            (Plan, "p1")
        ]
    );
    assert_eq!(
        all[3],
        HistoryEntry {
            kind: Apply,
            id: "x1".into(),
            at_ms: 200,
            revision: "rev-p1".into(),
            trigger: Trigger::from("webhook"),
            summary_or_outcome: "failed".into(),
            error: Some("boom".into()),
            plan_id: Some("p1".into()),
            finished_at_ms: Some(250),
        }
    );
    assert_eq!(all[1].summary_or_outcome, "unfinished");
    assert_eq!(
        all[4],
        HistoryEntry {
            kind: Plan,
            id: "p1".into(),
            at_ms: 100,
            revision: "rev-p1".into(),
            trigger: Trigger::Cli,
            summary_or_outcome: "summary of p1".into(),
            error: None,
            plan_id: None,
            finished_at_ms: None,
        }
    );

    let a: Vec<_> = store
        .history(Some("a"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(a, ["x1", "p1"]);
    let b: Vec<_> = store
        .history(Some("b"), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(b, ["x2", "p2"]);
    assert!(store.history(Some("zz"), 10).await.unwrap().is_empty());
    assert!(store.history(None, 0).await.unwrap().is_empty());
    assert_eq!(store.history(None, usize::MAX).await.unwrap().len(), 5);
}

#[tokio::test]
async fn audit_tables_are_append_only() {
    let store = seeded().await;
    let id = store
        .journal_intent(&intent("a1", "a", 0, StepKind::Submit, 1))
        .await
        .unwrap();
    store
        .insert_savepoint(&savepoint("a", "s3://sp/1", 1, Some("a1")))
        .await
        .unwrap();
    store
        .mark_savepoint_restored("s3://sp/1", "a1", "j", 2)
        .await
        .unwrap();
    let refused = [
        "UPDATE plans SET summary = 'x'".to_string(),
        "DELETE FROM plans".to_string(),
        "UPDATE plan_jobs SET job = 'x'".to_string(),
        "DELETE FROM plan_jobs".to_string(),
        "UPDATE applies SET revision = 'x'".to_string(),
        "DELETE FROM applies".to_string(),
        "DELETE FROM apply_jobs".to_string(),
        format!("UPDATE journal SET kind = 'cancel' WHERE id = {id}"),
        format!("UPDATE journal SET intent_json = '{{}}' WHERE id = {id}"),
        format!("DELETE FROM journal WHERE id = {id}"),
        "UPDATE savepoints SET at_ms = 5".to_string(),
        "DELETE FROM savepoints".to_string(),
        "UPDATE savepoint_restores SET job_id = 'y'".to_string(),
        "DELETE FROM savepoint_restores".to_string(),
    ];
    for sql in &refused {
        let result = sqlx::query(sql).execute(&store.pool).await;
        assert!(result.is_err(), "{sql} was allowed");
    }
    store
        .finish_apply("a1", ApplyOutcome::Succeeded, None, 5)
        .await
        .unwrap();
    let after_finish = sqlx::query("UPDATE applies SET error = 'late' WHERE id = 'a1'")
        .execute(&store.pool)
        .await;
    assert!(after_finish.is_err(), "a finished apply was changed");
    // Jobs are the mutable view.
    store.upsert_job(&job_record("a", 1)).await.unwrap();
    sqlx::query("DELETE FROM jobs")
        .execute(&store.pool)
        .await
        .unwrap();
}

// ---- real files ---------------------------------------------------------------------------------

#[tokio::test]
async fn file_store_is_created_durable_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/weir.db");
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), path);

    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous should be FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(busy, 10_000);
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    store.insert_plan(&plan("p1", 1, &["a"])).await.unwrap();
    store
        .insert_apply(&new_apply("a1", "p1", 2, &["a"]))
        .await
        .unwrap();
    let e0 = store
        .journal_intent(&intent("a1", "a", 0, StepKind::Cancel, 3))
        .await
        .unwrap();
    let e1 = store
        .journal_intent(&intent("a1", "a", 1, StepKind::Submit, 4))
        .await
        .unwrap();
    store
        .journal_result(
            e0,
            &StepResult::Cancelled {
                latest_checkpoint: None,
            },
            5,
        )
        .await
        .unwrap();
    store
        .journal_progress(e1, &detail(StepKind::Submit), 6)
        .await
        .unwrap();
    store.upsert_job(&job_record("a", 7)).await.unwrap();
    store
        .insert_savepoint(&savepoint("a", "s3://sp/1", 8, Some("a1")))
        .await
        .unwrap();
    let before = store.journal("a1").await.unwrap();
    store.close().await;

    let reopened = Store::open(&path).await.unwrap();
    assert_eq!(reopened.journal("a1").await.unwrap(), before);
    assert_eq!(before[1].status, JournalStatus::Pending);
    assert_eq!(before[1].detail(), Some(detail(StepKind::Submit)));
    assert_eq!(reopened.plan("p1").await.unwrap().unwrap().job_names, ["a"]);
    assert_eq!(reopened.unfinished_applies().await.unwrap().len(), 1);
    assert_eq!(reopened.job("a").await.unwrap(), Some(job_record("a", 7)));
    assert_eq!(reopened.savepoints("a").await.unwrap().len(), 1);
    assert_eq!(reopened.history(Some("a"), 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.db");
    let store = Store::open(&path).await.unwrap();
    sqlx::query("PRAGMA user_version = 999")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
    let err = Store::open(&path).await.unwrap_err();
    assert!(err.to_string().contains("weir.db"), "{err}");
    assert_eq!(
        rejection(err),
        Rejection::SchemaTooNew {
            found: 999,
            supported: SCHEMA_VERSION
        }
    );
}

#[tokio::test]
async fn unopenable_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = Store::open(&blocker.join("weir.db")).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("file/weir.db"), "{err}");
    assert_eq!(err.path(), blocker.join("weir.db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.db");
    // Both open (create, switch to WAL, migrate) a missing file at the same time.
    let (a, b) = tokio::join!(Store::open(&path), Store::open(&path));
    let (a, b) = (a.unwrap(), b.unwrap());

    async fn writer(store: Store, tag: &'static str, n: u32) -> Result<(), StoreError> {
        store
            .insert_plan(&plan(&format!("p-{tag}"), 0, &[tag]))
            .await?;
        store
            .insert_apply(&new_apply(
                &format!("a-{tag}"),
                &format!("p-{tag}"),
                0,
                &[tag],
            ))
            .await?;
        for i in 0..n {
            let at = i64::from(i);
            let id = store
                .journal_intent(&intent(&format!("a-{tag}"), tag, i, StepKind::Submit, at))
                .await?;
            store
                .journal_progress(id, &detail(StepKind::Submit), at)
                .await?;
            store.journal_result(id, &StepResult::Forgotten, at).await?;
            if i % 10 == 0 {
                store
                    .insert_plan(&plan(&format!("p-{tag}-{i}"), at, &[tag, "shared"]))
                    .await?;
                store.upsert_job(&job_record("shared", at)).await?;
                store.history(Some("shared"), 5).await?;
            }
        }
        store
            .finish_apply(&format!("a-{tag}"), ApplyOutcome::Succeeded, None, 1_000)
            .await
    }

    let n = 60;
    let (ra, rb) = tokio::join!(
        tokio::spawn(writer(a.clone(), "left", n)),
        tokio::spawn(writer(b.clone(), "right", n)),
    );
    ra.unwrap().unwrap();
    rb.unwrap().unwrap();
    for tag in ["left", "right"] {
        let journal = a.journal(&format!("a-{tag}")).await.unwrap();
        assert_eq!(journal.len(), n as usize);
        assert!(journal.iter().all(|e| e.status == JournalStatus::Succeeded));
    }
    assert_eq!(b.history(Some("shared"), 100).await.unwrap().len(), 12);
}

// ---- child processes ----------------------------------------------------------------------------

const CHILD_MODE: &str = "WEIR_STORE_TEST_CHILD";
const CHILD_PATH: &str = "WEIR_STORE_TEST_PATH";
const CHILD_TAG: &str = "WEIR_STORE_TEST_TAG";
const SIGKILL_ENTRIES: u32 = 50;
const WRITER_ENTRIES: u32 = 40;

/// Runs this test binary again, filtered to the one test `name`, with `envs` set.
fn spawn_self(name: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn describe(out: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A process killed with SIGKILL right after its last journal commit loses none of them.
#[cfg(unix)]
#[tokio::test]
async fn journal_survives_sigkill() {
    const NAME: &str = "store::tests::journal_survives_sigkill";
    if std::env::var(CHILD_MODE).as_deref() == Ok("sigkill") {
        let path = PathBuf::from(std::env::var(CHILD_PATH).unwrap());
        let store = Store::open(&path).await.unwrap();
        store.insert_plan(&plan("p1", 1, &["a"])).await.unwrap();
        store
            .insert_apply(&new_apply("a1", "p1", 2, &["a"]))
            .await
            .unwrap();
        for i in 0..SIGKILL_ENTRIES {
            store
                .journal_intent(&intent("a1", "a", i, StepKind::Submit, i64::from(i)))
                .await
                .unwrap();
        }
        // Die at once: no destructors, no pool close, no WAL checkpoint.
        let pid = std::process::id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        eprintln!("kill -9 did not kill the child: {killed:?}");
        std::process::abort();
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/weir.db");
    let child = spawn_self(
        NAME,
        &[
            (CHILD_MODE, "sigkill"),
            (CHILD_PATH, path.to_str().unwrap()),
        ],
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "child was not SIGKILLed: {}",
        describe(&out)
    );
    assert!(
        path.with_file_name("weir.db-wal").exists(),
        "the commits should be in the WAL"
    );

    let store = Store::open(&path).await.unwrap();
    let journal = store.journal("a1").await.unwrap();
    assert_eq!(journal.len(), SIGKILL_ENTRIES as usize);
    for (i, e) in journal.iter().enumerate() {
        assert_eq!(e.seq as usize, i);
        assert_eq!(e.status, JournalStatus::Pending);
    }
    let unfinished = store.unfinished_applies().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, "a1");
}

/// Two weir processes opening one missing file at once and writing interleaved.
#[tokio::test]
async fn two_processes_write_one_file() {
    const NAME: &str = "store::tests::two_processes_write_one_file";
    if std::env::var(CHILD_MODE).as_deref() == Ok("writer") {
        let path = PathBuf::from(std::env::var(CHILD_PATH).unwrap());
        let tag = std::env::var(CHILD_TAG).unwrap();
        let store = Store::open(&path).await.unwrap();
        let (p, a) = (format!("p-{tag}"), format!("a-{tag}"));
        store
            .insert_plan(&plan(&p, 1, &[&tag, "shared"]))
            .await
            .unwrap();
        store
            .insert_apply(&new_apply(&a, &p, 2, &[&tag]))
            .await
            .unwrap();
        for i in 0..WRITER_ENTRIES {
            let at = i64::from(i);
            let id = store
                .journal_intent(&intent(&a, &tag, i, StepKind::Submit, at))
                .await
                .unwrap();
            store
                .journal_result(id, &StepResult::Forgotten, at)
                .await
                .unwrap();
            store.upsert_job(&job_record("shared", at)).await.unwrap();
            store.history(Some("shared"), 5).await.unwrap();
        }
        store
            .finish_apply(&a, ApplyOutcome::Succeeded, None, 100)
            .await
            .unwrap();
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.db");
    let p = path.to_str().unwrap();
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|tag| {
            spawn_self(
                NAME,
                &[(CHILD_MODE, "writer"), (CHILD_PATH, p), (CHILD_TAG, tag)],
            )
        })
        .collect();
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "writer failed: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("1 passed"),
            "writer ran no test: {}",
            describe(&out)
        );
    }

    let store = Store::open(&path).await.unwrap();
    for tag in ["one", "two"] {
        let journal = store.journal(&format!("a-{tag}")).await.unwrap();
        assert_eq!(journal.len(), WRITER_ENTRIES as usize);
        assert!(journal.iter().all(|e| e.status == JournalStatus::Succeeded));
    }
    assert!(store.unfinished_applies().await.unwrap().is_empty());
    assert_eq!(store.history(Some("shared"), 10).await.unwrap().len(), 2);
}

/// Rows written by earlier versions of weir (the exact text their executor stored) read back as
/// the typed journal, and the typed journal writes exactly the same text.
#[tokio::test]
async fn journal_rows_of_earlier_versions_read_back_typed() {
    let store = seeded().await;
    let old = "3e00000000000000000000000000aaaa";
    let new = "3e00000000000000000000000000bbbb";
    // (seq, kind, status, intent, detail, result), as `serde_json::json!` wrote them.
    let rows = [
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
    ];
    for (seq, kind, status, intent, detail, result) in &rows {
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

/// Triggers are stored as the text earlier versions wrote and read back as the same value.
#[tokio::test]
async fn triggers_round_trip_as_their_stored_text() {
    let store = Store::open_for_test().await;
    let triggers = [
        Trigger::Cli,
        Trigger::PullRequest,
        Trigger::Serve(vec!["webhook:github".into(), "startup".into()]),
        Trigger::from("schedule"),
    ];
    for (i, trigger) in triggers.iter().enumerate() {
        let id = format!("p{i}");
        store
            .insert_plan(&PlanRecord {
                trigger: trigger.clone(),
                ..plan(&id, i as i64, &["a"])
            })
            .await
            .unwrap();
        let stored: String = sqlx::query_scalar("SELECT triggered_by FROM plans WHERE id = $1")
            .bind(&id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(stored, trigger.to_string());
        assert_eq!(&store.plan(&id).await.unwrap().unwrap().trigger, trigger);
    }
    let history = store.history(None, 10).await.unwrap();
    assert_eq!(
        history[1].trigger.to_string(),
        "serve:webhook:github,startup"
    );
}

// ---- PostgreSQL twins -------------------------------------------------------------------------

/// Every SQLite migration has a PostgreSQL twin with the same number (add both together).
#[test]
fn every_sqlite_migration_has_a_postgres_twin() {
    let sqlite: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    let postgres: Vec<i64> = PG_MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(
        sqlite, postgres,
        "src/store/migrations/NNNN_*.sql and src/store/migrations/postgres/NNNN_*.sql must \
         come in pairs"
    );
}

#[test]
fn a_postgres_url_is_shown_without_its_password() {
    let shown = location_display(Path::new("postgres://weir:hunter2@db:5432/weir"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db:5432/weir"), "{shown}");
    assert!(is_postgres_location(Path::new("postgresql://db/weir")));
    assert!(!is_postgres_location(Path::new("/var/lib/weir/state.db")));
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_without_being_echoed() {
    let err = Store::open(Path::new("postgres://weir:hunter2@127.0.0.1:1/weir"))
        .await
        .unwrap_err();
    let text = format!("{err:#} {:?}", std::error::Error::source(&err));
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("PGPASSWORD"), "{text}");
}

// ---- store copy -------------------------------------------------------------------------------

/// A table added by a migration must be copied by `weir store copy` (or listed as holding no
/// records).
#[tokio::test]
async fn store_copy_knows_every_table_of_the_schema() {
    let store = Store::open_in_memory().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    for table in tables {
        assert!(
            copy::TABLES.iter().any(|t| t.0 == table) || copy::NOT_COPIED.contains(&table.as_str()),
            "table {table} is not in store::copy::TABLES"
        );
    }
}

#[tokio::test]
async fn copy_preserves_every_record_and_refuses_a_non_empty_target() {
    let source = seeded().await;
    source.upsert_job(&job_record("a", 1)).await.unwrap();
    let target = Store::open_for_test().await;
    let report = source.copy_into(&target).await.unwrap();
    assert!(report.rows() > 0);
    assert_eq!(
        source.history(None, 100).await.unwrap(),
        target.history(None, 100).await.unwrap()
    );
    assert_eq!(source.jobs().await.unwrap(), target.jobs().await.unwrap());
    for apply in ["a1", "a2"] {
        assert_eq!(
            source.journal(apply).await.unwrap(),
            target.journal(apply).await.unwrap(),
            "{apply}"
        );
    }
    let again = source.copy_into(&target).await.unwrap_err();
    assert!(
        matches!(again.rejection(), Some(Rejection::Copy(_))),
        "{again:#}"
    );
}

#[tokio::test]
async fn latest_rollbacks_agree_with_the_per_job_read() {
    let store = seeded().await;
    store
        .insert_plan(&plan("p2", 2_000, &["a", "b"]))
        .await
        .unwrap();
    store
        .insert_apply(&new_apply("a2", "p2", 2_100, &["a", "b"]))
        .await
        .unwrap();
    let target = |apply: &str, job: &str, at: i64| crate::store::RollbackTarget {
        apply_id: apply.into(),
        job: job.into(),
        cluster: "local".into(),
        previous_job_id: "00000000000000000000000000000001".into(),
        previous_spec_json: "{}".into(),
        created_at_ms: at,
        rolled_back_fingerprint: None,
        rolled_back_parallelism: None,
        reason: None,
        rolled_back_at_ms: None,
    };
    // a: two applies, the newer one wins; b: a tie on the time, broken by the apply id.
    for t in [
        target("a1", "a", 1_100),
        target("a2", "a", 2_100),
        target("a1", "b", 1_500),
        target("a2", "b", 1_500),
    ] {
        store.insert_rollback_target(&t).await.unwrap();
    }
    store
        .mark_rolled_back("a2", "a", "f00d", 2, "failed", 3_000)
        .await
        .unwrap();
    let all = store.latest_rollbacks().await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
    for job in ["a", "b"] {
        assert_eq!(
            Some(&all[job]),
            store.latest_rollback(job).await.unwrap().as_ref()
        );
    }
    assert_eq!(all["a"].apply_id, "a2");
    assert_eq!(all["a"].reason.as_deref(), Some("failed"));
    assert_eq!(all["b"].apply_id, "a2");
}
