use std::collections::BTreeMap;

use super::*;
use crate::desired::Schedule;
use crate::observe::JobState;
use crate::plan::fixtures::{desired, job, observation, running};
use crate::spec::JobMode;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn hourly(name: &str) -> DesiredJob {
    let mut d = job(name);
    d.mode = JobMode::Batch;
    d.schedule = Some(Schedule {
        cron: "0 * * * *".into(),
        time_zone: None,
    });
    d
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    (store, dir)
}

async fn decide_at(
    scheduler: &mut Scheduler,
    store: &Store,
    d: &DesiredState,
    o: &Observation,
    now_ms: i64,
) -> Vec<Change> {
    let busy = BTreeMap::new();
    let facts = Facts {
        desired: d,
        observation: o,
        busy: &busy,
        now_ms,
    };
    scheduler.due_runs(store, &facts).await.unwrap()
}

#[tokio::test]
async fn a_schedule_fires_at_its_fire_times_only() {
    let (store, _dir) = store().await;
    let d = desired(vec![hourly("nightly")], false);
    let o = observation(vec![]);
    let mut s = Scheduler::default();
    // First seen at 00:10: nothing is due, the timer is set for 01:00.
    assert!(
        decide_at(&mut s, &store, &d, &o, T0 + 10 * MIN)
            .await
            .is_empty()
    );
    assert_eq!(s.until_next_ms(T0 + 10 * MIN), Some(50 * 60_000));
    // At 01:00:02 the run is due.
    let runs = decide_at(&mut s, &store, &d, &o, T0 + HOUR + 2_000).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.action, Action::Run);
    assert_eq!(
        run.scheduled_run,
        Some(ScheduledRun {
            trigger: "schedule".into(),
            due_ms: T0 + HOUR
        })
    );
    assert_eq!(
        run.steps[0],
        Step::Submit {
            parallelism: 2,
            restore: Restore::None
        }
    );
    assert!(run.desired.is_some());
    // Started once: the same fire time is not due again, even before the run is recorded
    // (e.g. its submission failed).
    assert!(
        decide_at(&mut s, &store, &d, &o, T0 + HOUR + 5_000)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_fire_time_is_skipped_while_the_previous_run_still_runs() {
    let (store, _dir) = store().await;
    let job = hourly("nightly");
    let d = desired(vec![job.clone()], false);
    let previous = running(&job, 1, JobState::Running);
    let o = observation(vec![previous.clone()]);
    let mut s = Scheduler::default();
    assert!(
        decide_at(&mut s, &store, &d, &o, T0 + 10 * MIN)
            .await
            .is_empty()
    );
    assert!(
        decide_at(&mut s, &store, &d, &o, T0 + HOUR + 1_000)
            .await
            .is_empty()
    );
    let runs = store.runs("nightly", 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, crate::store::runs::RunOutcome::Skipped);
    assert_eq!(runs[0].due_ms, Some(T0 + HOUR));
    let why = runs[0].detail.clone().unwrap();
    assert!(why.contains(&previous.id.to_string()), "{why}");
    // The skip is the decision for that fire time: the next one fires as usual once the
    // previous run is done.
    let done = observation(vec![running(&job, 1, JobState::Finished)]);
    assert!(
        decide_at(&mut s, &store, &d, &done, T0 + HOUR + 30 * MIN)
            .await
            .is_empty()
    );
    assert_eq!(
        decide_at(&mut s, &store, &d, &done, T0 + 2 * HOUR + 1_000)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_run_missed_while_the_daemon_was_down_is_started_once_at_start_up() {
    let (store, _dir) = store().await;
    let d = desired(vec![hourly("nightly")], false);
    let o = observation(vec![]);
    // The last scheduled run was for 00:00; the daemon then stopped until 05:30.
    let ran = NewRun {
        job: "nightly",
        cluster: "local",
        trigger: RunTrigger::Schedule,
        due_ms: Some(T0),
        at_ms: T0 + 1_000,
    };
    store
        .record_run(ran, "00000000000000000000000000000001")
        .await
        .unwrap();
    let mut restarted = Scheduler::default();
    let runs = decide_at(&mut restarted, &store, &d, &o, T0 + 5 * HOUR + 30 * MIN).await;
    assert_eq!(runs.len(), 1, "one catch-up for five missed fire times");
    assert_eq!(
        runs[0].scheduled_run,
        Some(ScheduledRun {
            trigger: "catch-up".into(),
            due_ms: T0 + 5 * HOUR
        })
    );
    assert!(runs[0].reason.contains("catch-up"), "{}", runs[0].reason);
    assert!(
        decide_at(&mut restarted, &store, &d, &o, T0 + 5 * HOUR + 31 * MIN)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn suspended_and_unscheduled_jobs_are_not_run() {
    let (store, _dir) = store().await;
    let mut suspended = hourly("a");
    suspended.state = crate::spec::RunState::Suspended;
    let mut unscheduled = hourly("b");
    unscheduled.schedule = None;
    let d = desired(vec![suspended, unscheduled], false);
    let o = observation(vec![]);
    let mut s = Scheduler::default();
    assert!(decide_at(&mut s, &store, &d, &o, T0).await.is_empty());
    assert!(
        decide_at(&mut s, &store, &d, &o, T0 + 2 * HOUR)
            .await
            .is_empty()
    );
    assert_eq!(s.until_next_ms(T0), None);
}
