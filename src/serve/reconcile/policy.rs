//! The reconcile policy, pure: which changes go ahead now, which wait for a person, which are
//! held back (self-heal off, backing off or given up; a revision that failed; a job whose file is
//! invalid). No IO and no clock: time comes in as `now` (epoch ms), state as [`Memory`] parts.

use std::collections::{BTreeMap, BTreeSet};

use super::memory::{Blocked, Heal};
use super::status::{BlockKind, BlockedInfo, Outcome, Reconciled};
use crate::desired::DesiredState;
use crate::engine::History;
use crate::observe::Observation;
use crate::plan::{Action, Plan, PreflightStatus};
use crate::serve::config::{SyncConfig, SyncPolicy};
use crate::store::Trigger;

/// Job → why it needs a recover that self-heal does not do (yet).
pub type Drift = BTreeMap<String, String>;

/// Drops what must not be applied: recovers that self-heal does not allow (reported as drift),
/// and anything touching a job whose file is invalid (and every delete while a file is invalid).
/// Forgets the self-heal counts of jobs healthy for longer than the backoff cap.
pub fn admit(
    plan: &mut Plan,
    invalid_jobs: &BTreeMap<String, String>,
    sync: &SyncConfig,
    heal: &mut BTreeMap<String, Heal>,
    now: i64,
) -> Drift {
    let mut drift = BTreeMap::new();
    let invalid_files = !invalid_jobs.is_empty();
    plan.retain_changes(|c| {
        if invalid_jobs.contains_key(&c.job) {
            return false;
        }
        if invalid_files && c.action == Action::Delete {
            return false;
        }
        if c.action != Action::Recover {
            return true;
        }
        match held_recover(&c.job, &c.cluster, sync, heal.get(&c.job), now) {
            Some(why) => {
                drift.insert(c.job.clone(), format!("{}{why}", c.reason));
                false
            }
            None => true,
        }
    });
    // Jobs healthy again for longer than the backoff cap start counting from zero.
    let cap_ms = (sync.self_heal_max_backoff_seconds * 1000) as i64;
    let changed: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
    heal.retain(|job, h| {
        changed.contains(job.as_str())
            || drift.contains_key(job)
            || now - h.last_attempt_ms < cap_ms
    });
    drift
}

/// Why a recover of `job` may not run now (appended to the change's reason), if it may not.
fn held_recover(
    job: &str,
    cluster: &str,
    sync: &SyncConfig,
    heal: Option<&Heal>,
    now: i64,
) -> Option<String> {
    if !sync.for_job(job, cluster).self_heal {
        return Some(" (self-heal is off)".into());
    }
    match heal {
        Some(h) if h.attempts >= sync.self_heal_max_attempts => {
            Some(format!("; self-heal gave up after {} attempts", h.attempts))
        }
        Some(h) if now < h.next_at_ms => Some(format!(
            "; self-heal attempt {} in {}s",
            h.attempts + 1,
            (h.next_at_ms - now + 999) / 1000
        )),
        _ => None,
    }
}

/// Counts a self-heal attempt for every recover of `plan` and schedules the next one (the
/// backoff doubles per attempt, up to its cap). Returns the jobs counted.
pub fn count_attempts(
    heal: &mut BTreeMap<String, Heal>,
    plan: &Plan,
    sync: &SyncConfig,
    now: i64,
) -> Vec<String> {
    let mut counted = Vec::new();
    for c in plan.changes.iter().filter(|c| c.action == Action::Recover) {
        let h = heal.entry(c.job.clone()).or_insert(Heal {
            attempts: 0,
            last_attempt_ms: now,
            next_at_ms: now,
        });
        h.attempts += 1;
        h.last_attempt_ms = now;
        let backoff = sync
            .self_heal_backoff_seconds
            .saturating_mul(1u64 << (h.attempts - 1).min(20))
            .min(sync.self_heal_max_backoff_seconds);
        h.next_at_ms = now + (backoff * 1000) as i64;
        counted.push(c.job.clone());
    }
    counted
}

/// Drops the changes of jobs whose apply failed at this revision while their cluster state is
/// still what it was around the failure (recovers excepted); forgets the blocks of planned jobs
/// that no longer hold. A block of a job without a change in this plan is kept: the job may only
/// be left out because its own apply is still running (the block is recorded as the change
/// fails, while a reconcile may be planning without it), and the block's conditions are checked
/// again when the job has a change. Returns the blocks in force and whether the memory changed.
pub fn drop_blocked(
    blocked: &mut BTreeMap<String, Blocked>,
    plan: &mut Plan,
    observation: &Observation,
    digest: &str,
) -> (Vec<BlockedInfo>, bool) {
    let before = blocked.len();
    let mut in_force = Vec::new();
    let mut held = BTreeSet::new();
    for c in plan.changes.iter() {
        let Some(b) = blocked.get(&c.job) else {
            continue;
        };
        let now = observation.job_fingerprint(&c.cluster, &c.job);
        if b.digest == digest && b.fingerprints.contains(&now) {
            held.insert(c.job.clone());
            if c.action != Action::Recover {
                in_force.push(b.info.clone());
            }
        }
    }
    let planned: BTreeSet<&str> = plan.changes.iter().map(|c| c.job.as_str()).collect();
    blocked.retain(|job, _| held.contains(job) || !planned.contains(job.as_str()));
    let names: BTreeSet<&str> = in_force.iter().map(|b| b.job.as_str()).collect();
    plan.retain_changes(|c| c.action == Action::Recover || !names.contains(c.job.as_str()));
    (in_force, blocked.len() != before)
}

/// Remembers the jobs of `plan` whose change failed (job → error): not retried while the
/// revision and their cluster state stay as they were before the apply (`before`, job →
/// fingerprint) or as the failure left them (`after`).
pub fn block_failed(
    blocked: &mut BTreeMap<String, Blocked>,
    plan: &Plan,
    apply_id: &str,
    failed: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
    after: &Observation,
) {
    for c in plan.changes.iter().filter(|c| failed.contains_key(&c.job)) {
        let fingerprints = [
            before.get(&c.job).cloned().unwrap_or_default(),
            after.job_fingerprint(&c.cluster, &c.job),
        ]
        .into_iter()
        .collect();
        blocked.insert(
            c.job.clone(),
            Blocked {
                digest: plan.revision.digest.clone(),
                fingerprints,
                info: BlockedInfo {
                    job: c.job.clone(),
                    revision: plan.revision.to_string(),
                    apply_id: apply_id.to_string(),
                    error: failed[&c.job].clone(),
                    kind: BlockKind::ApplyFailed,
                },
                preflight: false,
            },
        );
    }
}

/// Takes out of `plan` the changes of jobs whose program the cluster refused at pre-flight at
/// this revision (`digest`): they are not pre-flighted again, since pre-flight runs the program's
/// `main()` on the cluster, until the revision changes. Returns their blocks.
pub fn hold_preflight_refused(
    blocked: &BTreeMap<String, Blocked>,
    plan: &mut Plan,
    digest: &str,
) -> Vec<BlockedInfo> {
    let held: Vec<BlockedInfo> = plan
        .changes
        .iter()
        .filter_map(|c| blocked.get(&c.job))
        .filter(|b| b.preflight && b.digest == digest)
        .map(|b| b.info.clone())
        .collect();
    let names: BTreeSet<&str> = held.iter().map(|b| b.job.as_str()).collect();
    plan.retain_changes(|c| !names.contains(c.job.as_str()));
    held
}

/// Remembers the jobs whose program the cluster refused at pre-flight in `plan` (a failed
/// revision of that job, like a failed apply). Returns whether the memory changed.
pub fn block_preflight_refused(
    blocked: &mut BTreeMap<String, Blocked>,
    plan: &Plan,
    observation: &Observation,
) -> bool {
    let mut changed = false;
    for e in &plan.errors {
        let Some(job) = &e.job else {
            continue;
        };
        let refused = plan
            .preflight
            .iter()
            .any(|p| &p.job == job && p.status == PreflightStatus::Failed);
        if !refused {
            continue;
        }
        let block = Blocked {
            digest: plan.revision.digest.clone(),
            fingerprints: [observation.job_fingerprint(&e.cluster, job)].into(),
            info: BlockedInfo {
                job: job.clone(),
                revision: plan.revision.to_string(),
                // No apply ran: the plan whose pre-flight failed.
                apply_id: plan.id.clone(),
                error: format!("pre-flight failed: {}", e.message),
                kind: BlockKind::PreflightFailed,
            },
            preflight: true,
        };
        let same = blocked
            .get(job)
            .is_some_and(|b| b.preflight && b.digest == block.digest);
        if !same {
            blocked.insert(job.clone(), block);
            changed = true;
        }
    }
    changed
}

/// Takes out of `plan` the changes that an earlier apply rolled back (the very same definition
/// of the job did not become healthy): the daemon does not try them again until the job's
/// definition changes (`weir apply` does, on purpose). Returns them as blocks.
pub fn hold_rolled_back(plan: &mut Plan) -> Vec<BlockedInfo> {
    let held: Vec<BlockedInfo> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let rb = c.rolled_back.as_ref()?;
            Some(BlockedInfo {
                job: c.job.clone(),
                revision: plan.revision.to_string(),
                apply_id: rb.apply_id.clone(),
                error: format!("rolled back: {}", rb.reason),
                kind: BlockKind::RolledBack,
            })
        })
        .collect();
    let names: BTreeSet<&str> = held.iter().map(|b| b.job.as_str()).collect();
    plan.retain_changes(|c| !names.contains(c.job.as_str()));
    held
}

/// Moves the changes that wait for a person (`policy: manual`) into a plan of their own, with id
/// `id`. Recovers go ahead where self-heal allows them ([`admit`] kept only those).
pub fn split_manual(plan: &mut Plan, sync: &SyncConfig, id: String) -> Plan {
    plan.split_off(id, |c| {
        c.action != Action::Recover && sync.for_job(&c.job, &c.cluster).policy == SyncPolicy::Manual
    })
}

/// Jobs that the store knows and whose definition file is invalid now: name → file. Their jobs
/// keep running their last applied spec and are never touched.
pub fn invalid_jobs(
    desired: &DesiredState,
    history: &History,
    invalid_files: &[String],
) -> BTreeMap<String, String> {
    let defined: BTreeSet<&str> = desired.jobs.iter().map(|j| j.name.as_str()).collect();
    history
        .iter()
        .filter(|(name, _)| !defined.contains(name.as_str()))
        .filter_map(|(name, h)| {
            let file = &h.spec.as_ref()?.file;
            invalid_files
                .iter()
                .any(|f| f == file)
                .then(|| (name.clone(), file.to_string()))
        })
        .collect()
}

/// The outcome of a reconcile that started nothing.
pub fn quiet_outcome(
    plan: &Plan,
    drift: &Drift,
    blocked: &[BlockedInfo],
    busy: &BTreeMap<String, String>,
) -> Reconciled {
    let join = |items: Vec<String>| items.join("; ");
    if !plan.errors.is_empty() {
        let errors = plan.errors.iter().map(|e| e.message.clone()).collect();
        return Reconciled::new(Outcome::Error, join(errors));
    }
    if !blocked.is_empty() {
        let blocks = blocked
            .iter()
            .map(|b| {
                format!(
                    "{}: revision {} failed to apply ({}): not retried until the revision or the \
                     cluster state changes",
                    b.job, b.revision, b.error
                )
            })
            .collect();
        return Reconciled::new(Outcome::Blocked, join(blocks));
    }
    if !drift.is_empty() {
        let drifts = drift.iter().map(|(j, d)| format!("{j}: {d}")).collect();
        return Reconciled::new(Outcome::Drift, join(drifts));
    }
    if !busy.is_empty() {
        let applies: BTreeSet<&String> = busy.values().collect();
        let running = applies
            .into_iter()
            .map(|a| format!("{a} in progress"))
            .collect();
        return Reconciled::new(Outcome::Applying, join(running));
    }
    Reconciled::quiet(Outcome::InSync)
}

/// The audit trigger of a reconcile started by `reasons`: the most specific one wins (the plan
/// is recorded as `serve:` and it).
pub fn trigger_of(reasons: &[String]) -> Trigger {
    let any = |p: &str| reasons.iter().any(|r| r.starts_with(p));
    let why = if any("webhook:") {
        Trigger::Push
    } else if any("api") {
        Trigger::Api
    } else if any("watch") {
        Trigger::Other("watch".into())
    } else {
        Trigger::Poll
    };
    Trigger::serve(why.to_string())
}

#[cfg(test)]
mod tests;
