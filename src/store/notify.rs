//! Outbound notification deliveries (schema version 3, `migrations/0003_notify.sql`): one
//! append-only row per event and route, written by the notifier (`crate::notify`) when a delivery
//! ended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::spec::EventKind;

/// How the delivery of an event to a route ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The receiver answered `2xx`.
    Delivered,
    /// Every attempt failed, or the receiver answered with a status that is not retried.
    Failed,
    /// Not sent: an identical event went to this route less than a window ago.
    Suppressed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
        }
    }
}

/// The outcome of delivering one event to one route; what the store records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The event id (`webhook-id`), shared by every route the event went to.
    pub event_id: String,
    pub route: String,
    #[sqlx(try_from = "String")]
    pub event: EventKind,
    pub job: Option<String>,
    pub cluster: Option<String>,
    pub revision: Option<String>,
    /// The route's URL, redacted (`notify::scrub::url`).
    pub url: String,
    #[sqlx(rename = "outcome")]
    pub status: DeliveryStatus,
    /// HTTP requests made (0 when suppressed).
    #[sqlx(try_from = "i64")]
    pub attempts: u32,
    /// The last HTTP status (for email: SMTP reply code) received, if any.
    #[sqlx(try_from = "super::backend::SqlOptU16")]
    pub status_code: Option<u16>,
    /// Why the delivery failed (scrubbed of secrets); `None` unless `status` is `failed`.
    pub error: Option<String>,
    pub event_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// A stored event name this weir does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown event {0:?}")]
pub struct UnknownEvent(String);

impl TryFrom<String> for EventKind {
    type Error = UnknownEvent;

    fn try_from(name: String) -> Result<EventKind, UnknownEvent> {
        EventKind::from_name(&name).ok_or(UnknownEvent(name))
    }
}

const DELIVERY_SELECT: &str = "SELECT event_id, route, event, job, cluster, revision, url, outcome,
    attempts, status_code, error, event_at_ms, started_at_ms, finished_at_ms
    FROM notification_deliveries";

impl Store {
    /// Records how the delivery of an event to a route ended. Only `delivered` and `failed`
    /// deliveries are recorded (a `suppressed` one is refused), each (event, route) once.
    pub async fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        const OP: &str = "record_delivery";
        sqlx::query(
            "INSERT INTO notification_deliveries (event_id, route, event, job, cluster, revision,
                 url, outcome, attempts, status_code, error, event_at_ms, started_at_ms,
                 finished_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&d.event_id)
        .bind(&d.route)
        .bind(d.event.as_str())
        .bind(&d.job)
        .bind(&d.cluster)
        .bind(&d.revision)
        .bind(&d.url)
        .bind(d.status)
        .bind(i64::from(d.attempts))
        .bind(d.status_code.map(i64::from))
        .bind(&d.error)
        .bind(d.event_at_ms)
        .bind(d.started_at_ms)
        .bind(d.finished_at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    /// Recorded deliveries, newest first, at most `limit`; only those of `event_id` when given.
    pub async fn deliveries(
        &self,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query_as::<_, Delivery>(&format!(
            "{DELIVERY_SELECT} WHERE $1 IS NULL OR event_id = $1
             ORDER BY finished_at_ms DESC, id DESC LIMIT $2"
        ))
        .bind(event_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("deliveries"))
    }

    /// How many deliveries each route has had, by outcome (e.g. for metrics).
    pub async fn delivery_totals(
        &self,
    ) -> Result<BTreeMap<(String, DeliveryStatus), u64>, StoreError> {
        let rows = sqlx::query_as::<_, (String, DeliveryStatus, i64)>(
            "SELECT route, outcome, COUNT(*) AS n FROM notification_deliveries
             GROUP BY route, outcome",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("delivery_totals"))?;
        Ok(rows
            .into_iter()
            .map(|(route, status, n)| ((route, status), u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(event_id: &str, route: &str, status: DeliveryStatus, at: i64) -> Delivery {
        let failed = status == DeliveryStatus::Failed;
        Delivery {
            event_id: event_id.into(),
            route: route.into(),
            event: EventKind::ApplyFailed,
            job: Some("orders".into()),
            cluster: Some("prod".into()),
            revision: Some("abc".into()),
            url: "https://hooks.example.com/h".into(),
            status,
            attempts: if failed { 5 } else { 1 },
            status_code: Some(if failed { 503 } else { 204 }),
            error: failed.then(|| "HTTP 503 Service Unavailable".to_string()),
            event_at_ms: at,
            started_at_ms: at + 1,
            finished_at_ms: at + 2,
        }
    }

    #[tokio::test]
    async fn deliveries_round_trip_newest_first() {
        let store = Store::open_for_test().await;
        let a = delivery("msg_a", "ops", DeliveryStatus::Delivered, 1_000);
        let b = delivery("msg_a", "audit", DeliveryStatus::Failed, 1_000);
        let c = delivery("msg_b", "ops", DeliveryStatus::Delivered, 2_000);
        for d in [&a, &b, &c] {
            store.record_delivery(d).await.unwrap();
        }
        let mut bare = delivery("msg_c", "ops", DeliveryStatus::Failed, 3_000);
        bare.job = None;
        bare.cluster = None;
        bare.revision = None;
        bare.status_code = None;
        store.record_delivery(&bare).await.unwrap();

        let all = store.deliveries(None, 10).await.unwrap();
        assert_eq!(all, [bare.clone(), c.clone(), b.clone(), a.clone()]);
        assert_eq!(store.deliveries(None, 1).await.unwrap(), [bare]);
        assert_eq!(store.deliveries(Some("msg_a"), 10).await.unwrap(), [b, a]);
        assert!(store.deliveries(Some("nope"), 10).await.unwrap().is_empty());

        let totals = store.delivery_totals().await.unwrap();
        assert_eq!(totals[&("ops".to_string(), DeliveryStatus::Delivered)], 2);
        assert_eq!(totals[&("ops".to_string(), DeliveryStatus::Failed)], 1);
        assert_eq!(totals[&("audit".to_string(), DeliveryStatus::Failed)], 1);
        assert_eq!(totals.len(), 3);
    }

    #[tokio::test]
    async fn deliveries_are_append_only_and_checked() {
        let store = Store::open_for_test().await;
        let d = delivery("msg_a", "ops", DeliveryStatus::Delivered, 1_000);
        store.record_delivery(&d).await.unwrap();
        // Once per (event, route).
        assert!(store.record_delivery(&d).await.is_err());
        // Suppressed duplicates are not recorded.
        let suppressed = Delivery {
            status: DeliveryStatus::Suppressed,
            ..delivery("msg_s", "ops", DeliveryStatus::Delivered, 1_000)
        };
        assert!(store.record_delivery(&suppressed).await.is_err());
        // A delivered row has a 2xx status and no error; a failed one has an error.
        let mut bad = delivery("msg_x", "ops", DeliveryStatus::Delivered, 1_000);
        bad.status_code = Some(500);
        assert!(store.record_delivery(&bad).await.is_err());
        let mut bad = delivery("msg_y", "ops", DeliveryStatus::Failed, 1_000);
        bad.error = None;
        assert!(store.record_delivery(&bad).await.is_err());

        for sql in [
            "UPDATE notification_deliveries SET attempts = 2",
            "DELETE FROM notification_deliveries",
        ] {
            let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert_eq!(store.deliveries(None, 10).await.unwrap(), [d]);
    }
}
