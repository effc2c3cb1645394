//! `lifecycle` of the daemon config: the timer of periodic savepoints, retention and job health.

use serde::Deserialize;

/// `lifecycle` of the daemon config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Seconds between rounds of the lifecycle timer: due periodic savepoints are taken, and
    /// retention and health run when their own interval has passed (default 5).
    #[serde(default = "default_lifecycle_tick")]
    pub tick_seconds: u64,
    /// Seconds between health reads of the running jobs (default 30).
    #[serde(default = "default_health_interval")]
    pub health_interval_seconds: u64,
    /// At most this many jobs are read per health round (three GETs each); the others are read
    /// in the next rounds (default 25).
    #[serde(default = "default_health_jobs")]
    pub health_jobs_per_round: usize,
    /// Seconds between retention rounds (`spec.savepoint.retain`; default 3600).
    #[serde(default = "default_retention_interval")]
    pub retention_interval_seconds: u64,
    /// Attempts of a periodic savepoint before `savepoint.failed` (default 3; exponential
    /// backoff between them starting at `savepointRetrySeconds`).
    #[serde(default = "default_savepoint_attempts")]
    pub savepoint_attempts: usize,
    #[serde(default = "default_savepoint_retry")]
    pub savepoint_retry_seconds: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            tick_seconds: default_lifecycle_tick(),
            health_interval_seconds: default_health_interval(),
            health_jobs_per_round: default_health_jobs(),
            retention_interval_seconds: default_retention_interval(),
            savepoint_attempts: default_savepoint_attempts(),
            savepoint_retry_seconds: default_savepoint_retry(),
        }
    }
}

fn default_lifecycle_tick() -> u64 {
    5
}
fn default_health_interval() -> u64 {
    30
}
fn default_health_jobs() -> usize {
    25
}
fn default_retention_interval() -> u64 {
    3600
}
fn default_savepoint_attempts() -> usize {
    3
}
fn default_savepoint_retry() -> u64 {
    10
}
