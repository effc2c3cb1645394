//! One definition against the Flink jobs that carry its name: nothing to do, or one change.
//!
//! A definition with an active job is suspended, redeployed or rescaled ([`running_change`]);
//! one without is created, resumed or recovered ([`start_change`], with the state to restore
//! chosen in [`super::restore`]).

use crate::desired::DesiredJob;
use crate::identity::{self, Identity};
use crate::observe::{JobState, ObservedJob, is_active};
use crate::spec::{RunState, UpgradeMode};

use super::fields::{creation_diff, field_diffs};
use super::restore::{self, add_restore_warnings, add_state_risks, stop_step};
use super::{
    Action, Change, CurrentJob, FieldDiff, JobHistory, PlanError, Restore, Severity, StateRisk,
    Step,
};

/// The change `desired` needs given its `observed` jobs (newest first), if any; an error when
/// weir must not act on it (two copies run, or a fresh start would lose a predecessor's state).
/// `now_ms` is the plan's time (the planner reads no clock).
pub(super) fn plan_job(
    desired: &DesiredJob,
    observed: &[&ObservedJob],
    history: Option<&JobHistory>,
    now_ms: i64,
) -> Result<Option<Change>, PlanError> {
    let active: Vec<&ObservedJob> = observed
        .iter()
        .copied()
        .filter(|j| is_active(&j.state))
        .collect();
    if active.len() > 1 {
        return stop_duplicates(desired, &active, history).map(Some);
    }
    if desired.is_batch() {
        return Ok(super::batch::plan_batch(
            desired,
            observed,
            active.first().copied(),
            history,
        ));
    }
    Ok(match active.first() {
        Some(current) => running_change(desired, current, history),
        // Nothing is running for this definition.
        None if desired.state == RunState::Suspended => None,
        None => Some(start_change(
            desired,
            observed.first().copied(),
            history,
            now_ms,
        )?),
    })
}

/// Two or more active copies (`active`, newest first) of one definition: a change that stops
/// every copy but the current one with a savepoint. The current copy is the one the store
/// names, else the newest by start time. When neither tells (the store names none of them and
/// the newest copies started in the same millisecond, or Flink reports no start time), weir does
/// not guess which copy holds the state everyone relies on: an error, marked as drift, until one
/// copy is left.
fn stop_duplicates(
    desired: &DesiredJob,
    active: &[&ObservedJob],
    history: Option<&JobHistory>,
) -> Result<Change, PlanError> {
    let named = history
        .and_then(|h| h.current_job_id)
        .and_then(|id| active.iter().find(|j| j.id == id));
    let newest_is_clear =
        active[0].start_time_ms.is_some() && active[0].start_time_ms > active[1].start_time_ms;
    let (kept, why) = match named {
        Some(job) => (*job, "the one weir records as current"),
        None if newest_is_clear => (active[0], "the newest"),
        None => return Err(duplicate_error(desired, active)),
    };
    let extras: Vec<&ObservedJob> = active.iter().copied().filter(|j| j.id != kept.id).collect();
    let extra_ids: Vec<String> = extras.iter().map(|j| j.id.to_string()).collect();
    let mut c = base_change(
        desired,
        Action::StopDuplicate,
        format!(
            "{} copies run on cluster `{}`: keeps {} ({why}), stops {} with a savepoint",
            active.len(),
            desired.cluster,
            kept.id,
            extra_ids.join(", ")
        ),
    );
    c.current_job = Some(current_job(kept));
    c.desired = None;
    // Always a savepoint, whatever the upgrade mode: the extra copy's state is kept in the
    // lineage in case it, not the kept copy, was the one people relied on.
    c.steps = extras
        .iter()
        .map(|j| Step::StopWithSavepoint {
            job_id: j.id,
            target_dir: desired.savepoint_dir.clone(),
        })
        .collect();
    if running_change(desired, kept, history).is_some() {
        c.warnings.push(format!(
            "the kept copy {} differs from the definition: the next plan changes it",
            kept.id
        ));
    }
    Ok(c)
}

/// Two or more active copies of one definition and weir cannot tell which is current: drift
/// that weir does not settle by guessing which copy holds the state everyone relies on. The
/// plan has an error for the job (so `weir plan` exits 1, status says `Error`, the daemon
/// reports it) until one copy is left.
fn duplicate_error(desired: &DesiredJob, active: &[&ObservedJob]) -> PlanError {
    let ids: Vec<String> = active
        .iter()
        .map(|j| format!("{} ({})", j.id, j.state))
        .collect();
    PlanError {
        job: Some(desired.name.to_string()),
        cluster: desired.cluster.to_string(),
        message: format!(
            "`{}` runs {} copies on cluster `{}`: {}. weir cannot tell which copy is current (its \
             store names none of them and they started at the same time), so it does not act on \
             this definition; stop the extra one(s) with a savepoint, e.g. `curl -X POST \
             <flink>/jobs/<id>/stop -d '{{\"drain\":false}}'`, then plan again",
            desired.name,
            active.len(),
            desired.cluster,
            ids.join(", "),
        ),
        drift: true,
    }
}

/// A change of `desired` with nothing decided yet but its action and reason.
pub(super) fn base_change(desired: &DesiredJob, action: Action, reason: String) -> Change {
    Change {
        job: desired.name.to_string(),
        cluster: desired.cluster.to_string(),
        action,
        reason,
        upgrade_mode: desired.upgrade_mode,
        steps: Vec::new(),
        diff: Vec::new(),
        current_job: None,
        restore: Restore::None,
        desired: Some(desired.clone()),
        warnings: Vec::new(),
        state_risks: Vec::new(),
        scheduled_run: None,
        from_cluster: None,
        rolled_back: None,
    }
}

pub(super) fn current_job(job: &ObservedJob) -> CurrentJob {
    CurrentJob {
        job_id: job.id,
        state: job.state.clone(),
    }
}

/// `current` runs for `desired`: suspend it, restart it with new code or parallelism, or
/// leave it alone.
fn running_change(
    desired: &DesiredJob,
    current: &ObservedJob,
    history: Option<&JobHistory>,
) -> Option<Change> {
    let ident = current.identity.expect("managed jobs have an identity");
    if desired.state == RunState::Suspended {
        return Some(suspend_change(desired, current));
    }
    let code_changed = ident.code_hash != identity::code_hash(&desired.code_fingerprint());
    let parallelism_changed = u32::from(ident.parallelism) != desired.parallelism;
    if !code_changed && !parallelism_changed {
        return None;
    }
    Some(restart_change(
        desired,
        current,
        &ident,
        code_changed,
        history,
    ))
}

fn suspend_change(desired: &DesiredJob, current: &ObservedJob) -> Change {
    let mut c = base_change(desired, Action::Suspend, "spec.state is `suspended`".into());
    c.current_job = Some(current_job(current));
    c.steps = vec![stop_step(desired, current.id)];
    if matches!(c.steps[0], Step::Cancel { .. }) {
        c.warnings
            .push("upgradeMode is stateless: the job is cancelled without a savepoint".into());
        c.state_risks.push(StateRisk::StatelessDropsState);
    }
    c.desired = None;
    c.diff = vec![FieldDiff {
        field: "state".into(),
        severity: Severity::RecordOnly,
        before: Some("running".into()),
        after: Some("suspended".into()),
    }];
    c
}

/// A redeploy (the code changed) or a rescale (only the parallelism did) of `current`.
fn restart_change(
    desired: &DesiredJob,
    current: &ObservedJob,
    ident: &Identity,
    code_changed: bool,
    history: Option<&JobHistory>,
) -> Change {
    let parallelism_changed = u32::from(ident.parallelism) != desired.parallelism;
    let previous = history.and_then(|h| h.spec.as_ref());
    let mut diff = previous
        .map(|p| field_diffs(p, desired))
        .unwrap_or_default();
    let action = if code_changed {
        Action::Redeploy
    } else {
        Action::Rescale
    };
    let reason = if code_changed {
        let redeploy_fields: Vec<&str> = diff
            .iter()
            .filter(|d| d.severity == Severity::Redeploy)
            .map(|d| d.field.as_str())
            .collect();
        if redeploy_fields.is_empty() {
            "the running job was submitted from a different definition (weir has no record of \
             the previous one)"
                .to_string()
        } else {
            format!("{} changed", redeploy_fields.join(", "))
        }
    } else {
        format!(
            "parallelism {} → {}; in-place rescaling needs Flink's adaptive scheduler, so the \
             job restarts with the new parallelism",
            ident.parallelism, desired.parallelism
        )
    };
    if parallelism_changed && !diff.iter().any(|d| d.field == "parallelism") {
        diff.push(FieldDiff {
            field: "parallelism".into(),
            severity: Severity::Rescale,
            before: Some(ident.parallelism.to_string()),
            after: Some(desired.parallelism.to_string()),
        });
    }
    diff.sort_by_key(|d| std::cmp::Reverse(d.severity));
    let mut c = base_change(desired, action, reason);
    c.current_job = Some(current_job(current));
    c.diff = diff;
    let (first, restore) = match desired.upgrade_mode {
        UpgradeMode::Savepoint => (stop_step(desired, current.id), Restore::StopSavepoint),
        UpgradeMode::LastState => (
            Step::Cancel { job_id: current.id },
            Restore::LatestCheckpoint,
        ),
        UpgradeMode::Stateless => (Step::Cancel { job_id: current.id }, Restore::None),
    };
    if current.state != JobState::Running && desired.upgrade_mode == UpgradeMode::Savepoint {
        c.warnings.push(format!(
            "the current job is {}, not RUNNING: Flink can only take a savepoint of a running job",
            current.state
        ));
    }
    let chosen = restore::chosen_savepoint(desired, previous);
    let restore = match chosen {
        Some(path) => {
            c.warnings
                .insert(0, restore::chosen_savepoint_warning(desired, &path));
            if history.is_some_and(|h| !h.known_savepoints.contains(&path)) {
                c.warnings.insert(
                    1,
                    format!(
                        "weir has no record of {path} (it may come from elsewhere): Flink \
                         refuses the submission if it does not exist"
                    ),
                );
            }
            c.reason = format!("{}: redeploy from the chosen savepoint {path}", c.reason);
            Restore::Path { path }
        }
        None => restore,
    };
    add_restore_warnings(desired, &restore, &mut c.warnings);
    // The running job has state of its own; stateless drops it.
    add_state_risks(desired, &restore, true, &mut c.state_risks);
    c.steps = vec![
        first,
        Step::Submit {
            parallelism: desired.parallelism,
            restore: restore.clone(),
        },
        Step::AwaitRunning,
    ];
    c.restore = restore;
    c
}

/// Nothing runs for `desired` (`newest`: its newest job that ended, if any): create, resume or
/// recover it.
fn start_change(
    desired: &DesiredJob,
    newest: Option<&ObservedJob>,
    history: Option<&JobHistory>,
    now_ms: i64,
) -> Result<Change, PlanError> {
    let (action, reason, restore) = restore::why_start(desired, newest, history);
    restore::refuse_losing_state(desired, newest, &restore, now_ms)?;
    // Stateless ignores a known savepoint or checkpoint: that state is dropped.
    let ignores_state = desired.upgrade_mode == UpgradeMode::Stateless
        && action != Action::Create
        && restore != Restore::None;
    let restore = match desired.upgrade_mode {
        UpgradeMode::Stateless if action != Action::Create => Restore::None,
        _ => restore,
    };
    let mut c = base_change(desired, action, reason);
    if action == Action::Create {
        c.diff = creation_diff(desired);
    } else if let Some(previous) = history.and_then(|h| h.spec.as_ref()) {
        c.diff = field_diffs(previous, desired);
    }
    c.current_job = newest.map(current_job);
    let starts_empty = matches!(action, Action::Recover | Action::Resume)
        && restore == Restore::None
        && desired.upgrade_mode != UpgradeMode::Stateless;
    if starts_empty {
        c.warnings.push(
            "no savepoint or retained checkpoint is known for this job: it restarts without state"
                .into(),
        );
    }
    add_restore_warnings(desired, &restore, &mut c.warnings);
    add_state_risks(desired, &restore, ignores_state, &mut c.state_risks);
    if starts_empty {
        c.state_risks.push(StateRisk::NoKnownState);
    }
    c.steps = vec![
        Step::Submit {
            parallelism: desired.parallelism,
            restore: restore.clone(),
        },
        Step::AwaitRunning,
    ];
    c.restore = restore;
    Ok(c)
}
