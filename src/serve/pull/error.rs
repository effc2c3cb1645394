//! Why a preview failed.

use crate::engine::EngineError;
use crate::forge::ForgeError;
use crate::git::GitError;
use crate::load::REPO_CONFIG_FILE;
use crate::serve::source::FetchError;

/// A preview failure, with its cause chain (reported on the pull request, scrubbed).
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A blocking step (fetching, loading) did not finish.
    #[error("{what}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("opening the mirror {path}")]
    Mirror {
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error("merging the pull request into `{branch}`")]
    Merge {
        branch: String,
        #[source]
        source: git2::Error,
    },
    #[error(transparent)]
    Source(#[from] GitError),
    #[error(
        "{} of `{branch}` ({commit}) does not load; previews take the cluster settings from it",
        REPO_CONFIG_FILE
    )]
    BaseClusters { branch: String, commit: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

impl PreviewError {
    /// The gist, for a status description (140 characters on GitHub): for a fetch, the cause
    /// without the URL; otherwise the innermost error.
    pub fn brief(&self) -> String {
        if let PreviewError::Fetch(f) = self {
            return f.cause.clone();
        }
        let mut innermost: &dyn std::error::Error = self;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        innermost.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_is_the_fetch_cause_or_the_innermost_error() {
        let fetch = PreviewError::Fetch(FetchError {
            url: "https://x-access-token:secret@git.example/acme/jobs".into(),
            host: "git.example".into(),
            branch: "main".into(),
            cause: "connection refused".into(),
        });
        assert_eq!(fetch.brief(), "connection refused");
        let merge = PreviewError::Merge {
            branch: "main".into(),
            source: git2::Error::from_str("object not found"),
        };
        assert_eq!(merge.brief(), "object not found");
        assert_eq!(
            crate::text::error_chain(&merge),
            "merging the pull request into `main`: object not found"
        );
        let base = PreviewError::BaseClusters {
            branch: "main".into(),
            commit: "c0ffee".into(),
        };
        assert!(
            base.brief()
                .starts_with("weir.yaml of `main` (c0ffee) does not load")
        );
    }
}
