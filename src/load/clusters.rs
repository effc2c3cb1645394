//! Loading a revision with the cluster settings of another one.
//!
//! A pull request must not choose where weir connects (the cluster URLs, and the credentials
//! sent there): plan previews load the jobs of the pull request with the `clusters` of the
//! target branch. The daemon's previews and `weir plan --clusters-from REV` both use this.

use std::collections::BTreeMap;

use super::{LoadOutcome, REPO_CONFIG_FILE, load_from, load_in};
use crate::diagnostic::Diagnostic;
use crate::git::{
    AccessLog, FileContent, GitError, ListedEntry, ReadError, RepoFiles, RepoSource, RevisionInfo,
};
use crate::spec::{ClusterConfig, RepoConfig};

/// Loads `source` with `clusters` in place of its own. Diagnostics of `weir.yaml` are those of
/// the file as written; everything else is checked against `clusters`. Also says whether the
/// source's clusters differ.
pub fn load_with_clusters(
    source: &(dyn RepoFiles + Sync),
    clusters: &BTreeMap<String, ClusterConfig>,
) -> (LoadOutcome, bool) {
    load_with_clusters_in(source, clusters, crate::identity::environment())
}

/// [`load_with_clusters`] for `environment`: `clusters` are the base's clusters of that
/// environment (its own over the top-level ones).
pub(super) fn load_with_clusters_in(
    source: &(dyn RepoFiles + Sync),
    clusters: &BTreeMap<String, ClusterConfig>,
    environment: Option<&str>,
) -> (LoadOutcome, bool) {
    let own = load_in(source, environment);
    let Some(desired) = &own.desired else {
        // Nothing is planned without a loadable weir.yaml.
        return (own, false);
    };
    if &desired.config.clusters == clusters {
        return (own, false);
    }
    let mut config = desired.config.clone();
    config.clusters = clusters.clone();
    // `clusters` are the base's clusters of the environment already: the revision's own
    // environment clusters must not come back on top of them.
    for environment in config.environments.values_mut() {
        environment.clusters.clear();
    }
    let replaced = load_in(
        &WithConfig {
            inner: source,
            config: config_text(&config),
        },
        environment,
    );
    let added: Vec<&String> = desired
        .config
        .clusters
        .keys()
        .filter(|k| !clusters.contains_key(*k))
        .collect();
    let mut diagnostics: Vec<Diagnostic> = own
        .diagnostics
        .iter()
        .filter(|d| d.file == REPO_CONFIG_FILE)
        .cloned()
        .chain(
            replaced
                .diagnostics
                .into_iter()
                .filter(|d| d.file != REPO_CONFIG_FILE)
                .map(|mut d| {
                    // "Unknown cluster" would be puzzling for a cluster the file does define.
                    let field = d.field.as_deref() == Some("spec.cluster");
                    if let Some(name) = added
                        .iter()
                        .find(|n| field && d.message.contains(&format!("`{n}`")))
                    {
                        d.message = format!(
                            "spec.cluster: `{name}` is a cluster this revision adds; the plan uses \
                             the cluster settings of the base revision, so this job can be \
                             planned once the cluster is merged"
                        );
                    }
                    d
                }),
        )
        .collect();
    diagnostics.sort_by(|a, b| {
        (a.file != REPO_CONFIG_FILE, &a.file, a.line, a.column).cmp(&(
            b.file != REPO_CONFIG_FILE,
            &b.file,
            b.line,
            b.column,
        ))
    });
    let mut invalid_files: Vec<String> = diagnostics.iter().map(|d| d.file.clone()).collect();
    invalid_files.sort();
    invalid_files.dedup();
    (
        LoadOutcome {
            desired: replaced.desired,
            diagnostics,
            invalid_files,
        },
        true,
    )
}

/// `config` as the text of a `weir.yaml` (JSON is YAML).
fn config_text(config: &RepoConfig) -> Vec<u8> {
    serde_json::to_vec_pretty(config).unwrap_or_default()
}

/// A source whose `weir.yaml` is replaced.
struct WithConfig<'a> {
    inner: &'a (dyn RepoFiles + Sync),
    config: Vec<u8>,
}

impl RepoFiles for WithConfig<'_> {
    fn origin(&self) -> String {
        self.inner.origin()
    }
    fn entries(&self, dir: &str) -> Result<Vec<ListedEntry>, GitError> {
        self.inner.entries(dir)
    }
    fn read(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        if path == REPO_CONFIG_FILE {
            return Ok(FileContent {
                bytes: self.config.clone(),
                blob_id: None,
            });
        }
        self.inner.read(path, limit)
    }
    fn revision(&self, accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        self.inner.revision(accessed)
    }
}

/// The clusters of `source`'s `weir.yaml` (read alone: no job files, no jars); `None` when it
/// does not load.
pub fn clusters_of(source: &RepoSource) -> Option<BTreeMap<String, ClusterConfig>> {
    load_from(&ConfigOnly(source))
        .desired
        .map(|d| d.config.clusters)
}

/// Only `weir.yaml` of a source (no job files, no jars): for its cluster settings.
struct ConfigOnly<'a>(&'a RepoSource);

impl RepoFiles for ConfigOnly<'_> {
    fn origin(&self) -> String {
        self.0.origin()
    }
    fn entries(&self, _dir: &str) -> Result<Vec<ListedEntry>, GitError> {
        Ok(Vec::new())
    }
    fn read(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        if path == REPO_CONFIG_FILE {
            return self.0.read(path, limit);
        }
        Err(GitError::Read {
            path: path.to_string(),
            origin: self.origin(),
            source: ReadError::NotFound,
        })
    }
    fn revision(&self, accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        self.0.revision(accessed)
    }
}
