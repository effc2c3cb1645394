//! Pre-flight results (schema version 6, `migrations/0006_preflight.sql`): the job graph a
//! cluster planned for a program, by (cluster, program fingerprint, Flink version), so that a
//! re-plan of unchanged programs asks the cluster nothing.

use std::collections::{BTreeMap, HashMap};

use super::{Store, StoreError};

/// Recorded pre-flights by fingerprint: (cluster, Flink version, job graph JSON) of each.
pub type PreflightsByFingerprint = HashMap<String, Vec<(String, String, String)>>;

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

    /// Every recorded pre-flight of these (cluster, fingerprint) pairs, of any Flink version: a
    /// plan's lookups in one query per cluster instead of one per program (each query is a round
    /// trip to the store's thread; 1,000 of them cost a 10,000-job plan ~20 ms). Each query
    /// names its cluster, so it reads the primary key's index, never the whole cache.
    pub async fn preflights_cached(
        &self,
        keys: &[(&str, &str)],
    ) -> Result<PreflightsByFingerprint, StoreError> {
        const OP: &str = "preflights_cached";
        let mut by_cluster: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (cluster, fingerprint) in keys {
            by_cluster.entry(cluster).or_default().push(fingerprint);
        }
        let sql = format!(
            "SELECT fingerprint, flink_version, graph_json FROM preflight_cache
             WHERE cluster = $1 AND fingerprint IN ({})",
            self.backend.json_strings(2)
        );
        let mut out = PreflightsByFingerprint::new();
        for (cluster, fingerprints) in by_cluster {
            let fingerprints = serde_json::to_string(&fingerprints).unwrap_or_default();
            let rows = sqlx::query_as::<_, (String, String, String)>(&sql)
                .bind(cluster)
                .bind(fingerprints)
                .fetch_all(&self.pool)
                .await
                .map_err(self.query(OP))?;
            for (fingerprint, version, graph) in rows {
                out.entry(fingerprint)
                    .or_default()
                    .push((cluster.to_string(), version, graph));
            }
        }
        Ok(out)
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

    #[tokio::test]
    async fn many_preflights_are_found_at_once_with_their_whole_keys() {
        // On PostgreSQL too (`WEIR_TEST_STORE=postgres`, as scripts/test.sh runs store tests).
        let store = Store::open_for_test().await;
        let fingerprints: Vec<String> = (0..1_203).map(|i| format!("fp{i}")).collect();
        for (i, fingerprint) in fingerprints.iter().enumerate() {
            let key = PreflightKey {
                cluster: "local",
                fingerprint,
                flink_version: "2.3.0",
            };
            store
                .record_preflight(key, &format!("{{\"n\":{i}}}"), 1)
                .await
                .unwrap();
        }
        let other_cluster = PreflightKey {
            cluster: "other",
            fingerprint: "fp7",
            flink_version: "1.20.5",
        };
        store
            .record_preflight(other_cluster, "{}", 1)
            .await
            .unwrap();

        let mut asked: Vec<(&str, &str)> =
            fingerprints.iter().map(|f| ("local", f.as_str())).collect();
        asked.push(("local", "never-recorded"));
        asked.push(("other", "fp7"));
        asked.push(("elsewhere", "fp8"));
        let found = store.preflights_cached(&asked).await.unwrap();
        assert_eq!(
            found.len(),
            1_203,
            "every recorded fingerprint, across the chunks"
        );
        assert_eq!(
            found["fp1202"],
            vec![("local".into(), "2.3.0".into(), r#"{"n":1202}"#.into())]
        );
        let mut fp7 = found["fp7"].clone();
        fp7.sort();
        assert_eq!(
            fp7,
            vec![
                ("local".into(), "2.3.0".into(), r#"{"n":7}"#.into()),
                ("other".into(), "1.20.5".into(), "{}".into()),
            ]
        );
        assert!(!found.contains_key("never-recorded"));
        // Only the clusters asked for: `other`'s record of fp7 is not one of `local`'s.
        let local_only = store.preflights_cached(&[("local", "fp7")]).await.unwrap();
        assert_eq!(local_only["fp7"].len(), 1);
        assert!(store.preflights_cached(&[]).await.unwrap().is_empty());
    }
}
