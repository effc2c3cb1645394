//! `spec.dependencies` of jobs and `mavenRepositories` of `weir.yaml`.
//!
//! What can be checked without the network is checked here (each entry names exactly one source,
//! repo jars exist and are hashed, URLs carry a SHA-256, coordinates parse and a repository is
//! configured); `maven:` jars are fetched and verified when the job's bundle is built (pre-flight
//! and apply), whose errors carry the entry's `file:line:col` ([`Dependency::origin`]).

use std::collections::BTreeSet;

use crate::artifact::maven::Coordinate;
use crate::desired::{Dependency, DependencySource, JarLocation};
use crate::spec::{JobSpec, MavenRepository, RepoConfig};
use crate::text::error_chain;

use super::REPO_CONFIG_FILE;
use super::checker::Checker;
use super::checks::{check_url, env_var_message, is_env_var_name, is_sha256};
use super::program::JarFields;
use super::yaml::{Node, Problem, Seg, path};

impl Checker<'_> {
    /// The job's dependencies, each checked as far as it can be without fetching it.
    pub(super) fn resolve_dependencies(
        &mut self,
        file: &str,
        tree: &Node,
        spec: &JobSpec,
        config: Option<&RepoConfig>,
        problems: &mut Vec<Problem>,
    ) -> Vec<Dependency> {
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        for (i, entry) in spec.dependencies.iter().enumerate() {
            let mut base = path(&["spec", "dependencies"]);
            base.push(Seg::Index(i));
            let pos = tree.value_pos(&base);
            let origin = format!("{file}:{}:{}", pos.line, pos.column);
            let at = |key: &str| {
                let mut p = base.clone();
                p.push(Seg::Key(key.into()));
                p
            };
            let set: Vec<&str> = [
                ("path", entry.path.is_some()),
                ("url", entry.url.is_some()),
                ("maven", entry.maven.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, on)| on.then_some(k))
            .collect();
            if set.len() != 1 {
                problems.push(Problem::new(
                    pos,
                    base.clone(),
                    "set exactly one of `path` (a jar in the repo), `url` (with `sha256`) or \
                     `maven` (group:artifact:version[:classifier])",
                ));
                continue;
            }
            let dependency = if let Some(raw) = &entry.maven {
                let Some(coordinate) = self.maven_entry(tree, &at, raw, entry, config, problems)
                else {
                    continue;
                };
                Dependency {
                    source: DependencySource::Maven {
                        coordinate,
                        repositories: config
                            .map(|c| c.maven_repositories.clone())
                            .unwrap_or_default(),
                    },
                    sha256: entry.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                    origin,
                }
            } else {
                let Some(jar) = self.resolve_jar(
                    tree,
                    JarFields {
                        base: base.clone(),
                        path_key: "path",
                        path: entry.path.as_deref(),
                        url: entry.url.as_deref(),
                        sha256: entry.sha256.as_deref(),
                    },
                    problems,
                ) else {
                    continue;
                };
                let source = match jar.location {
                    JarLocation::Repo { path } => DependencySource::Repo { path },
                    JarLocation::Url { url } => DependencySource::Url { url },
                    JarLocation::Embedded => continue,
                };
                Dependency {
                    source,
                    sha256: Some(jar.sha256),
                    origin,
                }
            };
            if let Some(message) = name_problem(&dependency, &mut names) {
                problems.push(Problem::new(pos, base.clone(), message));
                continue;
            }
            out.push(dependency);
        }
        out
    }

    fn maven_entry(
        &self,
        tree: &Node,
        at: &dyn Fn(&str) -> Vec<Seg>,
        raw: &str,
        entry: &crate::spec::DependencySpec,
        config: Option<&RepoConfig>,
        problems: &mut Vec<Problem>,
    ) -> Option<Coordinate> {
        let p = at("maven");
        let coordinate = match Coordinate::parse(raw.trim()) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(Problem::new(tree.value_pos(&p), p.clone(), e.to_string()));
                None
            }
        };
        if let Some(s) = &entry.sha256
            && !is_sha256(s)
        {
            let sp = at("sha256");
            problems.push(Problem::new(
                tree.value_pos(&sp),
                sp,
                format!("must be 64 hexadecimal characters (a SHA-256), found `{s}`"),
            ));
            return None;
        }
        if config.is_some_and(|c| c.maven_repositories.is_empty()) {
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                format!(
                    "`maven` dependencies need `mavenRepositories` in {REPO_CONFIG_FILE} (there \
                     is no default repository)"
                ),
            ));
            return None;
        }
        coordinate
    }
}

/// Why `dependency` cannot be shipped as `lib/<its file name>` next to `names` (which it joins).
fn name_problem(dependency: &Dependency, names: &mut BTreeSet<String>) -> Option<String> {
    let name = dependency.file_name();
    if !name.ends_with(".jar") || name.contains(['\\', ':']) {
        return Some(format!("`{name}` must be a file name ending in .jar"));
    }
    if !names.insert(name.clone()) {
        return Some(format!(
            "another dependency of this job is also named `{name}` (each is shipped as \
             lib/{name})"
        ));
    }
    None
}

/// `mavenRepositories` in `weir.yaml`: unique names, http(s) URLs, environment variable names.
pub(super) fn check_maven_repositories(
    repositories: &[MavenRepository],
    tree: &Node,
    problems: &mut Vec<Problem>,
) {
    let mut seen = BTreeSet::new();
    for (i, repo) in repositories.iter().enumerate() {
        let at = |key: &str| {
            let mut p = path(&["mavenRepositories"]);
            p.push(Seg::Index(i));
            p.push(Seg::Key(key.into()));
            p
        };
        if repo.name.trim().is_empty() || !seen.insert(repo.name.as_str()) {
            let p = at("name");
            problems.push(Problem::new(
                tree.value_pos(&p),
                p,
                format!("`{}`: names must be non-empty and unique", repo.name),
            ));
        }
        let url_problem = check_url(&repo.url, &["http", "https"])
            .err()
            .map(|e| error_chain(&e))
            .or_else(|| {
                url::Url::parse(&repo.url)
                    .ok()
                    .filter(|u| !u.username().is_empty() || u.password().is_some())
                    .map(|_| {
                        "must not carry a user name or password: use `usernameFromEnv` and \
                         `passwordFromEnv`"
                            .to_string()
                    })
            });
        if let Some(message) = url_problem {
            let p = at("url");
            problems.push(Problem::new(tree.value_pos(&p), p, message));
        }
        for (key, var) in [
            ("usernameFromEnv", &repo.username_from_env),
            ("passwordFromEnv", &repo.password_from_env),
        ] {
            if let Some(var) = var
                && !is_env_var_name(var)
            {
                let p = at(key);
                problems.push(Problem::new(tree.value_pos(&p), p, env_var_message(var)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
