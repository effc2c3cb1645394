//! Environments: one repo, several targets (staging, prod, …) without copying job files.
//!
//! `environments` of `weir.yaml` add to and replace the top-level `clusters` and `variables`; a
//! job may be limited to some (`spec.environments`) and differ per environment
//! (`spec.overrides`). A load is for one environment (`--env`, `WEIR_ENV`, the daemon's
//! `environment:`), or for none when the repo defines none.

use std::collections::BTreeMap;

use super::REPO_CONFIG_FILE;
use super::variables::is_variable_name;
use super::yaml::{Node, Pos, Problem, Seg, path, suggest};
use crate::spec::{self, ConfigValue, JobSpec, RepoConfig};

/// The configuration for `environment`: its clusters and variables over the top-level ones.
/// `None` (with a problem) when the choice does not fit the repo: environments defined and none
/// chosen, one chosen that is not defined, or one chosen in a repo without environments.
pub(super) fn select(
    config: &RepoConfig,
    tree: &Node,
    environment: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<RepoConfig> {
    let defined = config.environments.keys().map(String::as_str);
    let listed = defined
        .clone()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match environment {
        None if config.environments.is_empty() => Some(config.clone()),
        None => {
            let p = path(&["environments"]);
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                format!(
                    "{REPO_CONFIG_FILE} defines environments ({listed}): choose one with \
                     `--env NAME` or WEIR_ENV (the daemon: `environment:` in its configuration)"
                ),
            ));
            None
        }
        Some(env) if config.environments.is_empty() => {
            problems.push(Problem::new(
                Pos::START,
                Vec::new(),
                format!(
                    "environment `{env}` was chosen (--env or WEIR_ENV) but {REPO_CONFIG_FILE} \
                     defines no `environments`; run without it"
                ),
            ));
            None
        }
        Some(env) => {
            let Some(chosen) = config.environments.get(env) else {
                let hint = suggest(env, defined)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                let p = path(&["environments"]);
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    p,
                    format!(
                        "unknown environment `{env}` (--env or WEIR_ENV); {hint}(defined: {listed})"
                    ),
                ));
                return None;
            };
            let mut out = config.clone();
            out.clusters.extend(chosen.clusters.clone());
            out.variables.extend(chosen.variables.clone());
            if out.clusters.is_empty() {
                let mut p = path(&["environments"]);
                p.push(Seg::Key(env.to_string()));
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    p,
                    format!(
                        "environment `{env}` has no clusters (neither its own `clusters` nor \
                         top-level ones)"
                    ),
                ));
                return None;
            }
            Some(out)
        }
    }
}

/// Checks of `environments` and `variables` beyond their shape: names, and each environment's
/// clusters (as the top-level ones are checked).
pub(super) fn check(config: &RepoConfig, tree: &Node, problems: &mut Vec<Problem>) {
    check_variable_names(&config.variables, &["variables"], tree, problems);
    for (name, env) in &config.environments {
        let mut base = path(&["environments"]);
        base.push(Seg::Key(name.clone()));
        if let Err(why) = spec::check_job_name(name) {
            problems.push(Problem::new(
                tree.key_pos(&base),
                base.clone(),
                format!("invalid environment name `{name}`: {why}"),
            ));
        }
        let mut clusters = base.clone();
        clusters.push(Seg::Key("clusters".into()));
        super::check_clusters(&env.clusters, &clusters, tree, problems);
        let mut variables = base;
        variables.push(Seg::Key("variables".into()));
        check_variable_names_at(&env.variables, &variables, tree, problems);
    }
}

fn check_variable_names(
    variables: &BTreeMap<String, ConfigValue>,
    base: &[&str],
    tree: &Node,
    problems: &mut Vec<Problem>,
) {
    check_variable_names_at(variables, &path(base), tree, problems);
}

fn check_variable_names_at(
    variables: &BTreeMap<String, ConfigValue>,
    base: &[Seg],
    tree: &Node,
    problems: &mut Vec<Problem>,
) {
    for name in variables.keys() {
        if !is_variable_name(name) {
            let mut p = base.to_vec();
            p.push(Seg::Key(name.clone()));
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                format!(
                    "invalid variable name `{name}`: a letter or '_', then letters, digits, \
                     '_', '-' or '.'"
                ),
            ));
        }
    }
}

/// Whether the job runs in `environment`. Names in `spec.environments` and `spec.overrides`
/// that `weir.yaml` does not define are problems (checked whatever the environment).
pub(super) fn job_runs_in(
    spec: &JobSpec,
    config: Option<&RepoConfig>,
    tree: &Node,
    environment: Option<&str>,
    problems: &mut Vec<Problem>,
) -> bool {
    if let Some(config) = config {
        let known: Vec<&str> = config.environments.keys().map(String::as_str).collect();
        let unknown = |name: &str, p: Vec<Seg>, pos: Pos, problems: &mut Vec<Problem>| {
            if known.contains(&name) {
                return;
            }
            let message = if known.is_empty() {
                format!("`{name}`: {REPO_CONFIG_FILE} defines no `environments`")
            } else {
                let hint = suggest(name, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                format!(
                    "unknown environment `{name}`; {hint}(environments in {REPO_CONFIG_FILE}: {})",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            problems.push(Problem::new(pos, p, message));
        };
        for (i, name) in spec.environments.iter().enumerate() {
            let mut p = path(&["spec", "environments"]);
            p.push(Seg::Index(i));
            let pos = tree.value_pos(&p);
            unknown(name, p, pos, problems);
        }
        for name in spec.overrides.keys() {
            let mut p = path(&["spec", "overrides"]);
            p.push(Seg::Key(name.clone()));
            let pos = tree.key_pos(&p);
            unknown(name, p, pos, problems);
        }
    }
    match environment {
        Some(env) => spec.environments.is_empty() || spec.environments.iter().any(|e| e == env),
        None => true,
    }
}

/// Applies `spec.overrides.<environment>` to `spec`. Returns, for each configuration key it
/// set, where its value is written (for positions and the value as written).
pub(super) fn apply_overrides(
    spec: &mut JobSpec,
    environment: Option<&str>,
) -> BTreeMap<String, Vec<Seg>> {
    let mut origins = BTreeMap::new();
    let Some(env) = environment else {
        return origins;
    };
    let Some(o) = spec.overrides.get(env).cloned() else {
        return origins;
    };
    if let Some(cluster) = o.cluster {
        spec.cluster = cluster;
    }
    if let Some(parallelism) = o.parallelism {
        spec.parallelism = parallelism;
    }
    if let Some(state) = o.state {
        spec.state = state;
    }
    if let Some(mode) = o.upgrade_mode {
        spec.upgrade_mode = mode;
    }
    for (key, value) in o.flink_configuration {
        let mut p = path(&["spec", "overrides"]);
        p.extend([
            Seg::Key(env.to_string()),
            Seg::Key("flinkConfiguration".into()),
            Seg::Key(key.clone()),
        ]);
        origins.insert(key.clone(), p);
        spec.flink_configuration.insert(key, value);
    }
    origins
}

/// `weir validate` of a repo with environments: a load for every environment, merged. A problem
/// found in only some environments says which; the desired state is the first environment's,
/// `None` when any environment has a problem.
pub fn load_every_environment(files: &(dyn crate::git::RepoFiles + Sync)) -> super::LoadOutcome {
    let environments = super::environments_of(files);
    if environments.is_empty() {
        return super::load_in(files, None);
    }
    let outcomes: Vec<(String, super::LoadOutcome)> = environments
        .iter()
        .map(|e| (e.clone(), super::load_in(files, Some(e))))
        .collect();
    let mut found: BTreeMap<crate::diagnostic::Diagnostic, Vec<&str>> = BTreeMap::new();
    for (env, outcome) in &outcomes {
        for d in &outcome.diagnostics {
            found.entry(d.clone()).or_default().push(env);
        }
    }
    let mut diagnostics: Vec<crate::diagnostic::Diagnostic> = found
        .into_iter()
        .map(|(mut d, envs)| {
            if envs.len() < environments.len() {
                let listed: Vec<String> = envs.iter().map(|e| format!("`{e}`")).collect();
                let s = if envs.len() == 1 { "" } else { "s" };
                d.message = format!("{} (environment{s} {})", d.message, listed.join(", "));
            }
            d
        })
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
    let desired = if diagnostics.is_empty() {
        outcomes.into_iter().next().and_then(|(_, o)| o.desired)
    } else {
        None
    };
    super::LoadOutcome {
        desired,
        diagnostics,
        invalid_files,
    }
}
