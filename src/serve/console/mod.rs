//! The console: server-rendered HTML pages for on-call engineers and reviewers, served by
//! `weir serve` next to the JSON API.
//!
//! Every figure on a page comes from the same typed function as the API's JSON
//! ([`crate::serve::server::jobs_overview`], `job_detail`, ...); the page handlers only render.
//! Templates are maud macros (checked at compile time, escaped by default); CSS and a small
//! script are embedded in the binary. Pages read fine without JavaScript; the script only
//! refreshes `<main>` in place.
//!
//! Sign-in: an API token entered once is kept in the `weir_token` cookie (HttpOnly,
//! SameSite=Strict). Every POST carries the `weir_csrf` cookie's value in a hidden field, checked
//! in constant time (a double-submit token; SameSite=Strict already keeps other sites' forms from
//! sending the cookies). Approving calls [`approve_plan`], the code path of
//! `POST /api/v1/plans/{id}/apply`, stale-plan check included.

mod jobs;
mod layout;
mod records;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use rand::RngCore;

pub use jobs::{JobsFilter, flink_ui_link, job_page, jobs_page};
pub use layout::{Frame, highlight_sql};
pub use records::{
    apply_page, login_page, message_page, plan_page, plans_page, pulls_page, settings_page,
};

use super::server::{
    ApiError, AppState, apply_detail, approve_plan, check_given_token, job_detail, jobs_overview,
    notification_routes, plan_detail, plans_list, previews_list,
};
use super::webhook::secret_eq;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
pub const TOKEN_COOKIE: &str = "weir_token";
pub const CSRF_COOKIE: &str = "weir_csrf";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(jobs_handler))
        .route("/jobs/{name}", get(job_handler))
        .route("/plans", get(plans_handler))
        .route("/plans/{id}", get(plan_handler))
        .route("/plans/{id}/approve", post(approve_handler))
        .route("/applies/{id}", get(apply_handler))
        .route("/pulls", get(pulls_handler))
        .route("/settings", get(settings_handler))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/console.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/console.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The cookie `name` of a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A cookie only this site's own requests send, that scripts cannot read.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}")
}

/// What a request brings: its CSRF token (a new one when it has none) and whether it is signed in.
struct Visit {
    frame: Frame,
    /// A `Set-Cookie` for a CSRF token made for this visit.
    new_csrf: Option<String>,
}

impl Visit {
    fn of(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Visit {
        let (csrf, new_csrf) = match cookie(headers, CSRF_COOKIE).filter(|c| valid_csrf(c)) {
            Some(c) => (c.to_string(), None),
            None => {
                let mut bytes = [0u8; 16];
                rand::rng().fill_bytes(&mut bytes);
                let c = hex::encode(bytes);
                (c.clone(), Some(set_cookie(CSRF_COOKIE, &c, None)))
            }
        };
        let signed_in = check_given_token(state, cookie(headers, TOKEN_COOKIE)).is_ok();
        let here = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Visit {
            frame: Frame {
                csrf,
                signed_in,
                here,
            },
            new_csrf,
        }
    }

    /// With `api.requireTokenForReads`, a visit without a valid token sees the login form.
    fn may_read(&self, state: &AppState) -> bool {
        !state.shared.cfg.api.require_token_for_reads || self.frame.signed_in
    }

    fn respond(self, status: StatusCode, body: Markup, extra: Vec<String>) -> Response {
        let mut r = (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body.into_string(),
        )
            .into_response();
        let h = r.headers_mut();
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        for c in self.new_csrf.iter().chain(&extra) {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        r
    }

    fn page(self, body: Markup) -> Response {
        self.respond(StatusCode::OK, body, Vec::new())
    }

    fn login_required(self, state: &AppState) -> Response {
        let next = self.frame.here.clone();
        let required = state.shared.cfg.api.require_token_for_reads;
        let body = login_page(&self.frame, &next, None, required);
        self.respond(StatusCode::UNAUTHORIZED, body, Vec::new())
    }

    fn error(self, e: ApiError) -> Response {
        let status = e.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %crate::text::error_chain(&e), "console page failed");
            "internal error (see the daemon's log)".to_string()
        } else {
            e.to_string()
        };
        let body = message_page(
            &self.frame,
            "Not available",
            &message,
            Some(("/", "Back to the jobs")),
        );
        self.respond(status, body, Vec::new())
    }

    fn redirect(self, to: &str, extra: Vec<String>) -> Response {
        let mut r = self.respond(StatusCode::SEE_OTHER, maud::html! {}, extra);
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }
}

fn valid_csrf(c: &str) -> bool {
    c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Renders a page once `load` has the data, or the login form / an error page.
macro_rules! read_page {
    ($state:expr, $headers:expr, $uri:expr, |$visit:ident| $body:expr) => {{
        let $visit = Visit::of(&$state, &$headers, &$uri);
        if !$visit.may_read(&$state) {
            return $visit.login_required(&$state);
        }
        match $body {
            Ok(markup) => $visit.page(markup),
            Err(e) => $visit.error(e),
        }
    }};
}

async fn jobs_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    filter: Result<Query<JobsFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = filter.map(|Query(f)| f).unwrap_or_default();
    read_page!(state, headers, uri, |visit| async {
        let overview = jobs_overview(&state).await?;
        Ok::<_, ApiError>(jobs_page(
            &visit.frame,
            &state.shared.status(),
            &overview,
            &filter,
        ))
    }
    .await)
}

async fn job_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
) -> Response {
    read_page!(state, headers, uri, |visit| async {
        let detail = job_detail(&state, &name).await?;
        Ok::<_, ApiError>(job_page(&visit.frame, &state.shared.status(), &detail))
    }
    .await)
}

async fn plans_handler(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    read_page!(state, headers, uri, |visit| async {
        Ok::<_, ApiError>(plans_page(&visit.frame, &plans_list(&state, 50).await?))
    }
    .await)
}

async fn plan_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    read_page!(state, headers, uri, |visit| async {
        let detail = plan_detail(&state, &id).await?;
        Ok::<_, ApiError>(plan_page(&visit.frame, &state.shared.status(), &detail))
    }
    .await)
}

async fn apply_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let visit = Visit::of(&state, &headers, &uri);
    if !visit.may_read(&state) {
        return visit.login_required(&state);
    }
    match apply_detail(&state, &id).await {
        Ok(detail) => {
            let body = apply_page(&visit.frame, &detail);
            visit.page(body)
        }
        Err(ApiError::UnknownApply(_)) => {
            let body = records::apply_not_found_page(&visit.frame, &id);
            visit.respond(StatusCode::NOT_FOUND, body, Vec::new())
        }
        Err(e) => visit.error(e),
    }
}

async fn pulls_handler(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    read_page!(state, headers, uri, |visit| async {
        Ok::<_, ApiError>(pulls_page(&visit.frame, &previews_list(&state)))
    }
    .await)
}

async fn settings_handler(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    read_page!(state, headers, uri, |visit| async {
        Ok::<_, ApiError>(settings_page(
            &visit.frame,
            &state.shared.status(),
            &state.shared.cfg,
            &notification_routes(&state),
        ))
    }
    .await)
}

/// The fields of a posted form.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether a POST carries the CSRF token of its cookie.
pub fn csrf_ok(headers: &HeaderMap, form: &[(String, String)]) -> bool {
    match (cookie(headers, CSRF_COOKIE), field(form, "csrf")) {
        (Some(c), Some(f)) => valid_csrf(c) && secret_eq(c.as_bytes(), f.as_bytes()),
        _ => false,
    }
}

fn refused_csrf(visit: Visit) -> Response {
    let body = message_page(
        &visit.frame,
        "Form expired",
        "The form's security token does not match this browser's. Reload the page and try again.",
        Some(("/", "Back to the jobs")),
    );
    visit.respond(StatusCode::FORBIDDEN, body, Vec::new())
}

/// Where to go after signing in: a path of this site only.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let visit = Visit::of(&state, &headers, &uri);
    let next = uri
        .query()
        .map(|q| form(q.as_bytes()))
        .and_then(|f| field(&f, "next").map(str::to_string));
    let next = local_path(next.as_deref()).to_string();
    let required = state.shared.cfg.api.require_token_for_reads;
    let body = login_page(&visit.frame, &next, None, required);
    visit.page(body)
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let visit = Visit::of(&state, &headers, &uri);
    let f = form(&body);
    if !csrf_ok(&headers, &f) {
        return refused_csrf(visit);
    }
    let next = local_path(field(&f, "next")).to_string();
    let token = field(&f, "token").unwrap_or("").trim();
    match check_given_token(&state, Some(token).filter(|t| !t.is_empty())) {
        Ok(()) if cookie_safe(token) => {
            let cookie = set_cookie(TOKEN_COOKIE, token, Some(12 * 3600));
            visit.redirect(&next, vec![cookie])
        }
        Ok(()) => {
            let body = login_page(
                &visit.frame,
                &next,
                Some(
                    "This token cannot be kept in a cookie (it holds `;`, `,`, spaces or quotes); use the API with it.",
                ),
                false,
            );
            visit.respond(StatusCode::BAD_REQUEST, body, Vec::new())
        }
        Err(e) => {
            let required = state.shared.cfg.api.require_token_for_reads;
            let body = login_page(&visit.frame, &next, Some(&e.to_string()), required);
            visit.respond(e.status(), body, Vec::new())
        }
    }
}

/// A cookie value needs no quoting.
fn cookie_safe(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let visit = Visit::of(&state, &headers, &uri);
    if !csrf_ok(&headers, &form(&body)) {
        return refused_csrf(visit);
    }
    visit.redirect("/", vec![set_cookie(TOKEN_COOKIE, "", Some(0))])
}

async fn approve_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let visit = Visit::of(&state, &headers, &uri);
    if !csrf_ok(&headers, &form(&body)) {
        return refused_csrf(visit);
    }
    let back = format!("/plans/{}", layout::path_segment(&id));
    if let Err(e) = check_given_token(&state, cookie(&headers, TOKEN_COOKIE)) {
        let message = match &e {
            ApiError::MissingToken => {
                "You are not signed in: approving a plan needs an API token.".to_string()
            }
            ApiError::InvalidToken => {
                "The token this browser signed in with is not valid (any more): sign in again."
                    .to_string()
            }
            e => e.to_string(),
        };
        let status = e.status();
        let body = message_page(
            &visit.frame,
            "Not approved",
            &message,
            Some((
                &format!("/login?next={}", layout::urlencode(&back)),
                "Sign in",
            )),
        );
        return visit.respond(status, body, Vec::new());
    }
    match approve_plan(&state, &id).await {
        Ok(a) => visit.redirect(
            &format!("/applies/{}", layout::path_segment(&a.apply_id)),
            Vec::new(),
        ),
        Err(e) => {
            let status = e.status();
            let message = if status.is_server_error() {
                "internal error (see the daemon's log)".to_string()
            } else {
                e.to_string()
            };
            let body = message_page(
                &visit.frame,
                "Not approved",
                &message,
                Some((&back, "Back to the plan")),
            );
            visit.respond(status, body, Vec::new())
        }
    }
}
