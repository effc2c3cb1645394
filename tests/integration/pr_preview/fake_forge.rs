//! An in-process fake of the subset of the GitHub and GitLab REST APIs that weir uses (list,
//! create and update comments; create commit statuses). It checks the token, pages its comment
//! lists (two per page) and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{GH_TOKEN, GL_TOKEN};
use crate::daemon::Serve;

#[derive(Clone, Debug)]
pub(super) struct Recorded {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) authorization: Option<String>,
    pub(super) body: String,
}

#[derive(Clone, Debug)]
pub(super) struct FakeComment {
    pub(super) id: u64,
    pub(super) body: String,
    pub(super) author: String,
    pub(super) system: bool,
}

#[derive(Clone, Debug)]
pub(super) struct FakeStatus {
    pub(super) forge: String,
    pub(super) sha: String,
    pub(super) state: String,
    pub(super) context: String,
    pub(super) description: String,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) base: String,
    pub(super) requests: Vec<Recorded>,
    /// (forge, pull request) → comments, oldest first.
    pub(super) comments: BTreeMap<(String, u64), Vec<FakeComment>>,
    pub(super) statuses: Vec<FakeStatus>,
    pub(super) next_id: u64,
}

/// A fake GitHub (under `/gh/api/v3`, like GitHub Enterprise Server) and GitLab (under
/// `/gl/api/v4`); anything else is recorded and answered 404.
pub(super) struct Fake {
    pub(super) inner: Arc<Mutex<Inner>>,
    pub(super) base: String,
    pub(super) _rt: tokio::runtime::Runtime,
}

/// Comments per page: small, so that finding weir's comment needs the next-page links.
const PAGE: usize = 2;

impl Fake {
    pub(super) fn start() -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            base: base.clone(),
            next_id: 1000,
            ..Default::default()
        }));
        let state = inner.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { handle(&state, method, uri, headers, body) }
                },
            );
            axum::serve(listener, app).await.unwrap();
        });
        Fake {
            inner,
            base,
            _rt: rt,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub(super) fn seed(&self, forge: &str, number: u64, author: &str, body: &str, system: bool) {
        let mut i = self.lock();
        i.next_id += 1;
        let id = i.next_id;
        i.comments
            .entry((forge.into(), number))
            .or_default()
            .push(FakeComment {
                id,
                body: body.into(),
                author: author.into(),
                system,
            });
    }

    pub(super) fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub(super) fn comments(&self, forge: &str, number: u64) -> Vec<FakeComment> {
        self.lock()
            .comments
            .get(&(forge.to_string(), number))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn weir_comments(&self, forge: &str, number: u64) -> Vec<FakeComment> {
        self.comments(forge, number)
            .into_iter()
            .filter(|c| c.author == "weir-bot")
            .collect()
    }

    pub(super) fn statuses(&self, forge: &str) -> Vec<FakeStatus> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.forge == forge)
            .cloned()
            .collect()
    }

    /// Waits for a status other than `pending` on `sha`; returns it.
    #[track_caller]
    pub(super) fn wait_status(&self, forge: &str, sha: &str, serve: &Serve) -> FakeStatus {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = self
                .statuses(forge)
                .into_iter()
                .rev()
                .find(|s| s.sha == sha && s.state != "pending")
            {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "no final status on {sha}; statuses: {:#?}\nrequests: {:#?}\n--- daemon log\n{}",
                    self.statuses(forge),
                    self.requests(),
                    serve.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn reply(code: StatusCode, body: Value) -> Response {
    (code, axum::Json(body)).into_response()
}

fn comment_json(c: &FakeComment) -> Value {
    json!({"id": c.id, "body": c.body, "user": {"login": c.author}, "system": c.system})
}

/// A page of GitHub comments; `next` (the list's URL) when there are more, as a `Link` header.
fn github_page(items: Vec<Value>, next: Option<&str>, page: usize) -> Response {
    let mut resp = reply(StatusCode::OK, Value::Array(items));
    if let Some(url) = next {
        let link = format!("<{url}?per_page=100&page={}>; rel=\"next\"", page + 1);
        resp.headers_mut().insert("link", link.parse().unwrap());
    }
    resp
}

/// A new comment by weir on pull request `number`.
fn add_comment(s: &mut Inner, forge: &str, number: u64, body: String) -> Response {
    s.next_id += 1;
    let c = FakeComment {
        id: s.next_id,
        body,
        author: "weir-bot".into(),
        system: false,
    };
    s.comments
        .entry((forge.into(), number))
        .or_default()
        .push(c.clone());
    reply(StatusCode::CREATED, comment_json(&c))
}

/// A comment edited: weir may edit only its own.
fn edit_comment(s: &mut Inner, forge: &str, id: u64, body: String) -> Response {
    for ((f, _), list) in s.comments.iter_mut() {
        if f != forge {
            continue;
        }
        if let Some(c) = list.iter_mut().find(|c| c.id == id) {
            if c.author != "weir-bot" {
                return reply(StatusCode::FORBIDDEN, json!({"message": "not yours"}));
            }
            c.body = body;
            return reply(StatusCode::OK, comment_json(c));
        }
    }
    reply(StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
}

fn handle(
    state: &Mutex<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    s.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: authorization.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let page: usize = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (forge, token, rest) = match segments.as_slice() {
        ["gh", "api", "v3", rest @ ..] => ("github", GH_TOKEN, rest),
        ["gl", "api", "v4", rest @ ..] => ("gitlab", GL_TOKEN, rest),
        _ => return reply(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    };
    if authorization.as_deref() != Some(&format!("Bearer {token}")) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
        );
    }
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let list = |s: &Inner, number: u64| -> (Vec<Value>, bool) {
        let all = s
            .comments
            .get(&(forge.to_string(), number))
            .cloned()
            .unwrap_or_default();
        let start = (page - 1) * PAGE;
        let items = all
            .iter()
            .skip(start)
            .take(PAGE)
            .map(comment_json)
            .collect();
        (items, all.len() > start + PAGE)
    };
    match (forge, method.as_str(), rest) {
        ("github", "GET", ["repos", "acme", "jobs", "issues", n, "comments"]) => {
            let (items, more) = list(&s, n.parse().unwrap());
            let next = more.then(|| format!("{}{}", s.base, uri.path()));
            github_page(items, next.as_deref(), page)
        }
        ("gitlab", "GET", ["projects", "group%2Fjobs", "merge_requests", n, "notes"]) => {
            let n: u64 = n.parse().unwrap();
            let (items, more) = list(&s, n);
            let mut resp = reply(StatusCode::OK, Value::Array(items));
            let next = if more {
                (page + 1).to_string()
            } else {
                String::new()
            };
            resp.headers_mut()
                .insert("x-next-page", next.parse().unwrap());
            resp
        }
        ("github", "POST", ["repos", "acme", "jobs", "issues", n, "comments"])
        | ("gitlab", "POST", ["projects", "group%2Fjobs", "merge_requests", n, "notes"]) => {
            add_comment(&mut s, forge, n.parse().unwrap(), text("body"))
        }
        ("github", "PATCH", ["repos", "acme", "jobs", "issues", "comments", id])
        | ("gitlab", "PUT", ["projects", "group%2Fjobs", "merge_requests", _, "notes", id]) => {
            edit_comment(&mut s, forge, id.parse().unwrap(), text("body"))
        }
        ("github", "POST", ["repos", "acme", "jobs", "statuses", sha])
        | ("gitlab", "POST", ["projects", "group%2Fjobs", "statuses", sha]) => {
            let context = if forge == "github" {
                text("context")
            } else {
                text("name")
            };
            s.statuses.push(FakeStatus {
                forge: forge.into(),
                sha: sha.to_string(),
                state: text("state"),
                context,
                description: text("description"),
            });
            reply(StatusCode::CREATED, json!({"id": s.statuses.len()}))
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    }
}
