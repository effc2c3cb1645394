//! Staleness of a saved or pending plan: one rule, one fingerprint.
//!
//! **The rule.** A plan may still be applied when (1) the repo is at the revision the plan was
//! made from, (2) planning now, from the same inputs, gives the same changes for the jobs in the
//! plan's [`Scope`], and (3) the observed state of those jobs has the fingerprint the plan was
//! stamped with ([`crate::observe::Observation::scope_fingerprint`]; a plan stamped for the whole
//! repo passes a check of its own jobs too). A plan is stale when its own jobs change; weir jobs
//! of other repos on a shared cluster do not make it stale.

use crate::desired::DesiredState;
use crate::observe::Observation;
use crate::plan::{AttachError, Change, Plan};

use super::{History, Snapshot};

/// The jobs a plan answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every job the repo or the store claims: a whole plan (`weir plan --out`), whose in-sync
    /// jobs are part of what it promises.
    Repo,
    /// Only the jobs the plan changes: a part split off a reconcile (the changes waiting for
    /// approval), beside which other jobs are applied on their own.
    Changes,
}

/// Why a plan may no longer be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("no revision has been fetched")]
    NoRevision,
    #[error("weir.yaml does not load at the current revision")]
    Invalid,
    #[error(
        "the plan was made from revision {made}, the repo is now at {now}; nothing was applied"
    )]
    Revision { made: String, now: String },
    #[error("the cluster state of `{job}` changed since the plan was made; nothing was applied")]
    Changed { job: String },
    #[error(
        "the cluster state of {} changed since the plan was made; nothing was applied",
        quoted(jobs)
    )]
    Observed { jobs: Vec<String> },
    /// The plan submits a job the repo no longer defines.
    #[error(transparent)]
    Unattached(#[from] AttachError),
    #[error("the plan has no changes")]
    Empty,
}

fn quoted(jobs: &[String]) -> String {
    match jobs {
        [] => "the plan's jobs".into(),
        _ => jobs
            .iter()
            .map(|j| format!("`{j}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The observed fingerprint of `plan`'s scope.
pub fn fingerprint(
    plan: &Plan,
    scope: Scope,
    desired: &DesiredState,
    history: &History,
    observation: &Observation,
) -> String {
    match scope {
        // The planner stamps every plan with this one.
        Scope::Repo => crate::plan::observed_fingerprint(desired, history, observation),
        Scope::Changes => observation.scope_fingerprint(
            plan.changes
                .iter()
                .map(|c| (c.cluster.as_str(), c.job.as_str())),
        ),
    }
}

/// Stamps `plan` with the observed fingerprint of its scope.
pub fn stamp(
    plan: &mut Plan,
    scope: Scope,
    desired: &DesiredState,
    history: &History,
    observation: &Observation,
) {
    plan.observed_fingerprint = fingerprint(plan, scope, desired, history, observation);
}

/// Part (1) of the rule alone: cheap, and checked before observing anything.
pub fn check_revision(saved: &Plan, desired: &DesiredState) -> Result<(), Stale> {
    if desired.revision.digest != saved.revision.digest {
        let (made, mut now) = (saved.revision.to_string(), desired.revision.to_string());
        if made == now {
            // The same commit, so the files are the same: what changed is outside Git.
            now.push_str(" with a different value of an `${env:…}` secret");
        }
        return Err(Stale::Revision { made, now });
    }
    Ok(())
}

/// The whole rule (see the module docs), against a fresh snapshot.
pub fn check(
    saved: &Plan,
    scope: Scope,
    desired: &DesiredState,
    invalid_files: &[String],
    now: &Snapshot,
) -> Result<(), Stale> {
    check_revision(saved, desired)?;
    let replanned = now.plan(
        desired,
        invalid_files,
        saved.id.clone(),
        saved.created_at_ms,
    );
    let missing = |from: &Plan, c: &Change| !from.changes.iter().any(|o| same_change(o, c));
    if let Some(c) = saved.changes.iter().find(|c| missing(&replanned, c)) {
        return Err(Stale::Changed { job: c.job.clone() });
    }
    if scope == Scope::Repo
        && let Some(c) = replanned.changes.iter().find(|c| missing(saved, c))
    {
        return Err(Stale::Changed { job: c.job.clone() });
    }
    let observed = |scope| fingerprint(saved, scope, desired, &now.history, &now.observation);
    // A plan stamped for the whole repo also answers for its own jobs: when the whole repo is
    // unchanged, so are they.
    let unchanged = observed(scope) == saved.observed_fingerprint
        || (scope == Scope::Changes && observed(Scope::Repo) == saved.observed_fingerprint);
    if !unchanged {
        let jobs = match scope {
            Scope::Changes => saved.changes.iter().map(|c| c.job.clone()).collect(),
            Scope::Repo => Vec::new(),
        };
        return Err(Stale::Observed { jobs });
    }
    Ok(())
}

/// Whether two changes do the same thing to the same job.
fn same_change(a: &Change, b: &Change) -> bool {
    a.job == b.job
        && a.cluster == b.cluster
        && a.action == b.action
        && a.steps == b.steps
        && a.current_job == b.current_job
}

#[cfg(test)]
mod tests;
