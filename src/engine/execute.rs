//! Applying: an [`Applier`] built one way for the CLI and the daemon, and finishing the applies
//! an earlier process left unfinished.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::Applier;
use crate::desired::DesiredState;
use crate::git::RepoSource;
use crate::load;
use crate::plan::Plan;
use crate::store::{ApplyOutcome, Store};

use super::{Clients, EngineError, clients};

/// How applies run (shared by `weir apply` and `weir serve`).
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub parallel: usize,
    /// One pool of `parallel` slots for every apply of the process (see [`Applier::slots`]).
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    pub savepoint_timeout: Duration,
    pub start_timeout: Duration,
}

/// An applier for `store` with these clients and source.
pub fn applier(
    store: &Store,
    clients: Clients,
    source: RepoSource,
    settings: &ApplySettings,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
    trigger: &str,
) -> Applier {
    Applier {
        store: store.clone(),
        clients,
        source: Arc::new(source),
        concurrency: settings.parallel,
        slots: settings.slots.clone(),
        savepoint_timeout: settings.savepoint_timeout,
        start_timeout: settings.start_timeout,
        progress,
        on_change_done: None,
        jar_ids: Default::default(),
        trigger: trigger.into(),
    }
}

/// Attaches definitions where the repo still has them; `settle` refuses a resubmission whose
/// definition changed, so a missing or changed definition cannot start the wrong program.
pub fn attach_available(plan: &mut Plan, desired: &DesiredState) {
    for change in &mut plan.changes {
        change.desired = desired.jobs.iter().find(|j| j.name == change.job).cloned();
    }
}

/// How one interrupted apply ended when it was finished (as the store recorded it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedApply {
    pub id: String,
    /// `None` when the store has no outcome for it (it did not finish).
    pub outcome: Option<ApplyOutcome>,
}

/// What finishing interrupted applies produced.
#[derive(Debug, Default)]
pub struct ResumeReport {
    /// How many unfinished applies were found.
    pub interrupted: usize,
    /// One line per change (or per apply whose plan could not be loaded), for people.
    pub lines: Vec<String>,
    /// Each interrupted apply and how it ended.
    pub applies: Vec<ResumedApply>,
}

impl ResumeReport {
    /// True when every interrupted apply completed every change it had started.
    pub fn ok(&self) -> bool {
        self.applies
            .iter()
            .all(|a| a.outcome == Some(ApplyOutcome::Succeeded))
    }
}

/// Finishes applies that an earlier process left unfinished, against the definitions of
/// `source`. A submission is only repeated when the definition still yields the recorded job id.
pub async fn resume_interrupted(
    store: &Store,
    source: RepoSource,
    settings: &ApplySettings,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
    trigger: &str,
) -> Result<ResumeReport, EngineError> {
    let unfinished = store.unfinished_applies().await?;
    if unfinished.is_empty() {
        return Ok(ResumeReport::default());
    }
    let outcome = load::load_repo(&source);
    let Some(desired) = outcome.desired.clone() else {
        return Err(EngineError::ResumeInvalid {
            diagnostics: outcome.diagnostics.iter().map(|d| d.to_string()).collect(),
        });
    };
    let clients = clients(&desired)?;
    let mut plans = BTreeMap::new();
    for a in &unfinished {
        if let Some(record) = store.plan(&a.plan_id).await?
            && let Ok(mut p) = serde_json::from_str::<Plan>(&record.plan_json)
        {
            attach_available(&mut p, &desired);
            plans.insert(a.plan_id.clone(), p);
        }
    }
    let applier = applier(store, clients, source, settings, progress, trigger);
    let lines = applier
        .resume(|id| plans.get(id).cloned())
        .await
        .map_err(EngineError::Resume)?;
    let mut applies = Vec::with_capacity(unfinished.len());
    for a in &unfinished {
        let outcome = store.apply(&a.id).await?.and_then(|r| r.outcome);
        applies.push(ResumedApply {
            id: a.id.clone(),
            outcome,
        });
    }
    Ok(ResumeReport {
        interrupted: unfinished.len(),
        lines,
        applies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: &[Option<ApplyOutcome>]) -> ResumeReport {
        ResumeReport {
            interrupted: outcomes.len(),
            // The words of a change's message do not decide anything.
            lines: vec!["apply-1: a completed: the savepoint failed: then it worked".into()],
            applies: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| ResumedApply {
                    id: format!("apply-{i}"),
                    outcome: *o,
                })
                .collect(),
        }
    }

    #[test]
    fn a_resume_is_ok_when_every_apply_succeeded() {
        assert!(ResumeReport::default().ok());
        assert!(report(&[Some(ApplyOutcome::Succeeded)]).ok());
        assert!(!report(&[Some(ApplyOutcome::Succeeded), Some(ApplyOutcome::Failed)]).ok());
        assert!(!report(&[Some(ApplyOutcome::Interrupted)]).ok());
        assert!(!report(&[None]).ok());
    }
}
