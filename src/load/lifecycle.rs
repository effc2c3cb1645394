//! Checks and resolution of the savepoint lifecycle settings: `spec.savepoint.periodic` and
//! `retain`, `savepoints.retain` and `health` of `weir.yaml`.

use crate::clock::parse_duration;
use crate::desired::{RetainPolicy, SavepointLifecycle};
use crate::spec::{RepoConfig, RetainSpec, SavepointSpec};

use super::yaml::{Node, Problem, Seg, path};

/// The lifecycle settings of a job; problems for what is malformed.
pub(super) fn resolve_job(
    sp: &SavepointSpec,
    config: Option<&RepoConfig>,
    tree: &Node,
    problems: &mut Vec<Problem>,
) -> SavepointLifecycle {
    let mut periodic_cron = None;
    let periodic = sp.periodic.as_deref().and_then(|text| {
        let p = path(&["spec", "savepoint", "periodic"]);
        // A cron expression has fields separated by spaces; a duration has none.
        if text.trim().contains(' ') {
            match crate::schedule::Parsed::new(text, None) {
                Ok(_) => periodic_cron = Some(text.trim().to_string()),
                Err(e) => problems.push(Problem::new(tree.value_pos(&p), p, e.to_string())),
            }
            return None;
        }
        duration_ms(text, &p, tree, problems)
    });
    let retain = match &sp.retain {
        Some(r) => retain_policy(r, &["spec", "savepoint", "retain"], tree, problems),
        // The repo default was checked with weir.yaml; errors there are reported once.
        None => config
            .and_then(|c| c.savepoints.as_ref())
            .and_then(|s| s.retain.as_ref())
            .and_then(|r| retain_policy(r, &[], tree, &mut Vec::new())),
    };
    if let Some(from) = &sp.restore_from
        && from.trim().is_empty()
    {
        let p = path(&["spec", "savepoint", "restoreFrom"]);
        problems.push(Problem::new(tree.value_pos(&p), p, "must not be empty"));
    }
    if sp.redeploy_nonce != 0 && sp.restore_from.is_none() {
        let p = path(&["spec", "savepoint", "redeployNonce"]);
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            "needs `restoreFrom` (the savepoint to redeploy from); to redeploy from the current \
             state bump `spec.restartNonce`",
        ));
    }
    SavepointLifecycle {
        periodic_ms: periodic,
        periodic_cron,
        retain,
        restore_from: sp.restore_from.clone(),
        redeploy_nonce: sp.redeploy_nonce,
    }
}

/// Checks `savepoints` and `health` of `weir.yaml`.
pub(super) fn check_repo(config: &RepoConfig, tree: &Node, problems: &mut Vec<Problem>) {
    if let Some(r) = config.savepoints.as_ref().and_then(|s| s.retain.as_ref()) {
        retain_policy(r, &["savepoints", "retain"], tree, problems);
    }
    let Some(h) = &config.health else { return };
    for (key, value) in [
        ("checkpointFailures", h.checkpoint_failures),
        ("windowMinutes", h.window_minutes),
        ("staleIntervals", h.stale_intervals),
        ("restartsFailing", h.restarts_failing),
    ] {
        if value == Some(0) {
            let p = path(&["health", key]);
            problems.push(Problem::new(tree.value_pos(&p), p, "must be at least 1"));
        }
    }
}

fn retain_policy(
    r: &RetainSpec,
    base: &[&str],
    tree: &Node,
    problems: &mut Vec<Problem>,
) -> Option<RetainPolicy> {
    let at = |key: &str| {
        let mut p = path(base);
        p.push(Seg::Key(key.to_string()));
        p
    };
    let before = problems.len();
    if r.count == Some(0) {
        let p = at("count");
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            "must be at least 1 (the newest savepoint is always kept)",
        ));
    }
    let max_age_ms = r
        .max_age
        .as_deref()
        .and_then(|text| duration_ms(text, &at("maxAge"), tree, problems));
    (problems.len() == before).then_some(RetainPolicy {
        count: r.count,
        max_age_ms,
    })
}

fn duration_ms(text: &str, p: &[Seg], tree: &Node, problems: &mut Vec<Problem>) -> Option<i64> {
    let ms = parse_duration(text)
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0);
    if ms.is_none() {
        problems.push(Problem::new(
            tree.value_pos(p),
            p.to_vec(),
            format!(
                "`{text}` is not a duration; write e.g. 30m, 6h or 7d, or a cron expression \
                 such as `0 */6 * * *`"
            ),
        ));
    }
    ms
}

#[cfg(test)]
mod tests {
    use crate::git::MemoryFiles;
    use crate::load::load_from;

    const REPO: &str = "clusters:\n  local:\n    url: http://127.0.0.1:8081\n";

    fn job(savepoint: &str) -> String {
        format!(
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\nspec:\n  cluster: local\n  parallelism: 1\n  sql: SELECT 1;\n  savepoint:\n{savepoint}"
        )
    }

    fn load(repo_extra: &str, savepoint: &str) -> crate::load::LoadOutcome {
        load_from(
            &MemoryFiles::new()
                .with(
                    "weir.yaml",
                    format!("{REPO}sqlRunner:\n  jar: r.jar\n{repo_extra}"),
                )
                .with("r.jar", "jar")
                .with("jobs/orders.yaml", job(savepoint)),
        )
    }

    #[test]
    fn periodic_and_retain_resolve() {
        let o = load(
            "",
            "    periodic: 6h\n    retain:\n      count: 10\n      maxAge: 7d\n",
        );
        let errors: Vec<String> = o.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let j = &o.desired.unwrap().jobs[0];
        assert_eq!(j.lifecycle.periodic_ms, Some(6 * 3_600_000));
        let r = j.lifecycle.retain.unwrap();
        assert_eq!((r.count, r.max_age_ms), (Some(10), Some(7 * 86_400_000)));
    }

    #[test]
    fn a_redeploy_nonce_needs_restore_from() {
        let o = load("", "    redeployNonce: 2\n");
        let all: Vec<String> = o.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            all.join("\n")
                .contains("spec.savepoint.redeployNonce: needs `restoreFrom`"),
            "{all:?}"
        );
        let o = load(
            "",
            "    restoreFrom: file:///sp/savepoint-1\n    redeployNonce: 2\n",
        );
        let j = &o.desired.unwrap().jobs[0];
        assert_eq!(j.lifecycle.redeploy_nonce, 2);
        assert_eq!(
            j.lifecycle.restore_from.as_deref(),
            Some("file:///sp/savepoint-1")
        );
    }

    #[test]
    fn the_repo_default_applies_to_jobs_without_retain() {
        let o = load(
            "savepoints:\n  retain:\n    count: 3\n",
            "    periodic: 1h\n",
        );
        let j = &o.desired.unwrap().jobs[0];
        assert_eq!(j.lifecycle.retain.unwrap().count, Some(3));
    }

    #[test]
    fn bad_durations_and_counts_name_file_line_and_field() {
        let o = load(
            "health:\n  windowMinutes: 0\n",
            "    periodic: often\n    retain:\n      count: 0\n      maxAge: 7x\n",
        );
        let errors: Vec<String> = o.diagnostics.iter().map(|d| d.to_string()).collect();
        let all = errors.join("\n");
        assert!(
            all.contains(
                "jobs/orders.yaml:10:15: spec.savepoint.periodic: `often` is not a duration"
            ),
            "{all}"
        );
        assert!(
            all.contains("spec.savepoint.retain.count: must be at least 1"),
            "{all}"
        );
        assert!(
            all.contains("spec.savepoint.retain.maxAge: `7x` is not a duration"),
            "{all}"
        );
        assert!(
            all.contains("weir.yaml:7:18: health.windowMinutes: must be at least 1"),
            "{all}"
        );
    }

    #[test]
    fn periodic_takes_a_cron_expression_too() {
        let o = load("", "    periodic: \"0 */6 * * *\"\n");
        let j = &o.desired.unwrap().jobs[0];
        assert_eq!(j.lifecycle.periodic_cron.as_deref(), Some("0 */6 * * *"));
        assert_eq!(j.lifecycle.periodic_ms, None);
        let o = load("", "    periodic: \"0 */6 * *\"\n");
        let all: Vec<String> = o.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            all.iter()
                .any(|d| d.starts_with("jobs/orders.yaml:10:15: spec.savepoint.periodic:")),
            "{all:?}"
        );
    }
}
