//! Pre-flight results (schema version 6, `migrations/0006_preflight.sql`): the job graph a
//! cluster planned for a program, by (cluster, program fingerprint, Flink version), so that a
//! re-plan of unchanged programs asks the cluster nothing.

use super::{Store, StoreError};

/// The key of a cached pre-flight.
#[derive(Debug, Clone, Copy)]
pub struct PreflightKey<'a> {
    pub cluster: &'a str,
    pub fingerprint: &'a str,
    pub flink_version: &'a str,
}

impl Store {
    /// The job graph (JSON) of a successful pre-flight with this key, if one was recorded.
    pub async fn preflight_cached(
        &self,
        key: PreflightKey<'_>,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "preflight_cached";
        sqlx::query_scalar::<_, String>(
            "SELECT graph_json FROM preflight_cache
             WHERE cluster = $1 AND fingerprint = $2 AND flink_version = $3",
        )
        .bind(key.cluster)
        .bind(key.fingerprint)
        .bind(key.flink_version)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(OP))
    }

    /// Records a successful pre-flight (replacing an older record of the same key).
    pub async fn record_preflight(
        &self,
        key: PreflightKey<'_>,
        graph_json: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "record_preflight";
        sqlx::query(
            "INSERT INTO preflight_cache (cluster, fingerprint, flink_version, graph_json,
                 checked_at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (cluster, fingerprint, flink_version) DO UPDATE SET
                 graph_json = excluded.graph_json, checked_at_ms = excluded.checked_at_ms",
        )
        .bind(key.cluster)
        .bind(key.fingerprint)
        .bind(key.flink_version)
        .bind(graph_json)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_preflight_is_found_by_its_whole_key_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).await.unwrap();
        let key = PreflightKey {
            cluster: "local",
            fingerprint: "abc",
            flink_version: "2.3.0",
        };
        assert_eq!(store.preflight_cached(key).await.unwrap(), None);
        store
            .record_preflight(key, r#"{"nodes":[]}"#, 1)
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&path).await.unwrap();
        assert_eq!(
            store.preflight_cached(key).await.unwrap().as_deref(),
            Some(r#"{"nodes":[]}"#)
        );
        let other_version = PreflightKey {
            flink_version: "1.20.5",
            ..key
        };
        assert_eq!(store.preflight_cached(other_version).await.unwrap(), None);
    }
}
