//! Pieces shared by the command line (`weir plan` / `weir apply`) and the daemon: history from the
//! store, the store lock, ids, building an [`Applier`] and finishing interrupted applies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::apply::{Applier, now_ms};
use crate::desired::DesiredState;
use crate::flink::FlinkClient;
use crate::git::RepoSource;
use crate::load;
use crate::plan::{JobHistory, Plan};
use crate::store::{PlanRecord, Store};

/// How applies run (shared by `weir apply` and `weir serve`).
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub parallel: usize,
    /// One pool of `parallel` slots for every apply of the process (see [`Applier::slots`]).
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    pub savepoint_timeout: Duration,
    pub start_timeout: Duration,
}

/// A Flink client per cluster of `weir.yaml`.
pub fn clients(desired: &DesiredState) -> Result<BTreeMap<String, Arc<FlinkClient>>> {
    let mut out = BTreeMap::new();
    for (name, cfg) in &desired.config.clusters {
        let client = FlinkClient::new(name, cfg).map_err(|e| anyhow!("cluster `{name}`: {e}"))?;
        out.insert(name.clone(), Arc::new(client));
    }
    Ok(out)
}

/// What the store remembers of every job that was not deleted, for the planner.
pub async fn history_map(store: &Store) -> Result<BTreeMap<String, JobHistory>> {
    let mut out = BTreeMap::new();
    for r in store.jobs().await? {
        if r.deleted {
            continue;
        }
        out.insert(
            r.name.clone(),
            JobHistory {
                cluster: r.cluster.clone(),
                current_job_id: r.current_job_id.as_deref().and_then(|s| s.parse().ok()),
                spec: r
                    .spec_json
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok()),
                suspended: r.suspended,
                last_savepoint: r.last_savepoint.clone(),
            },
        );
    }
    Ok(out)
}

/// A sortable, unique id such as `plan-20250101T120000-a1b2c3`.
pub fn new_id(prefix: &str) -> String {
    let ms = now_ms();
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = t
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]"
        ))
        .unwrap_or_default();
    format!("{prefix}-{stamp}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Records a plan (and the jobs it touches) in the store.
pub async fn record_plan(store: &Store, plan: &Plan, trigger: &str) -> Result<()> {
    store
        .insert_plan(&PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger: trigger.into(),
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(plan)?,
            job_names: plan.changes.iter().map(|c| c.job.clone()).collect(),
        })
        .await?;
    Ok(())
}

/// An applier for `store` with these clients and source.
pub fn applier(
    store: &Store,
    clients: BTreeMap<String, Arc<FlinkClient>>,
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
        artifacts: crate::artifact::ArtifactSettings::for_cli(Vec::new()),
    }
}

/// The path of the store's lock file.
fn lock_path(store: &Store) -> PathBuf {
    let mut path = store.path().as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// Why the store lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another weir apply holds {0}; wait for it to finish")]
    Busy(String),
    #[error("locking {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Holds an exclusive lock on `<state>.lock` so that two applies never run against one store.
/// The lock is released when the returned file is dropped.
pub fn lock_store(store: &Store) -> Result<std::fs::File, LockError> {
    let path = lock_path(store);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(path.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
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
    /// One line per change (or per apply whose plan could not be loaded).
    pub lines: Vec<String>,
}

impl ResumeReport {
    /// True when every interrupted change completed.
    pub fn ok(&self) -> bool {
        self.lines
            .iter()
            .all(|l| !l.contains(" failed: ") && !l.contains("cannot be loaded"))
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
) -> Result<ResumeReport> {
    let unfinished = store.unfinished_applies().await?;
    if unfinished.is_empty() {
        return Ok(ResumeReport::default());
    }
    let outcome = load::load_repo(&source);
    let Some(desired) = outcome.desired.clone() else {
        let errors: Vec<String> = outcome.diagnostics.iter().map(|d| d.to_string()).collect();
        bail!(
            "cannot resume the interrupted apply: weir.yaml is invalid: {}",
            errors.join("; ")
        );
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
        .context("resuming interrupted applies")?;
    Ok(ResumeReport {
        interrupted: unfinished.len(),
        lines: lines.iter().map(ToString::to_string).collect(),
    })
}
