//! The HTTP API (axum on hyper): health, status, plans, applies, the audit trail (history,
//! records, savepoint lineage), sync, metrics and the webhook receivers. Mutating endpoints need
//! a bearer token; read endpoints too when configured.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use super::pull::{self, ForgeKind, Previews, Submitted};
use super::reconcile::{ApplyRefusal, Shared};
use super::webhook;
use crate::audit;
use crate::clock::now_ms;
use crate::text::error_chain;

mod data;
pub use data::{
    ApplyDetail, Approved, JobDetail, JobRow, JobsOverview, LastApply, NotificationRoutes,
    PendingChange, PlanDetail, PlansList, PreviewsList, apply_detail, approve_plan, job_detail,
    jobs_overview, notification_routes, plan_detail, plans_list, previews_list,
};

/// Secrets resolved at start.
#[derive(Clone, Default)]
pub struct Secrets {
    pub api_tokens: Vec<String>,
    pub github: Option<String>,
    pub gitlab: Option<String>,
    pub generic: Option<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub secrets: Arc<Secrets>,
    /// Pull-request previews, when `previews` is configured.
    pub previews: Option<Arc<Previews>>,
}

/// Everything an API request can fail with. Each error maps to one HTTP status and a JSON body
/// `{"error": message}` in [`IntoResponse`]: 4xx for the caller's mistakes, with the message;
/// 5xx for weir's own failures, whose detail goes to the log, not to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no API token is configured (api.tokens): this endpoint is disabled")]
    TokensNotConfigured,
    #[error("missing bearer token (Authorization: Bearer <token>)")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    /// A webhook delivery without a valid signature or token (the message names the header).
    #[error("{0}")]
    BadSignature(&'static str),
    #[error("the {0} webhook receiver is not configured")]
    ReceiverDisabled(&'static str),
    #[error("no such endpoint")]
    NoEndpoint,
    #[error("no job `{0}`")]
    UnknownJob(String),
    #[error("no plan `{0}`")]
    UnknownPlan(String),
    #[error("no apply `{0}`")]
    UnknownApply(String),
    #[error("no apply or plan `{0}`")]
    UnknownRecord(String),
    /// The reconcile worker knows no such plan (its own message).
    #[error("{0}")]
    PlanNotFound(String),
    /// A bad query parameter or body; the message names the parameter.
    #[error("{0}")]
    BadRequest(String),
    /// A body that could not be read (too large, or not sent in time).
    #[error("{message}")]
    BadBody { status: StatusCode, message: String },
    #[error("plan `{0}` is a pull-request preview; previews are never applied")]
    PreviewNotApplicable(String),
    #[error("the plan is stale: {0}")]
    StalePlan(String),
    /// Another apply holds a job of the plan.
    #[error("{0}")]
    Busy(String),
    #[error("shutting down")]
    ShuttingDown,
    /// A follower never applies (several daemons on one PostgreSQL store).
    #[error("this daemon follows; approve the plan on the leader ({})", .0.as_deref().unwrap_or("unknown yet"))]
    NotLeader(Option<String>),
    #[error("the apply could not be started: {0}")]
    ApplyFailed(String),
    #[error("the store failed")]
    Store(#[from] crate::store::StoreError),
    #[error("a record could not be encoded or decoded")]
    Json(#[from] serde_json::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::TokensNotConfigured => StatusCode::FORBIDDEN,
            ApiError::MissingToken | ApiError::InvalidToken | ApiError::BadSignature(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::ReceiverDisabled(_)
            | ApiError::NoEndpoint
            | ApiError::UnknownJob(_)
            | ApiError::UnknownPlan(_)
            | ApiError::UnknownApply(_)
            | ApiError::UnknownRecord(_)
            | ApiError::PlanNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BadBody { status, .. } => *status,
            ApiError::PreviewNotApplicable(_) | ApiError::StalePlan(_) => StatusCode::CONFLICT,
            ApiError::Busy(_) => StatusCode::LOCKED,
            ApiError::ShuttingDown | ApiError::NotLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ApplyFailed(_) | ApiError::Store(_) | ApiError::Json(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the caller is told: the message, except for weir's own failures.
    fn public_message(&self) -> String {
        if self.status().is_server_error()
            && !matches!(self, ApiError::ShuttingDown | ApiError::NotLeader(_))
        {
            "internal error (see the daemon's log)".to_string()
        } else {
            self.to_string()
        }
    }
}

impl From<ApplyRefusal> for ApiError {
    fn from(r: ApplyRefusal) -> ApiError {
        match r {
            ApplyRefusal::NotFound(m) => ApiError::PlanNotFound(m),
            ApplyRefusal::Stale(m) => ApiError::StalePlan(m.to_string()),
            ApplyRefusal::Busy(m) => ApiError::Busy(m),
            ApplyRefusal::Failed(m) => ApiError::ApplyFailed(error_chain(&m)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %error_chain(&self), "API request failed");
        }
        let message = crate::redact::text(&self.public_message());
        (status, axum::Json(json!({"error": message}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Whole-request timeout (webhook bodies have their own, shorter read timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const WEBHOOK_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Body limit of the API's own endpoints (they take no meaningful body).
pub const API_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let webhook_limit = state.shared.cfg.webhooks.max_body_bytes;
    let webhooks = Router::new()
        .route("/api/v1/webhooks/github", post(github))
        .route("/api/v1/webhooks/gitlab", post(gitlab))
        .route("/api/v1/webhooks/generic", post(generic))
        .layer(DefaultBodyLimit::max(webhook_limit))
        .layer(RequestBodyTimeoutLayer::new(WEBHOOK_READ_TIMEOUT));
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{name}", get(job))
        .route("/api/v1/plans", get(plans))
        .route("/api/v1/plans/{id}", get(plan))
        .route("/api/v1/plans/{id}/apply", post(apply_plan))
        .route("/api/v1/applies/{id}", get(apply))
        .route("/api/v1/history", get(history))
        .route("/api/v1/records/{id}", get(record))
        .route("/api/v1/jobs/{name}/savepoints", get(savepoints))
        .route("/api/v1/jobs/{name}/runs", get(runs))
        .route("/api/v1/sync", post(sync))
        .route("/api/v1/previews", get(previews))
        .route("/api/v1/notifications", get(notifications))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    Router::new()
        .merge(api)
        .merge(super::console::router())
        .merge(webhooks)
        .fallback(|| async { ApiError::NoEndpoint })
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    check_given_token(state, bearer(headers))
}

/// Whether `given` (from a bearer header or the console's cookie) is one of the API tokens.
pub(crate) fn check_given_token(state: &AppState, given: Option<&str>) -> Result<(), ApiError> {
    if state.secrets.api_tokens.is_empty() {
        return Err(ApiError::TokensNotConfigured);
    }
    let Some(given) = given else {
        return Err(ApiError::MissingToken);
    };
    // Compare with every token (no early exit) in constant time.
    let mut ok = false;
    for t in &state.secrets.api_tokens {
        ok |= webhook::secret_eq(t.as_bytes(), given.as_bytes());
    }
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidToken)
    }
}

pub(crate) fn check_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.shared.cfg.api.require_token_for_reads {
        check_token(state, headers)
    } else {
        Ok(())
    }
}

/// Every JSON answer: its strings are scrubbed of secrets (`redact::text`) on the way out, so
/// that Flink's error text, repo text and records of older versions never reach a client with a
/// credential in them.
///
/// Written as text and scrubbed as text, without a `serde_json::Value` of the answer (the status
/// of 1,000 jobs was ~7 MiB of short-lived maps, left in the idle daemon's heap;
/// BENCHMARKS.md, issue 14, seventh pass).
fn json(v: impl serde::Serialize) -> ApiResult {
    let text = serde_json::to_string(&v)?;
    let clean = crate::redact::json_text(&text);
    Ok(([(header::CONTENT_TYPE, "application/json")], clean).into_response())
}

/// The daemon's status, and who leads.
#[derive(serde::Serialize)]
struct StatusAnswer {
    #[serde(flatten)]
    status: super::reconcile::Status,
    role: &'static str,
    leader: Option<String>,
}

async fn healthz() -> ApiResult {
    json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> ApiResult {
    let role = state.shared.leadership.view();
    if !role.known {
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "status": "not ready",
                "error": "the leader election has not read the lease yet",
                // No role is known yet: naming one would let a caller take this daemon for a
                // follower of nobody.
                "role": null,
                "leader": null,
            })),
        )
            .into_response());
    }
    if role.role == "follower" {
        // A follower serves reads and records webhooks; it never fetches or observes.
        return json(json!({"status": "ready", "role": role.role, "leader": role.leader}));
    }
    let s = state.shared.status();
    let mut reasons = Vec::new();
    if s.repo.commit.is_none() {
        reasons.push(match &s.repo.error {
            Some(e) => format!("the repo was never fetched: {e}"),
            None => "the repo was not fetched yet".to_string(),
        });
    }
    if s.clusters.is_empty() && s.repo.commit.is_some() {
        reasons.push("no cluster observed yet".into());
    }
    for (name, c) in &s.clusters {
        if !c.reachable {
            reasons.push(format!(
                "cluster `{name}` ({}) is unreachable: {}",
                c.url,
                c.error.as_deref().unwrap_or("")
            ));
        }
    }
    if reasons.is_empty() {
        json(
            json!({"status": "ready", "commit": s.repo.commit, "role": role.role, "leader": role.leader}),
        )
    } else {
        Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "status": "not ready",
                "error": crate::redact::text(&reasons.join("; ")),
                "role": role.role,
                "leader": role.leader,
            })),
        )
            .into_response())
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_read(&state, &headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.shared.metrics.render(),
    )
        .into_response())
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_read(&state, &headers)?;
    let role = state.shared.leadership.view();
    json(StatusAnswer {
        status: state.shared.status(),
        role: role.role,
        leader: role.leader,
    })
}

async fn jobs(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_read(&state, &headers)?;
    json(jobs_overview(&state).await?)
}

async fn job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    json(job_detail(&state, &name).await?)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn plans(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Limit>,
) -> ApiResult {
    check_read(&state, &headers)?;
    let limit = q.limit.unwrap_or(50).min(1000);
    json(plans_list(&state, limit).await?)
}

async fn plan(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    json(plan_detail(&state, &id).await?)
}

/// The story of an apply (as `weir show APPLY_ID --format json` and `/api/v1/records/{id}`),
/// plus the raw `apply` row and `journal` this endpoint has always returned.
async fn apply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    json(apply_detail(&state, &id).await?)
}

#[derive(Deserialize)]
struct HistoryQuery {
    job: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    format: Option<String>,
}

/// `weir history --format json|jsonl` over HTTP: the same records, filters and order.
async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    check_read(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let jsonl = match q.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format: `{other}` is neither `json` nor `jsonl`"
            )));
        }
    };
    let since_ms = q
        .since
        .as_deref()
        .map(|s| audit::parse_since(s, now_ms()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    let filter = audit::history_filter(q.job, since_ms, q.limit, jsonl);
    let records = audit::load_history(&state.shared.store, &filter).await?;
    if jsonl {
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            audit::jsonl(&records)?,
        )
            .into_response());
    }
    json(records)
}

/// `weir show ID --format json` over HTTP: an apply's or a plan's story.
async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    match audit::load_shown(&state.shared.store, &id).await? {
        Some(shown) => json(shown),
        None => Err(ApiError::UnknownRecord(id)),
    }
}

/// `weir savepoints JOB --format json` over HTTP: the job's savepoint lineage.
async fn savepoints(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    json(audit::load_lineage(&state.shared.store, &name).await?)
}

/// The runs of a batch job, newest first (as `weir runs JOB --format json`).
async fn runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    check_read(&state, &headers)?;
    json(state.shared.store.runs(&name, 100).await?)
}

async fn sync(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_token(&state, &headers)?;
    state.shared.trigger("api");
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response())
}

async fn previews(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_read(&state, &headers)?;
    json(previews_list(&state))
}

async fn notifications(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_read(&state, &headers)?;
    json(notification_routes(&state))
}

async fn apply_plan(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    check_token(&state, &headers)?;
    let role = state.shared.leadership.view();
    if role.role != "leader" {
        return Err(ApiError::NotLeader(role.leader));
    }
    let approved = approve_plan(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(approved)).into_response())
}

// ---- webhooks --------------------------------------------------------------------------------

fn body(
    state: &AppState,
    receiver: &str,
    b: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        state.shared.metrics.webhook(receiver, "bad_body");
        ApiError::BadBody {
            status: e.status(),
            message: e.body_text(),
        }
    })
}

fn unauthorized(state: &AppState, receiver: &str, msg: &'static str) -> ApiError {
    state.shared.metrics.webhook(receiver, "rejected");
    tracing::warn!(receiver, "webhook rejected: {msg}");
    ApiError::BadSignature(msg)
}

/// Triggers a reconcile for a push to the followed branch; ignores other branches.
fn accept_push(state: &AppState, receiver: &str, body: &[u8], require_ref: bool) -> ApiResult {
    let wanted = &state.shared.cfg.repo.branch;
    match webhook::pushed_branch(body) {
        Some(branch) if &branch != wanted => {
            state.shared.metrics.webhook(receiver, "ignored");
            json(
                json!({"triggered": false, "reason": format!("push to `{branch}`, not `{wanted}`")}),
            )
        }
        None if require_ref => {
            state.shared.metrics.webhook(receiver, "ignored");
            json(json!({"triggered": false, "reason": "not a push event"}))
        }
        _ => {
            state.shared.metrics.webhook(receiver, "accepted");
            state.shared.trigger(&format!("webhook:{receiver}"));
            Ok((StatusCode::ACCEPTED, axum::Json(json!({"triggered": true}))).into_response())
        }
    }
}

async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Some(secret) = state.secrets.github.clone() else {
        return Err(ApiError::ReceiverDisabled("github"));
    };
    let b = body(&state, "github", b)?;
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !webhook::verify_hmac_sha256(secret.as_bytes(), &b, sig) {
        return Err(unauthorized(
            &state,
            "github",
            "missing or invalid X-Hub-Signature-256",
        ));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    if event == "ping" {
        state.shared.metrics.webhook("github", "ping");
        return json(json!({"triggered": false, "reason": "pong"}));
    }
    if event == "pull_request" {
        return pull_request(&state, ForgeKind::GitHub, &b);
    }
    if event != "push" {
        state.shared.metrics.webhook("github", "ignored");
        return json(json!({"triggered": false, "reason": format!("event `{event}` ignored")}));
    }
    accept_push(&state, "github", &b, true)
}

async fn gitlab(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Some(secret) = state.secrets.gitlab.clone() else {
        return Err(ApiError::ReceiverDisabled("gitlab"));
    };
    let b = body(&state, "gitlab", b)?;
    let given = headers.get("x-gitlab-token").map(|v| v.as_bytes());
    if !given.is_some_and(|g| webhook::secret_eq(secret.as_bytes(), g)) {
        return Err(unauthorized(
            &state,
            "gitlab",
            "missing or invalid X-Gitlab-Token",
        ));
    }
    let event = headers.get("x-gitlab-event").and_then(|v| v.to_str().ok());
    if event == Some("Merge Request Hook") {
        return pull_request(&state, ForgeKind::GitLab, &b);
    }
    accept_push(&state, "gitlab", &b, true)
}

/// A verified pull-request (merge-request) delivery: queues a preview, stops previewing a closed
/// pull request, or says why it is ignored.
fn pull_request(state: &AppState, kind: ForgeKind, body: &[u8]) -> ApiResult {
    let receiver = kind.as_str();
    if state.previews.is_some() && !state.shared.leadership.is_leader() {
        // Only the leader posts previews: it takes the verified delivery from the store.
        state.shared.metrics.webhook(receiver, "preview");
        let payload = String::from_utf8_lossy(body).into_owned();
        state
            .shared
            .forward_to_leader(&format!("preview:{receiver}"), Some(payload));
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"preview": "forwarded to the leader"})),
        )
            .into_response());
    }
    let parsed = match kind {
        ForgeKind::GitHub => pull::parse_github(body),
        ForgeKind::GitLab => pull::parse_gitlab(body),
    };
    let ev = match parsed {
        Ok(ev) => ev,
        Err(e) => {
            state.shared.metrics.webhook(receiver, "bad_body");
            return Err(ApiError::BadRequest(format!(
                "not a pull request delivery: {e}"
            )));
        }
    };
    let Some(previews) = &state.previews else {
        state.shared.metrics.webhook(receiver, "ignored");
        return json(json!({"preview": "ignored", "reason": "previews are not configured"}));
    };
    match previews.submit(ev) {
        Submitted::Queued => {
            state.shared.metrics.webhook(receiver, "preview");
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({"preview": "queued"})),
            )
                .into_response())
        }
        Submitted::Stopped => {
            state.shared.metrics.webhook(receiver, "preview_stopped");
            json(json!({"preview": "stopped"}))
        }
        Submitted::Ignored(reason) => {
            state.shared.metrics.webhook(receiver, "ignored");
            json(json!({"preview": "ignored", "reason": reason}))
        }
    }
}

async fn generic(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Some(secret) = state.secrets.generic.clone() else {
        return Err(ApiError::ReceiverDisabled("generic"));
    };
    let b = body(&state, "generic", b)?;
    let sig = headers
        .get(webhook::GENERIC_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !webhook::verify_hmac_sha256(secret.as_bytes(), &b, sig) {
        return Err(unauthorized(
            &state,
            "generic",
            "missing or invalid X-Weir-Signature",
        ));
    }
    accept_push(&state, "generic", &b, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    async fn reply(e: ApiError) -> (u16, Value) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn callers_mistakes_are_4xx_with_their_message() {
        for (e, code, message) in [
            (ApiError::MissingToken, 401, "missing bearer token"),
            (ApiError::InvalidToken, 401, "invalid bearer token"),
            (
                ApiError::TokensNotConfigured,
                403,
                "no API token is configured",
            ),
            (
                ApiError::UnknownJob("orders".into()),
                404,
                "no job `orders`",
            ),
            (ApiError::UnknownApply("a1".into()), 404, "no apply `a1`"),
            (
                ApiError::UnknownRecord("x".into()),
                404,
                "no apply or plan `x`",
            ),
            (ApiError::NoEndpoint, 404, "no such endpoint"),
            (ApiError::BadRequest("since: bad".into()), 400, "since: bad"),
            (
                ApiError::StalePlan("the job changed".into()),
                409,
                "the plan is stale: the job changed",
            ),
            (
                ApiError::PreviewNotApplicable("p1".into()),
                409,
                "pull-request preview",
            ),
            (
                ApiError::Busy("`orders` is being applied".into()),
                423,
                "being applied",
            ),
            (
                ApiError::BadBody {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: "too big".into(),
                },
                413,
                "too big",
            ),
        ] {
            let (status, body) = reply(e).await;
            assert_eq!(status, code, "{body}");
            let text = body["error"].as_str().unwrap();
            assert!(text.contains(message), "{text}");
        }
    }

    #[tokio::test]
    async fn weirs_own_failures_are_5xx_without_detail() {
        let json_error = serde_json::from_str::<Value>("{").unwrap_err();
        for e in [
            ApiError::Json(json_error),
            ApiError::ApplyFailed("cannot open /var/lib/weir/state.db".into()),
        ] {
            let (status, body) = reply(e).await;
            assert_eq!(status, 500);
            let text = body["error"].as_str().unwrap();
            assert!(
                !text.contains("/var/lib") && !text.contains("EOF"),
                "{text}"
            );
        }
        let (status, body) = reply(ApiError::ShuttingDown).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("shutting down"))
        );
    }

    #[test]
    fn refusals_of_the_worker_map_to_their_status() {
        let status = |r| ApiError::from(r).status().as_u16();
        assert_eq!(status(ApplyRefusal::NotFound("no plan `p`".into())), 404);
        assert_eq!(
            status(ApplyRefusal::Stale(crate::engine::Stale::Empty)),
            409
        );
        assert_eq!(status(ApplyRefusal::Busy("x".into())), 423);
        let json_error = serde_json::from_str::<Value>("{").unwrap_err();
        let failed = super::super::reconcile::ReconcileError::PlanJson {
            id: "p".into(),
            source: json_error,
        };
        assert_eq!(status(ApplyRefusal::Failed(failed)), 500);
    }
}
