//! The leader lease of several `weir serve` on one PostgreSQL store, its fencing, and the
//! trigger inbox followers fill for the leader (schema: `migrations/postgres/ha.sql`).
//!
//! Times of the lease are the database's (`clock_timestamp()`), so daemons with skewed clocks
//! agree on when a lease ends.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Store, StoreError};

/// The value of [`Store::set_fence`]'s atomic meaning "no fencing" (the CLI).
pub(super) const UNFENCED: i64 = i64::MIN;

/// Who holds the lease, as the database says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub address: String,
    pub epoch: i64,
    /// Whether the lease has ended (nobody leads until another daemon takes it).
    pub expired: bool,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Every later write to the journal, the applies, the savepoints and the job records is
    /// refused by the database unless `epoch` holds the unexpired lease (`Some(-1)`: refuse
    /// all, a follower; `None`: no fencing, for the CLI).
    pub fn set_fence(&self, epoch: Option<i64>) {
        self.fence
            .store(epoch.unwrap_or(UNFENCED), Ordering::SeqCst);
    }

    /// Takes the lease when nobody holds an unexpired one; returns the new epoch.
    pub async fn try_acquire_lease(
        &self,
        holder: &str,
        address: &str,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO leader_lease (one, holder, address, epoch, expires_at)
             VALUES (1, $1, $2, 1, clock_timestamp() + make_interval(secs => $3))
             ON CONFLICT (one) DO UPDATE SET
                 holder = excluded.holder,
                 address = excluded.address,
                 epoch = leader_lease.epoch + 1,
                 expires_at = excluded.expires_at
             WHERE leader_lease.expires_at < clock_timestamp()
             RETURNING epoch",
        )
        .bind(holder)
        .bind(address)
        .bind(secs(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query("try_acquire_lease"))
    }

    /// Extends the lease of `epoch` by `lease` from now; false when it is no longer held (it
    /// ended, or another daemon took it).
    pub async fn renew_lease(
        &self,
        holder: &str,
        epoch: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE leader_lease SET expires_at = clock_timestamp() + make_interval(secs => $3)
             WHERE epoch = $1 AND holder = $2 AND expires_at > clock_timestamp()",
        )
        .bind(epoch)
        .bind(holder)
        .bind(secs(lease))
        .execute(&self.pool)
        .await
        .map_err(self.query("renew_lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the lease of `epoch` now (a clean shutdown hands over without waiting).
    pub async fn release_lease(&self, holder: &str, epoch: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE leader_lease SET expires_at = clock_timestamp() - interval '1 second'
             WHERE epoch = $1 AND holder = $2",
        )
        .bind(epoch)
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(self.query("release_lease"))?;
        Ok(())
    }

    /// The lease as recorded, if any daemon ever took it.
    pub async fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError> {
        let row = sqlx::query_as::<_, (String, String, i64, i64)>(
            "SELECT holder, address, epoch,
                    CASE WHEN expires_at < clock_timestamp() THEN 1 ELSE 0 END
             FROM leader_lease",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query("lease_holder"))?;
        Ok(row.map(|(holder, address, epoch, expired)| LeaseHolder {
            holder,
            address,
            epoch,
            expired: expired != 0,
        }))
    }

    /// Records a trigger (e.g. `webhook:github`) received by a follower, for the leader.
    pub async fn record_pending_trigger(
        &self,
        trigger: &str,
        payload: Option<&str>,
        received_by: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_triggers (trigger, payload, received_by, received_at_ms)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(trigger)
        .bind(payload)
        .bind(received_by)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query("record_pending_trigger"))?;
        Ok(())
    }

    /// Takes (once) every trigger followers recorded, if `epoch` still holds the lease.
    pub async fn take_pending_triggers(
        &self,
        epoch: i64,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        sqlx::query_as::<_, (String, Option<String>)>(
            "UPDATE pending_triggers SET taken_epoch = $1
             WHERE taken_epoch IS NULL
               AND EXISTS (SELECT 1 FROM leader_lease
                           WHERE epoch = $1 AND expires_at > clock_timestamp())
             RETURNING trigger, payload",
        )
        .bind(epoch)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("take_pending_triggers"))
    }
}
