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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{job, observation, running};
    use crate::store::runs::{NewRun, RunTrigger};

    #[tokio::test]
    async fn open_runs_take_the_outcome_and_end_time_flink_reports() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        let d = job("nightly");
        let mut finished = running(&d, 1, JobState::Finished);
        finished.end_time_ms = Some(9_000);
        let failed = running(&d, 2, JobState::Failed);
        let still = running(&d, 3, JobState::Running);
        let gone = running(&d, 4, JobState::Running);
        for (j, at) in [
            (&finished, 1_000),
            (&failed, 1_000),
            (&still, 1_000),
            (&gone, 0),
        ] {
            let run = NewRun {
                job: "nightly",
                cluster: "local",
                trigger: RunTrigger::Apply,
                due_ms: None,
                at_ms: at,
            };
            store.record_run(run, &j.id.to_string()).await.unwrap();
        }
        let o = observation(vec![finished.clone(), failed.clone(), still.clone()]);
        // `gone` is not listed, but was submitted only just now: not settled yet.
        assert_eq!(settle_runs(&store, &o, 60_000).await.unwrap(), 2);
        // Long after, Flink still does not list it: its outcome is unknown.
        assert_eq!(
            settle_runs(&store, &o, FORGOTTEN_AFTER_MS + 1)
                .await
                .unwrap(),
            1
        );
        let runs = store.runs("nightly", 10).await.unwrap();
        let outcome = |id: &crate::identity::JobId| {
            let r = runs
                .iter()
                .find(|r| r.job_id.as_deref() == Some(&id.to_string()))
                .unwrap();
            (r.outcome, r.duration_ms)
        };
        assert_eq!(outcome(&finished.id), (RunOutcome::Finished, Some(8_000)));
        assert_eq!(outcome(&failed.id).0, RunOutcome::Failed);
        assert_eq!(outcome(&still.id), (RunOutcome::Running, None));
        assert_eq!(outcome(&gone.id), (RunOutcome::Unknown, None));
    }
}
