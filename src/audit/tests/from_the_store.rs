//! Records written to a real store come back as one story, with their origins.

use super::*;

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
