//! GitHub (and GitHub Enterprise Server): issue comments of a pull request and commit statuses.
//!
//! - `GET /repos/{owner}/{repo}/issues/{n}/comments?per_page=100`, following `Link: rel="next"`
//! - `POST /repos/{owner}/{repo}/issues/{n}/comments`
//! - `PATCH /repos/{owner}/{repo}/issues/comments/{id}`
//! - `POST /repos/{owner}/{repo}/statuses/{sha}`
//!
//! A fine-grained token needs *Pull requests: write* (comments) and *Commit statuses: write*; a
//! classic token `repo` (or `public_repo`).

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Comment, ForgeError, MAX_DESCRIPTION, MAX_PAGES, PER_PAGE, Status};
use crate::text::truncate;

const NAME: &str = "GitHub API";

/// One repository on one GitHub server.
#[derive(Debug)]
pub struct GitHub {
    api: Api,
    owner: String,
    repo: String,
}

#[derive(Deserialize)]
struct RawComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
}

impl From<RawComment> for Comment {
    fn from(c: RawComment) -> Comment {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
        }
    }
}

impl GitHub {
    /// `api_url`: `https://api.github.com` or `https://HOST/api/v3`; `repo`: `owner/name`.
    pub fn new(api_url: &str, token: &str, repo: &str) -> Result<GitHub, ForgeError> {
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| ForgeError::BadUrl {
                api: NAME,
                url: api_url.to_string(),
                reason: format!("repository `{repo}` is not `owner/name`"),
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        Ok(GitHub {
            api: Api::new(NAME, api_url, token, headers)?,
            owner: owner.to_string(),
            repo: name.to_string(),
        })
    }

    fn repo_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["repos", self.owner.as_str(), self.repo.as_str()];
        segments.extend_from_slice(rest);
        self.api.url(&segments)
    }

    pub async fn find_comment(
        &self,
        number: u64,
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<Comment>, ForgeError> {
        let n = number.to_string();
        let mut url = self.repo_url(&["issues", &n, "comments"]);
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        for _ in 0..MAX_PAGES {
            let reply = self.api.send(Method::GET, url.clone(), None, true).await?;
            let page: Vec<RawComment> = self.api.decode(Method::GET, &url, &reply)?;
            if let Some(c) = page
                .into_iter()
                .map(Comment::from)
                .find(|c| wanted(&c.body))
            {
                return Ok(Some(c));
            }
            let Some(next) = reply
                .headers
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
            else {
                return Ok(None);
            };
            let next = Url::parse(&next).map_err(|_| ForgeError::ForeignLink {
                api: NAME,
                link: next.clone(),
            })?;
            if !self.api.same_origin(&next) {
                return Err(ForgeError::ForeignLink {
                    api: NAME,
                    link: next.origin().ascii_serialization(),
                });
            }
            url = next;
        }
        Ok(None)
    }

    pub async fn create_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.repo_url(&["issues", &number.to_string(), "comments"]);
        // Not retried: a retry after a lost reply would post a second comment.
        let reply = self
            .api
            .send(
                Method::POST,
                url.clone(),
                Some(&json!({"body": body})),
                false,
            )
            .await?;
        let c: RawComment = self.api.decode(Method::POST, &url, &reply)?;
        Ok(c.into())
    }

    pub async fn update_comment(&self, id: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.repo_url(&["issues", "comments", &id.to_string()]);
        let reply = self
            .api
            .send(
                Method::PATCH,
                url.clone(),
                Some(&json!({"body": body})),
                true,
            )
            .await?;
        let c: RawComment = self.api.decode(Method::PATCH, &url, &reply)?;
        Ok(c.into())
    }

    pub async fn set_status(&self, s: &Status<'_>) -> Result<(), ForgeError> {
        let url = self.repo_url(&["statuses", s.sha]);
        let mut body = json!({
            "state": s.state.as_str(),
            "context": s.context,
            "description": truncate(s.description, MAX_DESCRIPTION),
        });
        if let Some(t) = s.target_url {
            body["target_url"] = json!(t);
        }
        // Repeating a status is harmless: the newest one of a context counts.
        self.api
            .send(Method::POST, url, Some(&body), true)
            .await
            .map(|_| ())
    }
}

/// The `rel="next"` URL of a `Link` header (RFC 8288).
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let url = target.strip_prefix('<')?.strip_suffix('>')?;
        pieces
            .any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=").is_some_and(|v| {
                    v.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
                })
            })
            .then(|| url.to_string())
    })
}
