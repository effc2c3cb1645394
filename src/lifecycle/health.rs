//! Job health: Healthy, Degraded or Failing, classified from a few cheap Flink reads
//! ([`HealthFacts`]) by a pure function, and the events a change of health raises.
//!
//! Thresholds follow StreamPark's "X failures in Y minutes": `checkpoint.failing` when at least
//! `checkpointFailures` checkpoints failed within `windowMinutes`.

use serde::{Deserialize, Serialize};

use crate::flink::{HealthFacts, JobState};
use crate::spec::{EventKind, HealthConfig};

/// How a running job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    /// Running, but checkpoints fail or lag, or the job restarted within the window.
    Degraded,
    /// Restarting or failing, or restarting again and again.
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Failing => "failing",
        }
    }

    /// The `/metrics` gauge value: 0 healthy, 1 degraded, 2 failing.
    pub fn gauge(self) -> i64 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Failing => 2,
        }
    }
}

/// The thresholds, resolved from `weir.yaml`'s `health` (every field has a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// X of "X failed checkpoints in Y minutes".
    pub checkpoint_failures: u32,
    /// Y, in milliseconds.
    pub window_ms: i64,
    /// Degraded when the latest completed checkpoint is older than this many intervals.
    pub stale_intervals: u32,
    /// Failing when the job restarted at least this often within the window.
    pub restarts_failing: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::from(&HealthConfig::default())
    }
}

impl From<&HealthConfig> for Thresholds {
    fn from(c: &HealthConfig) -> Self {
        Thresholds {
            checkpoint_failures: c.checkpoint_failures.unwrap_or(3).max(1),
            window_ms: i64::from(c.window_minutes.unwrap_or(10).max(1)) * 60_000,
            stale_intervals: c.stale_intervals.unwrap_or(3).max(1),
            restarts_failing: c.restarts_failing.unwrap_or(3).max(1),
        }
    }
}

/// A job's health with what it was classified from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub health: Health,
    /// Why it is not healthy, one phrase each.
    pub reasons: Vec<String>,
    /// Checkpoints that failed within the window.
    pub failed_checkpoints: u32,
    /// Restarts within the window.
    pub restarts: u32,
    /// The newest restart seen (for `job.restarting`).
    pub last_restart_ms: Option<i64>,
    /// Age of the latest completed checkpoint.
    pub latest_checkpoint_age_ms: Option<i64>,
}

impl HealthReport {
    /// Whether the checkpoint-failure threshold is reached.
    pub fn checkpoints_failing(&self, t: &Thresholds) -> bool {
        self.failed_checkpoints >= t.checkpoint_failures
    }
}

/// Classifies a job in `state` from `facts` at `now_ms`.
pub fn classify(
    state: &JobState,
    facts: &HealthFacts,
    t: &Thresholds,
    now_ms: i64,
) -> HealthReport {
    let since = now_ms - t.window_ms;
    let in_window = |times: &[i64]| {
        u32::try_from(times.iter().filter(|&&at| at >= since).count()).unwrap_or(u32::MAX)
    };
    let failed = in_window(&facts.failed_checkpoint_times_ms);
    let restarts = in_window(&facts.restart_times_ms);
    let age = facts.latest_completed_ms.map(|at| (now_ms - at).max(0));
    let minutes = t.window_ms / 60_000;
    let mut failing = Vec::new();
    let mut degraded = Vec::new();
    if matches!(state, JobState::Restarting | JobState::Failing) {
        failing.push(format!("the job is {}", state.as_str()));
    }
    if restarts >= t.restarts_failing {
        failing.push(format!("{restarts} restarts in the last {minutes} min"));
    } else if restarts > 0 {
        degraded.push(format!("{restarts} restart(s) in the last {minutes} min"));
    }
    if failed >= t.checkpoint_failures {
        degraded.push(format!(
            "{failed} checkpoints failed in the last {minutes} min"
        ));
    }
    if let (Some(age), Some(interval)) = (age, facts.checkpoint_interval_ms)
        && age > interval.saturating_mul(i64::from(t.stale_intervals))
    {
        degraded.push(format!(
            "the latest completed checkpoint is {}s old (interval {}s)",
            age / 1000,
            interval / 1000
        ));
    }
    let health = if !failing.is_empty() {
        Health::Failing
    } else if !degraded.is_empty() {
        Health::Degraded
    } else {
        Health::Healthy
    };
    failing.extend(degraded);
    HealthReport {
        health,
        reasons: failing,
        failed_checkpoints: failed,
        restarts,
        last_restart_ms: facts.restart_times_ms.iter().copied().max(),
        latest_checkpoint_age_ms: age,
    }
}

/// Failures Flink only counted: a checkpoint that fails before it starts (its directory cannot be
/// created, say) raises `counts.failed` but leaves no entry in the history. `samples` are earlier
/// (time, `counts.failed`) readings of the same Flink job, oldest first; the rise of the counter
/// since the oldest reading within the window beyond what the history shows is added to
/// `facts` as failures at `now_ms`.
pub fn add_counted_failures(
    facts: &mut HealthFacts,
    samples: &[(i64, u64)],
    window_ms: i64,
    now_ms: i64,
) {
    let since = now_ms - window_ms;
    let Some(&(_, base)) = samples.iter().find(|(at, _)| *at >= since) else {
        return;
    };
    let risen = facts.checkpoints_failed.saturating_sub(base);
    let listed = facts
        .failed_checkpoint_times_ms
        .iter()
        .filter(|&&at| at >= since)
        .count() as u64;
    for _ in listed..risen {
        facts.failed_checkpoint_times_ms.push(now_ms);
    }
}

/// The events a new health report raises after `previous` (the last report of the same Flink
/// job; `None` the first time it is seen). Each fires on the change only, so a job that stays
/// sick is reported once.
pub fn events(
    previous: Option<&HealthReport>,
    current: &HealthReport,
    t: &Thresholds,
) -> Vec<EventKind> {
    let mut out = Vec::new();
    let was_failing = previous.is_some_and(|p| p.checkpoints_failing(t));
    if current.checkpoints_failing(t) && !was_failing {
        out.push(EventKind::CheckpointFailing);
    }
    if was_failing && !current.checkpoints_failing(t) {
        out.push(EventKind::CheckpointRecovered);
    }
    let seen = previous.and_then(|p| p.last_restart_ms);
    let restarted = match (seen, current.last_restart_ms) {
        (_, None) => false,
        // The first look at a job: only a restart within the window is news.
        (None, Some(_)) => previous.is_some() || current.restarts > 0,
        (Some(before), Some(now)) => now > before,
    };
    if restarted {
        out.push(EventKind::JobRestarting);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const NOW: i64 = 1_000 * MIN;

    fn facts() -> HealthFacts {
        HealthFacts {
            checkpoints_failed: 0,
            failed_checkpoint_times_ms: vec![],
            latest_completed_ms: Some(NOW - 5_000),
            checkpoint_interval_ms: Some(10_000),
            restart_times_ms: vec![],
        }
    }

    fn t() -> Thresholds {
        Thresholds {
            checkpoint_failures: 3,
            window_ms: 10 * MIN,
            stale_intervals: 3,
            restarts_failing: 3,
        }
    }

    #[test]
    fn a_running_job_with_fresh_checkpoints_is_healthy() {
        let r = classify(&JobState::Running, &facts(), &t(), NOW);
        assert_eq!(r.health, Health::Healthy);
        assert!(r.reasons.is_empty());
    }

    #[test]
    fn x_failures_in_y_minutes_degrade() {
        let mut f = facts();
        // Two in the window and one older: below the threshold of three.
        f.failed_checkpoint_times_ms = vec![NOW - MIN, NOW - 2 * MIN, NOW - 11 * MIN];
        assert_eq!(
            classify(&JobState::Running, &f, &t(), NOW).health,
            Health::Healthy
        );
        f.failed_checkpoint_times_ms.push(NOW - 3 * MIN);
        let r = classify(&JobState::Running, &f, &t(), NOW);
        assert_eq!(r.health, Health::Degraded);
        assert_eq!(r.failed_checkpoints, 3);
        assert_eq!(r.reasons, ["3 checkpoints failed in the last 10 min"]);
    }

    #[test]
    fn a_stale_checkpoint_degrades() {
        let mut f = facts();
        f.latest_completed_ms = Some(NOW - 31_000);
        let r = classify(&JobState::Running, &f, &t(), NOW);
        assert_eq!(r.health, Health::Degraded);
        assert_eq!(r.latest_checkpoint_age_ms, Some(31_000));
        // Without checkpointing there is nothing to be stale.
        f.checkpoint_interval_ms = None;
        assert_eq!(
            classify(&JobState::Running, &f, &t(), NOW).health,
            Health::Healthy
        );
    }

    #[test]
    fn restarts_degrade_then_fail() {
        let mut f = facts();
        f.restart_times_ms = vec![NOW - MIN];
        assert_eq!(
            classify(&JobState::Running, &f, &t(), NOW).health,
            Health::Degraded
        );
        f.restart_times_ms = vec![NOW - MIN, NOW - 2 * MIN, NOW - 3 * MIN];
        assert_eq!(
            classify(&JobState::Running, &f, &t(), NOW).health,
            Health::Failing
        );
        // Old restarts are forgiven.
        f.restart_times_ms = vec![NOW - 20 * MIN];
        assert_eq!(
            classify(&JobState::Running, &f, &t(), NOW).health,
            Health::Healthy
        );
    }

    #[test]
    fn a_restarting_job_is_failing() {
        let r = classify(&JobState::Restarting, &facts(), &t(), NOW);
        assert_eq!(r.health, Health::Failing);
        assert_eq!(r.reasons, ["the job is RESTARTING"]);
    }

    #[test]
    fn thresholds_default_and_come_from_config() {
        assert_eq!(Thresholds::default(), t());
        let c = HealthConfig {
            checkpoint_failures: Some(1),
            window_minutes: Some(2),
            ..HealthConfig::default()
        };
        let got = Thresholds::from(&c);
        assert_eq!((got.checkpoint_failures, got.window_ms), (1, 2 * MIN));
    }

    #[test]
    fn events_fire_on_changes_only() {
        let healthy = classify(&JobState::Running, &facts(), &t(), NOW);
        let mut f = facts();
        f.failed_checkpoint_times_ms = vec![NOW - MIN; 3];
        let sick = classify(&JobState::Running, &f, &t(), NOW);
        assert!(events(None, &healthy, &t()).is_empty());
        assert_eq!(events(None, &sick, &t()), [EventKind::CheckpointFailing]);
        assert_eq!(
            events(Some(&healthy), &sick, &t()),
            [EventKind::CheckpointFailing]
        );
        assert!(events(Some(&sick), &sick, &t()).is_empty(), "deduplicated");
        assert_eq!(
            events(Some(&sick), &healthy, &t()),
            [EventKind::CheckpointRecovered]
        );
    }

    #[test]
    fn counted_failures_without_history_entries_count() {
        let mut f = facts();
        f.checkpoints_failed = 7;
        // Two readings: 3 failures 20 minutes ago (outside the window), 4 five minutes ago.
        let samples = [(NOW - 20 * MIN, 3), (NOW - 5 * MIN, 4)];
        add_counted_failures(&mut f, &samples, 10 * MIN, NOW);
        assert_eq!(f.failed_checkpoint_times_ms.len(), 3);
        let r = classify(&JobState::Running, &f, &t(), NOW);
        assert_eq!(r.failed_checkpoints, 3);
        // Failures the history lists are not counted twice.
        let mut g = facts();
        g.checkpoints_failed = 5;
        g.failed_checkpoint_times_ms = vec![NOW - MIN];
        add_counted_failures(&mut g, &[(NOW - MIN, 4)], 10 * MIN, NOW);
        assert_eq!(g.failed_checkpoint_times_ms.len(), 1);
    }

    #[test]
    fn a_new_restart_raises_job_restarting_once() {
        let mut f = facts();
        f.restart_times_ms = vec![NOW - 30 * MIN];
        let old = classify(&JobState::Running, &f, &t(), NOW);
        assert!(
            events(None, &old, &t()).is_empty(),
            "an old restart is no news"
        );
        f.restart_times_ms = vec![NOW - MIN, NOW - 30 * MIN];
        let new = classify(&JobState::Running, &f, &t(), NOW);
        assert_eq!(events(Some(&old), &new, &t()), [EventKind::JobRestarting]);
        assert!(events(Some(&new), &new, &t()).is_empty());
    }
}
