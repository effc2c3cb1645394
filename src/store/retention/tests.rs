use super::*;
use crate::store::audit::{ApplyEvent, ApplyEventKind, ChangeResult, RecordKind, RecordOrigin};
use crate::store::{
    ApplyOutcome, JobRecord, NewApply, NewJournalEntry, PlanRecord, SavepointKind, SavepointRecord,
    StepDetail, StepResult, Trigger,
};

const CUTOFF: i64 = 10_000;

async fn plan(store: &Store, id: &str, at: i64, jobs: &[&str]) {
    store
        .insert_plan(&PlanRecord {
            id: id.into(),
            created_at_ms: at,
            revision: format!("rev-{id}"),
            trigger: "cli".into(),
            summary: format!("summary of {id}"),
            plan_json: "{}".into(),
            job_names: jobs.iter().map(|j| j.to_string()).collect(),
        })
        .await
        .unwrap();
    store
        .insert_origin(&origin(id, RecordKind::Plan, at))
        .await
        .unwrap();
}

fn origin(id: &str, kind: RecordKind, at: i64) -> RecordOrigin {
    RecordOrigin {
        record_id: id.into(),
        kind,
        actor: Some("alice".into()),
        commit_sha: None,
        dirty: false,
        author_name: None,
        author_email: None,
        authored_at_ms: None,
        message: None,
        recorded_at_ms: at,
    }
}

fn savepoint(job: &str, path: &str, at: i64, by: Option<&str>) -> SavepointRecord {
    SavepointRecord {
        job: job.into(),
        path: path.into(),
        kind: SavepointKind::Savepoint,
        flink_job_id: "3e00000000000000000000000000abcd".into(),
        produced_by_apply: by.map(str::to_string),
        at_ms: at,
        restores: Vec::new(),
    }
}

/// An apply of `plan_id` on `job` from `start` with a journaled step; it takes the savepoints
/// `took` (path, at), restores from `restored` (path, at) and finishes at `finish` (if given)
/// with a change result and an event.
#[allow(clippy::too_many_arguments)]
async fn apply(
    store: &Store,
    id: &str,
    plan_id: &str,
    job: &str,
    start: i64,
    finish: Option<i64>,
    took: &[(&str, i64)],
    restored: &[(&str, i64)],
) {
    store
        .insert_origin(&origin(id, RecordKind::Apply, start))
        .await
        .unwrap();
    store
        .insert_apply(&NewApply {
            id: id.into(),
            plan_id: plan_id.into(),
            started_at_ms: start,
            revision: "rev".into(),
            trigger: "cli".into(),
            job_names: vec![job.into()],
        })
        .await
        .unwrap();
    let entry = store
        .journal_intent(&NewJournalEntry {
            apply_id: id.into(),
            job: job.into(),
            seq: 0,
            detail: StepDetail::Forget,
            at_ms: start,
        })
        .await
        .unwrap();
    for (path, at) in took {
        store
            .insert_savepoint(&savepoint(job, path, *at, Some(id)))
            .await
            .unwrap();
    }
    for (path, at) in restored {
        store
            .mark_savepoint_restored(path, id, "3e00000000000000000000000000beef", *at)
            .await
            .unwrap();
    }
    let Some(finish) = finish else {
        return;
    };
    store
        .journal_result(entry, &StepResult::Forgotten, finish)
        .await
        .unwrap();
    store
        .insert_apply_event(&ApplyEvent {
            apply_id: id.into(),
            at_ms: finish,
            kind: ApplyEventKind::Resumed,
            message: "m".into(),
        })
        .await
        .unwrap();
    store
        .finish_apply_with_changes(
            id,
            ApplyOutcome::Succeeded,
            None,
            &[ChangeResult {
                job: job.into(),
                action: "redeploy".into(),
                ok: true,
                message: "done".into(),
                new_job_id: None,
                savepoint: None,
            }],
            finish,
        )
        .await
        .unwrap();
}

async fn delivery(store: &Store, event_id: &str, finished: i64) {
    sqlx::query(
        "INSERT INTO notification_deliveries (event_id, route, event, url, outcome, attempts,
             status_code, event_at_ms, started_at_ms, finished_at_ms)
         VALUES ($1, 'ops', 'apply.succeeded', 'https://x/hook', 'delivered', 1, 200, $2, $2, $2)",
    )
    .bind(event_id)
    .bind(finished)
    .execute(&store.pool)
    .await
    .unwrap();
}

/// Job `a`: two old redeploys (the second took the newest savepoint) and an old create; job `b`:
/// an old unfinished apply; job `c`: a recent apply, an old plan never applied and an old plan
/// the caller keeps; job `d`: an old suspend whose savepoint a recent resume restored; job `e`: a
/// savepoint weir did not take, restored by an old apply.
async fn scenario() -> Store {
    let s = Store::open_for_test().await;
    redeploys_of_a_and_a_restore_of_e(&s).await;
    unfinished_b_and_plans_of_c(&s).await;
    suspend_and_resume_of_d(&s).await;
    delivery(&s, "ev-old", 5_000).await;
    delivery(&s, "ev-new", 12_000).await;
    s.upsert_job(&JobRecord {
        name: "a".into(),
        cluster: "prod".into(),
        current_job_id: None,
        spec_json: None,
        suspended: false,
        last_savepoint: Some("a/2".into()),
        last_savepoint_at_ms: Some(2_200),
        updated_at_ms: 2_500,
        deleted: false,
    })
    .await
    .unwrap();
    s
}

/// Plans `p1`–`p3` and their applies (jobs `a` and `e`).
async fn redeploys_of_a_and_a_restore_of_e(s: &Store) {
    plan(s, "p1", 1_000, &["a"]).await;
    apply(
        s,
        "a1",
        "p1",
        "a",
        1_100,
        Some(1_500),
        &[("a/1", 1_200)],
        &[("a/1", 1_300)],
    )
    .await;
    plan(s, "p2", 2_000, &["a"]).await;
    apply(
        s,
        "a2",
        "p2",
        "a",
        2_100,
        Some(2_500),
        &[("a/2", 2_200)],
        &[("a/2", 2_300)],
    )
    .await;
    plan(s, "p3", 3_000, &["a", "e"]).await;
    s.insert_savepoint(&savepoint("e", "e/init", 500, None))
        .await
        .unwrap();
    apply(
        s,
        "a3",
        "p3",
        "a",
        3_100,
        Some(3_500),
        &[],
        &[("e/init", 3_200)],
    )
    .await;
}

/// Plans `p4`–`p7` and their applies (jobs `b`, `c` and `e`).
async fn unfinished_b_and_plans_of_c(s: &Store) {
    plan(s, "p4", 4_000, &["b"]).await;
    apply(s, "a4", "p4", "b", 4_100, None, &[], &[]).await;
    plan(s, "p5", 20_000, &["c"]).await;
    apply(
        s,
        "a5",
        "p5",
        "e",
        20_100,
        Some(20_500),
        &[("e/2", 20_200)],
        &[],
    )
    .await;
    plan(s, "p6", 5_000, &["c"]).await;
    plan(s, "p7", 6_000, &["c"]).await;
}

/// Plans `p8`–`p10` and their applies (job `d`).
async fn suspend_and_resume_of_d(s: &Store) {
    plan(s, "p8", 7_000, &["d"]).await;
    apply(
        s,
        "a8",
        "p8",
        "d",
        7_100,
        Some(7_200),
        &[("d/1", 7_150)],
        &[],
    )
    .await;
    plan(s, "p9", 15_000, &["d"]).await;
    apply(
        s,
        "a9",
        "p9",
        "d",
        15_100,
        Some(15_500),
        &[],
        &[("d/1", 15_200)],
    )
    .await;
    plan(s, "p10", 16_000, &["d"]).await;
    apply(
        s,
        "a10",
        "p10",
        "d",
        16_100,
        Some(16_200),
        &[("d/2", 16_150)],
        &[("d/2", 16_180)],
    )
    .await;
}

fn request(dry_run: bool) -> PruneRequest {
    PruneRequest {
        cutoff_ms: CUTOFF,
        at_ms: 30_000,
        trigger: Trigger::Cli,
        actor: Some("alice".into()),
        keep_plans: vec!["p7".into()],
        dry_run,
    }
}

async fn ids(store: &Store, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!("SELECT id FROM {table} ORDER BY id"))
        .fetch_all(&store.pool)
        .await
        .unwrap()
}

async fn paths(store: &Store) -> Vec<String> {
    sqlx::query_scalar("SELECT path FROM savepoints ORDER BY path")
        .fetch_all(&store.pool)
        .await
        .unwrap()
}

fn expected_deleted() -> PruneCounts {
    PruneCounts {
        plans: 3,
        applies: 2,
        journal_entries: 2,
        apply_changes: 2,
        apply_events: 2,
        origins: 5,
        savepoints: 2,
        savepoint_restores: 2,
        deliveries: 1,
    }
}

#[tokio::test]
async fn prune_deletes_old_records_whole_and_keeps_what_recovery_and_planning_need() {
    let store = scenario().await;
    let report = store.prune(&request(false)).await.unwrap();
    assert_eq!(report.deleted, expected_deleted(), "{report:#?}");
    assert_eq!(
        report.kept,
        PruneKept {
            unfinished_applies: 1,
            newest_savepoints: 3,
            old_applies: 2,
            old_plans: 4,
        }
    );
    assert!(report.id.is_some());

    // Gone: the old redeploy a1 (its savepoint is not the newest), the old create a3 and the
    // savepoint weir did not take that only a3 restored, the plan never applied.
    assert_eq!(
        ids(&store, "applies").await,
        ["a10", "a2", "a4", "a5", "a8", "a9"]
    );
    assert_eq!(
        ids(&store, "plans").await,
        ["p10", "p2", "p4", "p5", "p7", "p8", "p9"]
    );
    assert_eq!(paths(&store).await, ["a/2", "d/1", "d/2", "e/2"]);
    for gone in ["a1", "a3", "p1", "p3", "p6"] {
        assert_eq!(store.origin(gone).await.unwrap(), None, "{gone}");
    }
    assert!(store.journal("a1").await.unwrap().is_empty());
    assert!(store.apply_changes("a1").await.unwrap().is_empty());
    assert!(store.apply_events("a1").await.unwrap().is_empty());
    let deliveries: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM notification_deliveries")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(deliveries, ["ev-new"]);

    // Kept whole: the unfinished apply with its pending journal and its plan.
    let a4 = store.apply("a4").await.unwrap().unwrap();
    assert_eq!(a4.outcome, None);
    assert_eq!(store.journal("a4").await.unwrap().len(), 1);
    assert!(store.plan("p4").await.unwrap().is_some());
    assert!(store.origin("a4").await.unwrap().is_some());
    // The newest savepoint of `a`, the apply that took and restored it, its plan.
    let a = store.savepoints("a").await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].produced_by_apply.as_deref(), Some("a2"));
    assert_eq!(a[0].restores.len(), 1);
    assert_eq!(store.journal("a2").await.unwrap().len(), 1);
    assert_eq!(store.apply_changes("a2").await.unwrap().len(), 1);
    // The old suspend's savepoint, which the recent resume restored, and the suspend itself.
    let d = store.savepoints("d").await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].path, "d/1");
    assert_eq!(d[1].produced_by_apply.as_deref(), Some("a8"));
    assert_eq!(d[1].restores[0].apply_id, "a9");
    // Job records are never pruned.
    assert_eq!(
        store
            .job("a")
            .await
            .unwrap()
            .unwrap()
            .last_savepoint
            .as_deref(),
        Some("a/2")
    );

    // The prune is recorded, and survives the next prune (which has nothing left to delete).
    let again = store.prune(&request(false)).await.unwrap();
    assert_eq!(again.deleted, PruneCounts::default());
    let log = store.prunes().await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].id, report.id.unwrap());
    assert_eq!(log[1].cutoff_ms, CUTOFF);
    assert_eq!(log[1].at_ms, 30_000);
    assert_eq!(log[1].trigger, Trigger::Cli);
    assert_eq!(log[1].actor.as_deref(), Some("alice"));
    assert_eq!(log[1].deleted, expected_deleted());
}

#[tokio::test]
async fn dry_run_counts_exactly_and_deletes_nothing() {
    let store = scenario().await;
    let before = (ids(&store, "applies").await, paths(&store).await);
    let dry = store.prune(&request(true)).await.unwrap();
    assert_eq!(dry.deleted, expected_deleted());
    assert_eq!(dry.id, None);
    assert_eq!((ids(&store, "applies").await, paths(&store).await), before);
    assert!(store.prunes().await.unwrap().is_empty());
    let real = store.prune(&request(false)).await.unwrap();
    assert_eq!(real.deleted, dry.deleted);
    assert_eq!(real.kept, dry.kept);
}

#[tokio::test]
async fn the_savepoint_a_job_record_names_keeps_its_apply() {
    let store = scenario().await;
    let mut a = store.job("a").await.unwrap().unwrap();
    a.last_savepoint = Some("a/1".into());
    store.upsert_job(&a).await.unwrap();
    let report = store.prune(&request(false)).await.unwrap();
    assert_eq!(report.deleted.applies, 1, "{report:#?}");
    assert_eq!(paths(&store).await, ["a/1", "a/2", "d/1", "d/2", "e/2"]);
    assert!(store.apply("a1").await.unwrap().is_some());
    assert!(store.plan("p1").await.unwrap().is_some());
}

#[tokio::test]
async fn outside_a_prune_the_audit_tables_stay_append_only() {
    let store = scenario().await;
    store.prune(&request(false)).await.unwrap();
    let guard: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prune_in_progress")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(guard, 0, "the guard row never outlives the prune");
    for sql in [
        "DELETE FROM plans WHERE id = 'p9'",
        "DELETE FROM plan_jobs",
        "DELETE FROM applies WHERE id = 'a9'",
        "DELETE FROM apply_jobs",
        "DELETE FROM journal",
        "DELETE FROM savepoints WHERE path = 'd/1'",
        "DELETE FROM savepoint_restores",
        "DELETE FROM record_origins",
        "DELETE FROM apply_changes",
        "DELETE FROM apply_events",
        "DELETE FROM notification_deliveries",
        "DELETE FROM prunes",
        "UPDATE prunes SET records = 0",
        "UPDATE plans SET summary = 'x'",
        "UPDATE savepoints SET at_ms = 1",
        "UPDATE applies SET outcome = 'failed' WHERE id = 'a9'",
    ] {
        let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
        assert!(err.to_string().contains("weir:"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn even_inside_a_prune_the_schema_refuses_what_recovery_and_planning_need() {
    let store = scenario().await;
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO prune_in_progress (one) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for sql in [
        "DELETE FROM journal WHERE apply_id = 'a4'",
        "DELETE FROM applies WHERE id = 'a4'",
        // The newest of job d, and the one job a's record names.
        "DELETE FROM savepoint_restores WHERE path = 'd/2'",
        "DELETE FROM savepoints WHERE path = 'd/2'",
        "DELETE FROM savepoints WHERE path = 'a/2'",
    ] {
        let mut sp = sqlx::Acquire::begin(&mut tx).await.unwrap();
        let result = sqlx::query(sql).execute(&mut *sp).await;
        sp.rollback().await.unwrap();
        if sql.starts_with("DELETE FROM savepoint_restores") {
            result.unwrap();
            continue;
        }
        let err = result.unwrap_err();
        assert!(err.to_string().contains("weir:"), "{sql}: {err}");
    }
    // With the guard, an older savepoint of a job can go (its restores first).
    sqlx::query("DELETE FROM savepoint_restores WHERE path = 'a/1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM savepoints WHERE path = 'a/1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(paths(&store).await.len(), 6);
}

#[tokio::test]
async fn a_store_of_schema_version_3_is_migrated_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v3.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&old)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        for (_, sql) in MIGRATIONS_UP_TO_3 {
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO plans VALUES ('p1', 1000, 'rev', 'cli', 's', '{}');
             INSERT INTO plan_jobs VALUES ('p1', 'a');
             INSERT INTO applies (id, plan_id, started_at_ms, revision, triggered_by)
                 VALUES ('a1', 'p1', 1100, 'rev', 'cli');
             INSERT INTO apply_jobs VALUES ('a1', 'a');
             INSERT INTO journal (apply_id, job, seq, kind, status, intent_json, detail_json,
                                  result_json, created_at_ms, finished_at_ms)
                 VALUES ('a1', 'a', 0, 'submit', 'succeeded', '{}', '{}', '{}', 1100, 1200);
             UPDATE applies SET finished_at_ms = 1500, outcome = 'succeeded';
             PRAGMA user_version = 3;",
        )
        .execute(&pool)
        .await
        .unwrap();
        let refused = sqlx::query("DELETE FROM journal").execute(&pool).await;
        assert!(refused.is_err(), "version 3 refuses every delete");
        pool.close().await;
    }
    let store = Store::open(&old).await.unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version, crate::store::SCHEMA_VERSION);
    assert!(
        sqlx::query("DELETE FROM journal")
            .execute(&store.pool)
            .await
            .is_err()
    );
    let report = store.prune(&request(false)).await.unwrap();
    assert_eq!((report.deleted.plans, report.deleted.applies), (1, 1));
    assert_eq!(report.deleted.journal_entries, 1);
    assert!(store.apply("a1").await.unwrap().is_none());
}

const MIGRATIONS_UP_TO_3: [(i64, &str); 3] = [
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_audit.sql")),
    (3, include_str!("../migrations/0003_notify.sql")),
];

#[test]
fn selection_follows_savepoints_across_applies() {
    // A suspend (old) took s1; a resume (old) restored it; a redeploy (old) took s2, the newest.
    let g = Graph {
        applies: vec![
            ("suspend".into(), "p1".into(), Some(10)),
            ("resume".into(), "p2".into(), Some(20)),
            ("redeploy".into(), "p3".into(), Some(30)),
        ],
        plans: vec![("p1".into(), 5), ("p2".into(), 15), ("p3".into(), 25)],
        savepoints: vec![
            ("s1".into(), Some("suspend".into()), 10),
            ("s2".into(), Some("redeploy".into()), 30),
        ],
        restores: vec![
            ("s1".into(), "resume".into()),
            ("s2".into(), "redeploy".into()),
        ],
        protected: ["s2".to_string()].into(),
    };
    let s = select(&g, 100, &[]);
    assert_eq!(s.applies, ["resume", "suspend"].map(String::from).into());
    assert_eq!(s.plans, ["p1", "p2"].map(String::from).into());
    assert_eq!(s.savepoints, ["s1"].map(String::from).into());
    // Were the resume recent, it would keep the suspend's savepoint and so the suspend.
    let s = select(&g, 15, &[]);
    assert!(s.applies.is_empty(), "{s:?}");
    assert!(s.savepoints.is_empty(), "{s:?}");
    assert!(
        s.plans.is_empty(),
        "the plans of kept applies are kept: {s:?}"
    );
}

/// A prune of a larger file store (`WEIR_PRUNE_TEST_N` applies, default 2,000, of 50 jobs, each
/// with its plan, origins, 3 journal entries, a change result, a savepoint and its restore; half
/// of them older than the cutoff) deletes exactly what its dry run counts.
#[tokio::test]
async fn prune_of_a_large_store_deletes_what_its_dry_run_counts() {
    let n: i64 = std::env::var("WEIR_PRUNE_TEST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("big.db")).await.unwrap();
    let seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)";
    let mut tx = store.pool.begin().await.unwrap();
    for insert in [
        "INSERT INTO plans SELECT 'p' || i, i * 1000, 'rev', 'cli', 's', '{}' FROM n",
        "INSERT INTO plan_jobs SELECT 'p' || i, 'j' || (i % 50) FROM n",
        "INSERT INTO applies (id, plan_id, started_at_ms, revision, triggered_by)
             SELECT 'a' || i, 'p' || i, i * 1000 + 1, 'rev', 'cli' FROM n",
        "INSERT INTO apply_jobs SELECT 'a' || i, 'j' || (i % 50) FROM n",
        "INSERT INTO journal (apply_id, job, seq, kind, status, intent_json, detail_json,
                              result_json, created_at_ms, finished_at_ms)
             SELECT 'a' || i, 'j' || (i % 50), s.value, 'submit', 'succeeded', '{}', '{}', '{}',
                    i * 1000 + 2, i * 1000 + 3
             FROM n, json_each('[0, 1, 2]') s",
        "INSERT INTO apply_changes SELECT 'a' || i, 'j' || (i % 50), 'redeploy', 1, 'ok', NULL,
             NULL, i * 1000 + 4 FROM n",
        "INSERT INTO savepoints SELECT 'sp' || i, 'j' || (i % 50), 'savepoint', 'f', 'a' || i,
             i * 1000 + 2 FROM n",
        "INSERT INTO savepoint_restores (path, apply_id, job_id, at_ms)
             SELECT 'sp' || i, 'a' || i, 'f', i * 1000 + 3 FROM n",
        "INSERT INTO record_origins (record_id, kind, dirty, recorded_at_ms)
             SELECT 'p' || i, 'plan', 0, i * 1000 FROM n
             UNION ALL SELECT 'a' || i, 'apply', 0, i * 1000 FROM n",
        "UPDATE applies SET finished_at_ms = started_at_ms + 500, outcome = 'succeeded'",
    ] {
        sqlx::query(&format!("{seq} {insert}"))
            .bind(n)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let request = PruneRequest {
        cutoff_ms: n / 2 * 1000,
        ..request(false)
    };
    let dry = store
        .prune(&PruneRequest {
            dry_run: true,
            ..request.clone()
        })
        .await
        .unwrap();
    let report = store.prune(&request).await.unwrap();
    assert_eq!(report.deleted, dry.deleted);
    assert_eq!(report.deleted.applies as i64, n / 2 - 1);
    assert_eq!(report.deleted.journal_entries as i64, 3 * (n / 2 - 1));

    let all = crate::audit::load_history(
        &store,
        &crate::audit::history_filter(None, None, None, true),
    )
    .await
    .unwrap();
    // Every plan and apply of the newer half is left (and nothing of the older half but what
    // the kept records reference).
    assert!(
        all.len() as i64 >= 2 * (n / 2),
        "{} records left",
        all.len()
    );
}
