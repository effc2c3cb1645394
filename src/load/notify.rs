//! Checks of `notifications` in `weir.yaml` beyond its shape.
//!
//! The shape check (module `shape`) already reports unknown fields, unknown event names and
//! formats (with a did-you-mean) and wrong types; this adds the rules serde cannot express.

use std::collections::BTreeMap;

use crate::spec::{
    EventSelector, MAX_DEDUP_WINDOW_SECONDS, NameError, NotificationRoute, NotificationsConfig,
};

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

        check_channel(route, tree, &base, problems);
    }
}

/// The fields of a route's channel: what its format needs, what it does not use.
fn check_channel(
    route: &NotificationRoute,
    tree: &Node,
    base: &[Seg],
    problems: &mut Vec<Problem>,
) {
    let at = |key: &str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(key.to_string()));
        p
    };
    let mut problem = |p: Vec<Seg>, message: String| {
        problems.push(Problem::new(tree.value_pos(&p), p, message));
    };
    let format = route.format.as_str();
    let mut env_vars = Vec::new();
    if route.format.is_webhook() {
        match &route.url_from_env {
            Some(var) => env_vars.push(("urlFromEnv", var)),
            // Where the shape check puts a missing field: at the route.
            None => problem(at("urlFromEnv"), "missing required field".into()),
        }
        for (field, set) in [
            ("smtpUrlFromEnv", route.smtp_url_from_env.is_some()),
            ("to", !route.to.is_empty()),
            ("from", route.from.is_some()),
        ] {
            if set {
                problem(
                    at(field),
                    format!("is only used by `format: email`, not `{format}`"),
                );
            }
        }
    } else {
        if route.url_from_env.is_some() {
            problem(
                at("urlFromEnv"),
                "is not used by `format: email`; the server comes from `smtpUrlFromEnv`".into(),
            );
        }
        match &route.smtp_url_from_env {
            Some(var) => env_vars.push(("smtpUrlFromEnv", var)),
            None => problem(
                at("smtpUrlFromEnv"),
                "missing required field (`format: email` needs the name of the environment \
                 variable holding the SMTP URL, e.g. WEIR_SMTP_URL)"
                    .into(),
            ),
        }
        match &route.from {
            Some(from) => check_address(from, at("from"), &mut problem),
            None => problem(at("from"), "missing required field (the sender)".into()),
        }
        if route.to.is_empty() {
            problem(at("to"), "at least one recipient is required".into());
        }
        for (j, to) in route.to.iter().enumerate() {
            let mut p = at("to");
            p.push(Seg::Index(j));
            check_address(to, p, &mut problem);
        }
    }
    if let Some(var) = &route.secret_from_env {
        if route.format.signing().is_none() {
            problem(
                at("secretFromEnv"),
                format!("`format: {format}` does not sign its requests; remove `secretFromEnv`"),
            );
        } else if let Some((field, _)) = env_vars.iter().find(|(_, v)| *v == var) {
            problem(
                at("secretFromEnv"),
                format!("`{var}` is also `{field}`; the secret needs its own variable"),
            );
        }
        env_vars.push(("secretFromEnv", var));
    }
    for (field, var) in env_vars {
        if !is_env_var_name(var) {
            problem(at(field), env_var_message(var));
        }
    }
}

/// An email address as lettre will read it: `ops@example.com` or `Ops <ops@example.com>`.
fn check_address(address: &str, p: Vec<Seg>, problem: &mut impl FnMut(Vec<Seg>, String)) {
    if let Err(e) = address.trim().parse::<lettre::message::Mailbox>() {
        problem(p, format!("`{address}` is not an email address ({e})"));
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
                 `repo.unreachable`, `apply.rolledBack`, `checkpoint.failing`, \
                 `checkpoint.recovered`, `job.restarting`)",
                "weir.yaml:6:34: notifications.routes[0].events[2]: unknown value `jobs.failed`; \
                 did you mean `job.failed`? (expected one of `*`, `plan.ready`, \
                 `apply.started`, `apply.succeeded`, `apply.failed`, `job.failed`, \
                 `job.recovered`, `drift.detected`, `savepoint.failed`, `repo.invalid`, \
                 `repo.unreachable`, `apply.rolledBack`, `checkpoint.failing`, \
                 `checkpoint.recovered`, `job.restarting`)",
                "weir.yaml:7:15: notifications.routes[0].format: unknown value `slak`; did you \
                 mean `slack`? (expected one of `generic`, `slack`, `email`, `dingtalk`, \
                 `wecom`, `lark`, `teams`)",
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
        // `urlFromEnv` is required by the webhook formats (checked once the shape is right).
        let o = load("notifications:\n  routes:\n    - name: ops\n      events: [apply.failed]\n");
        assert_eq!(
            rendered(&o),
            ["weir.yaml:5:7: notifications.routes[0].urlFromEnv: missing required field"]
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

    #[test]
    fn channel_fields() {
        let o = load(
            "\
notifications:
  routes:
    - name: mail
      events: [apply.failed]
      format: email
      smtpUrlFromEnv: WEIR_SMTP_URL
      from: weir <weir@example.com>
      to: [ops@example.com, 'On Call <oncall@example.com>']
    - name: ding
      events: ['*']
      format: dingtalk
      urlFromEnv: DING_URL
      secretFromEnv: DING_SECRET
    - name: teams
      events: ['*']
      format: teams
      urlFromEnv: TEAMS_URL
",
        );
        assert!(o.is_clean(), "{:#?}", rendered(&o));
        let n = o.desired.unwrap().config.notifications.unwrap();
        assert_eq!(n.routes[0].format, NotificationFormat::Email);
        assert_eq!(n.routes[0].to.len(), 2);
        assert_eq!(n.routes[1].format, NotificationFormat::Dingtalk);

        let o = load(
            "\
notifications:
  routes:
    - name: mail
      events: [apply.failed]
      format: email
      urlFromEnv: URL
      to: [not-an-address]
    - name: wecom
      events: ['*']
      format: wecom
      urlFromEnv: WECOM_URL
      secretFromEnv: WECOM_SECRET
      from: weir@example.com
    - name: lark
      events: ['*']
      format: lark
      urlFromEnv: LARK
      secretFromEnv: LARK
",
        );
        assert_eq!(
            rendered(&o),
            [
                "weir.yaml:5:7: notifications.routes[0].smtpUrlFromEnv: missing required field \
                 (`format: email` needs the name of the environment variable holding the SMTP \
                 URL, e.g. WEIR_SMTP_URL)",
                "weir.yaml:5:7: notifications.routes[0].from: missing required field (the sender)",
                "weir.yaml:8:19: notifications.routes[0].urlFromEnv: is not used by `format: \
                 email`; the server comes from `smtpUrlFromEnv`",
                "weir.yaml:9:12: notifications.routes[0].to[0]: `not-an-address` is not an email \
                 address (Invalid input)",
                "weir.yaml:14:22: notifications.routes[1].secretFromEnv: `format: wecom` does not \
                 sign its requests; remove `secretFromEnv`",
                "weir.yaml:15:13: notifications.routes[1].from: is only used by `format: email`, \
                 not `wecom`",
                "weir.yaml:20:22: notifications.routes[2].secretFromEnv: `LARK` is also \
                 `urlFromEnv`; the secret needs its own variable",
            ]
        );
    }
}
