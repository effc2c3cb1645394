//! Checks of `notifications` in `weir.yaml` beyond its shape.
//!
//! The shape check (module `shape`) already reports unknown fields, unknown event names and
//! formats (with a did-you-mean) and wrong types; this adds the rules serde cannot express.

use std::collections::BTreeMap;

use crate::spec::{EventSelector, MAX_DEDUP_WINDOW_SECONDS, NameError, NotificationsConfig};

use super::yaml::{Node, Problem, Seg, path};
use super::{env_var_message, is_env_var_name};

/// Longest accepted route name.
const MAX_ROUTE_NAME: usize = 63;

pub(super) fn check(config: &NotificationsConfig, tree: &Node, problems: &mut Vec<Problem>) {
    if let Some(window) = config.dedup_window_seconds
        && window > MAX_DEDUP_WINDOW_SECONDS
    {
        let p = path(&["notifications", "dedupWindowSeconds"]);
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            format!("is {window}; at most {MAX_DEDUP_WINDOW_SECONDS} (one day) is allowed"),
        ));
    }
    let mut first_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut flagged_first = std::collections::BTreeSet::new();
    for (i, route) in config.routes.iter().enumerate() {
        let base = {
            let mut p = path(&["notifications", "routes"]);
            p.push(Seg::Index(i));
            p
        };
        let at = |key: &str| {
            let mut p = base.clone();
            p.push(Seg::Key(key.to_string()));
            p
        };

        let name_path = at("name");
        if let Err(why) = check_route_name(&route.name) {
            problems.push(Problem::new(
                tree.value_pos(&name_path),
                name_path,
                why.to_string(),
            ));
        } else if let Some(&first) = first_by_name.get(route.name.as_str()) {
            let first_told = !flagged_first.insert(first);
            duplicate_name(tree, &route.name, (first, first_told), i, problems);
        } else {
            first_by_name.insert(&route.name, i);
        }

        let events_path = at("events");
        if route.events.is_empty() {
            problems.push(Problem::new(
                tree.value_pos(&events_path),
                events_path.clone(),
                "at least one event is required (`*` selects every event)",
            ));
        }
        let has_all = route.events.contains(&EventSelector::All);
        for (j, selector) in route.events.iter().enumerate() {
            let mut p = events_path.clone();
            p.push(Seg::Index(j));
            if route.events[..j].contains(selector) {
                problems.push(Problem::new(
                    tree.value_pos(&p),
                    p,
                    format!("`{}` is listed twice", selector.as_str()),
                ));
            } else if has_all && *selector != EventSelector::All {
                problems.push(Problem::new(
                    tree.value_pos(&p),
                    p,
                    format!(
                        "`{}` is redundant: `*` already selects every event",
                        selector.as_str()
                    ),
                ));
            }
        }

        let url_path = at("urlFromEnv");
        if !is_env_var_name(&route.url_from_env) {
            problems.push(Problem::new(
                tree.value_pos(&url_path),
                url_path,
                env_var_message(&route.url_from_env),
            ));
        }
        if let Some(var) = &route.secret_from_env {
            let p = at("secretFromEnv");
            if !is_env_var_name(var) {
                problems.push(Problem::new(tree.value_pos(&p), p, env_var_message(var)));
            } else if *var == route.url_from_env {
                problems.push(Problem::new(
                    tree.value_pos(&p),
                    p,
                    format!("`{var}` is also `urlFromEnv`; the secret needs its own variable"),
                ));
            }
        }
    }
}

/// A route named like an earlier one (`first`, and whether it was already told): both places
/// are told, either could be the one to rename.
fn duplicate_name(
    tree: &Node,
    name: &str,
    (first, first_told): (usize, bool),
    i: usize,
    problems: &mut Vec<Problem>,
) {
    let name_path = |index: usize| {
        let mut p = path(&["notifications", "routes"]);
        p.push(Seg::Index(index));
        p.push(Seg::Key("name".into()));
        p
    };
    let mut tell = |at: usize, other: usize| {
        let p = name_path(at);
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            format!("duplicate route name `{name}` (also notifications.routes[{other}])"),
        ));
    };
    if !first_told {
        tell(first, i);
    }
    tell(i, first);
}

/// Rules for a route's `name`.
fn check_route_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_ROUTE_NAME {
        return Err(NameError::TooLong {
            len: name.chars().count(),
            max: MAX_ROUTE_NAME,
        });
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameError::Character {
            found,
            allowed: "letters, digits, '-', '_' and '.'",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::git::MemoryFiles;
    use crate::load::{LoadOutcome, load_from};
    use crate::spec::{EventSelector, NotificationFormat};

    const CLUSTERS: &str = "clusters:\n  prod: {url: 'http://flink:8081'}\n";

    fn load(notifications: &str) -> LoadOutcome {
        load_from(&MemoryFiles::new().with("weir.yaml", format!("{CLUSTERS}{notifications}")))
    }

    fn rendered(o: &LoadOutcome) -> Vec<String> {
        o.diagnostics.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_section_is_loaded() {
        let o = load(
            "\
notifications:
  dedupWindowSeconds: 60
  routes:
    - name: ops-slack
      events: [apply.failed, job.failed, drift.detected, repo.invalid, repo.unreachable]
      format: slack
      urlFromEnv: SLACK_WEBHOOK_URL
    - name: audit
      events: ['*']
      urlFromEnv: AUDIT_HOOK_URL
      secretFromEnv: AUDIT_HOOK_SECRET
",
        );
        assert!(o.is_clean(), "{:#?}", rendered(&o));
        let n = o.desired.unwrap().config.notifications.unwrap();
        assert_eq!(n.dedup_window_seconds, Some(60));
        assert_eq!(n.routes.len(), 2);
        assert_eq!(n.routes[0].format, NotificationFormat::Slack);
        assert_eq!(n.routes[0].events[0], EventSelector::ApplyFailed);
        assert_eq!(n.routes[1].format, NotificationFormat::Generic);
        assert_eq!(n.routes[1].events, [EventSelector::All]);
        assert_eq!(
            n.routes[1].secret_from_env.as_deref(),
            Some("AUDIT_HOOK_SECRET")
        );
    }

    #[test]
    fn no_section_means_no_notifications() {
        let o = load("");
        assert!(o.is_clean(), "{:#?}", rendered(&o));
        assert_eq!(o.desired.unwrap().config.notifications, None);
    }

    #[test]
    fn unknown_events_formats_and_fields_are_positioned_with_suggestions() {
        let o = load(
            "\
notifications:
  routes:
    - name: ops
      events: [apply.faild, '*', jobs.failed]
      format: slak
      urlFromEnv: URL
      secretFomEnv: X
",
        );
        assert_eq!(
            rendered(&o),
            [
                "weir.yaml:6:16: notifications.routes[0].events[0]: unknown value `apply.faild`; \
                 did you mean `apply.failed`? (expected one of `*`, `plan.ready`, \
                 `apply.started`, `apply.succeeded`, `apply.failed`, `job.failed`, \
                 `job.recovered`, `drift.detected`, `savepoint.failed`, `repo.invalid`, \
                 `repo.unreachable`)",
                "weir.yaml:6:34: notifications.routes[0].events[2]: unknown value `jobs.failed`; \
                 did you mean `job.failed`? (expected one of `*`, `plan.ready`, \
                 `apply.started`, `apply.succeeded`, `apply.failed`, `job.failed`, \
                 `job.recovered`, `drift.detected`, `savepoint.failed`, `repo.invalid`, \
                 `repo.unreachable`)",
                "weir.yaml:7:15: notifications.routes[0].format: unknown value `slak`; did you \
                 mean `slack`? (expected one of `generic`, `slack`)",
                "weir.yaml:9:7: notifications.routes[0].secretFomEnv: unknown field \
                 `secretFomEnv`; did you mean `secretFromEnv`?",
            ]
        );
        assert!(o.desired.is_none());
    }

    #[test]
    fn missing_fields_and_wrong_shapes() {
        let o = load(
            "\
notifications:
  dedupWindowSeconds: soon
  routes:
    - name: ops
      events: apply.failed
",
        );
        let all = rendered(&o);
        assert!(
            all.contains(
                &"weir.yaml:6:7: notifications.routes[0].urlFromEnv: missing required field"
                    .to_string()
            ),
            "{all:#?}"
        );
        assert!(
            all.iter().any(|d| d.starts_with(
                "weir.yaml:4:23: notifications.dedupWindowSeconds: invalid type: string \"soon\""
            )),
            "{all:#?}"
        );
        assert!(
            all.contains(
                &"weir.yaml:7:15: notifications.routes[0].events: expected a list, found string \
                  \"apply.failed\""
                    .to_string()
            ),
            "{all:#?}"
        );
        let o = load("notifications: {}\n");
        assert_eq!(
            rendered(&o),
            ["weir.yaml:3:1: notifications.routes: missing required field"]
        );
    }

    #[test]
    fn semantic_rules() {
        let o = load(
            "\
notifications:
  dedupWindowSeconds: 100000
  routes:
    - name: ops slack
      events: []
      urlFromEnv: 1URL
      secretFromEnv: SECRET-X
    - name: audit
      events: [job.failed, '*', job.failed]
      urlFromEnv: AUDIT_URL
      secretFromEnv: AUDIT_URL
    - name: audit
      events: [repo.invalid]
      urlFromEnv: X
    - name: ''
      events: ['*']
      urlFromEnv: X
",
        );
        assert_eq!(
            rendered(&o),
            [
                "weir.yaml:4:23: notifications.dedupWindowSeconds: is 100000; at most 86400 (one \
                 day) is allowed",
                "weir.yaml:6:13: notifications.routes[0].name: contains ' '; only letters, \
                 digits, '-', '_' and '.' are allowed",
                "weir.yaml:7:15: notifications.routes[0].events: at least one event is required \
                 (`*` selects every event)",
                "weir.yaml:8:19: notifications.routes[0].urlFromEnv: `1URL` is not a valid \
                 environment variable name (letters, digits and '_', not starting with a digit)",
                "weir.yaml:9:22: notifications.routes[0].secretFromEnv: `SECRET-X` is not a valid \
                 environment variable name (letters, digits and '_', not starting with a digit)",
                "weir.yaml:10:13: notifications.routes[1].name: duplicate route name `audit` (also \
                 notifications.routes[2])",
                "weir.yaml:11:16: notifications.routes[1].events[0]: `job.failed` is redundant: \
                 `*` already selects every event",
                "weir.yaml:11:33: notifications.routes[1].events[2]: `job.failed` is listed twice",
                "weir.yaml:13:22: notifications.routes[1].secretFromEnv: `AUDIT_URL` is also \
                 `urlFromEnv`; the secret needs its own variable",
                "weir.yaml:14:13: notifications.routes[2].name: duplicate route name `audit` \
                 (also notifications.routes[1])",
                "weir.yaml:17:13: notifications.routes[3].name: must not be empty",
            ]
        );
        assert_eq!(o.invalid_files, ["weir.yaml"]);
        // Semantic problems keep the configuration (like other `weir.yaml` checks).
        assert!(o.desired.is_some());
    }
}
