//! The `weir` command line: argument parsing and the glue between the engine and the terminal.
//! The daemon (`weir serve`) is dispatched by the binary (`main.rs`): the CLI does not import
//! `serve`.

mod apply;
mod plan;
mod read;
mod savepoint;

pub use savepoint::SavepointsAction;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::clock::now_ms;
use crate::store::Store;

/// Options of every command (the daemon's too).
#[derive(Args, Debug)]
pub struct Globals {
    /// The state store (SQLite file). Default: `.weir/state.db` inside the repo.
    #[arg(long, global = true, env = "WEIR_STATE")]
    pub state: Option<PathBuf>,
    /// Log format on stderr (levels with WEIR_LOG, e.g. `info`).
    #[arg(long, global = true, env = "WEIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Directories below which `file://` jar URLs may be read (repeat the flag, or separate
    /// with `:` in the variable). Off by default: a URL in the repo cannot read the host's files.
    #[arg(
        long = "allow-file-urls",
        value_name = "DIR",
        global = true,
        env = "WEIR_ALLOW_FILE_URLS",
        value_delimiter = ':'
    )]
    pub allow_file_urls: Vec<PathBuf>,
    /// The environment (a key of `environments` in weir.yaml) to validate, plan, apply or show;
    /// required by plan, apply, status and history when the repo defines environments. Each
    /// environment has its own default store, `.weir/env/NAME/state.db`.
    #[arg(long = "env", value_name = "NAME", global = true, env = "WEIR_ENV")]
    pub environment: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The commands of the CLI (`weir serve` is added by the binary, between `apply` and `status`).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check every file of the repo; print every error as `path:line:col: message`.
    #[command(display_order = 0)]
    Validate {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Validate the tree at this Git revision instead of the working tree.
        #[arg(long = "ref")]
        rev: Option<String>,
    },
    /// Show what apply would change on the clusters.
    #[command(display_order = 1)]
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
            default_value_t = crate::render::markdown::DEFAULT_LIMIT as u64,
            value_parser = clap::value_parser!(u64).range(crate::render::markdown::MIN_LIMIT as u64..)
        )]
        comment_limit: u64,
        /// Do not ask the target clusters to plan the programs of the changes (pre-flight runs
        /// each program's main() on the JobManager; the plan then says they were not checked).
        #[arg(long)]
        no_preflight: bool,
    },
    /// Make the clusters match the repo (or apply a saved plan exactly).
    #[command(display_order = 2)]
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
        /// Seconds to wait for Flink's answer to a submission (`POST /jars/{id}/run`, which
        /// runs the program's main() before it answers).
        #[arg(long, default_value_t = crate::flink::DEFAULT_RUN_TIMEOUT.as_secs())]
        run_timeout: u64,
    },
    /// A table of jobs: sync state, Flink state, job id, last savepoint.
    #[command(display_order = 4)]
    Status {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Past plans and applies, newest first.
    #[command(display_order = 5)]
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
    #[command(display_order = 6)]
    Show {
        /// An apply id (or a plan id), as `weir history` lists them.
        id: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Savepoint lineage of a job: which apply took each savepoint and which restored it;
    /// `pin`, `unpin` and `prune` manage the savepoints' lifecycle.
    #[command(display_order = 7, args_conflicts_with_subcommands = true)]
    Savepoints {
        #[command(subcommand)]
        action: Option<SavepointsAction>,
        #[arg(required = true)]
        job: Option<String>,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Take a savepoint of a running job now (it keeps running); recorded as manual.
    #[command(display_order = 7)]
    Savepoint {
        job: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Seconds to wait for the savepoint.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Past runs of a batch job, newest first: when, Flink job id, trigger (apply, schedule,
    /// catch-up), outcome, duration. Outcomes are brought up to date from the job's cluster.
    #[command(display_order = 8)]
    Runs {
        job: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Delete plan and apply records older than a duration (retention). Unfinished applies,
    /// job records and the newest savepoint of each job (with the apply and plan it came from)
    /// are always kept; the prune itself is recorded.
    #[command(display_order = 9)]
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
    /// Manage the state store itself.
    #[command(display_order = 9, subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy every record (ids preserved) from one store into another, empty one, e.g. from the
    /// SQLite file to PostgreSQL (`--to postgres://USER@HOST/DB`; the password comes from
    /// PGPASSWORD or WEIR_PG_PASSWORD_FILE).
    Copy {
        /// The store to read (a SQLite file or a postgres:// URL).
        #[arg(long, value_name = "STORE")]
        from: PathBuf,
        /// The empty store to fill (created and migrated when missing).
        #[arg(long, value_name = "STORE")]
        to: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryFormat {
    Text,
    Json,
    Jsonl,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Runs a CLI command; returns the process exit code.
pub async fn run(globals: Globals, command: Command) -> Result<i32> {
    let state = globals.state.as_deref();
    select_environment(globals.environment.clone())?;
    if let Some(repo) = command_repo(&command) {
        // Secret digests must agree across runs: their key lives beside the store.
        let store = store_path(state, repo);
        crate::secrets::install_key(store.parent().unwrap_or(Path::new(".")));
    }
    match command {
        Command::Validate { repo, rev } => plan::validate(&repo, rev.as_deref()),
        Command::Plan {
            repo,
            rev,
            clusters_from,
            format,
            out,
            detailed_exitcode,
            split_dir,
            comment_limit,
            no_preflight,
        } => {
            let args = plan::PlanArgs {
                rev: rev.as_deref(),
                clusters_from: clusters_from.as_deref(),
                format,
                out: out.as_deref(),
                detailed: detailed_exitcode,
                split_dir: split_dir.as_deref(),
                comment_limit,
                preflight: !no_preflight,
                artifacts: crate::artifact::ArtifactSettings::for_cli(
                    globals.allow_file_urls.clone(),
                ),
            };
            plan::plan_cmd(state, &repo, args).await
        }
        Command::Apply {
            planfile,
            repo,
            auto_approve,
            parallel,
            savepoint_timeout,
            start_timeout,
            run_timeout,
        } => {
            let store = open_store(state, &repo).await?;
            let opts = apply::ApplyOptions {
                auto_approve,
                parallel,
                savepoint_timeout: Duration::from_secs(savepoint_timeout),
                start_timeout: Duration::from_secs(start_timeout),
                artifacts: crate::artifact::ArtifactSettings::for_cli(globals.allow_file_urls),
                run_timeout: Duration::from_secs(run_timeout.max(1)),
            };
            apply::apply_cmd(&store, &repo, planfile.as_deref(), opts).await
        }
        Command::Status { repo, format } => {
            let store = open_store(state, &repo).await?;
            read::status_cmd(&store, &repo, format).await
        }
        Command::History {
            job,
            repo,
            since,
            limit,
            format,
        } => history(state, &repo, job, since.as_deref(), limit, format).await,
        Command::Show { id, repo, format } => {
            let store = open_store(state, &repo).await?;
            read::show_cmd(&store, &id, format).await
        }
        command @ (Command::Savepoints { .. } | Command::Savepoint { .. }) => {
            savepoint::run(state, command).await
        }
        Command::Runs {
            job,
            repo,
            limit,
            format,
        } => {
            let store = open_store(state, &repo).await?;
            read::runs_cmd(&store, &repo, &job, limit, format).await
        }
        Command::Prune {
            repo,
            older_than,
            dry_run,
            log,
            format,
        } => read::prune(state, &repo, older_than.as_deref(), dry_run, log, format).await,
        Command::Store(StoreCommand::Copy { from, to, format }) => {
            store_copy(&from, &to, format).await
        }
    }
}

/// `weir history`.
async fn history(
    state: Option<&Path>,
    repo: &Path,
    job: Option<String>,
    since: Option<&str>,
    limit: Option<usize>,
    format: HistoryFormat,
) -> Result<i32> {
    let since_ms = since
        .map(|s| crate::audit::parse_since(s, now_ms()))
        .transpose()
        .context("--since")?;
    let store = open_store(state, repo).await?;
    read::history_cmd(&store, job, since_ms, limit, format).await
}

/// `weir store copy`: prints the rows copied per table.
async fn store_copy(from: &Path, to: &Path, format: OutputFormat) -> Result<i32> {
    let (from_shown, to_shown) = (
        crate::store::location_display(from),
        crate::store::location_display(to),
    );
    if !crate::store::is_postgres_location(from) && !from.exists() {
        anyhow::bail!("--from {from_shown}: there is no such store file");
    }
    let source = Store::open(from)
        .await
        .with_context(|| format!("opening --from {from_shown}"))?;
    let target = Store::open(to)
        .await
        .with_context(|| format!("opening --to {to_shown}"))?;
    let report = source
        .copy_into(&target)
        .await
        .with_context(|| format!("copying {from_shown} into {to_shown}"))?;
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "from": from_shown,
                "to": to_shown,
                "rows": report.rows(),
                "tables": report.tables.iter().map(|(t, n)| (t.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            })
        ),
        OutputFormat::Text => {
            for (table, n) in &report.tables {
                println!("{table:<24} {n}");
            }
            println!(
                "copied {} rows from {from_shown} to {to_shown}",
                report.rows()
            );
        }
    }
    Ok(0)
}

/// Chooses the environment of this process (`--env`, `WEIR_ENV`); an empty value is none.
pub fn select_environment(environment: Option<String>) -> Result<()> {
    let environment = environment.filter(|e| !e.trim().is_empty());
    if let Some(env) = &environment
        && let Err(why) = crate::spec::check_job_name(env)
    {
        anyhow::bail!("invalid environment name `{env}` (--env or WEIR_ENV): {why}");
    }
    crate::identity::select_environment(environment);
    Ok(())
}

/// The repo of the commands that plan or apply (they compute secret digests).
fn command_repo(command: &Command) -> Option<&Path> {
    match command {
        Command::Plan { repo, .. } | Command::Apply { repo, .. } | Command::Status { repo, .. } => {
            Some(repo)
        }
        _ => None,
    }
}

/// The store: `--state`, else `.weir/state.db` in the repo, or `.weir/env/NAME/state.db` for
/// environment NAME (environments never share records).
fn store_path(state: Option<&Path>, repo: &Path) -> PathBuf {
    state.map(Path::to_path_buf).unwrap_or_else(|| {
        let dir = repo.join(".weir");
        match crate::identity::environment() {
            Some(env) => dir.join("env").join(env).join("state.db"),
            None => dir.join("state.db"),
        }
    })
}

async fn open_store(state: Option<&Path>, repo: &Path) -> Result<Store> {
    if state.is_none() && crate::identity::environment().is_none() {
        let environments = crate::git::RepoSource::work_tree(repo)
            .map(|source| crate::load::environments_of(&source))
            .unwrap_or_default();
        if !environments.is_empty() {
            anyhow::bail!(
                "{} defines environments ({}): choose one with --env NAME or WEIR_ENV (each \
                 environment has its own records)",
                repo.join(crate::load::REPO_CONFIG_FILE).display(),
                environments.join(", ")
            );
        }
    }
    let path = store_path(state, repo);
    Store::open(&path).await.with_context(|| {
        format!(
            "opening the state store {}",
            crate::store::location_display(&path)
        )
    })
}

/// Leaves `value` to the operating system: a command calls it on what it built just before it
/// returns to `main`, which exits. Freeing a 10,000-job desired state and observation one
/// allocation at a time took ~30 ms of a 600 ms `weir plan`; the process's exit frees it at
/// once. Only for plain data: nothing that flushes or releases anything on drop.
fn left_for_exit<T>(value: T) {
    std::mem::forget(value);
}

/// `n thing` or `n things`.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
