//! `weir serve`: the GitOps daemon. It follows a branch of a Git remote, reconciles the clusters
//! with it (fetch → load/validate → observe → plan → apply per policy → record), heals drift when
//! asked to, and serves an HTTP API with status, metrics and push webhooks.
//!
//! Shape (mini-redis style): one [`CancellationToken`] fired by SIGTERM/SIGINT, a [`TaskTracker`]
//! holding the HTTP server and the reconcile worker. On shutdown the server stops taking requests,
//! the worker finishes the reconcile (and apply) in progress within `shutdownGraceSeconds`, and the
//! store is closed. Anything cut short is in the journal and is finished on the next start.

pub mod config;
pub mod console;
pub mod http;
pub mod known_hosts;
pub mod leader;
pub mod metrics;
pub mod pull;
pub mod reconcile;
pub mod server;
pub mod source;
pub mod watch;
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

use crate::clock::now_ms;
use crate::store::Store;
use crate::store::Trigger;
use crate::store::retention::PruneRequest;

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(overrides: Overrides, state: Option<PathBuf>) -> Result<i32> {
    let cfg = DaemonConfig::load(&overrides)?;
    select_environment(&cfg)?;
    let held = HeldSecrets::resolve(&cfg)?;
    let mirror = Arc::new(Mirror::from_config(&cfg.state_dir, &cfg.repo)?);
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    let store_path = state
        .or_else(|| cfg.store.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| cfg.state_dir.join("state.db"));
    let shown = crate::store::location_display(&store_path);
    let store = Store::open(&store_path)
        .await
        .with_context(|| format!("opening the state store {shown}"))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen_addr()?)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let leadership = leadership_of(&store, addr);
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
    let (shared, apply_rx) = Shared::with_leadership(
        cfg,
        store.clone(),
        status,
        cancel.clone(),
        leadership.clone(),
    );
    let tracker = TaskTracker::new();
    let local = tokio::task::LocalSet::new();
    let previews = spawn_tasks(
        Tasks {
            shared: &shared,
            mirror: &mirror,
            tracker: &tracker,
            local: &local,
            cancel: &cancel,
        },
        held,
        listener,
        apply_rx,
    )?;
    if store.backend() == crate::store::Backend::Postgres {
        // The lease has its own connections: renewing never waits behind the worker.
        let lease = Store::open(&store_path)
            .await
            .with_context(|| format!("opening the state store {shown}"))?;
        let on_trigger = {
            let shared = shared.clone();
            move |reason: &str, payload: Option<&str>| taken(&shared, &previews, reason, payload)
        };
        let election = leader::run(store.clone(), lease, leadership, cancel.clone(), on_trigger);
        tracker.spawn(election);
    }
    tracker.close();

    if let Some(path) = &overrides.address_file {
        std::fs::write(path, addr.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "weir serve: listening on {addr}, following {} ({}), store {}",
        mirror.display_url(),
        mirror.branch(),
        shown
    );
    let code = shut_down(&local, &tracker, &cancel, grace, &store).await;
    Ok(code)
}

/// Chooses the daemon's environment (its config's `environment`, or `--env`/`WEIR_ENV`) before
/// anything is loaded: the environment decides job identities, and secret digests must agree
/// across restarts (their key lives in the state directory).
fn select_environment(cfg: &DaemonConfig) -> Result<()> {
    let given = crate::identity::environment().map(str::to_string);
    let environment = cfg.environment.clone().or(given.clone());
    if let Some(env) = &environment
        && let Err(why) = crate::spec::check_job_name(env)
    {
        anyhow::bail!("environment: invalid environment name `{env}`: {why}");
    }
    if !crate::identity::select_environment(environment.clone()) {
        anyhow::bail!(
            "the daemon's configuration says `environment: {}` but --env/WEIR_ENV says `{}`",
            environment.unwrap_or_default(),
            given.unwrap_or_default()
        );
    }
    crate::secrets::install_key(&cfg.state_dir);
    Ok(())
}

/// Every secret the daemon holds, read once at start.
struct HeldSecrets {
    secrets: Secrets,
    forge_tokens: pull::ForgeTokens,
    /// None of them may ever reach a pull-request comment.
    scrub: Vec<String>,
}

impl HeldSecrets {
    fn resolve(cfg: &DaemonConfig) -> Result<HeldSecrets> {
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
        let passphrase = resolve(
            &cfg.repo.ssh_key.as_ref().and_then(|k| k.passphrase.clone()),
            "repo.sshKey.passphrase",
        )?;
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
        let scrub: Vec<String> = secrets
            .api_tokens
            .iter()
            .chain(&secrets.github)
            .chain(&secrets.gitlab)
            .chain(&secrets.generic)
            .chain(&token)
            .chain(&passphrase)
            .chain(&forge_tokens.github)
            .chain(&forge_tokens.gitlab)
            .cloned()
            .collect();
        // Every credential the daemon holds is a known secret of the process: scrubbed from
        // logs, the store, the API and notifications, not only from pull-request comments.
        crate::redact::register_secrets(&scrub);
        Ok(HeldSecrets {
            secrets,
            forge_tokens,
            scrub,
        })
    }
}

/// Where the daemon's tasks run.
struct Tasks<'a> {
    shared: &'a Arc<Shared>,
    mirror: &'a Arc<Mirror>,
    tracker: &'a TaskTracker,
    /// The worker runs on this thread (a LocalSet): the applier's futures borrow the store and
    /// the clients across awaits in a way the compiler cannot prove `Send` for every lifetime.
    local: &'a tokio::task::LocalSet,
    cancel: &'a CancellationToken,
}

/// Alone on a SQLite store a daemon always leads; on PostgreSQL it follows until elected, and
/// names itself by `WEIR_ADVERTISE_ADDRESS` (default: the address it listens on).
fn leadership_of(store: &Store, addr: std::net::SocketAddr) -> Arc<leader::Leadership> {
    Arc::new(match store.backend() {
        crate::store::Backend::Sqlite => leader::Leadership::single(),
        crate::store::Backend::Postgres => leader::Leadership::elected(
            leader::holder_id(),
            std::env::var("WEIR_ADVERTISE_ADDRESS").unwrap_or_else(|_| addr.to_string()),
        ),
    })
}

/// A trigger a follower recorded, taken by the leader: a pull-request delivery goes to the
/// previews, anything else asks for a reconcile.
fn taken(
    shared: &Arc<Shared>,
    previews: &Option<Arc<pull::Previews>>,
    reason: &str,
    payload: Option<&str>,
) {
    let forge = reason.strip_prefix("preview:");
    let (Some(forge), Some(previews), Some(body)) = (forge, previews, payload) else {
        shared.trigger(reason);
        return;
    };
    let parsed = match forge {
        "gitlab" => pull::parse_gitlab(body.as_bytes()),
        _ => pull::parse_github(body.as_bytes()),
    };
    match parsed {
        Ok(ev) => {
            previews.submit(ev);
        }
        Err(e) => warn!("a pull-request delivery a follower recorded: {e}"),
    }
}

/// Starts the HTTP server, the watcher, the reconcile worker and the retention loop; returns
/// the previews (the leader also takes the deliveries followers recorded).
fn spawn_tasks(
    t: Tasks<'_>,
    held: HeldSecrets,
    listener: tokio::net::TcpListener,
    apply_rx: tokio::sync::mpsc::Receiver<reconcile::ApplyRequest>,
) -> Result<Option<Arc<pull::Previews>>> {
    let shared = t.shared;
    let previews = pull::Previews::new(
        &shared.cfg.previews,
        held.forge_tokens,
        shared.clone(),
        t.mirror.clone(),
        t.tracker.clone(),
        held.scrub,
    )?;
    let app = server::router(AppState {
        shared: shared.clone(),
        secrets: Arc::new(held.secrets),
        previews: previews.clone(),
    });
    let server_cancel = t.cancel.clone();
    let limits = http::HttpLimits {
        max_body_bytes: shared
            .cfg
            .webhooks
            .max_body_bytes
            .max(server::API_BODY_LIMIT),
        ..http::HttpLimits::default()
    };
    t.tracker
        .spawn(http::serve(listener, app, limits, server_cancel));
    if let Some(path) = shared.cfg.watch_path()? {
        let debounce = Duration::from_millis(
            shared
                .cfg
                .watch
                .as_ref()
                .map_or(300, |w| w.debounce_milliseconds),
        );
        let handle = watch::spawn(
            &path,
            &shared.cfg.state_dir,
            debounce,
            shared.clone(),
            t.cancel.clone(),
        )?;
        t.tracker.spawn(async move {
            let _ = handle.await;
        });
    }
    // Only the leader reconciles and prunes (a daemon alone on its store always leads).
    let worker = Worker::new(shared.clone(), t.mirror.clone());
    let (leading, cancel) = (shared.clone(), t.cancel.clone());
    t.tracker.spawn_local_on(
        async move {
            if leading.leadership.wait_until_leader(&cancel).await {
                leading.leadership.set_worker_running(true);
                worker.run(apply_rx).await;
                leading.leadership.set_worker_running(false);
            }
        },
        t.local,
    );
    t.tracker.spawn(release_freed_loop(t.cancel.clone()));
    if let Some(retention) = shared.cfg.audit.retention() {
        let (leading, cancel) = (shared.clone(), t.cancel.clone());
        t.tracker.spawn(async move {
            if leading.leadership.wait_until_leader(&cancel).await {
                retention_loop(leading, retention, cancel).await;
            }
        });
    }
    Ok(previews)
}

/// Runs until SIGTERM/SIGINT, then stops: the worker finishes the reconcile (and apply) in
/// progress within `grace`. Returns the exit code.
async fn shut_down(
    local: &tokio::task::LocalSet,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
    grace: Duration,
    store: &Store,
) -> i32 {
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
    code
}

/// How often the daemon hands the memory it freed back to the operating system, besides after
/// each reconcile. Between reconciles (an hour apart with a long poll interval), answers of the
/// HTTP API, `/metrics` scrapes and console pages free what they built, and the observe tick
/// parses each cluster's job list every 10 s without a reconcile when nothing changed; their
/// pages would stay resident until the next reconcile. A trim takes well under a millisecond of
/// CPU at 1,000 jobs (BENCHMARKS.md, issue 14, seventh pass).
const RELEASE_FREED_EVERY: Duration = Duration::from_secs(10);

/// Calls [`crate::memory::release_freed`] every [`RELEASE_FREED_EVERY`] until shutdown.
async fn release_freed_loop(cancel: CancellationToken) {
    let mut every = tokio::time::interval(RELEASE_FREED_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {
                let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
            }
        }
    }
}

/// How often the daemon prunes when `audit.retentionDays` is set.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Prunes records older than `retention` at start and then every [`PRUNE_EVERY`], until
/// shutdown. A plan waiting for approval is kept whatever its age.
async fn retention_loop(shared: Arc<Shared>, retention: Duration, cancel: CancellationToken) {
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let now = now_ms();
        let request = PruneRequest {
            cutoff_ms: now.saturating_sub(keep),
            at_ms: now,
            trigger: Trigger::Retention,
            actor: Some("weir serve".into()),
            keep_plans: shared
                .status()
                .pending_plan
                .map(|p| p.id)
                .into_iter()
                .collect(),
            dry_run: false,
        };
        match shared.store.prune(&request).await {
            Ok(r) => info!(
                cutoff = %crate::clock::rfc3339(r.cutoff_ms),
                plans = r.deleted.plans,
                applies = r.deleted.applies,
                savepoints = r.deleted.savepoints,
                deliveries = r.deleted.deliveries,
                "retention: pruned records older than {} days",
                retention.as_secs() / 86_400
            ),
            Err(e) => warn!("retention: {:#}", anyhow::Error::from(e)),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// A commit id as people read it: its first 12 characters.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
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
