//! The savepoint lifecycle outside applies (schema version 9,
//! `migrations/0009_savepoint_lifecycle.sql`): periodic and manual savepoints, disposals by
//! retention, and pins.
//!
//! Every operation is written before Flink is asked and completed after, like the apply journal:
//! a crash leaves a pending row saying what was in flight, so a savepoint Flink wrote is never
//! forgotten and a disposal is never taken for done before Flink confirmed it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Rejection, SavepointRecord, Store, StoreError};

/// What a savepoint operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Take a savepoint of a running job (`POST /jobs/{id}/savepoints`).
    Trigger,
    /// Remove a savepoint through Flink (`POST /savepoint-disposal`).
    Dispose,
}

/// Why a savepoint operation ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationOrigin {
    /// The daemon's schedule (`spec.savepoint.periodic`).
    Periodic,
    /// A person: `weir savepoint JOB` or `weir savepoints prune`.
    Manual,
    /// The daemon applying `spec.savepoint.retain`.
    Retention,
}

impl OperationOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationOrigin::Periodic => "periodic",
            OperationOrigin::Manual => "manual",
            OperationOrigin::Retention => "retention",
        }
    }
}

/// How a savepoint operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationOutcome {
    Succeeded,
    Failed,
}

/// A savepoint operation about to be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSavepointOperation {
    pub kind: OperationKind,
    pub origin: OperationOrigin,
    pub job: String,
    pub cluster: String,
    pub flink_job_id: Option<String>,
    /// The savepoint to dispose (required for [`OperationKind::Dispose`]).
    pub path: Option<String>,
    pub actor: Option<String>,
    pub started_at_ms: i64,
}

/// A recorded savepoint operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SavepointOperation {
    pub id: i64,
    pub kind: OperationKind,
    pub origin: OperationOrigin,
    pub job: String,
    pub cluster: String,
    pub flink_job_id: Option<String>,
    pub path: Option<String>,
    pub request_id: Option<String>,
    pub actor: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<OperationOutcome>,
    pub error: Option<String>,
}

/// A pinned savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SavepointPin {
    pub path: String,
    pub job: String,
    pub actor: Option<String>,
    pub at_ms: i64,
}

const OPERATION_SELECT: &str = "SELECT id, kind, origin, job, cluster, flink_job_id, path,
    request_id, actor, started_at_ms, finished_at_ms, outcome, error FROM savepoint_operations";

impl Store {
    /// Records the intent of a savepoint operation; returns its id.
    pub async fn begin_savepoint_operation(
        &self,
        op: &NewSavepointOperation,
    ) -> Result<i64, StoreError> {
        const OP: &str = "begin_savepoint_operation";
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO savepoint_operations
                 (kind, origin, job, cluster, flink_job_id, path, actor, started_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(op.kind)
        .bind(op.origin)
        .bind(&op.job)
        .bind(&op.cluster)
        .bind(&op.flink_job_id)
        .bind(&op.path)
        .bind(&op.actor)
        .bind(op.started_at_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(id)
    }

    /// Records Flink's request id of a pending operation, so that a later process can poll it.
    pub async fn savepoint_operation_requested(
        &self,
        id: i64,
        request_id: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "savepoint_operation_requested";
        let done = sqlx::query(
            "UPDATE savepoint_operations SET request_id = $2
             WHERE id = $1 AND finished_at_ms IS NULL",
        )
        .bind(id)
        .bind(request_id)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        self.one_pending(OP, id, done.rows_affected())
    }

    /// Ends a pending operation. A disposal that succeeded makes its savepoint forgotten.
    pub async fn finish_savepoint_operation(
        &self,
        id: i64,
        outcome: OperationOutcome,
        error: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_savepoint_operation";
        let done = sqlx::query(
            "UPDATE savepoint_operations SET outcome = $2, error = $3, finished_at_ms = $4
             WHERE id = $1 AND finished_at_ms IS NULL",
        )
        .bind(id)
        .bind(outcome)
        // Flink's errors may quote configuration: scrubbed like every other stored message.
        .bind(error.map(crate::redact::text))
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        self.one_pending(OP, id, done.rows_affected())
    }

    /// Records the savepoint a trigger produced and ends the trigger as succeeded, in one
    /// transaction: the savepoint is never on disk, acknowledged and unrecorded.
    pub async fn complete_savepoint_trigger(
        &self,
        id: i64,
        savepoint: &SavepointRecord,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "complete_savepoint_trigger";
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::query(
            "INSERT INTO savepoints (path, job, kind, flink_job_id, produced_by_apply, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (path) DO NOTHING",
        )
        .bind(&savepoint.path)
        .bind(&savepoint.job)
        .bind(savepoint.kind)
        .bind(&savepoint.flink_job_id)
        .bind(&savepoint.produced_by_apply)
        .bind(savepoint.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        let done = sqlx::query(
            "UPDATE savepoint_operations SET path = $2, outcome = 'succeeded', finished_at_ms = $3
             WHERE id = $1 AND finished_at_ms IS NULL AND kind = 'trigger'",
        )
        .bind(id)
        .bind(&savepoint.path)
        .bind(at_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        self.one_pending(OP, id, done.rows_affected())?;
        tx.commit().await.map_err(self.query(OP))
    }

    fn one_pending(&self, op: &'static str, id: i64, rows: u64) -> Result<(), StoreError> {
        if rows == 1 {
            return Ok(());
        }
        Err(self.rejected(
            op,
            Rejection::NotFound {
                what: "pending savepoint operation",
                id: id.to_string(),
            },
        ))
    }

    /// Operations not finished yet (a crash interrupted them), oldest first.
    pub async fn pending_savepoint_operations(
        &self,
    ) -> Result<Vec<SavepointOperation>, StoreError> {
        sqlx::query_as::<_, SavepointOperation>(&format!(
            "{OPERATION_SELECT} WHERE finished_at_ms IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("pending_savepoint_operations"))
    }

    /// A job's savepoint operations, newest first.
    pub async fn savepoint_operations(
        &self,
        job: &str,
    ) -> Result<Vec<SavepointOperation>, StoreError> {
        sqlx::query_as::<_, SavepointOperation>(&format!(
            "{OPERATION_SELECT} WHERE job = $1 ORDER BY id DESC"
        ))
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("savepoint_operations"))
    }

    /// Paths of `job`'s savepoints that Flink confirmed disposed.
    pub async fn disposed_savepoints(&self, job: &str) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query_scalar::<_, String>(
            "SELECT path FROM savepoint_operations
             WHERE job = $1 AND kind = 'dispose' AND outcome = 'succeeded'",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("disposed_savepoints"))?;
        Ok(rows.into_iter().collect())
    }

    /// Pins a savepoint weir recorded for `job`, so retention never disposes it. Pinning again
    /// is a no-op.
    pub async fn pin_savepoint(
        &self,
        job: &str,
        path: &str,
        actor: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "pin_savepoint";
        let done = sqlx::query(
            "INSERT INTO savepoint_pins (path, job, actor, at_ms)
             SELECT $1, $2, $3, $4
             WHERE EXISTS (SELECT 1 FROM savepoints WHERE path = $1 AND job = $2)
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(path)
        .bind(job)
        .bind(actor)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 || self.is_pinned(path).await? {
            return Ok(());
        }
        Err(self.rejected(
            OP,
            Rejection::NotFound {
                what: "recorded savepoint of this job at",
                id: path.to_string(),
            },
        ))
    }

    /// Removes a pin; false when the savepoint was not pinned.
    pub async fn unpin_savepoint(&self, job: &str, path: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM savepoint_pins WHERE path = $1 AND job = $2")
            .bind(path)
            .bind(job)
            .execute(&self.pool)
            .await
            .map_err(self.query("unpin_savepoint"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn is_pinned(&self, path: &str) -> Result<bool, StoreError> {
        let found = sqlx::query_scalar::<_, i64>("SELECT 1 FROM savepoint_pins WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query("is_pinned"))?;
        Ok(found.is_some())
    }

    /// The pins of `job`'s savepoints.
    pub async fn savepoint_pins(&self, job: &str) -> Result<Vec<SavepointPin>, StoreError> {
        sqlx::query_as::<_, SavepointPin>(
            "SELECT path, job, actor, at_ms FROM savepoint_pins WHERE job = $1 ORDER BY at_ms",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("savepoint_pins"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SavepointKind;

    fn trigger(job: &str, at: i64) -> NewSavepointOperation {
        NewSavepointOperation {
            kind: OperationKind::Trigger,
            origin: OperationOrigin::Manual,
            job: job.into(),
            cluster: "c".into(),
            flink_job_id: Some("f".repeat(32)),
            path: None,
            actor: Some("me".into()),
            started_at_ms: at,
        }
    }

    fn savepoint(job: &str, path: &str, at: i64) -> SavepointRecord {
        SavepointRecord {
            job: job.into(),
            path: path.into(),
            kind: SavepointKind::Savepoint,
            flink_job_id: "f".repeat(32),
            produced_by_apply: None,
            at_ms: at,
            restores: vec![],
        }
    }

    #[tokio::test]
    async fn a_trigger_is_pending_until_its_savepoint_is_recorded() {
        let store = Store::open_in_memory().await.unwrap();
        let id = store
            .begin_savepoint_operation(&trigger("a", 1))
            .await
            .unwrap();
        store
            .savepoint_operation_requested(id, "req-1")
            .await
            .unwrap();
        let pending = store.pending_savepoint_operations().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].request_id.as_deref(), Some("req-1"));

        store
            .complete_savepoint_trigger(id, &savepoint("a", "file:/sp/1", 2), 3)
            .await
            .unwrap();
        assert!(
            store
                .pending_savepoint_operations()
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.savepoints("a").await.unwrap()[0].path, "file:/sp/1");
        let ops = store.savepoint_operations("a").await.unwrap();
        assert_eq!(ops[0].outcome, Some(OperationOutcome::Succeeded));
        assert_eq!(ops[0].path.as_deref(), Some("file:/sp/1"));
        // Finished once: a second completion is refused.
        assert!(
            store
                .finish_savepoint_operation(id, OperationOutcome::Failed, Some("x"), 4)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn only_a_succeeded_disposal_forgets_a_savepoint() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .insert_savepoint(&savepoint("a", "file:/sp/1", 1))
            .await
            .unwrap();
        let dispose = |at| NewSavepointOperation {
            kind: OperationKind::Dispose,
            origin: OperationOrigin::Retention,
            path: Some("file:/sp/1".into()),
            ..trigger("a", at)
        };
        let first = store.begin_savepoint_operation(&dispose(2)).await.unwrap();
        assert!(store.disposed_savepoints("a").await.unwrap().is_empty());
        store
            .finish_savepoint_operation(first, OperationOutcome::Failed, Some("gone"), 3)
            .await
            .unwrap();
        assert!(store.disposed_savepoints("a").await.unwrap().is_empty());
        let second = store.begin_savepoint_operation(&dispose(4)).await.unwrap();
        store
            .finish_savepoint_operation(second, OperationOutcome::Succeeded, None, 5)
            .await
            .unwrap();
        assert_eq!(
            store.disposed_savepoints("a").await.unwrap(),
            BTreeSet::from(["file:/sp/1".to_string()])
        );
    }

    #[tokio::test]
    async fn pins_need_a_recorded_savepoint_of_the_job() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .insert_savepoint(&savepoint("a", "file:/sp/1", 1))
            .await
            .unwrap();
        assert!(
            store
                .pin_savepoint("b", "file:/sp/1", None, 2)
                .await
                .is_err()
        );
        assert!(
            store
                .pin_savepoint("a", "file:/nope", None, 2)
                .await
                .is_err()
        );
        store
            .pin_savepoint("a", "file:/sp/1", None, 2)
            .await
            .unwrap();
        store
            .pin_savepoint("a", "file:/sp/1", None, 3)
            .await
            .unwrap();
        assert_eq!(store.savepoint_pins("a").await.unwrap().len(), 1);
        assert!(store.unpin_savepoint("a", "file:/sp/1").await.unwrap());
        assert!(!store.unpin_savepoint("a", "file:/sp/1").await.unwrap());
    }
}
