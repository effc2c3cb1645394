//! Batch jobs (`spec.mode: batch`): bounded programs that FINISH by design.
//!
//! A FINISHED job of the current definition is done: no recover, no self-heal, no drift. The
//! definition runs again only when its code fingerprint changes (the program, its configuration,
//! `restartNonce`). A FAILED or CANCELED run of the current definition is a recover (which the
//! daemon applies only with self-heal on). Batch jobs have no savepoints: a running batch job
//! is cancelled to be upgraded or suspended (a running job weir does not know as a batch job is
//! stopped as its upgrade mode says), and every submission starts without state. Scheduled
//! jobs are started by the daemon's scheduler, never by a plan.

use crate::desired::DesiredJob;
use crate::identity::{self, Identity, JobId};
use crate::observe::{JobState, ObservedJob};
use crate::spec::RunState;

use super::fields::{creation_diff, field_diffs};
use super::job::{base_change, current_job};
use super::restore::stop_step;
use super::{Action, Change, FieldDiff, JobHistory, Restore, Severity, Step};

/// The change batch job `desired` needs: `active` is its running job (at most one; duplicates
/// are handled before), `observed` its jobs newest first.
pub(super) fn plan_batch(
    desired: &DesiredJob,
    observed: &[&ObservedJob],
    active: Option<&ObservedJob>,
    history: Option<&JobHistory>,
) -> Option<Change> {
    match active {
        Some(current) => running(desired, current, history),
        None if desired.state == RunState::Suspended => None,
        // Runs of a scheduled job are started by the scheduler only.
        None if desired.schedule.is_some() => None,
        None => ended(desired, observed.first().copied(), history),
    }
}

/// Whether job `id` was submitted from `desired`'s current code.
fn same_code(desired: &DesiredJob, id: &JobId) -> bool {
    Identity::decode(id)
        .is_some_and(|i| i.code_hash == identity::code_hash(&desired.code_fingerprint()))
}

/// A run of `desired` is active: cancel it to suspend it, cancel and resubmit it when its code
/// or parallelism changed (unless it is scheduled: the next run uses the new definition).
fn running(
    desired: &DesiredJob,
    current: &ObservedJob,
    history: Option<&JobHistory>,
) -> Option<Change> {
    if desired.state == RunState::Suspended {
        let mut c = base_change(desired, Action::Suspend, "spec.state is `suspended`".into());
        c.current_job = Some(current_job(current));
        c.steps = vec![stop(desired, current, history)];
        c.desired = None;
        c.diff = vec![FieldDiff {
            field: "state".into(),
            severity: Severity::RecordOnly,
            before: Some("running".into()),
            after: Some("suspended".into()),
        }];
        return Some(c);
    }
    if desired.schedule.is_some() {
        return None;
    }
    let ident = current.identity?;
    let code_changed = !same_code(desired, &current.id);
    let parallelism_changed = u32::from(ident.parallelism) != desired.parallelism;
    if !code_changed && !parallelism_changed {
        return None;
    }
    let (action, what) = if code_changed {
        (Action::Redeploy, "the definition changed")
    } else {
        (Action::Rescale, "the parallelism changed")
    };
    let mut c = base_change(
        desired,
        action,
        format!(
            "{what} while batch job {} runs: it is cancelled and the job runs again from the \
             start (batch jobs have no savepoints)",
            current.id
        ),
    );
    c.current_job = Some(current_job(current));
    c.diff = diff_against(desired, history);
    c.steps = vec![stop(desired, current, history), submit(desired)];
    c.steps.push(Step::AwaitRunning);
    Some(c)
}

/// No run of `desired` is active; `newest` is its newest ended job Flink still lists.
fn ended(
    desired: &DesiredJob,
    newest: Option<&ObservedJob>,
    history: Option<&JobHistory>,
) -> Option<Change> {
    let mut c = match (newest, history) {
        (Some(job), _) if same_code(desired, &job.id) => {
            if job.state == JobState::Finished {
                return None;
            }
            let mut c = base_change(
                desired,
                Action::Recover,
                format!("batch job {} is {}", job.id, job.state),
            );
            c.current_job = Some(current_job(job));
            c
        }
        (Some(job), _) => {
            let mut c = base_change(
                desired,
                Action::Redeploy,
                format!(
                    "the definition changed since batch job {} ({}): it runs again",
                    job.id, job.state
                ),
            );
            c.current_job = Some(current_job(job));
            c.diff = diff_against(desired, history);
            c
        }
        // Flink forgot the job (finished jobs expire from its job store): the store says which
        // definition weir submitted last.
        (None, Some(h)) if h.current_job_id.is_some() => {
            let last = h.current_job_id.expect("checked");
            if h.suspended {
                base_change(
                    desired,
                    Action::Resume,
                    "spec.state is `running` and the batch job is suspended".into(),
                )
            } else if same_code(desired, &last) {
                return None;
            } else {
                let mut c = base_change(
                    desired,
                    Action::Redeploy,
                    format!("the definition changed since batch job {last} ran: it runs again"),
                );
                c.diff = diff_against(desired, history);
                c
            }
        }
        (None, _) => {
            let mut c = base_change(desired, Action::Create, "new definition".into());
            c.diff = creation_diff(desired);
            c
        }
    };
    c.steps = vec![submit(desired), Step::AwaitRunning];
    Some(c)
}

/// How the running job `current` is stopped: cancelled when weir submitted it as a batch job
/// (batch jobs have no savepoints); otherwise it may be a streaming job with state (the
/// definition switched to batch, or the store has no record), which is stopped as its upgrade
/// mode says, with a savepoint unless stateless.
fn stop(desired: &DesiredJob, current: &ObservedJob, history: Option<&JobHistory>) -> Step {
    let was_batch = history
        .and_then(|h| h.spec.as_ref())
        .is_some_and(DesiredJob::is_batch);
    if was_batch {
        Step::Cancel { job_id: current.id }
    } else {
        stop_step(desired, current.id)
    }
}

fn submit(desired: &DesiredJob) -> Step {
    Step::Submit {
        parallelism: desired.parallelism,
        restore: Restore::None,
    }
}

fn diff_against(desired: &DesiredJob, history: Option<&JobHistory>) -> Vec<FieldDiff> {
    let mut diff = history
        .and_then(|h| h.spec.as_ref())
        .map(|p| field_diffs(p, desired))
        .unwrap_or_default();
    diff.sort_by_key(|d| std::cmp::Reverse(d.severity));
    diff
}
