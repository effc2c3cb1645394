//! Applying: an [`Applier`] built one way for the CLI and the daemon, and finishing the applies
//! an earlier process left unfinished.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::{Applier, Resumed};
use crate::artifact::ArtifactSettings;
use crate::desired::DesiredState;
use crate::git::RepoSource;
use crate::load;
use crate::plan::Plan;
use crate::store::{Store, Trigger};

use super::{Clients, EngineError, clients};

/// How applies run (shared by `weir apply` and `weir serve`).
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub parallel: usize,
    /// One pool of `parallel` slots for every apply of the process (see [`Applier::slots`]).
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    pub savepoint_timeout: Duration,
    pub start_timeout: Duration,
    /// How URL jars are fetched (`file://` roots, limits) and where they are cached.
    pub artifacts: ArtifactSettings,
    /// How long to wait for the answer to a submission (see [`Applier::run_timeout`]).
    pub run_timeout: Duration,
}

/// An applier for `store` with these clients and source.
pub fn applier(
    store: &Store,
    clients: Clients,
    source: RepoSource,
    settings: &ApplySettings,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
    trigger: Trigger,
) -> Applier {
    Applier {
        store: store.clone(),
        clients,
        source: Arc::new(source),
        concurrency: settings.parallel,
        slots: settings.slots.clone(),
        savepoint_timeout: settings.savepoint_timeout,
        start_timeout: settings.start_timeout,
        run_timeout: settings.run_timeout,
        submit_settle: crate::apply::SUBMIT_SETTLE,
        progress,
        on_change_done: None,
        jar_ids: Default::default(),
        overviews: Default::default(),
        trigger,
        artifacts: settings.artifacts.clone(),
    }
}

/// Attaches definitions where the repo still has them; `settle` refuses a resubmission whose
/// definition changed, so a missing or changed definition cannot start the wrong program.
pub fn attach_available(plan: &mut Plan, desired: &DesiredState) {
    for change in &mut plan.changes {
        change.desired = desired.jobs.iter().find(|j| j.name == change.job).cloned();
    }
}

/// What finishing interrupted applies produced.
#[derive(Debug, Default)]
pub struct ResumeReport {
    /// How many unfinished applies were found.
    pub interrupted: usize,
    /// How each change (or each apply whose plan could not be loaded) ended.
    pub resumed: Vec<Resumed>,
}

impl ResumeReport {
    /// True when every interrupted change completed.
    pub fn ok(&self) -> bool {
        self.resumed.iter().all(Resumed::ok)
    }

    /// One line per change, for people.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.resumed.iter().map(ToString::to_string)
    }
}

/// Finishes applies that an earlier process left unfinished, against the definitions of
/// `source`. A submission is only repeated when the definition still yields the recorded job id.
pub async fn resume_interrupted(
    store: &Store,
    source: RepoSource,
    settings: &ApplySettings,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
    trigger: Trigger,
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
    let resumed = applier
        .resume(|id| plans.get(id).cloned())
        .await
        .map_err(EngineError::Resume)?;
    Ok(ResumeReport {
        interrupted: unfinished.len(),
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(ok: bool, message: &str) -> Resumed {
        Resumed::Change {
            apply_id: "apply-1".into(),
            job: "a".into(),
            ok,
            message: message.into(),
        }
    }

    #[test]
    fn a_resume_is_ok_when_every_change_completed() {
        assert!(ResumeReport::default().ok());
        // The words of a message decide nothing.
        let done = change(true, "the savepoint failed: then it worked");
        let report = |resumed| ResumeReport {
            interrupted: 1,
            resumed,
        };
        assert!(report(vec![done.clone()]).ok());
        assert!(!report(vec![done, change(false, "boom")]).ok());
        let lost = Resumed::PlanUnavailable {
            apply_id: "apply-2".into(),
            message: "its plan cannot be loaded".into(),
        };
        assert!(!report(vec![lost]).ok());
    }
}
