//! The plan pipeline, once: source → load → clients → observe → history → plan.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::clock;
use crate::desired::DesiredState;
use crate::flink::FlinkClient;
use crate::git::{GitError, RepoSource};
use crate::load::{self, LoadOutcome};
use crate::observe::{self, Observation};
use crate::plan::{self, JobHistory, Plan, PlanInput};
use crate::spec::ClusterConfig;
use crate::store::{Store, StoreError};

use super::EngineError;

/// A Flink client per cluster of `weir.yaml`.
pub type Clients = BTreeMap<String, Arc<FlinkClient>>;

/// What the store remembers of every job that was not deleted, by name.
pub type History = BTreeMap<String, JobHistory>;

/// The repo at `dir`: its working tree, or the tree of `rev` read without a checkout.
pub fn open_source(dir: &Path, rev: Option<&str>) -> Result<RepoSource, GitError> {
    match rev {
        Some(rev) => RepoSource::git_tree(dir, rev),
        None => RepoSource::work_tree(dir),
    }
}

/// Loads `source`; with `clusters`, its `clusters` of `weir.yaml` are replaced by those (the
/// followed branch's, so that the revision planned cannot choose where weir connects). The flag
/// says whether the source's own `clusters` differ.
pub fn load(
    source: &RepoSource,
    clusters: Option<&BTreeMap<String, ClusterConfig>>,
) -> (LoadOutcome, bool) {
    // Either way the definitions' secret values become known secrets of the process (the
    // loader registers them: a program that prints its password bare is scrubbed too).
    match clusters {
        Some(clusters) => load::clusters::load_with_clusters(source, clusters),
        None => (load::load_repo(source), false),
    }
}

/// A Flink client per cluster of `weir.yaml`.
pub fn clients(desired: &DesiredState) -> Result<Clients, EngineError> {
    clients_of(&desired.config.clusters)
}

/// A Flink client per cluster of `clusters`.
fn clients_of(clusters: &BTreeMap<String, ClusterConfig>) -> Result<Clients, EngineError> {
    let mut out = BTreeMap::new();
    for (name, cfg) in clusters {
        let client = FlinkClient::new(name, cfg).map_err(|source| EngineError::Client {
            cluster: name.clone(),
            source: Box::new(source),
        })?;
        out.insert(name.clone(), Arc::new(client));
    }
    Ok(out)
}

/// What the store remembers of every job that was not deleted, for the planner.
/// Three queries whatever the number of jobs (a query per job is a thread round trip each with
/// sqlx).
pub async fn history(store: &Store) -> Result<History, StoreError> {
    let mut out = BTreeMap::new();
    let mut lineages = store.savepoints_by_job().await?;
    let mut rollbacks = store.latest_rollbacks().await?;
    for r in store.jobs().await? {
        if r.deleted {
            continue;
        }
        // One read of the lineage serves both views of it.
        let savepoints = lineages.remove(&r.name).unwrap_or_default();
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
                stopped_by_weir: stopped_by_weir(&savepoints),
                rolled_back: rollbacks.remove(&r.name).and_then(rolled_back),
                known_savepoints: savepoints.into_iter().map(|s| s.path).collect(),
            },
        );
    }
    Ok(out)
}

/// The last rollback of a job, when `t`, its newest change that could be rolled back, was.
fn rolled_back(t: crate::store::RollbackTarget) -> Option<crate::plan::RolledBack> {
    match (
        t.rolled_back_fingerprint,
        t.rolled_back_parallelism,
        t.reason,
    ) {
        (Some(fingerprint), Some(parallelism), Some(reason)) => Some(crate::plan::RolledBack {
            fingerprint,
            parallelism: u32::try_from(parallelism).unwrap_or(0),
            reason,
            apply_id: t.apply_id,
        }),
        _ => None,
    }
}

/// The savepoints weir took when it stopped a Flink job of `job` (its own stops, found in the
/// savepoint lineage), newest per Flink job.
fn stopped_by_weir(
    savepoints: &[crate::store::SavepointRecord],
) -> BTreeMap<crate::identity::JobId, String> {
    let mut out = BTreeMap::new();
    let mut taken: Vec<_> = savepoints
        .iter()
        .filter(|s| {
            s.produced_by_apply.is_some() && s.kind == crate::store::SavepointKind::Savepoint
        })
        .collect();
    taken.sort_by_key(|s| s.at_ms);
    for s in taken {
        if let Ok(id) = s.flink_job_id.parse() {
            out.insert(id, s.path.clone());
        }
    }
    out
}

/// The live inputs of a plan: clients, what they observed, and the store's history.
pub struct Snapshot {
    pub clients: Clients,
    pub observation: Observation,
    pub history: History,
}

/// Builds the clients of `desired`, observes every cluster and reads the history.
pub async fn snapshot(store: &Store, desired: &DesiredState) -> Result<Snapshot, EngineError> {
    snapshot_of(store, &desired.config.clusters).await
}

/// Builds the clients of `clusters`, observes every cluster and reads the history.
async fn snapshot_of(
    store: &Store,
    clusters: &BTreeMap<String, ClusterConfig>,
) -> Result<Snapshot, EngineError> {
    let clients = clients_of(clusters)?;
    let observation = observe::observe(&clients).await;
    let history = history(store).await?;
    Ok(Snapshot {
        clients,
        observation,
        history,
    })
}

/// A snapshot taken while the desired state it is planned against was still loading: the
/// observation and the history read at the same time as the repo, instead of after it. Planning
/// with it is planning with a load that took that much longer; [`plan_with`] uses it only when it
/// observed exactly the clusters the loaded `weir.yaml` names.
///
/// Its caller answers for one more condition: no apply may have changed jobs between this
/// snapshot and the plan. `weir plan` and `weir apply` take one (they run no apply while
/// loading; `weir apply` holds the store lock). The daemon does not: its applies run beside its
/// reconciles, and at 1,000 jobs observing is ~2 ms of its ~35 ms from a push to Flink; a first
/// try measured no gain (BENCHMARKS.md, tenth pass).
pub struct EarlySnapshot {
    clusters: BTreeMap<String, ClusterConfig>,
    snapshot: Snapshot,
}

impl EarlySnapshot {
    /// Observes `clusters` and reads the history; `None` when that fails (the plan then takes
    /// its own snapshot, and reports the failure where it always did).
    pub async fn take(
        store: Store,
        clusters: BTreeMap<String, ClusterConfig>,
    ) -> Option<EarlySnapshot> {
        let snapshot = snapshot_of(&store, &clusters).await.ok()?;
        Some(EarlySnapshot { clusters, snapshot })
    }

    /// The snapshot, if it observed the clusters of `desired`.
    fn of(self, desired: &DesiredState) -> Option<Snapshot> {
        (self.clusters == desired.config.clusters).then_some(self.snapshot)
    }
}

impl Snapshot {
    /// Plans `desired` against this snapshot (pure). The planner stamps the plan's observed
    /// fingerprint over every job the repo or the store claims ([`super::Scope::Repo`]).
    pub fn plan(
        &self,
        desired: &DesiredState,
        invalid_files: &[String],
        id: String,
        at_ms: i64,
    ) -> Plan {
        plan::plan(&PlanInput {
            plan_id: id,
            created_at_ms: at_ms,
            desired,
            invalid_files,
            observation: &self.observation,
            history: &self.history,
        })
    }
}

/// A plan with everything it was made from.
pub struct Planned {
    pub plan: Plan,
    pub desired: DesiredState,
    pub snapshot: Snapshot,
}

/// Observes, reads the history and plans `desired` with a new plan id. `invalid_files` is empty
/// except for a partly invalid repo (the planner then deletes nothing).
pub async fn plan(
    store: &Store,
    desired: DesiredState,
    invalid_files: &[String],
) -> Result<Planned, EngineError> {
    plan_with(store, desired, invalid_files, None).await
}

/// [`plan`] with the snapshot `early`, when it observed the clusters of `desired` (else with a
/// snapshot taken now).
pub async fn plan_with(
    store: &Store,
    desired: DesiredState,
    invalid_files: &[String],
    early: Option<EarlySnapshot>,
) -> Result<Planned, EngineError> {
    let snapshot = match early.and_then(|e| e.of(&desired)) {
        Some(snapshot) => snapshot,
        None => snapshot(store, &desired).await?,
    };
    let plan = snapshot.plan(
        &desired,
        invalid_files,
        clock::new_id("plan"),
        clock::now_ms(),
    );
    Ok(Planned {
        plan,
        desired,
        snapshot,
    })
}

#[cfg(test)]
mod tests;
