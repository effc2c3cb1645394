//! Which savepoints of a job retention disposes (`spec.savepoint.retain`): a pure function of
//! what the store knows, so that every rule that keeps a savepoint is tested without Flink.
//!
//! A savepoint goes when it is beyond the `count` newest savepoints of the job or older than
//! `maxAge`, unless one of the [`Keep`] reasons holds. The reasons exist because losing the wrong
//! savepoint loses state for good (the Flink Kubernetes Operator lost them twice: FLINK-39439
//! dropped a history entry before its disposal succeeded, FLINK-38033 disposed an upgrade
//! savepoint).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::store::{SavepointKind, SavepointRecord};

pub use crate::desired::RetainPolicy;

/// What the store knows about one job, as retention needs it.
#[derive(Debug, Clone, Default)]
pub struct JobSavepoints {
    /// Every recorded savepoint and retained checkpoint of the job, any order.
    pub savepoints: Vec<SavepointRecord>,
    /// Paths Flink confirmed disposed (already forgotten).
    pub disposed: BTreeSet<String>,
    /// Paths a user pinned.
    pub pinned: BTreeSet<String>,
    /// The Flink job weir runs for this definition now.
    pub current_job_id: Option<String>,
    /// The job record's last savepoint (what the next upgrade or resume would start from).
    pub record_last_savepoint: Option<String>,
    /// Applies not finished yet (running, or interrupted and to be resumed).
    pub unfinished_applies: BTreeSet<String>,
    /// The job has an unfinished apply: nothing of it is disposed until that apply ends.
    pub apply_in_flight: bool,
}

/// Why a savepoint is kept although the policy would let it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// Within `count` and younger than `maxAge`.
    WithinPolicy,
    /// The newest completed savepoint of the job.
    Newest,
    /// The running job was started from it.
    RestoredFrom,
    /// The job record names it as the last savepoint (the next start would use it).
    LastRecorded,
    /// An unfinished apply took it, restored from it, or works on the job.
    UnfinishedApply,
    /// Taken by the newest apply that stopped the job: the state of the previous definition,
    /// which a rollback restores (FLINK-38033 disposed exactly this one).
    Rollback,
    /// Pinned by a user.
    Pinned,
    /// A retained checkpoint: Flink owns it; never disposed through the savepoint API.
    Checkpoint,
}

/// Why a savepoint goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expiry {
    /// Beyond the `count` newest.
    BeyondCount,
    /// Older than `maxAge`.
    TooOld,
}

/// The decision about one savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub path: String,
    pub at_ms: i64,
    /// Set when the policy lets the savepoint go.
    pub expired: Option<Expiry>,
    /// Every reason it stays; empty means it is disposed.
    pub keep: Vec<Keep>,
}

impl Decision {
    pub fn disposes(&self) -> bool {
        self.keep.is_empty()
    }
}

/// Decides, for every savepoint of a job that is not disposed yet, whether it stays; newest
/// first. `now_ms` is the time maxAge is measured from.
pub fn select(job: &JobSavepoints, policy: &RetainPolicy, now_ms: i64) -> Vec<Decision> {
    let mut live: Vec<&SavepointRecord> = job
        .savepoints
        .iter()
        .filter(|s| !job.disposed.contains(&s.path))
        .collect();
    live.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| b.path.cmp(&a.path)));
    let newest = live
        .iter()
        .find(|s| s.kind == SavepointKind::Savepoint)
        .map(|s| s.path.clone());
    let rollback = rollback_savepoint(&live, &job.unfinished_applies);
    let mut rank = 0u32;
    live.into_iter()
        .map(|s| {
            let expired = if s.kind == SavepointKind::Savepoint {
                rank += 1;
                expiry(policy, rank, now_ms - s.at_ms)
            } else {
                None
            };
            let mut keep = reasons(job, s, newest.as_deref(), rollback.as_deref());
            if expired.is_none() && s.kind == SavepointKind::Savepoint {
                keep.insert(0, Keep::WithinPolicy);
            }
            Decision {
                path: s.path.clone(),
                at_ms: s.at_ms,
                expired,
                keep,
            }
        })
        .collect()
}

fn expiry(policy: &RetainPolicy, rank: u32, age_ms: i64) -> Option<Expiry> {
    if policy.count.is_some_and(|count| rank > count) {
        Some(Expiry::BeyondCount)
    } else if policy.max_age_ms.is_some_and(|max| age_ms > max) {
        Some(Expiry::TooOld)
    } else {
        None
    }
}

/// The savepoint taken by the newest finished apply that took one: the previous definition's
/// state.
fn rollback_savepoint(
    newest_first: &[&SavepointRecord],
    unfinished: &BTreeSet<String>,
) -> Option<String> {
    newest_first
        .iter()
        .find(|s| {
            s.kind == SavepointKind::Savepoint
                && s.produced_by_apply
                    .as_ref()
                    .is_some_and(|a| !unfinished.contains(a))
        })
        .map(|s| s.path.clone())
}

fn reasons(
    job: &JobSavepoints,
    s: &SavepointRecord,
    newest: Option<&str>,
    rollback: Option<&str>,
) -> Vec<Keep> {
    let mut keep = Vec::new();
    if s.kind == SavepointKind::Checkpoint {
        keep.push(Keep::Checkpoint);
    }
    if newest == Some(s.path.as_str()) {
        keep.push(Keep::Newest);
    }
    let current = job.current_job_id.as_deref();
    if current.is_some_and(|id| s.restores.iter().any(|r| r.job_id == id)) {
        keep.push(Keep::RestoredFrom);
    }
    if job.record_last_savepoint.as_deref() == Some(s.path.as_str()) {
        keep.push(Keep::LastRecorded);
    }
    let touched_by_unfinished = s
        .produced_by_apply
        .as_ref()
        .is_some_and(|a| job.unfinished_applies.contains(a))
        || s.restores
            .iter()
            .any(|r| job.unfinished_applies.contains(&r.apply_id));
    if job.apply_in_flight || touched_by_unfinished {
        keep.push(Keep::UnfinishedApply);
    }
    if rollback == Some(s.path.as_str()) {
        keep.push(Keep::Rollback);
    }
    if job.pinned.contains(&s.path) {
        keep.push(Keep::Pinned);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SavepointRestore;

    const HOUR: i64 = 3_600_000;

    fn sp(path: &str, at_ms: i64) -> SavepointRecord {
        SavepointRecord {
            job: "orders".into(),
            path: path.into(),
            kind: SavepointKind::Savepoint,
            flink_job_id: "j0".into(),
            produced_by_apply: None,
            at_ms,
            restores: vec![],
        }
    }

    /// Five periodic savepoints an hour apart, `p1` the oldest.
    fn five() -> JobSavepoints {
        JobSavepoints {
            savepoints: (1..=5).map(|i| sp(&format!("p{i}"), i * HOUR)).collect(),
            current_job_id: Some("j0".into()),
            ..JobSavepoints::default()
        }
    }

    fn disposed(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.disposes())
            .map(|d| d.path.as_str())
            .collect()
    }

    #[test]
    fn count_keeps_the_newest_n() {
        let policy = RetainPolicy {
            count: Some(2),
            max_age_ms: None,
        };
        let d = select(&five(), &policy, 6 * HOUR);
        assert_eq!(d[0].path, "p5", "newest first");
        assert_eq!(disposed(&d), ["p3", "p2", "p1"]);
        assert_eq!(d[0].keep, [Keep::WithinPolicy, Keep::Newest]);
        assert_eq!(d[2].expired, Some(Expiry::BeyondCount));
    }

    #[test]
    fn max_age_disposes_the_old_ones() {
        let policy = RetainPolicy {
            count: None,
            max_age_ms: Some(2 * HOUR + 1),
        };
        let d = select(&five(), &policy, 6 * HOUR);
        assert_eq!(disposed(&d), ["p3", "p2", "p1"]);
        assert_eq!(d[4].expired, Some(Expiry::TooOld));
    }

    #[test]
    fn no_policy_disposes_nothing() {
        let d = select(&five(), &RetainPolicy::default(), 100 * HOUR);
        assert!(disposed(&d).is_empty());
    }

    #[test]
    fn the_newest_stays_even_when_everything_is_too_old() {
        let policy = RetainPolicy {
            count: None,
            max_age_ms: Some(1),
        };
        let d = select(&five(), &policy, 100 * HOUR);
        assert_eq!(disposed(&d), ["p4", "p3", "p2", "p1"]);
        assert_eq!(d[0].keep, [Keep::Newest]);
    }

    #[test]
    fn restored_from_pinned_and_last_recorded_stay() {
        let mut job = five();
        job.savepoints[0].restores.push(SavepointRestore {
            apply_id: "a1".into(),
            job_id: "j0".into(),
            at_ms: HOUR,
        });
        job.pinned.insert("p2".into());
        job.record_last_savepoint = Some("p3".into());
        let policy = RetainPolicy {
            count: Some(1),
            max_age_ms: None,
        };
        let d = select(&job, &policy, 6 * HOUR);
        assert_eq!(disposed(&d), ["p4"]);
        let keep = |p: &str| d.iter().find(|d| d.path == p).unwrap().keep.clone();
        assert_eq!(keep("p1"), [Keep::RestoredFrom]);
        assert_eq!(keep("p2"), [Keep::Pinned]);
        assert_eq!(keep("p3"), [Keep::LastRecorded]);
    }

    #[test]
    fn a_restore_by_an_older_job_does_not_protect() {
        let mut job = five();
        job.savepoints[0].restores.push(SavepointRestore {
            apply_id: "a1".into(),
            job_id: "an-old-job".into(),
            at_ms: HOUR,
        });
        let policy = RetainPolicy {
            count: Some(4),
            max_age_ms: None,
        };
        assert_eq!(disposed(&select(&job, &policy, 6 * HOUR)), ["p1"]);
    }

    #[test]
    fn the_upgrade_savepoint_of_the_newest_apply_stays_for_rollback() {
        let mut job = five();
        job.savepoints[1].produced_by_apply = Some("a-old".into());
        job.savepoints[2].produced_by_apply = Some("a-new".into());
        let policy = RetainPolicy {
            count: Some(1),
            max_age_ms: None,
        };
        let d = select(&job, &policy, 6 * HOUR);
        assert_eq!(disposed(&d), ["p4", "p2", "p1"]);
        assert_eq!(d[2].keep, [Keep::Rollback]);
    }

    #[test]
    fn an_unfinished_apply_keeps_everything_it_touches() {
        let mut job = five();
        job.savepoints[0].produced_by_apply = Some("running".into());
        job.savepoints[1].restores.push(SavepointRestore {
            apply_id: "running".into(),
            job_id: "j9".into(),
            at_ms: HOUR,
        });
        job.unfinished_applies.insert("running".into());
        let policy = RetainPolicy {
            count: Some(1),
            max_age_ms: None,
        };
        let d = select(&job, &policy, 6 * HOUR);
        // p1 was taken by the unfinished apply: not the rollback point, kept as in use.
        assert_eq!(disposed(&d), ["p4", "p3"]);

        job.apply_in_flight = true;
        assert!(disposed(&select(&job, &policy, 6 * HOUR)).is_empty());
    }

    #[test]
    fn checkpoints_are_never_disposed_and_do_not_count() {
        let mut job = five();
        let mut cp = sp("cp", 10 * HOUR);
        cp.kind = SavepointKind::Checkpoint;
        job.savepoints.push(cp);
        let policy = RetainPolicy {
            count: Some(1),
            max_age_ms: Some(1),
        };
        let d = select(&job, &policy, 20 * HOUR);
        assert_eq!(d[0].path, "cp");
        assert_eq!(d[0].keep, [Keep::Checkpoint]);
        assert_eq!(d[0].expired, None);
        // The newest *savepoint* stays although a checkpoint is newer.
        assert_eq!(d[1].keep, [Keep::Newest]);
        assert_eq!(disposed(&d), ["p4", "p3", "p2", "p1"]);
    }

    #[test]
    fn disposed_savepoints_are_forgotten() {
        let mut job = five();
        job.disposed.insert("p5".into());
        job.disposed.insert("p1".into());
        let policy = RetainPolicy {
            count: Some(2),
            max_age_ms: None,
        };
        let d = select(&job, &policy, 6 * HOUR);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].keep, [Keep::WithinPolicy, Keep::Newest]);
        assert_eq!(disposed(&d), ["p2"]);
    }
}
