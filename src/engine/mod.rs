//! The engine: the one pipeline under the command line and the daemon (its reconcile worker and
//! its pull-request previews). Load a source, build a client per cluster, observe, read the
//! store's history, plan ([`plan`]); check a saved or pending plan for staleness ([`stale`]);
//! record a plan ([`record_plan`]); apply ([`applier`]) and finish interrupted applies
//! ([`resume_interrupted`]) under the store lock ([`lock_store`]).
//!
//! Layer rule: the engine knows nothing of the CLI or the daemon (`serve`); both call it.

mod error;
mod execute;
mod lock;
mod pipeline;
pub mod preflight;
mod record;
pub mod runs;
pub mod stale;

pub use error::EngineError;
pub use execute::{ApplySettings, ResumeReport, applier, attach_available, resume_interrupted};
pub use lock::{LockError, lock_store};
pub use pipeline::{
    Clients, EarlySnapshot, History, Planned, Snapshot, clients, history, load, open_source, plan,
    plan_with, snapshot,
};
pub use preflight::{PreflightOptions, Route, preflight};
pub use record::record_plan;
pub use stale::{Scope, Stale};
