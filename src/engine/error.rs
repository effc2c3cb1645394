//! What can go wrong in the engine.

use crate::apply::ApplyError;
use crate::flink::FlinkError;
use crate::git::GitError;
use crate::store::StoreError;

/// An engine failure, with its cause chain.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The repo (a working tree or a revision) cannot be opened.
    #[error(transparent)]
    Source(#[from] GitError),
    /// A cluster entry of `weir.yaml` does not make a client.
    #[error("cluster `{cluster}`")]
    Client {
        cluster: String,
        #[source]
        source: Box<FlinkError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding the plan")]
    Encode(#[from] serde_json::Error),
    /// Interrupted applies are finished against the definitions of the repo, which must load.
    #[error("cannot resume the interrupted apply: weir.yaml is invalid: {}", .diagnostics.join("; "))]
    ResumeInvalid { diagnostics: Vec<String> },
    #[error("resuming interrupted applies")]
    Resume(#[source] ApplyError),
    #[error(transparent)]
    Lock(#[from] super::LockError),
}
