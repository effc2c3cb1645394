//! `weir validate` and `weir plan` (text, JSON, or a pull-request preview in markdown).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tokio_util::task::AbortOnDropHandle;

use super::{Format, left_for_exit, open_store, plural};
use crate::audit;
use crate::desired::DesiredState;
use crate::engine::{self, EarlySnapshot, Planned, PreflightOptions};
use crate::git::RepoSource;
use crate::load::{self, LoadOutcome};
use crate::plan::Plan;
use crate::render;
use crate::spec::ClusterConfig;
use crate::store::{Store, Trigger};

/// `weir plan`'s options.
pub(super) struct PlanArgs<'a> {
    pub rev: Option<&'a str>,
    pub clusters_from: Option<&'a str>,
    pub format: Format,
    pub out: Option<&'a Path>,
    pub detailed: bool,
    pub split_dir: Option<&'a Path>,
    pub comment_limit: u64,
    /// Pre-flight the programs of the changes (off with `--no-preflight`).
    pub preflight: bool,
    /// How URL jars are fetched for the pre-flight (`--allow-file-urls`).
    pub artifacts: crate::artifact::ArtifactSettings,
}

/// How `weir plan` and `weir apply` pre-flight: every program on its target cluster, unless
/// `--no-preflight`.
pub(super) fn preflight_options(
    on: bool,
    artifacts: crate::artifact::ArtifactSettings,
) -> PreflightOptions {
    if on {
        PreflightOptions::everywhere(artifacts)
    } else {
        PreflightOptions::off("--no-preflight")
    }
}

/// `--clusters-from`: where the cluster settings come from, and what they are.
#[derive(Clone)]
pub(super) struct BaseClusters {
    rev: String,
    clusters: BTreeMap<String, ClusterConfig>,
}

/// The repo at `rev`, or its working tree.
pub(super) fn source_for(repo: &Path, rev: Option<&str>) -> Result<RepoSource> {
    Ok(engine::open_source(repo, rev)?)
}

/// The cluster settings of the `weir.yaml` at `rev` (for `--clusters-from`).
fn base_clusters(repo: &Path, rev: &str) -> Result<BaseClusters> {
    let source = source_for(repo, Some(rev))?;
    let clusters = load::clusters::clusters_of(&source).ok_or_else(|| {
        anyhow::anyhow!(
            "--clusters-from {rev}: weir.yaml does not load at that revision (run weir validate --ref {rev})"
        )
    })?;
    Ok(BaseClusters {
        rev: rev.to_string(),
        clusters,
    })
}

/// Loads `source`, with the clusters of `base` when given, and prints every diagnostic. The
/// desired state only when there are none; the warning to show when the source's own clusters
/// differ from `base`'s.
fn load_valid_with(
    source: &RepoSource,
    base: Option<&BaseClusters>,
) -> (Option<DesiredState>, LoadOutcome, Option<String>) {
    let (outcome, changed) = engine::load(source, base.map(|b| &b.clusters));
    // The loading threads' arenas hold the freed parse trees, which nothing after the load
    // reuses (at 10,000 files, ~4 MiB of a plan's peak). Here, not in the loader: the daemon
    // trims once after each reconcile, off the path from a push to its first Flink call.
    crate::memory::release_freed();
    let (valid, outcome) = report_load(outcome);
    let warning = base.filter(|_| changed).map(|base| {
        format!(
            "This revision changes `clusters` in weir.yaml; the plan uses the cluster settings of \
             `{}` (--clusters-from), and the new ones take effect once merged.",
            base.rev
        )
    });
    if let Some(w) = &warning {
        eprintln!("weir: {w}");
    }
    (valid, outcome, warning)
}

/// Loads `source`; prints every diagnostic. The desired state only when there are none.
pub(super) fn load_valid(source: &RepoSource) -> (Option<DesiredState>, LoadOutcome) {
    let (valid, outcome, _) = load_valid_with(source, None);
    (valid, outcome)
}

/// Prints every diagnostic; the desired state only when there are none (moved out of the
/// outcome then, not copied: at 10,000 jobs a copy cost as much as planning them).
fn report_load(mut outcome: LoadOutcome) -> (Option<DesiredState>, LoadOutcome) {
    for d in &outcome.diagnostics {
        eprintln!("{d}");
    }
    let valid = if outcome.diagnostics.is_empty() {
        outcome.desired.take()
    } else {
        None
    };
    (valid, outcome)
}

/// `weir validate`: the chosen environment (`--env`), else every environment of the repo.
pub(super) fn validate(repo: &Path, rev: Option<&str>) -> Result<i32> {
    let source = source_for(repo, rev)?;
    let (valid, outcome) = match crate::identity::environment() {
        Some(_) => load_valid(&source),
        None => report_load(load::load_every_environment(&source)),
    };
    match valid {
        Some(d) => {
            let environments = &d.config.environments;
            let scope = if crate::identity::environment().is_some() || environments.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = environments.keys().map(String::as_str).collect();
                format!(" in every environment ({})", names.join(", "))
            };
            println!(
                "OK: {} job definition{} valid{scope}.",
                d.jobs.len(),
                plural(d.jobs.len())
            );
            left_for_exit(d);
            Ok(0)
        }
        None => {
            let n = outcome.diagnostics.len();
            let files = outcome.invalid_files.len();
            eprintln!(
                "{n} error{} in {} file{}.",
                plural(n),
                files.max(1),
                plural(files)
            );
            Ok(1)
        }
    }
}

/// A source loaded while the clusters it names were observed.
struct LoadedSource {
    source: RepoSource,
    /// The desired state, when the load found no errors.
    valid: Option<DesiredState>,
    outcome: LoadOutcome,
    /// What `--clusters-from` warns of.
    warning: Option<String>,
    /// The observation and history gathered during the load (aborted when dropped unused).
    early: Option<AbortOnDropHandle<Option<EarlySnapshot>>>,
}

/// The snapshot taken during the load, once it is done.
async fn finished(
    early: Option<AbortOnDropHandle<Option<EarlySnapshot>>>,
) -> Option<EarlySnapshot> {
    early?.await.ok().flatten()
}

/// Loads the repo at `rev` on a blocking thread while the clusters its `weir.yaml` names (or
/// `base`'s) are observed and the store's history is read: at 10,000 jobs the load takes a few
/// hundred milliseconds, and the observation (one `/jobs/overview` answer of 4 MiB) need not
/// wait for it. Prints every diagnostic.
async fn load_observing(
    store: &Store,
    repo: &Path,
    rev: Option<&str>,
    base: Option<&BaseClusters>,
) -> Result<LoadedSource> {
    let source = source_for(repo, rev)?;
    let clusters = match base {
        Some(base) => Some(base.clusters.clone()),
        None => load::clusters::clusters_of(&source),
    };
    let early = clusters.map(|clusters| {
        AbortOnDropHandle::new(tokio::spawn(EarlySnapshot::take(store.clone(), clusters)))
    });
    let base = base.cloned();
    let (source, (valid, outcome, warning)) = tokio::task::spawn_blocking(move || {
        let loaded = load_valid_with(&source, base.as_ref());
        (source, loaded)
    })
    .await
    .context("the loading thread failed")?;
    Ok(LoadedSource {
        source,
        valid,
        outcome,
        warning,
        early,
    })
}

/// A plan made and recorded by the CLI, with the source it was made from.
pub(super) struct CliPlan {
    pub planned: Planned,
    pub source: RepoSource,
}

/// Loads the repo (at `rev`), plans and records it. `None` (with the errors printed) when the
/// repo is invalid.
pub(super) async fn make_plan(
    store: &Store,
    repo: &Path,
    rev: Option<&str>,
    base: Option<&BaseClusters>,
    preflight: &PreflightOptions,
) -> Result<Option<CliPlan>> {
    let mut loaded = load_observing(store, repo, rev, base).await?;
    let Some(desired) = loaded.valid.take() else {
        let n = loaded.outcome.diagnostics.len();
        eprintln!(
            "weir: the repo has {n} error{}; nothing was planned and no job was touched.",
            plural(n)
        );
        return Ok(None);
    };
    let early = finished(loaded.early.take()).await;
    let invalid_files = &loaded.outcome.invalid_files;
    let mut made = plan_loaded(
        store,
        loaded.source,
        desired,
        invalid_files,
        preflight,
        early,
    )
    .await?;
    made.planned.plan.warnings.extend(loaded.warning);
    Ok(Some(made))
}

/// Plans `desired` (with the snapshot taken while it loaded, when there is one) and records the
/// plan with the local user as its actor.
async fn plan_loaded(
    store: &Store,
    source: RepoSource,
    desired: DesiredState,
    invalid_files: &[String],
    preflight: &PreflightOptions,
    early: Option<EarlySnapshot>,
) -> Result<CliPlan> {
    let mut planned = engine::plan_with(store, desired, invalid_files, early).await?;
    engine::preflight(store, &mut planned, &source, preflight).await;
    engine::record_plan(
        store,
        &planned.plan,
        Trigger::Cli,
        &source,
        audit::cli_actor(),
    )
    .await?;
    Ok(CliPlan { planned, source })
}

pub(super) async fn plan_cmd(state: Option<&Path>, repo: &Path, args: PlanArgs<'_>) -> Result<i32> {
    if args.split_dir.is_some() && args.format != Format::Markdown {
        bail!("--split-dir needs --format markdown");
    }
    let store = open_store(state, repo).await?;
    let base = args
        .clusters_from
        .map(|rev| base_clusters(repo, rev))
        .transpose()?;
    if args.format == Format::Markdown {
        return preview_cmd(&store, repo, base.as_ref(), &args).await;
    }
    let preflight = preflight_options(args.preflight, args.artifacts.clone());
    let Some(made) = make_plan(&store, repo, args.rev, base.as_ref(), &preflight).await? else {
        return Ok(1);
    };
    let plan = &made.planned.plan;
    let rendered = match args.format {
        Format::Json => scrubbed_json(render::json(plan)),
        _ => crate::redact::text(&render::text(plan)),
    };
    print!("{rendered}");
    let code = finish_plan(plan, args.out, args.detailed);
    left_for_exit(made.planned);
    code
}

/// A rendered JSON plan with its strings scrubbed of known secret values (the planner redacts
/// by pattern; a value of an environment secret quoted in an argument is only known here).
fn scrubbed_json(rendered: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&rendered) {
        Ok(mut v) => {
            crate::redact::json_strings(&mut v);
            let mut out = serde_json::to_string_pretty(&v).unwrap_or(rendered);
            out.push('\n');
            out
        }
        Err(_) => crate::redact::text(&rendered),
    }
}

/// Saves the plan when asked; the exit code of `weir plan`.
fn finish_plan(plan: &Plan, out: Option<&Path>, detailed: bool) -> Result<i32> {
    if let Some(out) = out {
        std::fs::write(out, scrubbed_json(render::json(plan)))
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}. Apply exactly this plan with: weir apply {}",
            out.display(),
            out.display()
        );
    }
    if !plan.errors.is_empty() {
        return Ok(1);
    }
    Ok(if detailed && plan.has_changes() { 2 } else { 0 })
}

/// `weir plan --format markdown`: a pull-request preview. Unlike text and JSON it is rendered
/// for a repo with invalid files too: every diagnostic is listed and the valid jobs are planned
/// (the planner deletes nothing then); the exit code is still 1 and no plan file is saved.
async fn preview_cmd(
    store: &Store,
    repo: &Path,
    base: Option<&BaseClusters>,
    args: &PlanArgs<'_>,
) -> Result<i32> {
    let LoadedSource {
        source,
        valid,
        outcome,
        warning,
        early,
    } = load_observing(store, repo, args.rev, base).await?;
    // An invalid repo is previewed too: its valid jobs are planned (and none deleted).
    let made = match valid.or_else(|| outcome.desired.clone()) {
        Some(desired) => {
            let preflight = preflight_options(args.preflight, args.artifacts.clone());
            let early = finished(early).await;
            let invalid_files = &outcome.invalid_files;
            let mut made =
                plan_loaded(store, source, desired, invalid_files, &preflight, early).await?;
            made.planned.plan.warnings.extend(warning);
            Some(made)
        }
        None => None,
    };
    let plan = made.as_ref().map(|m| &m.planned.plan);
    let preview = crate::render::markdown::Preview::new(plan, &outcome.diagnostics);
    print!("{}", crate::redact::text(&preview.to_markdown()));
    if let Some(dir) = args.split_dir {
        let limit = usize::try_from(args.comment_limit).unwrap_or(usize::MAX);
        // Scrubbed like everything weir prints. A replacement is at most 4 characters longer
        // than the secret it hides; the default limit leaves 536 of GitHub's 65,536.
        let parts: Vec<String> = preview
            .split(limit)
            .iter()
            .map(|part| crate::redact::text(part))
            .collect();
        crate::render::markdown::write_parts(dir, &parts)
            .with_context(|| format!("writing the preview to {}", dir.display()))?;
        eprintln!(
            "Wrote the preview as {} comment{} to {} (comment-1.md … comment-{}.md).",
            parts.len(),
            plural(parts.len()),
            dir.display(),
            parts.len()
        );
    }
    let plan = match plan {
        Some(plan) if outcome.is_clean() => plan,
        _ => {
            let n = outcome.diagnostics.len();
            eprintln!(
                "weir: the repo has {n} error{}; the preview lists them. Nothing can be applied \
                 until they are fixed{}.",
                plural(n),
                if args.out.is_some() {
                    ", and no plan file was saved"
                } else {
                    ""
                }
            );
            return Ok(1);
        }
    };
    finish_plan(plan, args.out, args.detailed)
}
