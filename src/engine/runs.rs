//! Outcomes of batch runs: a run recorded as running is settled from what the clusters report
//! (its Flink job FINISHED, FAILED or CANCELED, with Flink's end time), by `weir runs` and by
//! every daemon reconcile.

use crate::identity::JobId;
use crate::observe::{ClusterObservation, JobState, Observation};
use crate::store::runs::RunOutcome;
use crate::store::{Store, StoreError};

/// A run Flink no longer lists (its job store expired the job) is settled as unknown only after
/// this long: a job just submitted may not be listed yet.
const FORGOTTEN_AFTER_MS: i64 = 10 * 60 * 1000;

/// Settles the open runs whose Flink job `observation` shows ended. Returns how many it settled.
pub async fn settle_runs(
    store: &Store,
    observation: &Observation,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut settled = 0;
    for run in store.open_runs().await? {
        let Some(id) = run.job_id.as_deref() else {
            continue;
        };
        let Some(ClusterObservation::Reachable { jobs, .. }) =
            observation.clusters.get(&run.cluster)
        else {
            continue;
        };
        let parsed: Option<JobId> = id.parse().ok();
        let seen = jobs.iter().find(|j| Some(j.id) == parsed);
        let (outcome, ended) = match seen {
            Some(j) => match j.state {
                JobState::Finished => (RunOutcome::Finished, j.end_time_ms),
                JobState::Failed => (RunOutcome::Failed, j.end_time_ms),
                JobState::Canceled => (RunOutcome::Canceled, j.end_time_ms),
                _ => continue,
            },
            None if now_ms - run.started_at_ms > FORGOTTEN_AFTER_MS => (RunOutcome::Unknown, None),
            None => continue,
        };
        store.settle_run(id, outcome, ended).await?;
        settled += 1;
    }
    Ok(settled)
}
