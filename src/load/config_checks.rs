//! Checks of `weir.yaml` beyond its shape (clusters, notifications) and of a job's cluster.

use std::collections::BTreeMap;

use super::checks::{check_url, looks_like_uri, uri_message};
use super::yaml::{Node, Problem, Seg, path, suggest};
use super::{REPO_CONFIG_FILE, env_var_message, is_env_var_name, notify};
use crate::spec::{self, ClusterConfig, RepoConfig};
use crate::text::error_chain;

/// `spec.cluster` must name a cluster of `weir.yaml`.
pub(super) fn check_cluster_ref<'c>(
    config: &'c RepoConfig,
    tree: &Node,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'c ClusterConfig> {
    if let Some(cluster) = config.clusters.get(name) {
        return Some(cluster);
    }
    let p = path(&["spec", "cluster"]);
    let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
    let hint = suggest(name, known.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let list = if known.is_empty() {
        format!("{REPO_CONFIG_FILE} defines no clusters")
    } else {
        format!(
            "clusters in {REPO_CONFIG_FILE}: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    problems.push(Problem::new(
        tree.value_pos(&p),
        p,
        format!("unknown cluster `{name}`; {hint}({list})"),
    ));
    None
}

/// Checks of `weir.yaml` beyond its shape.
pub(super) fn check_config(config: &RepoConfig, tree: &Node, problems: &mut Vec<Problem>) {
    // With environments, the clusters may all be theirs (checked once one is chosen).
    if config.clusters.is_empty() && config.environments.is_empty() {
        let p = path(&["clusters"]);
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            "at least one cluster is required",
        ));
    }
    check_clusters(&config.clusters, &path(&["clusters"]), tree, problems);
    if let Some(notifications) = &config.notifications {
        notify::check(notifications, tree, problems);
    }
    super::lifecycle::check_repo(config, tree, problems);
}

/// Checks of clusters (of `weir.yaml`, or of an environment) at `at`.
pub(super) fn check_clusters(
    clusters: &BTreeMap<String, ClusterConfig>,
    at_path: &[Seg],
    tree: &Node,
    problems: &mut Vec<Problem>,
) {
    for (name, cluster) in clusters {
        let mut base = at_path.to_vec();
        base.push(Seg::Key(name.clone()));
        let at = |key: &str| {
            let mut p = base.clone();
            p.push(Seg::Key(key.to_string()));
            p
        };
        if name.trim().is_empty() {
            problems.push(Problem::new(
                tree.key_pos(&base),
                base.clone(),
                "cluster names must not be empty",
            ));
        }
        // The client's own rule last: what `weir apply` would refuse (credentials, a query).
        let url_problem = match check_url(&cluster.url, &["http", "https"]) {
            Err(e) => Some(error_chain(&e)),
            Ok(()) => spec::cluster_base_url(&cluster.url)
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(message) = url_problem {
            let p = at("url");
            problems.push(Problem::new(tree.value_pos(&p), p, message));
        }
        if let Some(dir) = &cluster.savepoint_dir
            && !looks_like_uri(dir)
        {
            let p = at("savepointDir");
            problems.push(Problem::new(tree.value_pos(&p), p, uri_message(dir)));
        }
        if let Some(var) = &cluster.bearer_token_env
            && !is_env_var_name(var)
        {
            let p = at("bearerTokenEnv");
            problems.push(Problem::new(tree.value_pos(&p), p, env_var_message(var)));
        }
        for (header, var) in &cluster.headers_from_env {
            let mut p = at("headersFromEnv");
            p.push(Seg::Key(header.clone()));
            if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    p.clone(),
                    format!("`{header}` is not a valid HTTP header name"),
                ));
            }
            if !is_env_var_name(var) {
                problems.push(Problem::new(tree.value_pos(&p), p, env_var_message(var)));
            }
        }
        if cluster.timeout_seconds == Some(0) {
            let p = at("timeoutSeconds");
            problems.push(Problem::new(tree.value_pos(&p), p, "must be at least 1"));
        }
    }
}
