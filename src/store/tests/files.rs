//! Stores on real files: durability, reopening, concurrent handles and processes, `kill -9`.

use super::*;

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
    const NAME: &str = "store::tests::files::journal_survives_sigkill";
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
    const NAME: &str = "store::tests::files::two_processes_write_one_file";
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
