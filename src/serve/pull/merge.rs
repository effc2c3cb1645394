//! The tree a preview plans: the pull request's head merged into the branch in the mirror's object
//! database (no checkout), loaded with the branch's cluster settings.

use std::path::Path;

use super::PreviewError;
use super::short;
use crate::desired::DesiredState;
use crate::diagnostic::Diagnostic;
use crate::engine;
use crate::git::RepoSource;
use crate::load::REPO_CONFIG_FILE;
use crate::load::clusters::clusters_of;

/// Commits fetched for a preview.
pub(super) struct Fetched {
    pub(super) head: String,
    pub(super) base: String,
}

/// How the planned tree relates to the pull request and the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Basis {
    /// The head contains the branch: the head is what merging gives.
    UpToDate,
    /// The branch already contains the head.
    AlreadyMerged,
    /// The head merged into the branch (a commit made in the mirror only).
    Merged,
    /// The merge conflicts: the head as it is.
    Conflict,
}

/// The loaded pull request, with cluster settings from the branch.
pub(super) struct Prepared {
    pub(super) base: String,
    pub(super) planned: String,
    pub(super) basis: Basis,
    pub(super) source: RepoSource,
    pub(super) desired: Option<DesiredState>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) invalid_files: Vec<String>,
    /// Added to the plan's warnings.
    pub(super) warnings: Vec<String>,
}

/// Whether `wanted` is `tip` or an ancestor of it in the mirror.
pub(super) fn contains(mirror: &Path, tip: &str, wanted: &str) -> bool {
    let Ok(repo) = git2::Repository::open_bare(mirror) else {
        return false;
    };
    let (Ok(tip), Ok(wanted)) = (git2::Oid::from_str(tip), git2::Oid::from_str(wanted)) else {
        return false;
    };
    tip == wanted || repo.graph_descendant_of(tip, wanted).unwrap_or(false)
}

/// The commit to plan: `head` merged into `base` (see [`Basis`]).
pub(super) fn merge_head(
    repo: &git2::Repository,
    base: &str,
    head: &str,
    number: u64,
) -> Result<(String, Basis), git2::Error> {
    let base_id = git2::Oid::from_str(base)?;
    let head_id = git2::Oid::from_str(head)?;
    if base_id == head_id || repo.graph_descendant_of(head_id, base_id)? {
        return Ok((head.to_string(), Basis::UpToDate));
    }
    if repo.graph_descendant_of(base_id, head_id)? {
        return Ok((base.to_string(), Basis::AlreadyMerged));
    }
    let base_c = repo.find_commit(base_id)?;
    let head_c = repo.find_commit(head_id)?;
    let mut index = repo.merge_commits(&base_c, &head_c, None)?;
    if index.has_conflicts() {
        return Ok((head.to_string(), Basis::Conflict));
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    // Same inputs, same commit id: repeated previews of one head add no objects.
    let sig = git2::Signature::new("weir", "weir@localhost", &head_c.committer().when())?;
    let message = format!("weir preview of pull request {number}: {head} merged into {base}\n");
    let id = repo.commit(None, &sig, &sig, &message, &tree, &[&base_c, &head_c])?;
    Ok((id.to_string(), Basis::Merged))
}

/// Merges, then loads the pull request with the cluster settings of `base` (blocking).
pub(super) fn prepare(
    mirror: &Path,
    fetched: &Fetched,
    branch: &str,
    number: u64,
) -> Result<Prepared, PreviewError> {
    let (planned, basis) = {
        let repo = git2::Repository::open_bare(mirror).map_err(|source| PreviewError::Mirror {
            path: mirror.display().to_string(),
            source,
        })?;
        merge_head(&repo, &fetched.base, &fetched.head, number).map_err(|source| {
            PreviewError::Merge {
                branch: branch.to_string(),
                source,
            }
        })?
    };
    let base_source = RepoSource::git_tree(mirror, &fetched.base)?;
    let Some(base_clusters) = clusters_of(&base_source) else {
        return Err(PreviewError::BaseClusters {
            branch: branch.to_string(),
            commit: short(&fetched.base).to_string(),
        });
    };
    let source = RepoSource::git_tree(mirror, &planned)?;
    let (outcome, changed) = engine::load(&source, Some(&base_clusters));
    let mut warnings = Vec::new();
    if changed {
        warnings.push(format!(
            "This pull request changes `clusters` in {REPO_CONFIG_FILE}. Previews use the cluster \
             settings of `{branch}` (a pull request cannot point weir at other endpoints); the new \
             settings take effect once merged."
        ));
    }
    if basis == Basis::Conflict {
        warnings.push(format!(
            "The pull request conflicts with `{branch}`: its head was planned as it is, not the \
             result of merging it."
        ));
    }
    Ok(Prepared {
        base: fetched.base.clone(),
        planned,
        basis,
        source,
        desired: outcome.desired,
        diagnostics: outcome.diagnostics,
        invalid_files: outcome.invalid_files,
        warnings,
    })
}
