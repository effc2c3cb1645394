//! The read-only commands: `weir status`, `history`, `show`, `savepoints`, `runs`, and `prune`.

use std::path::Path;

use anyhow::{Context, Result};

use super::plan::source_for;
use super::{HistoryFormat, OutputFormat, open_store};
use crate::audit;
use crate::clock::now_ms;
use crate::engine;
use crate::load;
use crate::store::Store;
use crate::store::Trigger;
use crate::store::retention::PruneRequest;

pub(super) async fn status_cmd(store: &Store, repo: &Path, format: OutputFormat) -> Result<i32> {
    let source = source_for(repo, None)?;
    let outcome = load::load_repo(&source);
    for d in &outcome.diagnostics {
        eprintln!("{d}");
    }
    let Some(desired) = outcome.desired.clone() else {
        return Ok(1);
    };
    let snapshot = engine::snapshot(store, &desired).await?;
    let plan = snapshot.plan(&desired, &outcome.invalid_files, "status".into(), now_ms());
    let mut rows = crate::status::rows(&desired, &snapshot.observation, &snapshot.history, &plan);
    add_health(&mut rows, &snapshot, &desired).await;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Text => print!("{}", crate::status::table(&rows)),
    }
    Ok(0)
}

/// Reads the health of every running job shown (three GETs each, eight jobs at a time). A job
/// whose health cannot be read shows none; `weir status` still answers.
async fn add_health(
    rows: &mut [crate::status::StatusRow],
    snapshot: &engine::Snapshot,
    desired: &crate::desired::DesiredState,
) {
    use futures::StreamExt;
    let thresholds = crate::lifecycle::health::Thresholds::from(
        &desired.config.health.clone().unwrap_or_default(),
    );
    let thresholds = &thresholds;
    let reports: Vec<_> = futures::stream::iter(rows.iter().enumerate())
        .map(|(i, row)| async move {
            let id = row.job_id.parse::<crate::identity::JobId>().ok()?;
            let state: crate::flink::JobState = row.flink_state.parse().ok()?;
            let client = snapshot.clients.get(&row.cluster)?;
            let report = crate::lifecycle::health_of(client, &id, &state, thresholds, &mut vec![])
                .await
                .ok()??;
            Some((i, report))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (i, report) in reports.into_iter().flatten() {
        rows[i].health = Some(report.health);
        rows[i].health_reasons = report.reasons;
    }
}

pub(super) async fn history_cmd(
    store: &Store,
    job: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
    format: HistoryFormat,
) -> Result<i32> {
    let filter = audit::history_filter(job, since_ms, limit, format == HistoryFormat::Jsonl);
    let records = audit::load_history(store, &filter).await?;
    match format {
        HistoryFormat::Text => print!("{}", audit::history_text(&records)),
        HistoryFormat::Json => println!("{}", serde_json::to_string_pretty(&records)?),
        HistoryFormat::Jsonl => print!("{}", audit::jsonl(&records)?),
    }
    Ok(0)
}

pub(super) async fn show_cmd(store: &Store, id: &str, format: OutputFormat) -> Result<i32> {
    let Some(shown) = audit::load_shown(store, id).await? else {
        eprintln!(
            "weir: no apply or plan {id:?} in {}",
            store.path().display()
        );
        return Ok(1);
    };
    match format {
        OutputFormat::Text => print!("{}", audit::shown_text(&shown)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&shown)?),
    }
    Ok(0)
}

pub(super) async fn savepoints_cmd(store: &Store, job: &str, format: OutputFormat) -> Result<i32> {
    let lineage = audit::load_lineage(store, job).await?;
    match format {
        OutputFormat::Text => print!("{}", audit::lineage_text(&lineage)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&lineage)?),
    }
    Ok(0)
}

/// `weir runs JOB`: the job's recorded runs. When the repo loads, open runs are first settled
/// from what the clusters report (a run weir saw start may have ended since).
pub(super) async fn runs_cmd(
    store: &Store,
    repo: &Path,
    job: &str,
    limit: u32,
    format: OutputFormat,
) -> Result<i32> {
    let desired = source_for(repo, None)
        .ok()
        .and_then(|source| load::load_repo(&source).desired);
    if let Some(desired) = desired
        && let Ok(clients) = engine::clients(&desired)
    {
        let observation = crate::observe::observe(&clients).await;
        engine::runs::settle_runs(store, &observation, now_ms()).await?;
    }
    let runs = store.runs(job, i64::from(limit)).await?;
    match format {
        OutputFormat::Text => print!("{}", audit::runs_text(job, &runs)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
    }
    Ok(0)
}

/// `weir prune`: records older than `older_than`, or the log of earlier prunes.
pub(super) async fn prune(
    state: Option<&Path>,
    repo: &Path,
    older_than: Option<&str>,
    dry_run: bool,
    log: bool,
    format: OutputFormat,
) -> Result<i32> {
    let now = now_ms();
    let cutoff_ms = older_than
        .map(|s| audit::parse_since(s, now))
        .transpose()
        .context("--older-than")?;
    let store = open_store(state, repo).await?;
    match cutoff_ms {
        Some(cutoff_ms) if !log => prune_cmd(&store, cutoff_ms, now, dry_run, format).await,
        _ => prune_log_cmd(&store, format).await,
    }
}

async fn prune_cmd(
    store: &Store,
    cutoff_ms: i64,
    now: i64,
    dry_run: bool,
    format: OutputFormat,
) -> Result<i32> {
    let report = store
        .prune(&PruneRequest {
            cutoff_ms,
            at_ms: now,
            trigger: Trigger::Cli,
            actor: audit::cli_actor(),
            keep_plans: Vec::new(),
            dry_run,
        })
        .await?;
    match format {
        OutputFormat::Text => print!("{}", audit::prune_text(&report)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(0)
}

async fn prune_log_cmd(store: &Store, format: OutputFormat) -> Result<i32> {
    let log = store.prunes().await?;
    match format {
        OutputFormat::Text => print!("{}", audit::prune_log_text(&log)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&log)?),
    }
    Ok(0)
}
