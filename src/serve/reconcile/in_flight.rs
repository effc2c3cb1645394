//! Applies in flight in this process: the per-job locks, and the store lock that keeps `weir
//! apply` out while any of them runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::{self, LockError};
use crate::plan::Plan;
use crate::store::Store;

#[derive(Default)]
pub struct InFlight {
    /// Job name → the apply holding it.
    pub jobs: BTreeMap<String, String>,
    applies: BTreeSet<String>,
    store_lock: Option<std::fs::File>,
}

impl InFlight {
    /// No apply of this process is running.
    pub fn idle(&self) -> bool {
        self.applies.is_empty()
    }

    /// Takes the jobs of `plan` for `apply_id` (and the store lock with the first apply).
    pub fn take(&mut self, store: &Store, plan: &Plan, apply_id: &str) -> Result<(), LockError> {
        if self.applies.is_empty() {
            self.store_lock = Some(engine::lock_store(store)?);
        }
        self.applies.insert(apply_id.to_string());
        for c in &plan.changes {
            self.jobs.insert(c.job.clone(), apply_id.to_string());
        }
        Ok(())
    }

    /// Frees `job` as soon as its own change of `apply_id` has ended.
    pub fn release_job(&mut self, job: &str, apply_id: &str) {
        if self.jobs.get(job).map(String::as_str) == Some(apply_id) {
            self.jobs.remove(job);
        }
    }
}

pub fn lock(in_flight: &Mutex<InFlight>) -> MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|e| e.into_inner())
}

/// Releases an apply's job locks (and the store lock with the last apply) however its task
/// ends, a panic included.
pub struct InFlightGuard {
    pub in_flight: Arc<Mutex<InFlight>>,
    pub apply_id: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut f = lock(&self.in_flight);
        let id = self.apply_id.clone();
        f.jobs.retain(|_, a| *a != id);
        f.applies.remove(&id);
        if f.applies.is_empty() {
            f.store_lock = None;
        }
    }
}
