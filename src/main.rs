//! The `weir` binary: parses the command line and hands it to the CLI, or to the daemon for
//! `weir serve` (so that the CLI library never imports the daemon).

use clap::{Parser, Subcommand};
use weir::cli::{self, Globals, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "GitOps for Apache Flink: plan and apply Flink jobs from a Git repository"
)]
struct Weir {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    #[command(flatten)]
    Cli(cli::Command),
    /// Run the GitOps daemon: follow a Git branch, reconcile, self-heal, serve the HTTP API.
    #[command(display_order = 3)]
    Serve(weir::serve::config::Overrides),
}

fn main() {
    let args = Weir::parse();
    if matches!(args.command, Top::Serve(_)) {
        // First: it may execute the daemon again, with the environment as it was given.
        weir::memory::serve_without_thread_caches();
    }
    weir::git::start_libgit2();
    // The daemon serves requests while it reconciles: worker threads. A CLI command is one
    // sequence of calls (its parallel work runs on its own threads): one thread, without the
    // workers' stacks and malloc arenas.
    let runtime = match args.command {
        Top::Serve(_) => {
            weir::memory::share_one_arena();
            tokio::runtime::Builder::new_multi_thread()
        }
        Top::Cli(_) => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .expect("starting the async runtime");
    runtime.block_on(run(args))
}

async fn run(args: Weir) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every log line is scrubbed of secrets and control characters.
        .with_writer(weir::redact::LogWriter);
    // JSON lines for log shippers (the daemon); human-readable text otherwise.
    if args.globals.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match args.command {
        Top::Serve(overrides) => {
            // `--env`/WEIR_ENV, unless the daemon's `environment:` says otherwise (refused).
            if let Some(env) = args.globals.environment.filter(|e| !e.trim().is_empty()) {
                weir::identity::select_environment(Some(env));
            }
            weir::serve::run(overrides, args.globals.state).await
        }
        Top::Cli(command) => cli::run(args.globals, command).await,
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let message = weir::redact::text(&format!("{e:#}"));
            eprintln!(
                "weir: error: {}",
                weir::text::escape_controls_multiline(&message)
            );
            std::process::exit(1);
        }
    }
}
