//! Outbound notification deliveries (schema version 3, `migrations/0003_notify.sql`): one
//! append-only row per event and route, written by [`crate::notify::Notifier`] when a delivery
//! ended. The record types live in [`crate::notify`].

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError};
use crate::notify::{Delivery, DeliveryStatus};
use crate::spec::EventKind;

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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .bind(&d.event_id)
        .bind(&d.route)
        .bind(d.event.as_str())
        .bind(&d.job)
        .bind(&d.cluster)
        .bind(&d.revision)
        .bind(&d.url)
        .bind(d.status.as_str())
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
        const OP: &str = "deliveries";
        let rows = sqlx::query(&format!(
            "{DELIVERY_SELECT} WHERE ?1 IS NULL OR event_id = ?1
             ORDER BY finished_at_ms DESC, id DESC LIMIT ?2"
        ))
        .bind(event_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        rows.iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()
            .map_err(self.query(OP))
    }

    /// How many deliveries each route has had, by outcome (e.g. for metrics).
    pub async fn delivery_totals(
        &self,
    ) -> Result<BTreeMap<(String, DeliveryStatus), u64>, StoreError> {
        const OP: &str = "delivery_totals";
        let rows = sqlx::query(
            "SELECT route, outcome, COUNT(*) AS n FROM notification_deliveries
             GROUP BY route, outcome",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        rows.iter()
            .map(|row| {
                let route: String = row.try_get("route")?;
                let status = status_from_text(&row.try_get::<String, _>("outcome")?)?;
                let n: i64 = row.try_get("n")?;
                Ok(((route, status), u64::try_from(n).unwrap_or(0)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.query(OP))
    }
}

fn status_from_text(s: &str) -> Result<DeliveryStatus, sqlx::Error> {
    match s {
        "delivered" => Ok(DeliveryStatus::Delivered),
        "failed" => Ok(DeliveryStatus::Failed),
        other => Err(sqlx::Error::Decode(
            format!("unknown delivery outcome {other:?}").into(),
        )),
    }
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery, sqlx::Error> {
    let event: String = row.try_get("event")?;
    let event = EventKind::from_name(&event)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown event {event:?}").into()))?;
    let attempts: i64 = row.try_get("attempts")?;
    let status_code: Option<i64> = row.try_get("status_code")?;
    Ok(Delivery {
        event_id: row.try_get("event_id")?,
        route: row.try_get("route")?,
        event,
        job: row.try_get("job")?,
        cluster: row.try_get("cluster")?,
        revision: row.try_get("revision")?,
        url: row.try_get("url")?,
        status: status_from_text(&row.try_get::<String, _>("outcome")?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        status_code: status_code.and_then(|c| u16::try_from(c).ok()),
        error: row.try_get("error")?,
        event_at_ms: row.try_get("event_at_ms")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
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
        let store = Store::open_in_memory().await.unwrap();
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
        let store = Store::open_in_memory().await.unwrap();
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
