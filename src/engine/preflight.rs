//! Pre-flight: before a plan is shown or applied, the cluster each change submits to plans that
//! change's exact program (`POST /jars/{id}/plan`, after staging the jar exactly as an apply
//! does), so that a program that cannot start is a plan error of its job and the running job is
//! never stopped for it. The job graph the cluster returns is compared with the running job's
//! (`GET /jobs/{id}/plan`, vertex ids = the chain heads' operator ids): state of a vertex the new
//! graph lacks would not be restored, which is an error unless `allowNonRestoredState` is on.
//!
//! Results are cached in the store by (cluster, program fingerprint, Flink version): a re-plan
//! of unchanged programs asks no cluster anything. Refusals are not cached (they may depend on
//! the cluster's catalog), so a failing program is asked again on every plan.

mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::apply::{JarIds, JarStage, plan_request};
use crate::artifact::ArtifactSettings;
use crate::desired::{DesiredJob, Program};
use crate::flink::{FlinkClient, JobGraph, ProgramPlan};
use crate::git::RepoSource;
use crate::plan::{
    Change, GraphDiff, JobPreflight, Plan, PlanError, PreflightStatus, Restore, StateRisk, Step,
    Summary, Vertex,
};
use crate::store::{PreflightKey, PreflightsByFingerprint, Store};

use super::{Clients, Planned};

/// Where the program of a change to a cluster is pre-flighted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On the cluster the change submits to.
    Target,
    /// On another cluster of `weir.yaml` (a sandbox of the same Flink version).
    On(String),
    /// Not at all, for this reason (shown in the plan).
    Refused(String),
}

/// How a plan's programs are pre-flighted.
#[derive(Debug, Clone)]
pub struct PreflightOptions {
    /// `Some(why)`: nothing is pre-flighted (`weir plan --no-preflight`); the plan says why.
    pub off: Option<String>,
    /// Per target cluster, where its programs are planned; `None`: every program on its target.
    /// A cluster missing from the map is not pre-flighted (the daemon's pull-request policy).
    pub routes: Option<BTreeMap<String, Route>>,
    /// Pre-flights of different jobs run concurrently, at most this many at once.
    pub concurrency: usize,
    /// How URL jars are fetched (as for an apply).
    pub artifacts: ArtifactSettings,
}

/// Pre-flights of different jobs at once, by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

impl PreflightOptions {
    /// Every program on its target cluster (`weir plan`, the daemon's own reconcile).
    pub fn everywhere(artifacts: ArtifactSettings) -> Self {
        PreflightOptions {
            off: None,
            routes: None,
            concurrency: DEFAULT_CONCURRENCY,
            artifacts,
        }
    }

    /// Nothing, for `why`.
    pub fn off(why: &str) -> Self {
        PreflightOptions {
            off: Some(why.to_string()),
            routes: None,
            concurrency: DEFAULT_CONCURRENCY,
            artifacts: ArtifactSettings::for_cli(Vec::new()),
        }
    }

    /// The cluster a program for `target` is pre-flighted on, or why it is not.
    fn cluster_for(&self, target: &str) -> Result<String, String> {
        match self.route(target) {
            Route::Target => Ok(target.to_string()),
            Route::On(other) => Ok(other),
            Route::Refused(why) => Err(why),
        }
    }

    fn route(&self, cluster: &str) -> Route {
        if let Some(why) = &self.off {
            return Route::Refused(why.clone());
        }
        match &self.routes {
            None => Route::Target,
            Some(routes) => routes.get(cluster).cloned().unwrap_or_else(|| {
                Route::Refused(format!(
                    "the daemon's config does not allow pre-flighting pull requests on cluster \
                     `{cluster}`"
                ))
            }),
        }
    }
}

/// What one change's pre-flight concluded.
struct Verdict {
    record: JobPreflight,
    /// The change may not be applied: this is its plan error.
    error: Option<String>,
    /// State that is dropped (allowed): a warning on the change.
    dropped: Option<String>,
}

/// Pre-flights every change of `planned` that submits a program, and records the verdicts in
/// its plan: refused programs and unrestorable state become plan errors of their jobs (their
/// changes leave the plan), dropped state a warning, every check a [`JobPreflight`].
pub async fn preflight(
    store: &Store,
    planned: &mut Planned,
    source: &RepoSource,
    opts: &PreflightOptions,
) {
    let clients = &planned.snapshot.clients;
    let jar_ids = JarIds::default();
    let progress = |msg: &str| tracing::info!("{msg}");
    let stage = JarStage {
        source,
        artifacts: &opts.artifacts,
        jar_ids: &jar_ids,
        progress: &progress,
    };
    let work: Vec<(&Change, &DesiredJob, String)> = planned
        .plan
        .changes
        .iter()
        .filter(|c| c.steps.iter().any(|s| matches!(s, Step::Submit { .. })))
        .filter_map(|c| {
            let desired = c.desired.as_ref()?;
            Some((c, desired, program_fingerprint(desired)))
        })
        .collect();
    let ctx = Ctx {
        store,
        clients,
        versions: &planned.plan.flink_versions,
        stage: &stage,
        opts,
        cached: prefetch(store, &work, opts).await,
    };
    // The futures are made first (not by a closure of the stream) so that the whole stays
    // `Send` for the daemon's tasks.
    let checks: Vec<_> = work
        .iter()
        .map(|(c, d, fingerprint)| ctx.check(c, d, fingerprint))
        .collect();
    let verdicts: Vec<Verdict> = futures::stream::iter(checks)
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    record(&mut planned.plan, verdicts);
}

/// The recorded pre-flights the checks of `work` may use: its programs' and its running jobs'
/// (`job/{id}`). `None` when no check reads the store, or it could not be read (each check then
/// asks it alone).
async fn prefetch(
    store: &Store,
    work: &[(&Change, &DesiredJob, String)],
    opts: &PreflightOptions,
) -> Option<PreflightsByFingerprint> {
    // Only the checks that get as far as the store: pre-flight on, and a cluster to ask. A
    // running job's graph is read from the cluster it runs on (a migrate's old one).
    let mut programs: Vec<(String, &str)> = Vec::new();
    let mut jobs: Vec<(&str, String)> = Vec::new();
    for (change, desired, fingerprint) in work {
        let Some(on) = desired
            .preflight
            .then(|| opts.cluster_for(&change.cluster).ok())
            .flatten()
        else {
            continue;
        };
        programs.push((on, fingerprint.as_str()));
        if let Some(current) = &change.current_job {
            jobs.push((change.running_on(), job_graph_fingerprint(&current.job_id)));
        }
    }
    if programs.is_empty() {
        return None;
    }
    let mut keys: Vec<(&str, &str)> = programs.iter().map(|(c, f)| (c.as_str(), *f)).collect();
    keys.extend(jobs.iter().map(|(c, f)| (*c, f.as_str())));
    keys.sort_unstable();
    keys.dedup();
    match store.preflights_cached(&keys).await {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::warn!("reading the cached pre-flights: {e}");
            None
        }
    }
}

/// The cache key of a submitted job's graph (its id never runs another program).
fn job_graph_fingerprint(id: &crate::identity::JobId) -> String {
    format!("job/{id}")
}

/// Writes the verdicts into `plan`.
fn record(plan: &mut Plan, verdicts: Vec<Verdict>) {
    for v in verdicts {
        let (job, cluster) = (v.record.job.clone(), v.record.cluster.clone());
        if let Some(message) = v.error {
            plan.changes.retain(|c| c.job != job);
            plan.errors.push(PlanError {
                job: Some(job),
                cluster,
                message,
                drift: false,
            });
        } else if let Some(dropped) = v.dropped
            && let Some(change) = plan.changes.iter_mut().find(|c| c.job == job)
        {
            change.warnings.push(dropped);
            if !change
                .state_risks
                .contains(&StateRisk::OperatorStateDropped)
            {
                change.state_risks.push(StateRisk::OperatorStateDropped);
            }
        }
        plan.preflight.push(v.record);
    }
    plan.preflight.sort_by(|a, b| a.job.cmp(&b.job));
    plan.errors
        .sort_by(|a, b| a.job.cmp(&b.job).then(a.cluster.cmp(&b.cluster)));
    plan.summary = Summary::of(&plan.changes, plan.errors.len());
}

/// What every pre-flight of one plan shares.
struct Ctx<'a> {
    store: &'a Store,
    clients: &'a Clients,
    versions: &'a BTreeMap<String, String>,
    stage: &'a JarStage<'a>,
    opts: &'a PreflightOptions,
    /// The recorded pre-flights of this plan's programs and jobs, read at once.
    cached: Option<PreflightsByFingerprint>,
}

impl Ctx<'_> {
    /// The recorded job graph of `key`: from what was read at once, else from the store.
    async fn cached_graph(&self, key: PreflightKey<'_>) -> Option<JobGraph> {
        let json = match &self.cached {
            Some(found) => found
                .get(key.fingerprint)?
                .iter()
                .find(|(cluster, version, _)| {
                    cluster == key.cluster && version == key.flink_version
                })
                .map(|(.., json)| std::borrow::Cow::Borrowed(json.as_str()))?,
            None => std::borrow::Cow::Owned(self.store.preflight_cached(key).await.ok()??),
        };
        serde_json::from_str(&json).ok()
    }

    async fn check(&self, change: &Change, desired: &DesiredJob, fingerprint: &str) -> Verdict {
        let mut record = JobPreflight {
            job: change.job.clone(),
            cluster: change.cluster.clone(),
            status: PreflightStatus::NotChecked,
            checked_on: None,
            reason: None,
            graph: None,
        };
        let not_checked = |mut record: JobPreflight, why: String| {
            record.reason = Some(why);
            Verdict {
                record,
                error: None,
                dropped: None,
            }
        };
        if !desired.preflight {
            let why = format!("`preflight: false` in {}", desired.file);
            return not_checked(record, why);
        }
        let on = match self.opts.cluster_for(&change.cluster) {
            Ok(on) => on,
            Err(why) => return not_checked(record, why),
        };
        let Some(client) = self.clients.get(&on) else {
            return not_checked(record, format!("no client for cluster `{on}`"));
        };
        if on != change.cluster {
            let (sandbox, target) = (self.versions.get(&on), self.versions.get(&change.cluster));
            if sandbox.is_none() || sandbox != target {
                let shown =
                    |v: Option<&String>| v.cloned().unwrap_or_else(|| "an unknown version".into());
                let why = format!(
                    "the pre-flight cluster `{on}` runs Flink {}, `{}` runs {}",
                    shown(sandbox),
                    change.cluster,
                    shown(target)
                );
                return not_checked(record, why);
            }
        }
        record.checked_on = Some(on.clone());
        let planned = match self.program_graph(client, desired, fingerprint).await {
            Ok(planned) => planned,
            Err(failure) => return failure.into_verdict(record, change, desired),
        };
        record.status = if planned.cached {
            PreflightStatus::Cached
        } else {
            PreflightStatus::Passed
        };
        self.state_check(record, change, desired, &planned.graph)
            .await
    }

    /// The job graph of `desired`'s program on `client`: from the cache, or planned by the
    /// cluster (and then cached).
    async fn program_graph(
        &self,
        client: &FlinkClient,
        desired: &DesiredJob,
        fingerprint: &str,
    ) -> Result<ProgramGraph, Failure> {
        let version = self.versions.get(client.name());
        let key = version.map(|v| PreflightKey {
            cluster: client.name(),
            fingerprint,
            flink_version: v,
        });
        if let Some(key) = key
            && let Some(graph) = self.cached_graph(key).await
        {
            return Ok(ProgramGraph {
                graph,
                cached: true,
            });
        }
        let jar_id = self
            .stage
            .ensure(&desired.name, client, desired)
            .await
            .map_err(|e| Failure::Trouble(format!("cannot stage the jar: {e}")))?;
        let request = plan_request(desired).map_err(|e| Failure::Trouble(e.to_string()))?;
        let graph = match client.plan_jar(&jar_id, &request).await {
            Ok(ProgramPlan::Planned(graph)) => graph,
            Ok(ProgramPlan::Refused(refusal)) => {
                return Err(Failure::Refused {
                    message: refusal.message,
                    detail: refusal.detail,
                });
            }
            Err(e) => return Err(Failure::Trouble(e.to_string())),
        };
        if let Some(key) = key
            && let Ok(json) = serde_json::to_string(&graph)
            && let Err(e) = self
                .store
                .record_preflight(key, &json, crate::clock::now_ms())
                .await
        {
            tracing::warn!("cannot cache the pre-flight of {}: {e}", desired.name);
        }
        Ok(ProgramGraph {
            graph,
            cached: false,
        })
    }

    /// Compares the new graph with the graph of the job the change replaces, when the change
    /// restores that job's state.
    async fn state_check(
        &self,
        mut record: JobPreflight,
        change: &Change,
        desired: &DesiredJob,
        new: &JobGraph,
    ) -> Verdict {
        let verdict = |record| Verdict {
            record,
            error: None,
            dropped: None,
        };
        let Some(current) = &change.current_job else {
            return verdict(record);
        };
        // The old graph is the one of the running job (also when the program was planned
        // elsewhere), on its old cluster for a migrate.
        let target = self.clients.get(change.running_on()).map(Arc::as_ref);
        let old = match target {
            Some(target) => self.job_graph(target, &current.job_id).await,
            None => None,
        };
        let Some(old) = old else {
            return verdict(record);
        };
        let diff = GraphDiff::of(&vertices(&old), &vertices(new));
        let restores = !matches!(change.restore, Restore::None);
        let removed = diff.removed.clone();
        record.graph = Some(diff);
        if !restores || removed.is_empty() {
            return verdict(record);
        }
        let names = removed
            .iter()
            .map(|v| format!("`{}` ({})", v.operators, v.id))
            .collect::<Vec<_>>()
            .join(", ");
        let s = if removed.len() == 1 { "" } else { "s" };
        if desired.allow_non_restored_state {
            let mut v = verdict(record);
            v.dropped = Some(format!(
                "state of operator{s} {names} is dropped: the new job graph has no such vertex \
                 (spec.savepoint.allowNonRestoredState is on)"
            ));
            return v;
        }
        record.status = PreflightStatus::Failed;
        record.reason = Some("state would not be restored".into());
        Verdict {
            record,
            error: Some(format!(
                "state of operator{s} {names} would not be restored: the new job graph has no \
                 such vertex; set spec.savepoint.allowNonRestoredState to drop it"
            )),
            dropped: None,
        }
    }

    /// The graph of a submitted job (its id never runs another program, so it is cached by id).
    async fn job_graph(
        &self,
        client: &FlinkClient,
        id: &crate::identity::JobId,
    ) -> Option<JobGraph> {
        let fingerprint = job_graph_fingerprint(id);
        let key = PreflightKey {
            cluster: client.name(),
            fingerprint: &fingerprint,
            flink_version: "",
        };
        if let Some(graph) = self.cached_graph(key).await {
            return Some(graph);
        }
        let graph = client.job_graph(id).await.ok().flatten()?;
        if let Ok(json) = serde_json::to_string(&graph) {
            let _ = self
                .store
                .record_preflight(key, &json, crate::clock::now_ms())
                .await;
        }
        Some(graph)
    }
}

struct ProgramGraph {
    graph: JobGraph,
    cached: bool,
}

/// Why a program has no graph.
enum Failure {
    /// The cluster refused the program.
    Refused { message: String, detail: String },
    /// The pre-flight could not be made (jar, cluster).
    Trouble(String),
}

impl Failure {
    fn into_verdict(
        self,
        mut record: JobPreflight,
        change: &Change,
        desired: &DesiredJob,
    ) -> Verdict {
        record.status = PreflightStatus::Failed;
        let on = record.checked_on.clone().unwrap_or_default();
        let error = match self {
            Failure::Refused { message, detail } => {
                // Every refused program's message starts so; it says nothing about the cause.
                let message = message
                    .strip_prefix("The main method caused an error: ")
                    .map(str::to_string)
                    .unwrap_or(message);
                // Flink may echo the program's configuration: its secrets never reach a plan.
                let message = crate::redact::scrub(&message, &secret_values(desired));
                let located = match (&desired.program, &desired.sql_origin) {
                    (Program::Sql { script, .. }, Some(origin)) => {
                        sql::locate(origin, script, &detail, &message)
                    }
                    _ => None,
                };
                record.reason = Some("the cluster refused the program".into());
                located.unwrap_or(message)
            }
            Failure::Trouble(why) => {
                record.reason = Some("the pre-flight could not be made".into());
                format!(
                    "cannot pre-flight `{}` on cluster `{on}` (nothing of it is changed): {why}",
                    change.job
                )
            }
        };
        Verdict {
            record,
            error: Some(error),
            dropped: None,
        }
    }
}

/// What a pre-flight result depends on besides the cluster and its Flink version: the program
/// (code fingerprint: jar content, entry class, arguments, SQL, configuration), the parallelism
/// and the job name (the submission's `pipeline.name`).
fn program_fingerprint(desired: &DesiredJob) -> String {
    let mut h = Sha256::new();
    h.update(desired.code_fingerprint());
    h.update(desired.parallelism.to_be_bytes());
    h.update(desired.name.as_bytes());
    hex::encode(h.finalize())
}

/// The secret values of a definition (what [`DesiredJob::redacted`] hides): secret configuration
/// values, the values of secret program flags, and the values of secret SQL options
/// (`'password' = '...'`).
fn secret_values(desired: &DesiredJob) -> Vec<String> {
    let redacted = desired.redacted();
    let mut out: Vec<String> = desired
        .flink_configuration
        .iter()
        .filter(|(k, v)| redacted.flink_configuration.get(k) != Some(v))
        .map(|(_, v)| v.to_string())
        .collect();
    match (&desired.program, &redacted.program) {
        (Program::Jar { args, .. }, Program::Jar { args: hidden, .. }) => out.extend(
            args.iter()
                .zip(hidden)
                .filter(|(a, h)| a != h)
                .map(|(a, _)| a.to_string()),
        ),
        (Program::Sql { script, .. }, _) => {
            // Quoted strings are the odd pieces between single quotes: `'key' = 'value'`.
            let pieces: Vec<&str> = script.split('\'').collect();
            for i in (1..pieces.len().saturating_sub(2)).step_by(2) {
                if crate::redact::is_secret_key(pieces[i]) && pieces[i + 1].trim() == "=" {
                    out.push(pieces[i + 2].to_string());
                }
            }
        }
        _ => {}
    }
    out
}

fn vertices(graph: &JobGraph) -> Vec<Vertex> {
    graph
        .nodes
        .iter()
        .map(|n| Vertex {
            id: n.id.clone(),
            operators: n.operators(),
            parallelism: n.parallelism,
        })
        .collect()
}

#[cfg(test)]
mod tests;
