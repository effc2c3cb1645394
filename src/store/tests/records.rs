//! Each kind of record written and read back, and the audit tables refusing changes.

use super::*;

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

/// A completed journal entry (`a0` succeeded, `a1` failed) takes no more progress or result;
/// an unknown one is named as such.
async fn completed_entries_are_final(store: &Store, a0: i64, a1: i64) {
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
}

/// No new intents for an unknown or finished apply (this finishes `a1`); the result of an
/// in-flight step (`a1_retry`) still lands.
async fn intents_need_an_unfinished_apply(store: &Store, a1_retry: i64) {
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

    completed_entries_are_final(&store, a0, a1).await;

    intents_need_an_unfinished_apply(&store, a1_retry).await;

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
}

/// Restores given on insert are recorded; an unknown producing apply is refused.
#[tokio::test]
async fn savepoint_restores_given_on_insert_are_recorded() {
    let store = seeded().await;
    store
        .insert_apply(&new_apply("a2", "p1", 300, &["a"]))
        .await
        .unwrap();
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
