//! The daemon's working memory (schema version 4, `migrations/0004_daemon.sql`): small JSON
//! documents by key, overwritten in place. The audit tables record what happened; this records
//! what `weir serve` must not forget when it restarts (self-heal attempts, failed revisions).

use super::{Store, StoreError};

impl Store {
    /// Stores `value_json` (a JSON document) under `key`, replacing what was there.
    pub async fn put_daemon_state(
        &self,
        key: &str,
        value_json: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_daemon_state";
        sqlx::query(
            "INSERT INTO daemon_state (key, value_json, updated_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json,
                 updated_at_ms = excluded.updated_at_ms",
        )
        .bind(key)
        // Remembered failures quote Flink's errors: scrubbed (the result stays JSON).
        .bind(crate::redact::text(value_json))
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// The JSON document stored under `key`, if any.
    pub async fn daemon_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        const OP: &str = "daemon_state";
        sqlx::query_scalar::<_, String>("SELECT value_json FROM daemon_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn daemon_state_is_replaced_in_place_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.daemon_state("reconcile").await.unwrap(), None);
        store
            .put_daemon_state("reconcile", r#"{"a":1}"#, 1)
            .await
            .unwrap();
        store
            .put_daemon_state("reconcile", r#"{"a":2}"#, 2)
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&path).await.unwrap();
        assert_eq!(
            store.daemon_state("reconcile").await.unwrap().as_deref(),
            Some(r#"{"a":2}"#)
        );
        // Not JSON: refused by the table's check.
        assert!(store.put_daemon_state("x", "{oops", 3).await.is_err());
    }
}
