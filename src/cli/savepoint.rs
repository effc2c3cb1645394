//! `weir savepoint JOB` (a savepoint now, recorded as manual) and `weir savepoints pin|unpin|
//! prune` (the savepoint lifecycle by hand).
//!
//! Both take the store lock an apply takes, so a savepoint is never triggered of a job an apply
//! is stopping, and retention never disposes what an apply is about to restore. Operations a
//! crash left pending are completed first ([`lifecycle::resume_pending`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use serde::Serialize;

use super::OutputFormat;
use super::plan::source_for;
use crate::desired::DesiredState;
use crate::engine;
use crate::flink::{FlinkClient, JobState};
use crate::identity::JobId;
use crate::lifecycle::{self, LifecycleError, Pruned, SavepointTarget, Waits};
use crate::load;
use crate::store::Store;
use crate::store::audit::cli_actor;
use crate::store::lifecycle::OperationOrigin;

/// `weir savepoints pin|unpin|prune`.
#[derive(Subcommand, Debug)]
pub enum SavepointsAction {
    /// Keep a recorded savepoint from retention until it is unpinned.
    Pin {
        job: String,
        /// The savepoint's path, as `weir savepoints JOB` lists it.
        path: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Let retention dispose a pinned savepoint again.
    Unpin {
        job: String,
        path: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Dispose (through Flink, then forget) the savepoints `spec.savepoint.retain` lets go.
    Prune {
        /// Only this job (default: every job with a retention policy).
        job: Option<String>,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Show what would be disposed and why the rest stays; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for each disposal.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// The loaded repo, the store (locked) and the Flink clients.
struct Session {
    desired: DesiredState,
    store: Store,
    clients: engine::Clients,
    _lock: std::fs::File,
}

async fn context(state: Option<&Path>, repo: &Path) -> Result<Session> {
    let source = source_for(repo, None)?;
    let outcome = load::load_repo(&source);
    for d in &outcome.diagnostics {
        eprintln!("{d}");
    }
    let desired = outcome
        .desired
        .ok_or_else(|| anyhow!("weir.yaml does not load; fix the errors above"))?;
    let store = super::open_store(state, repo).await?;
    let lock = engine::lock_store(&store)?;
    let clients = engine::clients(&desired)?;
    let resumed = lifecycle::resume_pending(&store, |c| {
        clients.get(c).map(|client| FlinkClient::clone(client))
    })
    .await?;
    for r in resumed {
        eprintln!(
            "weir: interrupted savepoint operation {} of {}: {}",
            r.operation, r.job, r.result
        );
    }
    Ok(Session {
        desired,
        store,
        clients,
        _lock: lock,
    })
}

/// `weir savepoint` and `weir savepoints` (lineage, pin, unpin, prune).
pub(super) async fn run(state: Option<&Path>, command: super::Command) -> Result<i32> {
    match command {
        super::Command::Savepoints {
            action: Some(action),
            ..
        } => savepoints_action(state, action).await,
        super::Command::Savepoints {
            action: None,
            job,
            repo,
            format,
        } => {
            let store = super::open_store(state, &repo).await?;
            super::read::savepoints_cmd(&store, &job.unwrap_or_default(), format).await
        }
        super::Command::Savepoint {
            job,
            repo,
            timeout,
            format,
        } => {
            let timeout = Duration::from_secs(timeout.max(1));
            savepoint_cmd(state, &repo, &job, timeout, format).await
        }
        _ => unreachable!("only savepoint commands are routed here"),
    }
}

/// The result of `weir savepoint JOB --format json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Taken {
    job: String,
    cluster: String,
    flink_job_id: String,
    path: String,
    origin: &'static str,
    at_ms: i64,
}

/// `weir savepoint JOB`.
async fn savepoint_cmd(
    state: Option<&Path>,
    repo: &Path,
    job: &str,
    timeout: Duration,
    format: OutputFormat,
) -> Result<i32> {
    let ctx = context(state, repo).await?;
    let record = ctx
        .store
        .job(job)
        .await?
        .filter(|r| !r.deleted)
        .ok_or_else(|| anyhow!("weir has no record of a job {job:?}; apply it first"))?;
    let flink_job_id: JobId = record
        .current_job_id
        .as_deref()
        .ok_or_else(|| anyhow!("{job} has no running Flink job (suspended or never started)"))?
        .parse()
        .with_context(|| format!("the job id recorded for {job}"))?;
    let client = ctx.clients.get(&record.cluster).ok_or_else(|| {
        anyhow!(
            "{job} runs on cluster {:?}, which weir.yaml no longer defines",
            record.cluster
        )
    })?;
    match client.job_state(&flink_job_id).await? {
        Some(JobState::Running) => {}
        other => {
            let state = other.map_or("not on the cluster".to_string(), |s| s.to_string());
            eprintln!("weir: {job} (Flink job {flink_job_id}) is {state}; no savepoint taken");
            return Ok(1);
        }
    }
    let target = SavepointTarget {
        job: job.to_string(),
        cluster: record.cluster.clone(),
        flink_job_id,
        savepoint_dir: savepoint_dir(&ctx.desired, job, &record.cluster),
    };
    eprintln!("weir: taking a savepoint of {job} (Flink job {flink_job_id})…");
    let waits = Waits {
        timeout,
        poll_interval: Duration::from_millis(500),
    };
    let mut last_report = Duration::ZERO;
    let progress = |elapsed: Duration| {
        if elapsed >= last_report + Duration::from_secs(5) {
            last_report = elapsed;
            eprintln!(
                "weir: still waiting for the savepoint ({}s)",
                elapsed.as_secs()
            );
        }
    };
    let actor = cli_actor();
    match lifecycle::take_savepoint(
        &ctx.store,
        client,
        &target,
        OperationOrigin::Manual,
        actor,
        waits,
        progress,
    )
    .await
    {
        Ok(sp) => {
            let taken = Taken {
                job: job.to_string(),
                cluster: record.cluster,
                flink_job_id: sp.flink_job_id,
                path: sp.path,
                origin: OperationOrigin::Manual.as_str(),
                at_ms: sp.at_ms,
            };
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&taken)?),
                OutputFormat::Text => println!("Savepoint of {job} recorded: {}", taken.path),
            }
            Ok(0)
        }
        Err(e @ LifecycleError::StillInProgress { .. }) => {
            eprintln!("weir: {}", crate::text::error_chain(&e));
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// The savepoint directory of `job`: its own, else its cluster's (a job whose definition does
/// not load uses its cluster's).
fn savepoint_dir(desired: &DesiredState, job: &str, cluster: &str) -> Option<String> {
    desired
        .jobs
        .iter()
        .find(|j| j.name == job)
        .and_then(|j| j.savepoint_dir.clone())
        .or_else(|| {
            desired
                .config
                .clusters
                .get(cluster)
                .and_then(|c| c.savepoint_dir.clone())
        })
}

/// `weir savepoints pin|unpin|prune`.
async fn savepoints_action(state: Option<&Path>, action: SavepointsAction) -> Result<i32> {
    match action {
        SavepointsAction::Pin { job, path, repo } => {
            let store = super::open_store(state, &repo).await?;
            store
                .pin_savepoint(&job, &path, cli_actor().as_deref(), crate::clock::now_ms())
                .await?;
            println!("Pinned {path} of {job}: retention keeps it until `weir savepoints unpin`.");
            Ok(0)
        }
        SavepointsAction::Unpin { job, path, repo } => {
            let store = super::open_store(state, &repo).await?;
            if store.unpin_savepoint(&job, &path).await? {
                println!("Unpinned {path} of {job}.");
                Ok(0)
            } else {
                eprintln!("weir: {path} of {job} was not pinned");
                Ok(1)
            }
        }
        SavepointsAction::Prune {
            job,
            repo,
            dry_run,
            timeout,
            format,
        } => {
            let ctx = context(state, &repo).await?;
            let waits = Waits {
                timeout: Duration::from_secs(timeout.max(1)),
                poll_interval: Duration::from_millis(500),
            };
            prune_cmd(&ctx, job.as_deref(), dry_run, waits, format).await
        }
    }
}

async fn prune_cmd(
    ctx: &Session,
    only: Option<&str>,
    dry_run: bool,
    waits: Waits,
    format: OutputFormat,
) -> Result<i32> {
    if let Some(name) = only
        && !ctx.desired.jobs.iter().any(|j| j.name == name)
    {
        eprintln!("weir: no valid definition of a job {name:?} in the repo");
        return Ok(1);
    }
    let mut all: Vec<Pruned> = Vec::new();
    for job in &ctx.desired.jobs {
        if only.is_some_and(|n| n != job.name) {
            continue;
        }
        let Some(policy) = job.lifecycle.retain.filter(|p| p.is_set()) else {
            if only.is_some() {
                eprintln!(
                    "weir: {} has no retention policy (spec.savepoint.retain)",
                    job.name
                );
            }
            continue;
        };
        let Some(client) = ctx.clients.get(job.cluster.as_str()) else {
            continue;
        };
        let pruned = lifecycle::prune_job(
            &ctx.store,
            client,
            &job.name,
            &policy,
            dry_run,
            OperationOrigin::Manual,
            cli_actor(),
            waits,
        )
        .await?;
        all.extend(pruned);
    }
    let failed = all.iter().any(|p| p.failed);
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        OutputFormat::Text => print!("{}", prune_text(&all, dry_run)),
    }
    Ok(i32::from(failed))
}

fn prune_text(all: &[Pruned], dry_run: bool) -> String {
    let mut out = Vec::new();
    for p in all {
        let what = match (&p.result, p.decision.disposes()) {
            (Some(result), _) => result.clone(),
            (None, _) => format!(
                "keep ({})",
                p.decision
                    .keep
                    .iter()
                    .map(|k| serde_json::to_value(k)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = writeln!(
            out,
            "{}  {}  {}  {what}",
            p.job,
            crate::clock::table_time(p.decision.at_ms),
            p.decision.path
        );
    }
    let gone = all.iter().filter(|p| p.decision.disposes()).count();
    let failed = all.iter().filter(|p| p.failed).count();
    let summary = match (dry_run, failed) {
        (true, _) => format!("Would dispose {gone} savepoint(s); nothing changed.\n"),
        (false, 0) => format!("Disposed {gone} savepoint(s).\n"),
        (false, n) => format!(
            "Disposed {} savepoint(s); {n} disposal(s) failed and stay recorded (retried next time).\n",
            gone - n
        ),
    };
    let _ = out.write_all(summary.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}
