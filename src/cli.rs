//! The `weir` command line: argument parsing and the glue between the library's stages.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::apply::{Applier, now_ms};
use crate::desired::DesiredState;
use crate::flink::FlinkClient;
use crate::git::RepoSource;
use crate::load::{self, LoadOutcome};
use crate::observe::{self, ClusterObservation, Observation};
use crate::plan::{self, JobHistory, Plan, PlanInput};
use crate::render;
use crate::store::{PlanRecord, Store};

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
    #[command(subcommand)]
    command: Command,
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
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also save the plan (JSON) for `weir apply PLANFILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 1 on error, 2 when there are changes.
        #[arg(long)]
        detailed_exitcode: bool,
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
        #[arg(long, default_value_t = 50)]
        limit: usize,
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
            format,
            out,
            detailed_exitcode,
        } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            plan_cmd(
                &store,
                &repo,
                rev.as_deref(),
                format,
                out.as_deref(),
                detailed_exitcode,
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
        Command::Status { repo, format } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            status_cmd(&store, &repo, format).await
        }
        Command::History {
            job,
            repo,
            limit,
            format,
        } => {
            let store = open_store(cli.state.as_deref(), &repo).await?;
            history_cmd(&store, job.as_deref(), limit, format).await
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
fn load_valid(source: &RepoSource) -> (Option<DesiredState>, LoadOutcome) {
    let outcome = load::load_repo(source);
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

pub fn clients(desired: &DesiredState) -> Result<BTreeMap<String, Arc<FlinkClient>>> {
    let mut out = BTreeMap::new();
    for (name, cfg) in &desired.config.clusters {
        let client = FlinkClient::new(name, cfg).map_err(|e| anyhow!("cluster `{name}`: {e}"))?;
        out.insert(name.clone(), Arc::new(client));
    }
    Ok(out)
}

async fn history_map(store: &Store) -> Result<BTreeMap<String, JobHistory>> {
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
    trigger: &str,
) -> Result<Option<Planned>> {
    let source = source_for(repo, rev)?;
    let (valid, outcome) = load_valid(&source);
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
    let clients = clients(&desired)?;
    let observation = observe::observe(&clients).await;
    let history = history_map(store).await?;
    let plan = plan::plan(&PlanInput {
        plan_id: new_id("plan"),
        created_at_ms: now_ms(),
        desired: &desired,
        invalid_files: &outcome.invalid_files,
        observation: &observation,
        history: &history,
    });
    store
        .insert_plan(&PlanRecord {
            id: plan.id.clone(),
            created_at_ms: plan.created_at_ms,
            revision: plan.revision.to_string(),
            trigger: trigger.to_string(),
            summary: plan.summary.line(),
            plan_json: serde_json::to_string(&plan)?,
            job_names: plan.changes.iter().map(|c| c.job.clone()).collect(),
        })
        .await?;
    Ok(Some(Planned {
        plan,
        desired,
        clients,
        source,
    }))
}

async fn plan_cmd(
    store: &Store,
    repo: &Path,
    rev: Option<&str>,
    format: Format,
    out: Option<&Path>,
    detailed: bool,
) -> Result<i32> {
    let Some(planned) = make_plan(store, repo, rev, "cli").await? else {
        return Ok(1);
    };
    let plan = &planned.plan;
    let rendered = match format {
        Format::Text => render::text(plan),
        Format::Json => render::json(plan),
        Format::Markdown => render::markdown(plan),
    };
    print!("{rendered}");
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

struct ApplyOptions {
    auto_approve: bool,
    parallel: usize,
    savepoint_timeout: Duration,
    start_timeout: Duration,
}

fn applier(
    store: &Store,
    planned_clients: BTreeMap<String, Arc<FlinkClient>>,
    source: RepoSource,
    opts: &ApplyOptions,
) -> Applier {
    Applier {
        store: store.clone(),
        clients: planned_clients,
        source: Arc::new(source),
        concurrency: opts.parallel,
        savepoint_timeout: opts.savepoint_timeout,
        start_timeout: opts.start_timeout,
        progress: Arc::new(|msg: &str| eprintln!("  {msg}")),
        trigger: "cli".into(),
    }
}

/// Holds an exclusive lock on `<state>.lock` so that two applies never run against one store.
fn lock_store(store: &Store) -> Result<std::fs::File> {
    let mut path = store.path().as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another weir apply holds {}; wait for it to finish",
                path.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

async fn resume_interrupted(store: &Store, repo: &Path, opts: &ApplyOptions) -> Result<bool> {
    let unfinished = store.unfinished_applies().await?;
    if unfinished.is_empty() {
        return Ok(true);
    }
    eprintln!(
        "weir: {} interrupted apply(s) found; finishing them first.",
        unfinished.len()
    );
    // The interrupted changes are completed against the working tree's definitions; a submission
    // is only repeated when the definition still yields the recorded job id.
    let source = source_for(repo, None)?;
    let outcome = load::load_repo(&source);
    let Some(desired) = outcome.desired.clone() else {
        for d in &outcome.diagnostics {
            eprintln!("{d}");
        }
        bail!("cannot resume the interrupted apply: weir.yaml is invalid");
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
    let applier = applier(store, clients, source, opts);
    let report = applier.resume(|id| plans.get(id).cloned()).await?;
    let mut ok = true;
    for line in &report {
        eprintln!("  {line}");
        ok &= !line.contains(" failed: ") && !line.contains("cannot be loaded");
    }
    Ok(ok)
}

/// Attaches definitions where the repo still has them; `settle` refuses a resubmission whose
/// definition changed, so a missing or changed definition cannot start the wrong program.
fn attach_available(plan: &mut Plan, desired: &DesiredState) {
    for change in &mut plan.changes {
        change.desired = desired.jobs.iter().find(|j| j.name == change.job).cloned();
    }
}

async fn apply_cmd(
    store: &Store,
    repo: &Path,
    planfile: Option<&Path>,
    opts: ApplyOptions,
) -> Result<i32> {
    let _lock = lock_store(store)?;
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
            if observation.fingerprint() != plan.observed_fingerprint {
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
            let Some(planned) = make_plan(store, repo, None, "cli").await? else {
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
    job: Option<&str>,
    limit: usize,
    format: OutputFormat,
) -> Result<i32> {
    let entries = store.history(job, limit).await?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        OutputFormat::Text => print!("{}", crate::status::history_table(&entries)),
    }
    Ok(0)
}
