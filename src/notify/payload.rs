//! The bodies a route receives: weir's generic JSON payload and a Slack message.
//!
//! Every string taken from the event goes through the notifier's [`Scrubber`] (messages) or
//! [`scrub::link`] (links, savepoint paths) first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::Event;
use super::scrub::{self, Scrubber};
use crate::clock::rfc3339;
use crate::plan::Summary;
use crate::spec::{EventKind, NotificationFormat};
use crate::text::truncate;

/// Longest message kept in a generic payload (characters).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest message kept in a Slack message (a section's text is limited to 3000 characters).
pub const MAX_SLACK_MESSAGE_CHARS: usize = 2000;
/// Most savepoint paths listed in a Slack message.
const MAX_SLACK_SAVEPOINTS: usize = 10;

/// The generic payload (`format: generic`). Field order is fixed; absent values are `null`
/// (lists and maps empty) so that every event has the same shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericPayload {
    /// The event id; also the `webhook-id` header.
    pub id: String,
    /// The event name, e.g. `apply.failed`.
    pub event: &'static str,
    /// When the event happened (RFC 3339, UTC).
    pub timestamp: String,
    pub job: Option<String>,
    pub cluster: Option<String>,
    pub revision: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    pub plan: Option<PlanPayload>,
    pub savepoints: Vec<String>,
    pub links: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPayload {
    pub id: String,
    /// E.g. `Plan: 1 to create, 2 to redeploy, 0 to delete.`
    pub summary: String,
    pub changes: Summary,
}

/// The body of `event` (with id `id`) in `format`, as sent.
pub fn render(format: NotificationFormat, id: &str, event: &Event, scrubber: &Scrubber) -> Vec<u8> {
    let value = match format {
        NotificationFormat::Generic => {
            serde_json::to_value(generic(id, event, scrubber)).expect("payloads serialize")
        }
        NotificationFormat::Slack => slack(event, scrubber),
        // An email is built by `email::message`; its JSON form is the generic payload.
        NotificationFormat::Email => {
            serde_json::to_value(generic(id, event, scrubber)).expect("payloads serialize")
        }
        chat => super::im::body(chat, event, scrubber).expect("chat formats have a body"),
    };
    serde_json::to_vec(&value).expect("JSON values serialize")
}

pub fn generic(id: &str, event: &Event, scrubber: &Scrubber) -> GenericPayload {
    GenericPayload {
        id: id.to_string(),
        event: event.kind.as_str(),
        timestamp: rfc3339(event.at_ms),
        job: event.job.as_deref().map(|s| scrubber.text(s)),
        cluster: event.cluster.as_deref().map(|s| scrubber.text(s)),
        revision: event.revision.as_deref().map(|s| scrubber.text(s)),
        author: event.author.as_deref().map(|s| scrubber.text(s)),
        message: event
            .message
            .as_deref()
            .map(|m| truncate(&scrubber.text(m), MAX_MESSAGE_CHARS)),
        plan: event.plan.as_ref().map(|p| PlanPayload {
            id: p.id.clone(),
            summary: p.summary.line(),
            changes: p.summary.clone(),
        }),
        savepoints: event
            .savepoints
            .iter()
            .map(|s| scrubber.text(&scrub::link(s)))
            .collect(),
        links: event
            .links
            .iter()
            .map(|(name, url)| (name.clone(), scrub::link(url)))
            .collect(),
    }
}

/// A title for people: `Apply failed`.
pub fn title(kind: EventKind) -> &'static str {
    match kind {
        EventKind::PlanReady => "Plan ready",
        EventKind::ApplyStarted => "Apply started",
        EventKind::ApplySucceeded => "Apply succeeded",
        EventKind::ApplyFailed => "Apply failed",
        EventKind::JobFailed => "Job failed",
        EventKind::JobRecovered => "Job recovered",
        EventKind::DriftDetected => "Drift detected",
        EventKind::SavepointFailed => "Savepoint failed",
        EventKind::RepoInvalid => "Repo invalid",
        EventKind::RepoUnreachable => "Repo unreachable",
        EventKind::ApplyRolledBack => "Change rolled back",
        EventKind::CheckpointFailing => "Checkpoints failing",
        EventKind::CheckpointRecovered => "Checkpoints recovered",
        EventKind::JobRestarting => "Job restarting",
    }
}

fn emoji(kind: EventKind) -> &'static str {
    match kind {
        EventKind::PlanReady => ":clipboard:",
        EventKind::ApplyStarted => ":arrow_forward:",
        EventKind::ApplySucceeded | EventKind::JobRecovered | EventKind::CheckpointRecovered => {
            ":white_check_mark:"
        }
        EventKind::ApplyFailed | EventKind::JobFailed | EventKind::SavepointFailed => ":x:",
        EventKind::DriftDetected
        | EventKind::ApplyRolledBack
        | EventKind::CheckpointFailing
        | EventKind::JobRestarting => ":warning:",
        EventKind::RepoInvalid | EventKind::RepoUnreachable => ":no_entry:",
    }
}

/// A Slack incoming-webhook message: `text` (the notification and fallback line) and blocks.
pub fn slack(event: &Event, scrubber: &Scrubber) -> Value {
    let p = generic("", event, scrubber);
    // `text` is the notification line (and the fallback): `Apply failed: orders on prod: why`.
    let mut headline = format!("{} *{}*", emoji(event.kind), title(event.kind));
    let mut plain = vec![title(event.kind).to_string()];
    let subject = match (&p.job, &p.cluster) {
        (Some(job), Some(cluster)) => Some((
            format!(" `{}` on `{}`", esc(job), esc(cluster)),
            format!("{} on {}", esc(job), esc(cluster)),
        )),
        (Some(job), None) => Some((format!(" `{}`", esc(job)), esc(job))),
        (None, Some(cluster)) => Some((
            format!(" on `{}`", esc(cluster)),
            format!("on {}", esc(cluster)),
        )),
        (None, None) => None,
    };
    if let Some((rich, simple)) = subject {
        headline.push_str(&rich);
        plain.push(simple);
    }
    let mut section = headline;
    if let Some(message) = &p.message {
        let message = truncate(message, MAX_SLACK_MESSAGE_CHARS);
        section.push('\n');
        section.push_str(&esc(&message));
        let first_line = message.lines().next().unwrap_or_default();
        plain.push(esc(&truncate(first_line, 200)));
    }
    let plain = plain.join(": ");
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": section},
    })];

    let mut fields = Vec::new();
    if let Some(plan) = &p.plan {
        fields.push(esc(&plan.summary));
    }
    if !p.savepoints.is_empty() {
        let mut list: Vec<String> = p
            .savepoints
            .iter()
            .take(MAX_SLACK_SAVEPOINTS)
            .map(|s| format!("`{}`", esc(s)))
            .collect();
        if p.savepoints.len() > MAX_SLACK_SAVEPOINTS {
            list.push(format!(
                "and {} more",
                p.savepoints.len() - MAX_SLACK_SAVEPOINTS
            ));
        }
        let noun = if p.savepoints.len() == 1 {
            "Savepoint"
        } else {
            "Savepoints"
        };
        fields.push(format!("{noun}: {}", list.join(", ")));
    }
    if !fields.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": fields.join("\n")},
        }));
    }

    let mut context = Vec::new();
    if let Some(revision) = &p.revision {
        let short: String = revision.chars().take(12).collect();
        context.push(format!("revision `{}`", esc(&short)));
    }
    if let Some(author) = &p.author {
        context.push(format!("by {}", esc(author)));
    }
    context.push(format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        event.at_ms.div_euclid(1000),
        p.timestamp
    ));
    for (name, url) in &p.links {
        context.push(format!("<{}|{}>", slack_url(url), esc(name)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context.join(" · ")}],
    }));
    json!({"text": plain, "blocks": blocks})
}

/// Slack's mrkdwn escaping of `&`, `<` and `>`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL inside `<url|text>`: `|` and `>` would end it early.
fn slack_url(url: &str) -> String {
    url.replace('|', "%7C")
        .replace('>', "%3E")
        .replace('<', "%3C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::PlanInfo;

    fn scrubber() -> Scrubber {
        Scrubber::new(vec!["hunter2-secret".into()])
    }

    fn full_event() -> Event {
        Event::new(EventKind::ApplySucceeded, 1_700_000_000_123)
            .job("orders-enricher")
            .cluster("prod")
            .revision("4f2a9c1e0b7d4f2a9c1e0b7d4f2a9c1e0b7d4f2a")
            .author("Ada Lovelace <ada@example.com>")
            .plan(PlanInfo {
                id: "plan-01".into(),
                summary: Summary {
                    create: 0,
                    redeploy: 1,
                    rescale: 1,
                    ..Summary::default()
                },
            })
            .savepoint("s3://bucket/savepoints/savepoint-4f2a-1")
            .link(
                "commit",
                "https://x-access-token:ghp_abc@github.com/acme/jobs/commit/4f2a9c1",
            )
            .link("flink", "http://flink-prod:8081/#/job/running")
            .message("redeployed from a savepoint; old config had 'password' = 'hunter2-secret'")
    }

    #[test]
    fn generic_payload_shape() {
        let p = generic("msg_0001", &full_event(), &scrubber());
        insta::assert_json_snapshot!("generic_full", p);
        let bare = generic(
            "msg_0002",
            &Event::new(EventKind::RepoUnreachable, 0).message("cannot fetch"),
            &scrubber(),
        );
        insta::assert_json_snapshot!("generic_bare", bare);
    }

    #[test]
    fn slack_message_shape() {
        insta::assert_json_snapshot!("slack_full", slack(&full_event(), &scrubber()));
        let bare = Event::new(EventKind::RepoInvalid, 1_700_000_000_000)
            .message("jobs/a.yaml:3:1: spec.parallelism: <must> be & positive");
        insta::assert_json_snapshot!("slack_bare", slack(&bare, &scrubber()));
    }

    #[test]
    fn rendered_bodies_never_contain_secrets() {
        for format in [NotificationFormat::Generic, NotificationFormat::Slack] {
            let body =
                String::from_utf8(render(format, "msg_1", &full_event(), &scrubber())).unwrap();
            assert!(!body.contains("hunter2-secret"), "{body}");
            assert!(!body.contains("ghp_abc"), "{body}");
            assert!(!body.contains("x-access-token"), "{body}");
            let _: Value = serde_json::from_str(&body).unwrap();
        }
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "x".repeat(10_000);
        let p = generic(
            "m",
            &Event::new(EventKind::JobFailed, 0).message(&long),
            &scrubber(),
        );
        assert_eq!(p.message.unwrap().chars().count(), MAX_MESSAGE_CHARS);
        let s = slack(
            &Event::new(EventKind::JobFailed, 0).message(&long),
            &scrubber(),
        );
        let text = s["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.chars().count() < 3000);
        assert_eq!(truncate("abc", 2), "a…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
