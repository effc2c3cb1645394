//! Pull-request comments and commit statuses on GitHub and GitLab, through their REST APIs.
//!
//! Only what plan previews need: list the comments of a pull request (to find weir's own by its
//! hidden marker), create and update a comment, and set a commit status. The API base URL is
//! configurable (GitHub Enterprise Server, self-managed GitLab).
//!
//! The token travels only in the `Authorization` header, marked sensitive, of requests to the
//! configured API origin: never in a URL, never to a pagination link on another origin, never
//! through a redirect (none are followed). Nothing here can format it.

pub mod github;
pub mod gitlab;

use std::fmt;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::text::truncate;

pub use github::GitHub;
pub use gitlab::GitLab;

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Comments asked for per page.
const PER_PAGE: u32 = 100;
/// Pages of comments read at most while looking for weir's comment.
const MAX_PAGES: usize = 100;
/// Attempts of an idempotent request (network errors, 429 and 5xx are retried).
const ATTEMPTS: u32 = 3;
/// GitHub's limit on a commit status description (GitLab's is larger).
pub const MAX_DESCRIPTION: usize = 140;
/// The largest comment GitHub accepts is 65,536 characters; weir stays a margin below it.
pub const GITHUB_COMMENT_LIMIT: usize = 65_000;
/// GitLab notes take up to 1,000,000 characters.
pub const GITLAB_COMMENT_LIMIT: usize = 999_000;

/// A comment on a pull request (GitHub issue comment, GitLab merge request note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub body: String,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    /// The change is wrong (invalid files, jobs that cannot be planned).
    Failure,
    /// weir could not do its part (fetch, API or store failures).
    Error,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        }
    }
}

/// A commit status to set.
#[derive(Debug, Clone)]
pub struct Status<'a> {
    pub sha: &'a str,
    pub state: CommitState,
    /// Names the check, e.g. `weir/plan`; a new status with the same context replaces the old.
    pub context: &'a str,
    /// Cut to [`MAX_DESCRIPTION`] characters.
    pub description: &'a str,
    pub target_url: Option<&'a str>,
}

/// Why a forge API call failed. No variant holds the token or a request body.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{api}: invalid API URL `{url}`: {reason}")]
    BadUrl {
        api: &'static str,
        url: String,
        reason: String,
    },
    #[error("{api}: the token cannot be sent in an HTTP header")]
    BadToken { api: &'static str },
    #[error("{api}: building the HTTP client")]
    Client {
        api: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{api}: {method} {path}")]
    Request {
        api: &'static str,
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{api}: {method} {path}: HTTP {status}: {message}")]
    Status {
        api: &'static str,
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("{api}: {method} {path}: unexpected response")]
    Decode {
        api: &'static str,
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{api}: the next-page link {link} leaves the API's origin; not followed")]
    ForeignLink { api: &'static str, link: String },
}

impl ForgeError {
    /// The HTTP status of an API refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Temporary: `serve::pull` still calls `forge::error_chain`; the one copy is
/// [`crate::text::error_chain`] (remove this once the caller uses it).
pub use crate::text::error_chain;

/// GitHub or GitLab, configured for one repository or project.
#[derive(Debug)]
pub enum Forge {
    GitHub(GitHub),
    GitLab(GitLab),
}

impl Forge {
    /// `github` or `gitlab`.
    pub fn kind(&self) -> &'static str {
        match self {
            Forge::GitHub(_) => "github",
            Forge::GitLab(_) => "gitlab",
        }
    }

    /// The largest comment the forge accepts, in characters, less a margin.
    pub fn comment_limit(&self) -> usize {
        match self {
            Forge::GitHub(_) => GITHUB_COMMENT_LIMIT,
            Forge::GitLab(_) => GITLAB_COMMENT_LIMIT,
        }
    }

    /// The oldest comment of pull request `number` whose body satisfies `wanted`.
    pub async fn find_comment(
        &self,
        number: u64,
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<Comment>, ForgeError> {
        match self {
            Forge::GitHub(g) => g.find_comment(number, wanted).await,
            Forge::GitLab(g) => g.find_comment(number, wanted).await,
        }
    }

    pub async fn create_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        match self {
            Forge::GitHub(g) => g.create_comment(number, body).await,
            Forge::GitLab(g) => g.create_comment(number, body).await,
        }
    }

    pub async fn update_comment(
        &self,
        number: u64,
        id: u64,
        body: &str,
    ) -> Result<Comment, ForgeError> {
        match self {
            Forge::GitHub(g) => g.update_comment(id, body).await,
            Forge::GitLab(g) => g.update_comment(number, id, body).await,
        }
    }

    pub async fn set_status(&self, status: &Status<'_>) -> Result<(), ForgeError> {
        match self {
            Forge::GitHub(g) => g.set_status(status).await,
            Forge::GitLab(g) => g.set_status(status).await,
        }
    }
}

/// The HTTP side shared by both forges: base URL, client, authorization.
struct Api {
    name: &'static str,
    base: Url,
    client: reqwest::Client,
    auth: HeaderValue,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The response of a successful call: headers and body.
struct Reply {
    headers: HeaderMap,
    /// Read whole: API replies here are small JSON documents.
    body: Vec<u8>,
}

impl Api {
    fn new(
        name: &'static str,
        base_url: &str,
        token: &str,
        mut headers: HeaderMap,
    ) -> Result<Api, ForgeError> {
        let bad = |reason: &str| ForgeError::BadUrl {
            api: name,
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad("expected an http:// or https:// URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad("credentials do not belong in the URL"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ForgeError::BadToken { api: name })?;
        auth.set_sensitive(true);
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("weir/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .default_headers(headers)
            // A redirect could carry the request elsewhere; API calls are not redirected.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ForgeError::Client { api: name, source })?;
        Ok(Api {
            name,
            base,
            client,
            auth,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded (a `/` inside a segment, as
    /// in a GitLab project path, becomes `%2F`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Whether `url` is on the API's origin (scheme, host and port), where the token may go.
    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// Sends a request with the token; a non-2xx reply is an error. `idempotent` requests are
    /// retried on network errors, 429 and 5xx.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        idempotent: bool,
    ) -> Result<Reply, ForgeError> {
        let path = url.path().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .header(header::AUTHORIZATION, self.auth.clone());
            if let Some(b) = body {
                req = req.json(b);
            }
            let retry = idempotent && attempt < ATTEMPTS;
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if retry && (e.is_connect() || e.is_timeout()) => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => {
                    return Err(ForgeError::Request {
                        api: self.name,
                        method,
                        path,
                        source: e.without_url(),
                    });
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(_) if retry => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => {
                    return Err(ForgeError::Request {
                        api: self.name,
                        method,
                        path,
                        source: e.without_url(),
                    });
                }
            };
            if status.is_success() {
                return Ok(Reply {
                    headers,
                    body: bytes,
                });
            }
            if retry && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                backoff(attempt).await;
                continue;
            }
            return Err(ForgeError::Status {
                api: self.name,
                method,
                path,
                status,
                message: error_message(&bytes),
            });
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        reply: &Reply,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&reply.body).map_err(|source| ForgeError::Decode {
            api: self.name,
            method,
            path: url.path().to_string(),
            source,
        })
    }
}

async fn backoff(attempt: u32) {
    let ms = 500u64 << attempt.min(4);
    let jitter = rand::random::<u64>() % (ms / 2 + 1);
    tokio::time::sleep(Duration::from_millis(ms + jitter)).await;
}

/// The `message` (GitHub, GitLab) or `error` (GitLab) of an error reply, else its start.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| {
            ["message", "error"].iter().find_map(|k| match v.get(*k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        "(no message)".into()
    } else {
        truncate(&one_line, 300)
    }
}

#[cfg(test)]
mod tests;
