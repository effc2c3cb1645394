//! The `weir` command line: argument parsing and the glue between the library's stages.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::apply::{Applier, now_ms};
use crate::audit;
use crate::desired::DesiredState;
use crate::flink::FlinkClient;
use crate::git::RepoSource;
use crate::load::{self, LoadOutcome};
use crate::observe::{self, ClusterObservation, Observation};
use crate::plan::{self, Plan, PlanInput};
use crate::render;
use crate::serve::engine::{self, ApplySettings, history_map};
use crate::store::Store;
use crate::store::Trigger;
use crate::store::audit::RecordKind;
use crate::store::retention::PruneRequest;

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "GitOps for Apache Flink: plan and apply Flink jobs from a Git repository"
)]
pub struct Cli {
    /// The state store (SQLite file). Default: `.weir/state.db` inside the repo.
    #[arg(long, global = true, env = "WEIR_STATE")]
    state: Option<PathBuf>,
    /// Log format on stderr (levels with WEIR_LOG, e.g. `info`).
    #[arg(long, global = true, env = "WEIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every file of the repo; print every error as `path:line:col: message`.
    Validate {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Validate the tree at this Git revision instead of the working tree.
        #[arg(long = "ref")]
        rev: Option<String>,
    },
    /// Show what apply would change on the clusters.
    Plan {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Plan the tree at this Git revision (branch, tag, commit) without checking it out.
        #[arg(long = "ref")]
        rev: Option<String>,
        /// Take `clusters` of weir.yaml from this revision (e.g. the pull request's target
        /// branch), so that the revision planned cannot choose where weir connects.
        #[arg(long, value_name = "REV", conflicts_with = "out")]
        clusters_from: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also save the plan (JSON) for `weir apply PLANFILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 1 on error, 2 when there are changes.
        #[arg(long)]
        detailed_exitcode: bool,
        /// With `--format markdown`: also write the preview as DIR/comment-1.md, comment-2.md, …
        /// (one pull-request comment each, at most --comment-limit characters); earlier
        /// comment-N.md files in DIR are removed.
        #[arg(long, value_name = "DIR")]
        split_dir: Option<PathBuf>,
        /// Size limit of one comment written by --split-dir, in characters.
        #[arg(
            long,
            value_name = "CHARS",
            requires = "split_dir",
            default_value_t = crate::preview::DEFAULT_LIMIT as u64,
            value_parser = clap::value_parser!(u64).range(crate::preview::MIN_LIMIT as u64..)
        )]
        comment_limit: u64,
    },
    /// Make the clusters match the repo (or apply a saved plan exactly).
    Apply {
        /// A plan saved with `weir plan --out`; refused when stale.
        planfile: Option<PathBuf>,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// How many jobs to change at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Seconds to wait for a savepoint.
        #[arg(long, default_value_t = 300)]
        savepoint_timeout: u64,
        /// Seconds to wait for a submitted job to be RUNNING.
        #[arg(long, default_value_t = 180)]
        start_timeout: u64,
    },
    /// Run the GitOps daemon: follow a Git branch, reconcile, self-heal, serve the HTTP API.
    Serve(crate::serve::config::Overrides),
    /// A table of jobs: sync state, Flink state, job id, last savepoint.
    Status {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Past plans and applies, newest first.
    History {
        job: Option<String>,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Only records since then: a duration back from now (30m, 24h, 7d, 1h30m) or a time
        /// (RFC 3339, or a date such as 2025-01-31).
        #[arg(long)]
        since: Option<String>,
        /// At most this many records (default 50; `jsonl` exports all unless given).
        #[arg(long)]
        limit: Option<usize>,
        /// `jsonl`: one JSON record per line, oldest first, for shipping to a log system.
        #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
        format: HistoryFormat,
    },
    /// The full story of one apply (or plan): its plan, every step with its Flink REST call,
    /// result, duration and savepoints, and how it ended.
    Show {
        /// An apply id (or a plan id), as `weir history` lists them.
        id: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Savepoint lineage of a job: which apply took each savepoint and which restored it.
    Savepoints {
        job: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Delete plan and apply records older than a duration (retention). Unfinished applies,
    /// job records and the newest savepoint of each job (with the apply and plan it came from)
    /// are always kept; the prune itself is recorded.
    Prune {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Delete records older than this: a duration back from now (90d, 24h, 0s) or a time
        /// (RFC 3339, or a date such as 2025-01-31).
        #[arg(long, value_name = "DURATION", required_unless_present = "log")]
        older_than: Option<String>,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// List the recorded prunes instead.
        #[arg(long, conflicts_with_all = ["older_than", "dry_run"])]
        log: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum HistoryFormat {
    Text,
    Json,
    Jsonl,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate { repo, rev } => validate(&repo, rev.as_deref()),
        Command::Plan {
            repo,
            rev,
            clusters_from,
            format,
            out,
            detailed_exitcode,
            split_dir,
            comment_limit,
        } => {
            if split_dir.is_some() && format != Format::Markdown {
                bail!("--split-dir needs --format markdown");
            }
            let store = open_store(cli.state.as_deref(), &repo).await?;
            let split = split_dir
                .as_deref()
                .map(|dir| (dir, usize::try_from(comment_limit).unwrap_or(usize::MAX)));
            let clusters = clusters_from
                .as_deref()
                .map(|base| base_clusters(&repo, base))
                .transpose()?;
            plan_cmd(
                &store,
                &repo,
                rev.as_deref(),
                clusters.as_ref(),
                format,
                out.as_deref(),
                detailed_exitcode,
                split,
            )
            .await
        }
        Command::Apply {
            planfile,
            repo,
            auto_approve,
            parallel,
            savepoint_timeout,
            start_timeout,
        } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            let opts = ApplyOptions {
                auto_approve,
                parallel,
                savepoint_timeout: Duration::from_secs(savepoint_timeout),
                start_timeout: Duration::from_secs(start_timeout),
            };
            apply_cmd(&store, &repo, planfile.as_deref(), opts).await
        }
        Command::Serve(overrides) => crate::serve::run(overrides, cli.state).await,
        Command::Status { repo, format } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            status_cmd(&store, &repo, format).await
        }
        Command::History {
            job,
            repo,
            since,
            limit,
            format,
        } => {
            let since_ms = since
                .as_deref()
                .map(|s| audit::parse_since(s, now_ms()))
                .transpose()
                .map_err(|e| anyhow!("--since: {e}"))?;
            let store = open_store(cli.state.as_deref(), &repo).await?;
            history_cmd(&store, job, since_ms, limit, format).await
        }
        Command::Show { id, repo, format } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            show_cmd(&store, &id, format).await
        }
        Command::Savepoints { job, repo, format } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            savepoints_cmd(&store, &job, format).await
        }
        Command::Prune {
            repo,
            older_than,
            dry_run,
            log,
            format,
        } => {
            let now = now_ms();
            let cutoff_ms = older_than
                .as_deref()
                .map(|s| audit::parse_since(s, now))
                .transpose()
                .map_err(|e| anyhow!("--older-than: {e}"))?;
            let store = open_store(cli.state.as_deref(), &repo).await?;
            match cutoff_ms {
                Some(cutoff_ms) if !log => prune_cmd(&store, cutoff_ms, now, dry_run, format).await,
                _ => prune_log_cmd(&store, format).await,
            }
        }
    }
}

async fn open_store(state: Option<&Path>, repo: &Path) -> Result<Store> {
    let path = state
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.join(".weir").join("state.db"));
    Store::open(&path)
        .await
        .with_context(|| format!("opening the state store {}", path.display()))
}

fn source_for(repo: &Path, rev: Option<&str>) -> Result<RepoSource> {
    let source = match rev {
        Some(rev) => RepoSource::git_tree(repo, rev),
        None => RepoSource::work_tree(repo),
    };
    source.map_err(|e| anyhow!("{e}"))
}

/// Loads the repo; prints diagnostics to stderr. `None` when anything is invalid.
/// The cluster settings of the `weir.yaml` at `rev` (for `--clusters-from`).
fn base_clusters(repo: &Path, rev: &str) -> Result<BaseClusters> {
    let source = source_for(repo, Some(rev))?;
    let clusters = load::clusters::clusters_of(&source).ok_or_else(|| {
        anyhow::anyhow!(
            "--clusters-from {rev}: weir.yaml does not load at that revision (run weir validate              --ref {rev})"
        )
    })?;
    Ok(BaseClusters {
        rev: rev.to_string(),
        clusters,
    })
}

/// `--clusters-from`: where the cluster settings come from, and what they are.
struct BaseClusters {
    rev: String,
    clusters: std::collections::BTreeMap<String, crate::spec::ClusterConfig>,
}

/// Loads `source`, with the clusters of `base` when given; the warning to show when the source's
/// own clusters differ.
fn load_valid_with(
    source: &RepoSource,
    base: Option<&BaseClusters>,
) -> (Option<DesiredState>, LoadOutcome, Option<String>) {
    let Some(base) = base else {
        let (valid, outcome) = load_valid(source);
        return (valid, outcome, None);
    };
    let (outcome, changed) = load::clusters::load_with_clusters(source, &base.clusters);
    let (valid, outcome) = report_load(outcome);
    let warning = changed.then(|| {
        format!(
            "This revision changes `clusters` in weir.yaml; the plan uses the cluster settings of              `{}` (--clusters-from), and the new ones take effect once merged.",
            base.rev
        )
    });
    if let Some(w) = &warning {
        eprintln!("weir: {w}");
    }
    (valid, outcome, warning)
}

fn load_valid(source: &RepoSource) -> (Option<DesiredState>, LoadOutcome) {
    report_load(load::load_repo(source))
}

/// Prints every diagnostic; the desired state only when there are none.
fn report_load(outcome: LoadOutcome) -> (Option<DesiredState>, LoadOutcome) {
    for d in &outcome.diagnostics {
        eprintln!("{d}");
    }
    let valid = if outcome.diagnostics.is_empty() {
        outcome.desired.clone()
    } else {
        None
    };
    (valid, outcome)
}

fn validate(repo: &Path, rev: Option<&str>) -> Result<i32> {
    let source = source_for(repo, rev)?;
    let (valid, outcome) = load_valid(&source);
    match valid {
        Some(d) => {
            println!(
                "OK: {} job definition{} valid.",
                d.jobs.len(),
                if d.jobs.len() == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        None => {
            let n = outcome.diagnostics.len();
            eprintln!(
                "{n} error{} in {} file{}.",
                if n == 1 { "" } else { "s" },
                outcome.invalid_files.len().max(1),
                if outcome.invalid_files.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            Ok(1)
        }
    }
}

pub use crate::serve::engine::{clients, new_id};

struct Planned {
    plan: Plan,
    desired: DesiredState,
    clients: BTreeMap<String, Arc<FlinkClient>>,
    source: RepoSource,
}

async fn make_plan(
    store: &Store,
    repo: &Path,
    rev: Option<&str>,
    base: Option<&BaseClusters>,
    trigger: &str,
) -> Result<Option<Planned>> {
    let source = source_for(repo, rev)?;
    let (valid, outcome, warning) = load_valid_with(&source, base);
    let Some(desired) = valid else {
        eprintln!(
            "weir: the repo has {} error{}; nothing was planned and no job was touched.",
            outcome.diagnostics.len(),
            if outcome.diagnostics.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        return Ok(None);
    };
    let mut planned = plan_loaded(store, source, desired, &outcome.invalid_files, trigger).await?;
    planned.plan.warnings.extend(warning);
    Ok(Some(planned))
}

/// Observes the clusters, plans `desired` and records the plan. `invalid_files` is empty except
/// for previews of a partly invalid repo (the planner then deletes nothing).
async fn plan_loaded(
    store: &Store,
    source: RepoSource,
    desired: DesiredState,
    invalid_files: &[String],
    trigger: &str,
) -> Result<Planned> {
    let clients = clients(&desired)?;
    let observation = observe::observe(&clients).await;
    let history = history_map(store).await?;
    let plan = plan::plan(&PlanInput {
        plan_id: new_id("plan"),
        created_at_ms: now_ms(),
        desired: &desired,
        invalid_files,
        observation: &observation,
        history: &history,
    });
    engine::record_plan(store, &plan, trigger).await?;
    let actor = (Trigger::from(trigger) == Trigger::Cli)
        .then(audit::cli_actor)
        .flatten();
    audit::record_origin(
        store,
        RecordKind::Plan,
        &plan.id,
        &source,
        &plan.revision,
        actor,
        now_ms(),
    )
    .await?;
    Ok(Planned {
        plan,
        desired,
        clients,
        source,
    })
}

#[allow(clippy::too_many_arguments)]
async fn plan_cmd(
    store: &Store,
    repo: &Path,
    rev: Option<&str>,
    base: Option<&BaseClusters>,
    format: Format,
    out: Option<&Path>,
    detailed: bool,
    split: Option<(&Path, usize)>,
) -> Result<i32> {
    if format == Format::Markdown {
        return preview_cmd(store, repo, rev, base, out, detailed, split).await;
    }
    let Some(planned) = make_plan(store, repo, rev, base, "cli").await? else {
        return Ok(1);
    };
    let plan = &planned.plan;
    let rendered = match format {
        Format::Json => render::json(plan),
        _ => render::text(plan),
    };
    print!("{rendered}");
    finish_plan(plan, out, detailed)
}

/// Saves the plan when asked; the exit code of `weir plan`.
fn finish_plan(plan: &Plan, out: Option<&Path>, detailed: bool) -> Result<i32> {
    if let Some(out) = out {
        std::fs::write(out, render::json(plan))
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
    rev: Option<&str>,
    base: Option<&BaseClusters>,
    out: Option<&Path>,
    detailed: bool,
    split: Option<(&Path, usize)>,
) -> Result<i32> {
    let source = source_for(repo, rev)?;
    let (_, outcome, warning) = load_valid_with(&source, base);
    let planned = match outcome.desired.clone() {
        Some(desired) => {
            let mut p = plan_loaded(store, source, desired, &outcome.invalid_files, "cli").await?;
            p.plan.warnings.extend(warning);
            Some(p)
        }
        None => None,
    };
    let plan = planned.as_ref().map(|p| &p.plan);
    let preview = crate::preview::Preview::new(plan, &outcome.diagnostics);
    print!("{}", preview.to_markdown());
    if let Some((dir, limit)) = split {
        let parts = preview.split(limit);
        crate::preview::write_parts(dir, &parts)
            .with_context(|| format!("writing the preview to {}", dir.display()))?;
        eprintln!(
            "Wrote the preview as {} comment{} to {} (comment-1.md … comment-{}.md).",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" },
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
                if n == 1 { "" } else { "s" },
                if out.is_some() {
                    ", and no plan file was saved"
                } else {
                    ""
                }
            );
            return Ok(1);
        }
    };
    finish_plan(plan, out, detailed)
}

struct ApplyOptions {
    auto_approve: bool,
    parallel: usize,
    savepoint_timeout: Duration,
    start_timeout: Duration,
}

impl ApplyOptions {
    fn settings(&self) -> ApplySettings {
        ApplySettings {
            parallel: self.parallel,
            slots: None,
            savepoint_timeout: self.savepoint_timeout,
            start_timeout: self.start_timeout,
        }
    }
}

fn applier(
    store: &Store,
    planned_clients: BTreeMap<String, Arc<FlinkClient>>,
    source: RepoSource,
    opts: &ApplyOptions,
) -> Applier {
    engine::applier(
        store,
        planned_clients,
        source,
        &opts.settings(),
        Arc::new(|msg: &str| eprintln!("  {msg}")),
        "cli",
    )
}

async fn resume_interrupted(store: &Store, repo: &Path, opts: &ApplyOptions) -> Result<bool> {
    if store.unfinished_applies().await?.is_empty() {
        return Ok(true);
    }
    // The interrupted changes are completed against the working tree's definitions; a submission
    // is only repeated when the definition still yields the recorded job id.
    let source = source_for(repo, None)?;
    eprintln!("weir: interrupted apply(s) found; finishing them first.");
    let report = engine::resume_interrupted(
        store,
        source,
        &opts.settings(),
        Arc::new(|msg: &str| eprintln!("  {msg}")),
        "cli",
    )
    .await?;
    for line in &report.lines {
        eprintln!("  {line}");
    }
    Ok(report.ok())
}

async fn apply_cmd(
    store: &Store,
    repo: &Path,
    planfile: Option<&Path>,
    opts: ApplyOptions,
) -> Result<i32> {
    let _lock = engine::lock_store(store)?;
    let resumed_ok = resume_interrupted(store, repo, &opts).await?;

    let planned = match planfile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut plan: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a weir plan", path.display()))?;
            // The plan must still describe the repo as it is now: compare against the working
            // tree (a plan made with --ref is applied from a checkout of that revision).
            let source = source_for(repo, None)?;
            let (valid, _) = load_valid(&source);
            let Some(desired) = valid else {
                eprintln!("weir: the repo is invalid; nothing was applied.");
                return Ok(1);
            };
            if desired.revision.digest != plan.revision.digest {
                eprintln!(
                    "weir: the saved plan is stale: it was made from revision {}, the repo is now at {}. \
                     Nothing was applied; run `weir plan` again.",
                    plan.revision, desired.revision
                );
                return Ok(1);
            }
            let clients = clients(&desired)?;
            let observation = observe::observe(&clients).await;
            let history = history_map(store).await?;
            if plan::observed_fingerprint(&desired, &history, &observation)
                != plan.observed_fingerprint
            {
                eprintln!(
                    "weir: the saved plan is stale: the clusters changed since it was made ({}). \
                     Nothing was applied; run `weir plan` again.",
                    describe_observation(&observation)
                );
                return Ok(1);
            }
            plan.attach(&desired).map_err(|e| anyhow!(e))?;
            print!("{}", render::text(&plan));
            Planned {
                plan,
                desired,
                clients,
                source,
            }
        }
        None => {
            let Some(planned) = make_plan(store, repo, None, None, "cli").await? else {
                return Ok(1);
            };
            print!("{}", render::text(&planned.plan));
            if !planned.plan.has_changes() {
                return Ok(if planned.plan.errors.is_empty() && resumed_ok {
                    0
                } else {
                    1
                });
            }
            if !opts.auto_approve {
                if !std::io::stdin().is_terminal() {
                    eprintln!(
                        "weir: refusing to apply without confirmation: stdin is not a terminal (use --auto-approve)."
                    );
                    return Ok(1);
                }
                print!("\nApply these changes? Only 'yes' is accepted: ");
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    eprintln!("Apply cancelled.");
                    return Ok(1);
                }
            }
            planned
        }
    };
    let _ = &planned.desired;
    let plan = planned.plan;
    if !plan.has_changes() {
        println!("No changes to apply.");
        return Ok(if plan.errors.is_empty() && resumed_ok {
            0
        } else {
            1
        });
    }
    let apply_id = new_id("apply");
    eprintln!("Applying {} (plan {}):", apply_id, plan.id);
    let applier = applier(store, planned.clients, planned.source, &opts);
    let outcomes = applier.apply(&plan, &apply_id).await?;
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    println!(
        "\nApply {}: {} change(s) succeeded, {} failed.",
        if failed == 0 {
            "complete"
        } else {
            "finished with errors"
        },
        outcomes.len() - failed,
        failed
    );
    for o in outcomes.iter().filter(|o| !o.ok) {
        println!("  {}: {}", o.job, o.message);
    }
    Ok(if failed == 0 && plan.errors.is_empty() && resumed_ok {
        0
    } else {
        1
    })
}

fn describe_observation(o: &Observation) -> String {
    o.clusters
        .iter()
        .map(|(name, c)| match c {
            ClusterObservation::Reachable { jobs, .. } => {
                format!(
                    "{name}: {} weir job(s)",
                    jobs.iter().filter(|j| j.identity.is_some()).count()
                )
            }
            ClusterObservation::Unreachable { error, .. } => {
                format!("{name}: unreachable ({error})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn status_cmd(store: &Store, repo: &Path, format: OutputFormat) -> Result<i32> {
    let source = source_for(repo, None)?;
    let outcome = load::load_repo(&source);
    for d in &outcome.diagnostics {
        eprintln!("{d}");
    }
    let Some(desired) = outcome.desired.clone() else {
        return Ok(1);
    };
    let clients = clients(&desired)?;
    let observation = observe::observe(&clients).await;
    let history = history_map(store).await?;
    let plan = plan::plan(&PlanInput {
        plan_id: "status".into(),
        created_at_ms: now_ms(),
        desired: &desired,
        invalid_files: &outcome.invalid_files,
        observation: &observation,
        history: &history,
    });
    let rows = crate::status::rows(&desired, &observation, &history, &plan);
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Text => print!("{}", crate::status::table(&rows)),
    }
    Ok(0)
}

async fn history_cmd(
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

async fn show_cmd(store: &Store, id: &str, format: OutputFormat) -> Result<i32> {
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

async fn savepoints_cmd(store: &Store, job: &str, format: OutputFormat) -> Result<i32> {
    let lineage = audit::load_lineage(store, job).await?;
    match format {
        OutputFormat::Text => print!("{}", audit::lineage_text(&lineage)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&lineage)?),
    }
    Ok(0)
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
