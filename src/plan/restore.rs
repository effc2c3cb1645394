//! Where a job's state comes from when it starts again, and what the plan warns about it.

use crate::desired::DesiredJob;
use crate::identity::JobId;
use crate::observe::{JobState, ObservedJob};
use crate::spec::UpgradeMode;

use super::{Action, JobHistory, PlanError, Restore, StateRisk, Step};

/// Why `desired`, with nothing running, starts (create, resume or recover) and the state it
/// restores: `newest` is its newest job that ended, if Flink still lists one.
pub(super) fn why_start(
    desired: &DesiredJob,
    newest: Option<&ObservedJob>,
    history: Option<&JobHistory>,
) -> (Action, String, Restore) {
    let known_savepoint = history.and_then(|h| h.last_savepoint.clone());
    match (newest, history) {
        // Never submitted (or no record of a submission): a new definition.
        (
            None,
            None
            | Some(JobHistory {
                current_job_id: None,
                ..
            }),
        ) => (
            Action::Create,
            "new definition".to_string(),
            restore_path(desired.initial_savepoint.clone()),
        ),
        (None, Some(h)) if h.suspended => (
            Action::Resume,
            "spec.state is `running` and the job is suspended".to_string(),
            restore_path(known_savepoint),
        ),
        (None, Some(h)) => (
            Action::Recover,
            format!(
                "job {} is missing from the cluster",
                h.current_job_id.map(|i| i.to_string()).unwrap_or_default()
            ),
            restore_path(known_savepoint),
        ),
        (Some(job), h) => {
            let newest_state = newest_state(job, h);
            let suspended_by_weir =
                h.is_some_and(|h| h.suspended && h.current_job_id == Some(job.id));
            if suspended_by_weir {
                (
                    Action::Resume,
                    "spec.state is `running` and the job is suspended".to_string(),
                    restore_path(newest_state),
                )
            } else {
                let stopped_by_weir = h.is_some_and(|h| h.stopped_by_weir.contains_key(&job.id));
                let how = match job.state {
                    JobState::Failed => "FAILED".to_string(),
                    JobState::Canceled => "CANCELED outside weir".to_string(),
                    JobState::Finished if stopped_by_weir => {
                        "FINISHED: weir stopped it with a savepoint and no job replaced it"
                            .to_string()
                    }
                    JobState::Finished if job.latest_savepoint.is_some() => {
                        "FINISHED (stopped with a savepoint outside weir)".to_string()
                    }
                    JobState::Finished => "FINISHED (stopped outside weir)".to_string(),
                    ref other => other.to_string(),
                };
                (
                    Action::Recover,
                    format!("job {} is {how}", job.id),
                    restore_path(newest_state),
                )
            }
        }
    }
}

/// The newest state `job` (the newest job of its definition, no longer running) left behind:
/// its own final savepoint or retained checkpoint, as weir recorded it or Flink reports it, and
/// only when it has none, what the store remembers of the definition.
///
/// The store's `last_savepoint` is not the job's own state when the job was started from it
/// (then the job's own savepoint, taken later, is newer) and so comes last; a savepoint weir
/// took of the store's current job, when that is another (later) job Flink no longer lists,
/// comes first.
fn newest_state(job: &ObservedJob, h: Option<&JobHistory>) -> Option<String> {
    let known_savepoint = h.and_then(|h| h.last_savepoint.clone());
    let weir_took = h.and_then(|h| h.stopped_by_weir.get(&job.id).cloned());
    // The store's current job is another one, which weir stopped and Flink no longer lists.
    let of_a_later_job = h
        .and_then(|h| h.current_job_id.filter(|id| *id != job.id))
        .and_then(|id| h.and_then(|h| h.stopped_by_weir.get(&id).cloned()));
    let own = match job.state {
        // A FINISHED job was stopped with a savepoint and its checkpoints are gone: the
        // savepoint weir took of it, else the one Flink reports.
        JobState::Finished => weir_took.or(job.latest_savepoint.clone()),
        // FAILED or CANCELED: the job's newest retained checkpoint (or savepoint).
        _ => job
            .latest_checkpoint
            .clone()
            .or(job.latest_savepoint.clone())
            .or(weir_took),
    };
    of_a_later_job.or(own).or(known_savepoint)
}

/// How long after a job FINISHED a fresh start of its definition is refused when no savepoint
/// of it is known: Flink's checkpoint statistics name a stop's savepoint only seconds after the
/// job finished, and another weir process that just stopped it is about to submit its successor.
pub const RECENT_STOP_MS: i64 = 10 * 60 * 1000;

/// Refuses to start `desired` without state while its newest job FINISHED recently (a FINISHED
/// streaming job was stopped with a savepoint) and no savepoint of it is known: the savepoint is
/// there even if Flink does not name it yet, and the process that stopped it (weir elsewhere, a
/// second CI job) may be about to start its successor. After [`RECENT_STOP_MS`] the start goes
/// ahead, warned as starting without state.
pub(super) fn refuse_losing_state(
    desired: &DesiredJob,
    newest: Option<&ObservedJob>,
    restore: &Restore,
    now_ms: i64,
) -> Result<(), PlanError> {
    let Some(job) = newest else { return Ok(()) };
    let ended_ms_ago = job.end_time_ms.map(|end| now_ms.saturating_sub(end));
    let recent = ended_ms_ago.is_none_or(|ago| ago < RECENT_STOP_MS);
    if job.state != JobState::Finished
        || *restore != Restore::None
        || desired.upgrade_mode == UpgradeMode::Stateless
        || !recent
    {
        return Ok(());
    }
    let when = ended_ms_ago
        .map(|ago| format!(" {}s ago", ago / 1000))
        .unwrap_or_default();
    Err(PlanError::of(
        desired,
        format!(
            "`{}`: job {} FINISHED{when}, so it was stopped with a savepoint, but neither Flink \
             nor this store knows that savepoint yet; refusing to start `{}` without its state \
             (another weir process may be applying to this cluster right now). Plan again in a \
             minute; after {} minutes weir starts it without state",
            desired.name,
            job.id,
            desired.name,
            RECENT_STOP_MS / 60_000
        ),
    ))
}

pub(super) fn add_restore_warnings(
    desired: &DesiredJob,
    restore: &Restore,
    warnings: &mut Vec<String>,
) {
    if desired.allow_non_restored_state && *restore != Restore::None {
        warnings.push(
            "allowNonRestoredState is on: state that no operator claims is silently dropped".into(),
        );
    }
    // A stateless redeploy from a chosen savepoint does restart with state (the chosen one; its
    // own warning says so).
    if desired.upgrade_mode == UpgradeMode::Stateless && *restore == Restore::None {
        warnings.push("upgradeMode is stateless: the job restarts without its state".into());
    }
}

/// `has_state`: the job has state that a stateless upgrade would drop.
pub(super) fn add_state_risks(
    desired: &DesiredJob,
    restore: &Restore,
    has_state: bool,
    risks: &mut Vec<StateRisk>,
) {
    if desired.upgrade_mode == UpgradeMode::Stateless && has_state {
        risks.push(StateRisk::StatelessDropsState);
    }
    if desired.allow_non_restored_state && *restore != Restore::None {
        risks.push(StateRisk::NonRestoredStateAllowed);
    }
}

/// The savepoint a redeploy of `desired` starts from because `spec.savepoint.redeployNonce` was
/// bumped (against `previous`, the definition the running job was deployed from) with
/// `restoreFrom` set. `None` when the nonce did not change or the previous definition is unknown
/// (then nothing says the user asked for it now).
pub(super) fn chosen_savepoint(
    desired: &DesiredJob,
    previous: Option<&DesiredJob>,
) -> Option<String> {
    let previous = previous?;
    let from = desired.lifecycle.restore_from.clone()?;
    (previous.lifecycle.redeploy_nonce != desired.lifecycle.redeploy_nonce).then_some(from)
}

/// The loud warning of a redeploy from a chosen savepoint.
pub(super) fn chosen_savepoint_warning(desired: &DesiredJob, path: &str) -> String {
    let before = if desired.upgrade_mode == UpgradeMode::Stateless {
        "the current job is cancelled without a savepoint (upgradeMode stateless)"
    } else {
        "the current state is saved first (stop with a savepoint)"
    };
    format!(
        "REDEPLOY FROM A CHOSEN SAVEPOINT: the job restarts from {path} \
         (spec.savepoint.restoreFrom, redeployNonce bumped); everything the job did since that \
         savepoint is discarded; {before}"
    )
}

fn restore_path(path: Option<String>) -> Restore {
    match path {
        Some(path) => Restore::Path { path },
        None => Restore::None,
    }
}

pub(super) fn stop_step(desired: &DesiredJob, job_id: JobId) -> Step {
    if desired.upgrade_mode == UpgradeMode::Stateless {
        Step::Cancel { job_id }
    } else {
        Step::StopWithSavepoint {
            job_id,
            target_dir: desired.savepoint_dir.clone(),
        }
    }
}
