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

/// A failed change of an apply still running: (job, why).
pub type ChangeFailure = (String, String);

/// What the applier calls as each change of `apply_id` ends. A job whose change succeeded is
/// free at once; one whose change failed stays held and is sent to `failures`, and its apply
/// task frees it only once its block is recorded. Otherwise a reconcile in that gap (a burst of
/// webhooks) would find it neither busy nor blocked and submit it again at the same revision.
pub fn change_done(
    in_flight: Arc<Mutex<InFlight>>,
    apply_id: String,
    failures: tokio::sync::mpsc::UnboundedSender<ChangeFailure>,
) -> crate::apply::ChangeDone {
    Arc::new(move |o: &crate::apply::ChangeOutcome| {
        if o.ok {
            lock(&in_flight).release_job(&o.job, &apply_id);
        } else {
            // If the task is gone, the apply's guard frees the job.
            let _ = failures.send((o.job.clone(), o.message.clone()));
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ChangeOutcome;
    use crate::plan::Action;

    fn outcome(job: &str, ok: bool) -> ChangeOutcome {
        ChangeOutcome {
            job: job.into(),
            action: Action::Redeploy,
            ok,
            message: if ok { "done".into() } else { "boom".into() },
            new_job_id: None,
            savepoint: None,
            unsettled: false,
            rolled_back: None,
        }
    }

    /// Issue 9 item 6: a job whose change failed is not free for the next reconcile before its
    /// apply task has recorded the block; a job whose change succeeded is free at once.
    #[test]
    fn a_failed_job_stays_held_until_its_block_is_recorded() {
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        {
            let mut f = lock(&in_flight);
            f.jobs.insert("a".into(), "apply-1".into());
            f.jobs.insert("b".into(), "apply-1".into());
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let done = change_done(in_flight.clone(), "apply-1".into(), tx);
        done(&outcome("a", false));
        done(&outcome("b", true));
        let held: Vec<String> = lock(&in_flight).jobs.keys().cloned().collect();
        assert_eq!(held, ["a"]);
        assert_eq!(
            rx.try_recv().unwrap(),
            ("a".to_string(), "boom".to_string())
        );
        assert!(rx.try_recv().is_err());
    }
}
