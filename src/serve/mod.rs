//! `weir serve`: the GitOps daemon. It follows a branch of a Git remote, reconciles the clusters
//! with it (fetch → load/validate → observe → plan → apply per policy → record), heals drift when
//! asked to, and serves an HTTP API with status, metrics and push webhooks.
//!
//! Shape (mini-redis style): one [`CancellationToken`] fired by SIGTERM/SIGINT, a [`TaskTracker`]
//! holding the HTTP server and the reconcile worker. On shutdown the server stops taking requests,
//! the worker finishes the reconcile (and apply) in progress within `shutdownGraceSeconds`, and the
//! store is closed. Anything cut short is in the journal and is finished on the next start.

pub mod config;
pub mod engine;
pub mod metrics;
pub mod pull;
pub mod reconcile;
pub mod server;
pub mod source;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use config::{DaemonConfig, Overrides};
use reconcile::{RepoStatus, Shared, Status, Worker};
use server::{AppState, Secrets};
use source::Mirror;

use crate::store::Store;

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(overrides: Overrides, state: Option<PathBuf>) -> Result<i32> {
    let cfg = DaemonConfig::load(&overrides)?;
    let secrets = Secrets {
        api_tokens: cfg
            .api
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| t.resolve(&format!("api.tokens[{i}]")))
            .collect::<Result<_>>()?,
        github: resolve(&cfg.webhooks.github, "webhooks.github")?,
        gitlab: resolve(&cfg.webhooks.gitlab, "webhooks.gitlab")?,
        generic: resolve(&cfg.webhooks.generic, "webhooks.generic")?,
    };
    let token = resolve(&cfg.repo.token, "repo.token")?;
    let forge_tokens = pull::ForgeTokens {
        github: resolve(
            &cfg.previews.github.as_ref().map(|g| g.token.clone()),
            "previews.github.token",
        )?,
        gitlab: resolve(
            &cfg.previews.gitlab.as_ref().map(|g| g.token.clone()),
            "previews.gitlab.token",
        )?,
    };
    // Every secret the daemon holds: none of them may ever reach a pull-request comment.
    let scrub: Vec<String> = secrets
        .api_tokens
        .iter()
        .chain(&secrets.github)
        .chain(&secrets.gitlab)
        .chain(&secrets.generic)
        .chain(&token)
        .cloned()
        .collect();
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    let store_path = state.unwrap_or_else(|| cfg.state_dir.join("state.db"));
    let store = Store::open(&store_path)
        .await
        .with_context(|| format!("opening the state store {}", store_path.display()))?;
    let mirror = Arc::new(Mirror::new(
        &cfg.state_dir,
        &cfg.repo.url,
        &cfg.repo.branch,
        cfg.repo.username.clone(),
        token,
        Duration::from_secs(cfg.repo.fetch_timeout_seconds),
    ));
    let listener = tokio::net::TcpListener::bind(cfg.listen_addr()?)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let status = Status {
        repo: RepoStatus {
            url: mirror.display_url(),
            branch: cfg.repo.branch.clone(),
            commit: mirror.last_fetched(),
            ..Default::default()
        },
        policy: Some(cfg.sync.policy),
        self_heal: cfg.sync.self_heal,
        ..Default::default()
    };
    let grace = Duration::from_secs(cfg.shutdown_grace_seconds);
    let cancel = CancellationToken::new();
    let (shared, apply_rx) = Shared::new(cfg, store.clone(), status, cancel.clone());
    let tracker = TaskTracker::new();
    let previews_cfg = shared.cfg.previews.clone();
    let previews = pull::Previews::new(
        &previews_cfg,
        forge_tokens,
        shared.clone(),
        mirror.clone(),
        tracker.clone(),
        scrub,
    )?;

    let app = server::router(AppState {
        shared: shared.clone(),
        secrets: Arc::new(secrets),
        previews,
    });
    let server_cancel = cancel.clone();
    tracker.spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(server_cancel.cancelled_owned())
            .await;
        if let Err(e) = result {
            warn!("HTTP server: {e}");
        }
    });
    // The worker runs on this thread (a LocalSet): the applier's futures borrow the store and
    // the clients across awaits in a way the compiler cannot prove `Send` for every lifetime.
    let local = tokio::task::LocalSet::new();
    let worker = Worker::new(shared.clone(), mirror.clone());
    tracker.spawn_local_on(worker.run(apply_rx), &local);
    tracker.close();

    if let Some(path) = &overrides.address_file {
        std::fs::write(path, addr.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "weir serve: listening on {addr}, following {} ({}), store {}",
        mirror.display_url(),
        mirror.branch(),
        store_path.display()
    );

    let signal = local.run_until(shutdown_signal()).await;
    eprintln!("weir serve: {signal}: shutting down (finishing the reconcile in progress)");
    cancel.cancel();
    let (code, finished) = tokio::select! {
        _ = local.run_until(tracker.wait()) => (0, true),
        _ = tokio::time::sleep(grace) => {
            eprintln!("weir serve: still busy after {grace:?}; exiting, the next start finishes the apply");
            (0, false)
        }
        s = shutdown_signal() => {
            eprintln!("weir serve: {s} again: exiting now, the next start finishes the apply");
            (130, false)
        }
    };
    // Closing waits for connections in use; a worker cut short holds one forever. Every journal
    // write is its own committed transaction, so exiting without closing loses nothing.
    if finished {
        store.close().await;
    }
    info!("stopped");
    eprintln!("weir serve: stopped");
    Ok(code)
}

fn resolve(secret: &Option<config::SecretRef>, what: &str) -> Result<Option<String>> {
    secret.as_ref().map(|s| s.resolve(what)).transpose()
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
