//! GitLab (gitlab.com and self-managed): merge request notes and commit statuses.
//!
//! - `GET /projects/{id}/merge_requests/{iid}/notes?per_page=100&page=N`, following
//!   `x-next-page`
//! - `POST /projects/{id}/merge_requests/{iid}/notes`
//! - `PUT /projects/{id}/merge_requests/{iid}/notes/{note_id}`
//! - `POST /projects/{id}/statuses/{sha}`
//!
//! The token (personal, project or group access token with the `api` scope, role Developer or
//! higher) is sent as `Authorization: Bearer`, which GitLab accepts for access tokens.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Comment, CommitState, ForgeError, MAX_DESCRIPTION, MAX_PAGES, PER_PAGE, Status};
use crate::text::truncate;

const NAME: &str = "GitLab API";

/// One project on one GitLab server.
#[derive(Debug)]
pub struct GitLab {
    api: Api,
    /// Numeric id or `group/project` path (sent as one percent-encoded path segment).
    project: String,
}

#[derive(Deserialize)]
struct RawNote {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    /// Notes GitLab writes itself ("added 1 commit"); never weir's.
    #[serde(default)]
    system: bool,
}

impl From<RawNote> for Comment {
    fn from(n: RawNote) -> Comment {
        Comment {
            id: n.id,
            body: n.body.unwrap_or_default(),
        }
    }
}

impl GitLab {
    /// `api_url`: `https://gitlab.com/api/v4` or `https://HOST/api/v4`; `project`: id or path.
    pub fn new(api_url: &str, token: &str, project: &str) -> Result<GitLab, ForgeError> {
        Ok(GitLab {
            api: Api::new(NAME, api_url, token, HeaderMap::new())?,
            project: project.to_string(),
        })
    }

    fn project_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["projects", self.project.as_str()];
        segments.extend_from_slice(rest);
        self.api.url(&segments)
    }

    pub async fn find_comment(
        &self,
        iid: u64,
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<Comment>, ForgeError> {
        let n = iid.to_string();
        let base = self.project_url(&["merge_requests", &n, "notes"]);
        let mut page = "1".to_string();
        for _ in 0..MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("per_page", &PER_PAGE.to_string())
                .append_pair("page", &page)
                .append_pair("sort", "asc")
                .append_pair("order_by", "created_at");
            let reply = self.api.send(Method::GET, url.clone(), None, true).await?;
            let notes: Vec<RawNote> = self.api.decode(Method::GET, &url, &reply)?;
            if let Some(c) = notes
                .into_iter()
                .filter(|n| !n.system)
                .map(Comment::from)
                .find(|c| wanted(&c.body))
            {
                return Ok(Some(c));
            }
            // Empty on the last page.
            match reply
                .headers
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                Some(next) if next != page => page = next.to_string(),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    pub async fn create_comment(&self, iid: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.project_url(&["merge_requests", &iid.to_string(), "notes"]);
        // Not retried: a retry after a lost reply would post a second note.
        let reply = self
            .api
            .send(
                Method::POST,
                url.clone(),
                Some(&json!({"body": body})),
                false,
            )
            .await?;
        let n: RawNote = self.api.decode(Method::POST, &url, &reply)?;
        Ok(n.into())
    }

    pub async fn update_comment(
        &self,
        iid: u64,
        id: u64,
        body: &str,
    ) -> Result<Comment, ForgeError> {
        let url = self.project_url(&["merge_requests", &iid.to_string(), "notes", &id.to_string()]);
        let reply = self
            .api
            .send(Method::PUT, url.clone(), Some(&json!({"body": body})), true)
            .await?;
        let n: RawNote = self.api.decode(Method::PUT, &url, &reply)?;
        Ok(n.into())
    }

    pub async fn set_status(&self, s: &Status<'_>) -> Result<(), ForgeError> {
        let url = self.project_url(&["statuses", s.sha]);
        let state = match s.state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure | CommitState::Error => "failed",
        };
        let mut body = json!({
            "state": state,
            "name": s.context,
            "description": truncate(s.description, MAX_DESCRIPTION),
        });
        if let Some(t) = s.target_url {
            body["target_url"] = json!(t);
        }
        match self.api.send(Method::POST, url, Some(&body), true).await {
            Ok(_) => Ok(()),
            // GitLab refuses to set a status to the state it already has (e.g. pending twice).
            Err(ForgeError::Status {
                status: StatusCode::BAD_REQUEST,
                message,
                ..
            }) if message.contains("Cannot transition status") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
