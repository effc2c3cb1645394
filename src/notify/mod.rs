//! Outbound notifications: events (an apply failed, drift was detected, ...) sent to webhooks.
//!
//! `weir.yaml` names routes ([`NotificationsConfig`]): which events go to which webhook, in which
//! format, with the URL and an optional Standard Webhooks signing secret read from environment
//! variables. A [`Notifier`] built from that configuration delivers each [`Event`] to every route
//! that selects it:
//!
//! * **Formats.** `generic`: weir's JSON payload ([`payload::GenericPayload`]); `slack`: a Slack
//!   incoming-webhook message; `dingtalk`, `wecom`, `lark`, `teams`: the chat robots' own
//!   messages, DingTalk's and Lark's signed ([`im`]); `email`: a plain-text and HTML message over
//!   SMTP with TLS ([`email`]). Every delivery carries `webhook-id` (the event id, the same on every
//!   attempt) and `webhook-timestamp`; with a secret also `webhook-signature` ([`sign`]).
//! * **Retries.** Network errors, `5xx` and `429` are retried with jittered exponential backoff
//!   (honouring `Retry-After` up to the maximum delay); any other status is final. Redirects are
//!   not followed. Concurrent requests are bounded.
//! * **De-duplication.** An identical event (same kind, job, cluster, revision and message) is
//!   sent to a route at most once per `dedupWindowSeconds` ([`dedup`]).
//! * **Record.** How each delivery ended (route, event id, attempts, status code, error, times) is
//!   written to the store when there is one ([`crate::store::Store::record_delivery`]).
//! * **Secrets.** URLs are shown as `scheme://host/path` without query or token-like segments;
//!   messages and errors are scrubbed of the configured secrets and of credential-looking text
//!   ([`scrub`], [`crate::redact`]) before they reach a payload, a log line or the store.
//!
//! Event times are passed in by the caller; the notifier reads the clock only for the attempt
//! timestamps (`webhook-timestamp`) and the recorded delivery times.

mod dedup;
mod deliver;
pub mod email;
pub mod im;
pub mod payload;
pub mod scrub;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::plan::Summary;
use crate::store::Store;
use crate::text::error_chain;

pub use crate::spec::{
    EventKind, EventSelector, NotificationFormat, NotificationRoute, NotificationsConfig,
};
use deliver::{AttemptError, read_prefix};
pub use scrub::Scrubber;
pub use sign::{SecretError, SigningKey};

// ---------------------------------------------------------------------------------------------
// Events

/// Something to tell people about. Build with [`Event::new`] and the setters:
///
/// ```
/// use weir::notify::{Event, EventKind};
/// let e = Event::new(EventKind::ApplyFailed, 1_700_000_000_000)
///     .job("orders")
///     .cluster("prod")
///     .revision("4f2a9c1")
///     .message("submit failed: jar not found");
/// assert_eq!(e.job.as_deref(), Some("orders"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: EventKind,
    /// The job definition (`metadata.name`) the event is about.
    pub job: Option<String>,
    pub cluster: Option<String>,
    /// The Git revision (commit) the event concerns.
    pub revision: Option<String>,
    /// Who made the revision, e.g. `Ada <ada@example.com>`.
    pub author: Option<String>,
    pub plan: Option<PlanInfo>,
    /// Savepoint (or checkpoint) paths involved, e.g. the one a redeploy restored from.
    pub savepoints: Vec<String>,
    /// Named links for people (`commit`, `plan`, `flink`, ...).
    pub links: BTreeMap<String, String>,
    /// What happened, for people (scrubbed of secrets before it is sent).
    pub message: Option<String>,
    /// When it happened (unix epoch milliseconds), passed in by the caller.
    pub at_ms: i64,
}

/// The plan an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInfo {
    pub id: String,
    pub summary: Summary,
}

impl Event {
    pub fn new(kind: EventKind, at_ms: i64) -> Event {
        Event {
            kind,
            job: None,
            cluster: None,
            revision: None,
            author: None,
            plan: None,
            savepoints: Vec::new(),
            links: BTreeMap::new(),
            message: None,
            at_ms,
        }
    }

    pub fn job(mut self, job: impl Into<String>) -> Event {
        self.job = Some(job.into());
        self
    }

    pub fn cluster(mut self, cluster: impl Into<String>) -> Event {
        self.cluster = Some(cluster.into());
        self
    }

    pub fn revision(mut self, revision: impl Into<String>) -> Event {
        self.revision = Some(revision.into());
        self
    }

    pub fn author(mut self, author: impl Into<String>) -> Event {
        self.author = Some(author.into());
        self
    }

    pub fn plan(mut self, plan: PlanInfo) -> Event {
        self.plan = Some(plan);
        self
    }

    /// Adds a savepoint path.
    pub fn savepoint(mut self, path: impl Into<String>) -> Event {
        self.savepoints.push(path.into());
        self
    }

    /// Adds (or replaces) the link called `name`.
    pub fn link(mut self, name: impl Into<String>, url: impl Into<String>) -> Event {
        self.links.insert(name.into(), url.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Event {
        self.message = Some(message.into());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries

pub use crate::store::notify::{Delivery, DeliveryStatus};

// ---------------------------------------------------------------------------------------------
// Errors and options

/// A route that cannot be used. Never contains a URL or a secret, only the names of the
/// environment variables holding them.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "notification route `{route}`: environment variable {var} (the webhook URL) is not set"
    )]
    MissingUrl { route: String, var: String },
    #[error(
        "notification route `{route}`: environment variable {var} does not hold a usable webhook \
         URL: {reason}"
    )]
    InvalidUrl {
        route: String,
        var: String,
        reason: String,
    },
    #[error(
        "notification route `{route}`: environment variable {var} (the signing secret) is not set"
    )]
    MissingSecret { route: String, var: String },
    #[error(
        "notification route `{route}`: the signing secret in environment variable {var} is invalid"
    )]
    InvalidSecret {
        route: String,
        var: String,
        #[source]
        source: SecretError,
    },
    #[error("notification route `{route}`: `{field}` is required by format `{format}`")]
    MissingField {
        route: String,
        field: &'static str,
        format: &'static str,
    },
    #[error(
        "notification route `{route}`: environment variable {var} (the SMTP server URL) is not set"
    )]
    MissingSmtpUrl { route: String, var: String },
    #[error(
        "notification route `{route}`: environment variable {var} does not hold a usable SMTP URL"
    )]
    InvalidSmtpUrl {
        route: String,
        var: String,
        #[source]
        source: email::EmailConfigError,
    },
    #[error("notification route `{route}`: the sender, the recipients or TLS cannot be used")]
    Email {
        route: String,
        #[source]
        source: email::EmailConfigError,
    },
    #[error("notification route `{route}` is defined twice")]
    DuplicateRoute { route: String },
    #[error("cannot set up the HTTP client for notifications")]
    Client {
        #[source]
        source: reqwest::Error,
    },
}

/// Delivery tuning; the defaults suit a daemon.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// HTTP requests per delivery, the first included (default 5).
    pub max_attempts: u32,
    /// First retry delay (default 1 s); doubles per retry, plus up to as much random jitter.
    pub min_backoff: Duration,
    /// Largest retry delay, also the cap on `Retry-After` (default 60 s).
    pub max_backoff: Duration,
    /// Timeout of one HTTP request (default 15 s).
    pub request_timeout: Duration,
    /// HTTP requests in flight at once, over all routes and events (default 8).
    pub max_concurrency: usize,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            max_attempts: 5,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            max_concurrency: 8,
        }
    }
}

/// Most bytes of a failed response's body kept for the error message.
const MAX_ERROR_BODY: usize = 300;

// ---------------------------------------------------------------------------------------------
// The notifier

/// Delivers events to the configured routes. Cheap to clone (clones share everything, including
/// the de-duplication window and the concurrency limit).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    routes: Vec<Route>,
    dedup: Mutex<dedup::Dedup>,
    store: Option<Store>,
    client: reqwest::Client,
    permits: tokio::sync::Semaphore,
    options: NotifierOptions,
    scrubber: Scrubber,
    /// Deliveries started by [`Notifier::spawn`] and not finished yet.
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("routes", &self.routes)
            .field("store", &self.store.as_ref().map(Store::path))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A route as the console and the API show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSummary {
    pub name: String,
    pub format: &'static str,
    /// As written in `weir.yaml` (`*` or event names).
    pub events: Vec<&'static str>,
    /// The webhook URL or the SMTP server, masked.
    pub destination: String,
    /// Whether requests are signed with the route's secret.
    pub signed: bool,
}

/// A usable route. `Debug` shows only the redacted URL.
struct Route {
    name: String,
    events: Vec<EventSelector>,
    format: NotificationFormat,
    target: Target,
    shown_url: String,
}

/// Where a route's messages go.
enum Target {
    /// A webhook; `key` signs the Standard Webhooks way (`generic`, `slack`), `secret` the
    /// robot's way (`dingtalk`, `lark`).
    Http {
        url: reqwest::Url,
        key: Option<SigningKey>,
        secret: Option<String>,
    },
    /// An SMTP server (`email`).
    Email(Box<email::Mailer>),
}

/// What one delivery sends on every attempt.
enum Body {
    Http(Vec<u8>),
    Email(Box<lettre::Message>),
    /// The message could not be built (already scrubbed); the delivery fails without a retry.
    Invalid(String),
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("url", &self.shown_url)
            .field(
                "signed",
                &matches!(&self.target, Target::Http { key, secret, .. }
                    if key.is_some() || secret.is_some()),
            )
            .finish()
    }
}

impl Route {
    fn selects(&self, kind: EventKind) -> bool {
        self.events.iter().any(|s| s.matches(kind))
    }
}

impl Notifier {
    /// A notifier that sends nothing (no `notifications` in `weir.yaml`).
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Builds the routes of `config`, reading URLs and secrets through `env` (e.g.
    /// `|name| std::env::var(name).ok()`). Fails on the first route that cannot be used.
    /// Deliveries are recorded in `store` when given.
    pub fn from_config(
        config: &NotificationsConfig,
        store: Option<Store>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Notifier, NotifyError> {
        Notifier::from_config_with(config, store, env, NotifierOptions::default())
    }

    /// [`Notifier::from_config`] with explicit [`NotifierOptions`].
    pub fn from_config_with(
        config: &NotificationsConfig,
        store: Option<Store>,
        env: impl Fn(&str) -> Option<String>,
        options: NotifierOptions,
    ) -> Result<Notifier, NotifyError> {
        let (notifier, mut errors) = Notifier::build(config, store, &env, options);
        match errors.is_empty() {
            true => Ok(notifier),
            false => Err(errors.remove(0)),
        }
    }

    /// Like [`Notifier::from_config_with`], but keeps the usable routes and returns why the others
    /// were left out (so that one missing variable does not silence every notification).
    pub fn from_config_lenient(
        config: &NotificationsConfig,
        store: Option<Store>,
        env: impl Fn(&str) -> Option<String>,
        options: NotifierOptions,
    ) -> (Notifier, Vec<NotifyError>) {
        Notifier::build(config, store, &env, options)
    }

    fn build(
        config: &NotificationsConfig,
        store: Option<Store>,
        env: &dyn Fn(&str) -> Option<String>,
        options: NotifierOptions,
    ) -> (Notifier, Vec<NotifyError>) {
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        let mut secrets = Vec::new();
        let mut names = BTreeSet::new();
        for r in &config.routes {
            if !names.insert(r.name.as_str()) {
                errors.push(NotifyError::DuplicateRoute {
                    route: r.name.clone(),
                });
                continue;
            }
            match route_from_config(r, env, &mut secrets, options.request_timeout) {
                Ok(route) => routes.push(route),
                Err(e) => errors.push(e),
            }
        }
        // Known everywhere in the process, not only in payloads: a log line or a stored error
        // that quotes a webhook URL is scrubbed too.
        crate::redact::register_secrets(&secrets);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = match client {
            Ok(client) => client,
            Err(source) => {
                errors.push(NotifyError::Client { source });
                return (Notifier::disabled(), errors);
            }
        };
        let window_s = config
            .dedup_window_seconds
            .unwrap_or(crate::spec::DEFAULT_DEDUP_WINDOW_SECONDS);
        let window_ms = i64::try_from(window_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let inner = Inner {
            routes,
            dedup: Mutex::new(dedup::Dedup::new(window_ms)),
            store,
            client,
            permits: tokio::sync::Semaphore::new(options.max_concurrency.max(1)),
            options,
            scrubber: Scrubber::new(secrets),
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        };
        (
            Notifier {
                inner: Some(Arc::new(inner)),
            },
            errors,
        )
    }

    /// Whether any route is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.routes.is_empty())
    }

    /// The names of the usable routes, in configuration order.
    pub fn route_names(&self) -> Vec<&str> {
        self.routes().iter().map(|r| r.name.as_str()).collect()
    }

    /// The names of the routes that receive `kind`.
    pub fn routes_for(&self, kind: EventKind) -> Vec<&str> {
        self.routes()
            .iter()
            .filter(|r| r.selects(kind))
            .map(|r| r.name.as_str())
            .collect()
    }

    fn routes(&self) -> &[Route] {
        self.inner.as_deref().map_or(&[], |i| i.routes.as_slice())
    }

    /// What the usable routes are, safe to show anyone: destinations masked as in the delivery
    /// records (no query, credentials or token-like path segments).
    pub fn summaries(&self) -> Vec<RouteSummary> {
        self.routes()
            .iter()
            .map(|r| RouteSummary {
                name: r.name.clone(),
                format: r.format.as_str(),
                events: r.events.iter().map(|e| e.as_str()).collect(),
                destination: r.shown_url.clone(),
                signed: matches!(&r.target, Target::Http { key, secret, .. }
                    if key.is_some() || secret.is_some()),
            })
            .collect()
    }

    /// Delivers `event` to every route that selects it, concurrently, and returns how each
    /// delivery ended (in route order; empty when no route selects the event). Waits for the
    /// retries; see [`Notifier::spawn`] to not wait.
    pub async fn notify(&self, event: Event) -> Vec<Delivery> {
        let Some(inner) = self.inner.clone() else {
            return Vec::new();
        };
        inner.notify(event).await
    }

    /// Starts delivering `event` in the background (on the current tokio runtime) and returns
    /// the task's handle; dropping the handle does not cancel the delivery. [`Notifier::flush`]
    /// waits for every delivery started this way.
    pub fn spawn(&self, event: Event) -> tokio::task::JoinHandle<Vec<Delivery>> {
        let Some(inner) = self.inner.clone() else {
            return tokio::spawn(async { Vec::new() });
        };
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            struct Done(Arc<Inner>);
            impl Drop for Done {
                fn drop(&mut self) {
                    if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                        self.0.idle.notify_waiters();
                    }
                }
            }
            let done = Done(inner);
            Arc::clone(&done.0).notify(event).await
        })
    }

    /// Waits until every delivery started by [`Notifier::spawn`] has ended (e.g. on shutdown,
    /// under a timeout of the caller's choice).
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        loop {
            let idle = inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Deliveries started by [`Notifier::spawn`] that have not ended.
    pub fn in_flight(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |i| i.in_flight.load(Ordering::SeqCst))
    }
}

/// A route from its configuration, or why it cannot be used. Adds the values it read to
/// `secrets` (for scrubbing).
fn route_from_config(
    r: &NotificationRoute,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
    timeout: Duration,
) -> Result<Route, NotifyError> {
    let read = |var: &str| {
        env(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if !r.format.is_webhook() {
        let (mailer, shown_url) = email::target(r, &read, secrets, timeout)?;
        return Ok(Route {
            name: r.name.clone(),
            events: r.events.clone(),
            format: r.format,
            target: Target::Email(Box::new(mailer)),
            shown_url,
        });
    }
    let url_var = r
        .url_from_env
        .as_deref()
        .ok_or_else(|| NotifyError::MissingField {
            route: r.name.clone(),
            field: "urlFromEnv",
            format: r.format.as_str(),
        })?;
    let raw_url = read(url_var).ok_or_else(|| NotifyError::MissingUrl {
        route: r.name.clone(),
        var: url_var.to_string(),
    })?;
    let invalid = |reason: String| NotifyError::InvalidUrl {
        route: r.name.clone(),
        var: url_var.to_string(),
        reason,
    };
    // The parse error names no part of the URL.
    let url = reqwest::Url::parse(&raw_url).map_err(|e| invalid(e.to_string()))?;
    secrets.push(raw_url);
    secrets.extend(scrub::url_secrets(&url));
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not `{}`",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".into()));
    }
    let (mut key, mut robot_secret) = (None, None);
    if let (Some(var), Some(signing)) = (&r.secret_from_env, r.format.signing()) {
        let secret = read(var).ok_or_else(|| NotifyError::MissingSecret {
            route: r.name.clone(),
            var: var.clone(),
        })?;
        secrets.push(secret.clone());
        if signing != crate::spec::Signing::StandardWebhooks {
            robot_secret = Some(secret);
        } else {
            if let Some(encoded) = secret.strip_prefix(sign::SECRET_PREFIX) {
                secrets.push(encoded.to_string());
            }
            let parsed =
                SigningKey::parse(&secret).map_err(|source| NotifyError::InvalidSecret {
                    route: r.name.clone(),
                    var: var.clone(),
                    source,
                })?;
            key = Some(parsed);
        }
    }
    Ok(Route {
        name: r.name.clone(),
        events: r.events.clone(),
        format: r.format,
        shown_url: scrub::url(&url),
        target: Target::Http {
            url,
            key,
            secret: robot_secret,
        },
    })
}

/// A new event id: `msg_` + 12 hex digits of the time (so ids sort by time) + 20 random hex
/// digits. Contains no `.` (the signature scheme's separator).
fn new_event_id(at_ms: i64) -> String {
    let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    format!("msg_{:012x}{random:020x}", at_ms.clamp(0, (1 << 48) - 1))
}

#[cfg(test)]
mod tests;
