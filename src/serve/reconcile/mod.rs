//! The reconcile loop. One worker task fetches, loads, observes and plans; each apply it starts
//! runs on a task of its own holding per-job locks, so a long savepoint of one job does not hold
//! back the jobs next to it, and no job ever has two applies at a time. The changes of all applies
//! together share one pool of `apply.parallel` slots. While any apply runs, the process holds the
//! store lock, which keeps `weir apply` out.
//!
//! Triggers (poll timer, `POST /api/v1/sync`, webhooks, the watched directory, an apply after
//! which the status should be refreshed) only wake the worker through a
//! [`tokio::sync::Notify`], whose single stored permit coalesces a burst into one reconcile; a
//! trigger that arrives during a reconcile schedules exactly one more.
//!
//! Self-heal attempts and the jobs whose apply failed are kept in the store (`daemon_state`), so
//! a restart neither resets the attempt limit nor retries a failed revision.
//!
//! Modules: `worker` (the loop: fetch, load, plan, route), `policy` (pure: what is applied, what
//! waits, what is held back), `memory` (what survives a restart), `in_flight` (job and store
//! locks), `apply_task` (one apply on its own task), `manual` (approving a waiting plan),
//! `publish` (status, metrics and events of what a reconcile saw), `status` (the API's types),
//! `shared` (state shared with the HTTP handlers; events).

mod apply_task;
mod in_flight;
mod lifecycle;
mod manual;
mod memory;
mod observe;
mod policy;
mod publish;
mod schedule;
mod shared;
mod status;
mod worker;

use std::sync::Arc;

use tracing::info;

use super::short;

pub use manual::{ApplyRefusal, ApplyRequest};
pub use shared::Shared;
pub use status::{
    ApplyInfo, ApplyProgress, BlockKind, BlockedInfo, ClusterStatus, ErrorInfo, HealInfo,
    JobStatus, Outcome, PlanInfo, ReconcileInfo, Reconciled, RepoStatus, Status,
};
pub use worker::Worker;

/// Why a reconcile (or an approval) failed, with the cause chain.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The fetched revision cannot be opened in the mirror.
    #[error(transparent)]
    Source(#[from] crate::git::GitError),
    #[error("loading the repo")]
    Join(#[source] tokio::task::JoinError),
    #[error("plan `{id}` cannot be read")]
    PlanJson {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

fn progress() -> Arc<dyn Fn(&str) + Send + Sync> {
    Arc::new(|msg: &str| info!("{msg}"))
}
