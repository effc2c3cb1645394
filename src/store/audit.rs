//! The audit trail's context (schema version 2, `migrations/0002_audit.sql`): where each plan and
//! apply came from (commit, author, actor), how each change of an apply ended, and what happened to
//! an apply as a whole (e.g. resumed after its process died). Append-only like the rest of the
//! audit log; [`crate::audit`] assembles and renders the records.

use serde::{Deserialize, Serialize};

use super::{ApplyOutcome, Rejection, Store, StoreError};
use crate::desired::Revision;
use crate::git::RepoSource;

/// Whether an origin belongs to a plan or an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Plan,
    Apply,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Plan => "plan",
            RecordKind::Apply => "apply",
        }
    }
}

/// Where a plan or an apply came from (append-only, one per record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RecordOrigin {
    /// The plan or apply id.
    pub record_id: String,
    pub kind: RecordKind,
    /// Who was behind the trigger: the local user for `cli`, the token's name for `api`, ...
    pub actor: Option<String>,
    /// The Git commit the files came from, when they came from one.
    pub commit_sha: Option<String>,
    /// The files read differed from `commit_sha` (uncommitted changes).
    #[sqlx(try_from = "super::SqlBool")]
    pub dirty: bool,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub authored_at_ms: Option<i64>,
    /// The full commit message.
    pub message: Option<String>,
    pub recorded_at_ms: i64,
}

impl RecordOrigin {
    /// Where a plan or apply made from `source` at `revision` came from, with the commit's
    /// author and message when the files came from a Git commit.
    pub fn of(
        kind: RecordKind,
        id: &str,
        source: &RepoSource,
        revision: &Revision,
        actor: Option<String>,
        now_ms: i64,
    ) -> RecordOrigin {
        let info = revision
            .commit
            .as_deref()
            .and_then(|c| source.commit_info(c));
        RecordOrigin {
            record_id: id.to_string(),
            kind,
            actor,
            commit_sha: revision.commit.clone(),
            dirty: revision.dirty,
            author_name: info.as_ref().map(|i| i.author_name.clone()),
            author_email: info.as_ref().map(|i| i.author_email.clone()),
            authored_at_ms: info.as_ref().map(|i| i.authored_at_ms),
            message: info.map(|i| i.message),
            recorded_at_ms: now_ms,
        }
    }
}

/// The local user running the CLI, as the actor of its plans and applies.
pub fn cli_actor() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// Records [`RecordOrigin::of`] in the store. [`crate::apply::Applier::apply`] records an apply's
/// origin itself (the local user as the actor for `cli`) unless one was recorded before it
/// started, so a caller that knows a better actor (e.g. the API token's name) records it first.
pub async fn record_origin(
    store: &Store,
    kind: RecordKind,
    id: &str,
    source: &RepoSource,
    revision: &Revision,
    actor: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .insert_origin(&RecordOrigin::of(kind, id, source, revision, actor, now_ms))
        .await
}

/// How one change of an apply ended (append-only; written with the apply's outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ChangeResult {
    pub job: String,
    /// The plan's action, e.g. `redeploy`.
    pub action: String,
    #[sqlx(try_from = "super::SqlBool")]
    pub ok: bool,
    /// What happened, or the error.
    pub message: String,
    /// The Flink job id the change started, if it started one.
    pub new_job_id: Option<String>,
    /// The savepoint the change's stop produced, if any.
    pub savepoint: Option<String>,
}

/// Something that happened to an apply as a whole (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApplyEvent {
    pub apply_id: String,
    pub at_ms: i64,
    pub kind: ApplyEventKind,
    pub message: String,
}

/// What happened to an apply as a whole; stored as its snake-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyEventKind {
    /// The process running an apply died, and a later one finished it from the journal.
    Resumed,
    /// A change's new job did not become healthy and the previous definition was put back.
    RolledBack,
}

impl ApplyEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyEventKind::Resumed => "resumed",
            ApplyEventKind::RolledBack => "rolled_back",
        }
    }
}

/// Which plans and applies [`Store::history_filtered`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only records touching this job.
    pub job: Option<String>,
    /// Only records made (plans) or started (applies) at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
    /// Oldest first (log order) instead of newest first.
    pub oldest_first: bool,
}

const ORIGIN_SELECT: &str = "SELECT record_id, kind, actor, commit_sha, dirty, author_name,
    author_email, authored_at_ms, message, recorded_at_ms FROM record_origins";

impl Store {
    /// Records where a plan or apply came from. Refused when one is already recorded for the id.
    pub async fn insert_origin(&self, o: &RecordOrigin) -> Result<(), StoreError> {
        const OP: &str = "insert_origin";
        sqlx::query(
            "INSERT INTO record_origins (record_id, kind, actor, commit_sha, dirty, author_name,
                                         author_email, authored_at_ms, message, recorded_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&o.record_id)
        .bind(o.kind)
        .bind(&o.actor)
        .bind(&o.commit_sha)
        .bind(i64::from(o.dirty))
        .bind(&o.author_name)
        .bind(&o.author_email)
        .bind(o.authored_at_ms)
        .bind(&o.message)
        .bind(o.recorded_at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// Where the plan or apply `record_id` came from, if that was recorded.
    pub async fn origin(&self, record_id: &str) -> Result<Option<RecordOrigin>, StoreError> {
        const OP: &str = "origin";
        sqlx::query_as::<_, RecordOrigin>(&format!("{ORIGIN_SELECT} WHERE record_id = $1"))
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))
    }

    /// Records how an apply ended together with how each of its changes ended, in one
    /// transaction. Refused (writing nothing) when the apply is unknown or already finished.
    pub async fn finish_apply_with_changes(
        &self,
        id: &str,
        outcome: ApplyOutcome,
        error: Option<&str>,
        changes: &[ChangeResult],
        finished_at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_apply_with_changes";
        let mut tx = self.begin_immediate(OP).await?;
        let open = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT finished_at_ms FROM applies WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        match open {
            None => {
                let what = Rejection::NotFound {
                    what: "apply",
                    id: id.to_string(),
                };
                return Err(self.rejected(OP, what));
            }
            Some(Some(_)) => {
                return Err(self.rejected(OP, Rejection::ApplyFinished { id: id.to_string() }));
            }
            Some(None) => {}
        }
        for c in changes {
            sqlx::query(
                "INSERT INTO apply_changes (apply_id, job, action, ok, message, new_job_id,
                                            savepoint, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(&c.job)
            .bind(&c.action)
            .bind(i64::from(c.ok))
            .bind(crate::redact::text(&c.message))
            .bind(&c.new_job_id)
            .bind(&c.savepoint)
            .bind(finished_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(self.query(OP))?;
        }
        sqlx::query(
            "UPDATE applies SET finished_at_ms = $2, outcome = $3, error = $4
             WHERE id = $1 AND finished_at_ms IS NULL",
        )
        .bind(id)
        .bind(finished_at_ms)
        .bind(outcome)
        .bind(error.map(crate::redact::text))
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        tx.commit().await.map_err(self.query(OP))
    }

    /// How each change of an apply ended, by job (empty while it runs).
    pub async fn apply_changes(&self, apply_id: &str) -> Result<Vec<ChangeResult>, StoreError> {
        const OP: &str = "apply_changes";
        sqlx::query_as::<_, ChangeResult>(
            "SELECT job, action, ok, message, new_job_id, savepoint FROM apply_changes
             WHERE apply_id = $1 ORDER BY job",
        )
        .bind(apply_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))
    }

    /// Records something that happened to an apply as a whole. Its apply must exist.
    pub async fn insert_apply_event(&self, e: &ApplyEvent) -> Result<(), StoreError> {
        const OP: &str = "insert_apply_event";
        let done = sqlx::query(
            "INSERT INTO apply_events (apply_id, at_ms, kind, message)
             SELECT id, $2, $3, $4 FROM applies WHERE id = $1",
        )
        .bind(&e.apply_id)
        .bind(e.at_ms)
        .bind(e.kind)
        .bind(crate::redact::text(&e.message))
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let what = Rejection::NotFound {
            what: "apply",
            id: e.apply_id.clone(),
        };
        Err(self.rejected(OP, what))
    }

    /// The events of an apply, oldest first.
    pub async fn apply_events(&self, apply_id: &str) -> Result<Vec<ApplyEvent>, StoreError> {
        const OP: &str = "apply_events";
        sqlx::query_as::<_, ApplyEvent>(
            "SELECT apply_id, at_ms, kind, message FROM apply_events
             WHERE apply_id = $1 ORDER BY id",
        )
        .bind(apply_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryEntry, NewApply, PlanRecord};

    async fn store_with_apply() -> Store {
        let store = Store::open_for_test().await;
        store
            .insert_plan(&PlanRecord {
                id: "p1".into(),
                created_at_ms: 1_000,
                revision: "abc".into(),
                trigger: "cli".into(),
                summary: "Plan: 1 to create, 0 to redeploy, 0 to delete.".into(),
                plan_json: "{}".into(),
                job_names: vec!["a".into(), "b".into()],
            })
            .await
            .unwrap();
        store
            .insert_apply(&NewApply {
                id: "a1".into(),
                plan_id: "p1".into(),
                started_at_ms: 2_000,
                revision: "abc".into(),
                trigger: "cli".into(),
                job_names: vec!["a".into(), "b".into()],
            })
            .await
            .unwrap();
        store
    }

    fn origin(id: &str) -> RecordOrigin {
        RecordOrigin {
            record_id: id.into(),
            kind: RecordKind::Apply,
            actor: Some("alice".into()),
            commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            dirty: false,
            author_name: Some("Alice".into()),
            author_email: Some("alice@example.com".into()),
            authored_at_ms: Some(500),
            message: Some("change topic\n\nbecause".into()),
            recorded_at_ms: 1_999,
        }
    }

    fn result(job: &str, ok: bool) -> ChangeResult {
        ChangeResult {
            job: job.into(),
            action: "redeploy".into(),
            ok,
            message: if ok { "done" } else { "boom" }.into(),
            new_job_id: ok.then(|| "3e00000000000000000000000000abcd".into()),
            savepoint: Some(format!("file:/sp/{job}")),
        }
    }

    #[tokio::test]
    async fn origins_round_trip_and_are_written_once() {
        let store = store_with_apply().await;
        store.insert_origin(&origin("a1")).await.unwrap();
        assert_eq!(store.origin("a1").await.unwrap(), Some(origin("a1")));
        assert_eq!(store.origin("nope").await.unwrap(), None);
        assert!(store.insert_origin(&origin("a1")).await.is_err());
        let bare = RecordOrigin {
            kind: RecordKind::Plan,
            actor: None,
            commit_sha: None,
            author_name: None,
            author_email: None,
            authored_at_ms: None,
            message: None,
            ..origin("p1")
        };
        store.insert_origin(&bare).await.unwrap();
        assert_eq!(store.origin("p1").await.unwrap(), Some(bare));
    }

    #[tokio::test]
    async fn outcome_and_change_results_are_written_together_once() {
        let store = store_with_apply().await;
        assert!(store.apply_changes("a1").await.unwrap().is_empty());
        let changes = [result("a", true), result("b", false)];
        store
            .finish_apply_with_changes("a1", ApplyOutcome::Failed, Some("b: boom"), &changes, 3_000)
            .await
            .unwrap();
        assert_eq!(store.apply_changes("a1").await.unwrap(), changes.to_vec());
        let apply = store.apply("a1").await.unwrap().unwrap();
        assert_eq!(apply.outcome, Some(ApplyOutcome::Failed));
        assert_eq!(apply.error.as_deref(), Some("b: boom"));
        assert_eq!(apply.finished_at_ms, Some(3_000));

        let again = store
            .finish_apply_with_changes("a1", ApplyOutcome::Succeeded, None, &[], 4_000)
            .await
            .unwrap_err();
        assert_eq!(
            again.rejection(),
            Some(&Rejection::ApplyFinished { id: "a1".into() })
        );
        let unknown = store
            .finish_apply_with_changes("zz", ApplyOutcome::Succeeded, None, &changes, 4_000)
            .await
            .unwrap_err();
        assert!(matches!(
            unknown.rejection(),
            Some(Rejection::NotFound { what: "apply", .. })
        ));
        // Nothing was rewritten by the refused calls.
        assert_eq!(store.apply_changes("a1").await.unwrap(), changes.to_vec());
        assert_eq!(
            store.apply("a1").await.unwrap().unwrap().outcome,
            Some(ApplyOutcome::Failed)
        );
    }

    #[tokio::test]
    async fn events_belong_to_known_applies() {
        let store = store_with_apply().await;
        let event = ApplyEvent {
            apply_id: "a1".into(),
            at_ms: 2_500,
            kind: ApplyEventKind::Resumed,
            message: "resumed".into(),
        };
        store.insert_apply_event(&event).await.unwrap();
        assert_eq!(store.apply_events("a1").await.unwrap(), vec![event.clone()]);
        let err = store
            .insert_apply_event(&ApplyEvent {
                apply_id: "zz".into(),
                ..event
            })
            .await
            .unwrap_err();
        assert!(matches!(
            err.rejection(),
            Some(Rejection::NotFound { what: "apply", .. })
        ));
    }

    #[tokio::test]
    async fn the_new_tables_are_append_only() {
        let store = store_with_apply().await;
        store.insert_origin(&origin("a1")).await.unwrap();
        store
            .insert_apply_event(&ApplyEvent {
                apply_id: "a1".into(),
                at_ms: 2_500,
                kind: ApplyEventKind::Resumed,
                message: "resumed".into(),
            })
            .await
            .unwrap();
        store
            .finish_apply_with_changes(
                "a1",
                ApplyOutcome::Succeeded,
                None,
                &[result("a", true)],
                3_000,
            )
            .await
            .unwrap();
        for sql in [
            "UPDATE record_origins SET actor = 'mallory'",
            "DELETE FROM record_origins",
            "UPDATE apply_changes SET ok = 0",
            "DELETE FROM apply_changes",
            "UPDATE apply_events SET message = 'x'",
            "DELETE FROM apply_events",
            "INSERT INTO apply_changes (apply_id, job, action, ok, message, at_ms)
             VALUES ('a1', 'b', 'create', 1, 'late', 4000)",
        ] {
            let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
            assert!(
                err.to_string().contains("weir:"),
                "{sql}: refused by a trigger, got {err}"
            );
        }
        assert_eq!(store.origin("a1").await.unwrap(), Some(origin("a1")));
        assert_eq!(store.apply_changes("a1").await.unwrap().len(), 1);
        assert_eq!(store.apply_events("a1").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn history_filters_by_job_and_time_in_either_order() {
        let store = store_with_apply().await;
        store
            .insert_plan(&PlanRecord {
                id: "p2".into(),
                created_at_ms: 5_000,
                revision: "def".into(),
                trigger: "cli".into(),
                summary: "s".into(),
                plan_json: "{}".into(),
                job_names: vec!["b".into()],
            })
            .await
            .unwrap();
        let ids = |entries: Vec<HistoryEntry>| -> Vec<String> {
            entries.into_iter().map(|e| e.id).collect()
        };
        let all = store
            .history_filtered(&HistoryFilter::default())
            .await
            .unwrap();
        assert_eq!(ids(all), ["p2", "a1", "p1"]);
        let oldest = store
            .history_filtered(&HistoryFilter {
                oldest_first: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(oldest), ["p1", "a1", "p2"]);
        let since = store
            .history_filtered(&HistoryFilter {
                since_ms: Some(2_000),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(since), ["p2", "a1"]);
        let job_a = store
            .history_filtered(&HistoryFilter {
                job: Some("a".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(job_a), ["a1", "p1"]);
        let limited = store
            .history_filtered(&HistoryFilter {
                job: Some("b".into()),
                limit: Some(1),
                oldest_first: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(limited), ["p1"]);
        // The same entries as the unfiltered history.
        assert_eq!(
            store.history(None, 10).await.unwrap(),
            store
                .history_filtered(&HistoryFilter::default())
                .await
                .unwrap()
        );
        assert_eq!(store.applies_of_plan("p1").await.unwrap().len(), 1);
        assert!(store.applies_of_plan("p2").await.unwrap().is_empty());
    }
}
