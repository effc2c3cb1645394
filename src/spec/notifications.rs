//! `notifications` in `weir.yaml`: routes, their formats and signing, and the events they select.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `notifications` in `weir.yaml`: outbound webhooks. URLs and signing secrets are read from
/// environment variables named here; their values never belong in the repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationsConfig {
    /// Identical events (same event, job, cluster, revision and message) are sent to a route at
    /// most once per this many seconds (default 300; 0 sends every event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_seconds: Option<u64>,
    /// Where events go; an event is sent to every route that selects it.
    pub routes: Vec<NotificationRoute>,
}

/// Default of `notifications.dedupWindowSeconds`.
pub const DEFAULT_DEDUP_WINDOW_SECONDS: u64 = 300;
/// Largest accepted `notifications.dedupWindowSeconds` (one day).
pub const MAX_DEDUP_WINDOW_SECONDS: u64 = 86_400;

/// One channel (a webhook, a chat robot, a mailbox) receiving a selection of events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationRoute {
    /// Unique among the routes; letters, digits, '-', '_' and '.', at most 63 characters. Names
    /// the route in logs and in the store.
    pub name: String,
    /// The events sent to this route; `*` selects every event.
    pub events: Vec<EventSelector>,
    /// Message format and channel (default `generic`).
    #[serde(default)]
    pub format: NotificationFormat,
    /// Name of the environment variable holding the webhook URL (`http://` or `https://`).
    /// Required by every format except `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from_env: Option<String>,
    /// Name of the environment variable holding a signing secret. `generic` and `slack`: a
    /// Standard Webhooks secret (`whsec_` + base64, or raw text; at least 24 bytes), sent as
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature` headers. `dingtalk`: the robot's
    /// signing secret (`SEC...`; `timestamp` and `sign` query parameters). `lark`: the bot's
    /// signature-verification secret (`timestamp` and `sign` in the body). Not used by `wecom`,
    /// `teams` and `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_from_env: Option<String>,
    /// `email` only: name of the environment variable holding the SMTP server URL with its
    /// credentials: `smtps://user:pass@host[:465]` (implicit TLS), `smtp://user:pass@host[:587]`
    /// (STARTTLS, required), `smtp://host:25?tls=none` (no TLS; credentials only to a loopback
    /// host). `?cafile=/path/ca.pem` trusts a private CA besides the public ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url_from_env: Option<String>,
    /// `email` only: the recipients (`ops@example.com` or `Ops <ops@example.com>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// `email` only: the sender (`weir@example.com` or `weir <weir@example.com>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The body a route receives, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationFormat {
    /// weir's JSON payload (event, job, cluster, revision, author, plan, savepoints, links).
    #[default]
    Generic,
    /// A Slack incoming-webhook message (`text` and blocks).
    Slack,
    /// An email (plain text and HTML) sent over SMTP with TLS.
    Email,
    /// A DingTalk custom robot message (`msgtype: markdown`), signed when a secret is given.
    Dingtalk,
    /// A WeCom (WeChat Work) group robot message (`msgtype: markdown`).
    Wecom,
    /// A Lark / Feishu custom bot message (`msg_type: post`), signed when a secret is given.
    Lark,
    /// A Microsoft Teams message with an Adaptive Card (incoming webhook or Workflows).
    Teams,
}

impl NotificationFormat {
    /// As written in `weir.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationFormat::Generic => "generic",
            NotificationFormat::Slack => "slack",
            NotificationFormat::Email => "email",
            NotificationFormat::Dingtalk => "dingtalk",
            NotificationFormat::Wecom => "wecom",
            NotificationFormat::Lark => "lark",
            NotificationFormat::Teams => "teams",
        }
    }

    /// Whether routes of this format are webhooks (need `urlFromEnv`).
    pub fn is_webhook(self) -> bool {
        self != NotificationFormat::Email
    }

    /// What `secretFromEnv` means for this format, if anything.
    pub fn signing(self) -> Option<Signing> {
        match self {
            NotificationFormat::Generic | NotificationFormat::Slack => {
                Some(Signing::StandardWebhooks)
            }
            NotificationFormat::Dingtalk => Some(Signing::Dingtalk),
            NotificationFormat::Lark => Some(Signing::Lark),
            NotificationFormat::Email | NotificationFormat::Wecom | NotificationFormat::Teams => {
                None
            }
        }
    }
}

/// How a route's requests are signed with its `secretFromEnv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// `webhook-signature` headers (Standard Webhooks).
    StandardWebhooks,
    /// DingTalk's `timestamp` and `sign` query parameters.
    Dingtalk,
    /// Lark's `timestamp` and `sign` body fields.
    Lark,
}

/// Something weir tells people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "plan.ready")]
    PlanReady,
    #[serde(rename = "apply.started")]
    ApplyStarted,
    #[serde(rename = "apply.succeeded")]
    ApplySucceeded,
    #[serde(rename = "apply.failed")]
    ApplyFailed,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.recovered")]
    JobRecovered,
    #[serde(rename = "drift.detected")]
    DriftDetected,
    #[serde(rename = "savepoint.failed")]
    SavepointFailed,
    #[serde(rename = "repo.invalid")]
    RepoInvalid,
    #[serde(rename = "repo.unreachable")]
    RepoUnreachable,
    #[serde(rename = "apply.rolledBack")]
    ApplyRolledBack,
    #[serde(rename = "checkpoint.failing")]
    CheckpointFailing,
    #[serde(rename = "checkpoint.recovered")]
    CheckpointRecovered,
    #[serde(rename = "job.restarting")]
    JobRestarting,
}

impl EventKind {
    /// Every event, in documentation order.
    pub const ALL: [EventKind; 14] = [
        EventKind::PlanReady,
        EventKind::ApplyStarted,
        EventKind::ApplySucceeded,
        EventKind::ApplyFailed,
        EventKind::ApplyRolledBack,
        EventKind::JobFailed,
        EventKind::JobRecovered,
        EventKind::DriftDetected,
        EventKind::SavepointFailed,
        EventKind::RepoInvalid,
        EventKind::RepoUnreachable,
        EventKind::CheckpointFailing,
        EventKind::CheckpointRecovered,
        EventKind::JobRestarting,
    ];

    /// The event named `name` (e.g. `apply.failed`).
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event's name, e.g. `apply.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PlanReady => "plan.ready",
            EventKind::ApplyStarted => "apply.started",
            EventKind::ApplySucceeded => "apply.succeeded",
            EventKind::ApplyFailed => "apply.failed",
            EventKind::JobFailed => "job.failed",
            EventKind::JobRecovered => "job.recovered",
            EventKind::DriftDetected => "drift.detected",
            EventKind::SavepointFailed => "savepoint.failed",
            EventKind::RepoInvalid => "repo.invalid",
            EventKind::RepoUnreachable => "repo.unreachable",
            EventKind::ApplyRolledBack => "apply.rolledBack",
            EventKind::CheckpointFailing => "checkpoint.failing",
            EventKind::CheckpointRecovered => "checkpoint.recovered",
            EventKind::JobRestarting => "job.restarting",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of a route's `events`: one event, or `*` for all of them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum EventSelector {
    /// Every event.
    #[serde(rename = "*")]
    All,
    /// A plan with changes was computed.
    #[serde(rename = "plan.ready")]
    PlanReady,
    /// An apply began.
    #[serde(rename = "apply.started")]
    ApplyStarted,
    /// An apply finished and every job runs its desired spec.
    #[serde(rename = "apply.succeeded")]
    ApplySucceeded,
    /// An apply stopped on an error.
    #[serde(rename = "apply.failed")]
    ApplyFailed,
    /// A managed job was found FAILED, CANCELED or FINISHED behind weir's back, or missing.
    #[serde(rename = "job.failed")]
    JobFailed,
    /// A failed or missing job was started again.
    #[serde(rename = "job.recovered")]
    JobRecovered,
    /// The clusters no longer match the repo.
    #[serde(rename = "drift.detected")]
    DriftDetected,
    /// A savepoint could not be taken.
    #[serde(rename = "savepoint.failed")]
    SavepointFailed,
    /// The repo has invalid files.
    #[serde(rename = "repo.invalid")]
    RepoInvalid,
    /// The Git remote could not be reached.
    #[serde(rename = "repo.unreachable")]
    RepoUnreachable,
    /// A change's new job did not become healthy and its previous definition was put back.
    #[serde(rename = "apply.rolledBack")]
    ApplyRolledBack,
    /// At least `health.checkpointFailures` checkpoints of a running job failed within
    /// `health.windowMinutes`.
    #[serde(rename = "checkpoint.failing")]
    CheckpointFailing,
    /// A job's checkpoints stopped failing.
    #[serde(rename = "checkpoint.recovered")]
    CheckpointRecovered,
    /// A running job restarted (its restart count rose).
    #[serde(rename = "job.restarting")]
    JobRestarting,
}

impl EventSelector {
    /// The selector for exactly `kind`.
    pub fn of(kind: EventKind) -> EventSelector {
        match kind {
            EventKind::PlanReady => EventSelector::PlanReady,
            EventKind::ApplyStarted => EventSelector::ApplyStarted,
            EventKind::ApplySucceeded => EventSelector::ApplySucceeded,
            EventKind::ApplyFailed => EventSelector::ApplyFailed,
            EventKind::JobFailed => EventSelector::JobFailed,
            EventKind::JobRecovered => EventSelector::JobRecovered,
            EventKind::DriftDetected => EventSelector::DriftDetected,
            EventKind::SavepointFailed => EventSelector::SavepointFailed,
            EventKind::RepoInvalid => EventSelector::RepoInvalid,
            EventKind::RepoUnreachable => EventSelector::RepoUnreachable,
            EventKind::ApplyRolledBack => EventSelector::ApplyRolledBack,
            EventKind::CheckpointFailing => EventSelector::CheckpointFailing,
            EventKind::CheckpointRecovered => EventSelector::CheckpointRecovered,
            EventKind::JobRestarting => EventSelector::JobRestarting,
        }
    }

    /// Whether this selector selects `kind`.
    pub fn matches(self, kind: EventKind) -> bool {
        self == EventSelector::All || self == EventSelector::of(kind)
    }

    /// As written in `weir.yaml`: `*` or the event name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSelector::All => "*",
            other => EventKind::ALL
                .into_iter()
                .find(|k| EventSelector::of(*k) == other)
                .map_or("*", EventKind::as_str),
        }
    }
}
