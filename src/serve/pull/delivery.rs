//! Pull-request (merge-request) deliveries of GitHub and GitLab, reduced to what previews need.

use serde::{Deserialize, Serialize};

/// Why a body is not a pull-request delivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("object_kind `{0}`, not merge_request")]
    NotMergeRequest(String),
}

/// Where a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    GitHub,
    GitLab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
        }
    }

    /// The ref the forge keeps at the head of pull request `number`.
    pub fn head_ref(self, number: u64) -> String {
        match self {
            ForgeKind::GitHub => format!("refs/pull/{number}/head"),
            ForgeKind::GitLab => format!("refs/merge-requests/{number}/head"),
        }
    }
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Plan the head (opened, new commits, reopened).
    Preview { reopened: bool },
    /// Closed or merged: stop previewing.
    Stop,
    /// Nothing to do, and why.
    Ignore(String),
}

/// A pull-request (merge-request) delivery, reduced to what previews need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    pub forge: ForgeKind,
    /// GitHub: `owner/name`; GitLab: the project path.
    pub repo: String,
    /// GitLab: the numeric project id.
    pub project_id: Option<u64>,
    /// The pull request number (GitLab: the merge request iid).
    pub number: u64,
    pub action: String,
    pub intent: Intent,
    /// The branch the pull request merges into.
    pub base_branch: String,
    pub head_sha: String,
    /// Who opened the pull request (the actor of the recorded plan).
    pub author: Option<String>,
    /// The head is in another repository (a fork), or the delivery does not say where it is:
    /// such pull requests are never pre-flighted (their code would run on a cluster).
    pub from_fork: bool,
}

#[derive(Deserialize)]
struct GhDelivery {
    action: String,
    pull_request: GhPull,
    repository: GhRepo,
}

#[derive(Deserialize)]
struct GhPull {
    number: u64,
    state: String,
    head: GhRef,
    base: GhRef,
    #[serde(default)]
    user: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhRef {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
    /// Absent (null) when the fork was deleted.
    #[serde(default)]
    repo: Option<GhRepo>,
}

#[derive(Deserialize)]
struct GhRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
}

/// Reads a GitHub `pull_request` delivery.
pub fn parse_github(body: &[u8]) -> Result<PullEvent, DeliveryError> {
    let d: GhDelivery = serde_json::from_slice(body)?;
    let open = d.pull_request.state == "open";
    let intent = match d.action.as_str() {
        "opened" | "synchronize" | "reopened" if open => Intent::Preview {
            reopened: d.action == "reopened",
        },
        "opened" | "synchronize" | "reopened" => {
            Intent::Ignore(format!("the pull request is {}", d.pull_request.state))
        }
        "closed" => Intent::Stop,
        other => Intent::Ignore(format!("action `{other}` needs no preview")),
    };
    let from_fork =
        d.pull_request.head.repo.as_ref().map(|r| &r.full_name) != Some(&d.repository.full_name);
    Ok(PullEvent {
        forge: ForgeKind::GitHub,
        from_fork,
        repo: d.repository.full_name,
        project_id: None,
        number: d.pull_request.number,
        action: d.action,
        intent,
        base_branch: d.pull_request.base.name,
        head_sha: d.pull_request.head.sha,
        author: d.pull_request.user.map(|u| u.login),
    })
}

#[derive(Deserialize)]
struct GlDelivery {
    object_kind: String,
    #[serde(default)]
    user: Option<GlUser>,
    project: GlProject,
    object_attributes: GlAttributes,
}

#[derive(Deserialize)]
struct GlUser {
    username: String,
}

#[derive(Deserialize)]
struct GlProject {
    id: u64,
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct GlAttributes {
    iid: u64,
    #[serde(default)]
    action: Option<String>,
    state: String,
    target_branch: String,
    #[serde(default)]
    last_commit: Option<GlCommit>,
    /// Set on `update` when the update pushed commits.
    #[serde(default)]
    oldrev: Option<String>,
    #[serde(default)]
    source_project_id: Option<u64>,
    #[serde(default)]
    target_project_id: Option<u64>,
}

#[derive(Deserialize)]
struct GlCommit {
    id: String,
}

/// Reads a GitLab merge request hook delivery.
pub fn parse_gitlab(body: &[u8]) -> Result<PullEvent, DeliveryError> {
    let d: GlDelivery = serde_json::from_slice(body)?;
    if d.object_kind != "merge_request" {
        return Err(DeliveryError::NotMergeRequest(d.object_kind));
    }
    let a = d.object_attributes;
    let action = a.action.unwrap_or_default();
    let open = a.state == "opened";
    let intent = match action.as_str() {
        "open" | "reopen" if open => Intent::Preview {
            reopened: action == "reopen",
        },
        "update" if open && a.oldrev.as_deref().is_some_and(|r| !r.is_empty()) => {
            Intent::Preview { reopened: false }
        }
        "update" if open => Intent::Ignore("the update pushed no commits".into()),
        "open" | "reopen" | "update" => Intent::Ignore(format!("the merge request is {}", a.state)),
        "close" | "merge" => Intent::Stop,
        other => Intent::Ignore(format!("action `{other}` needs no preview")),
    };
    let from_fork = a.source_project_id.is_none() || a.source_project_id != a.target_project_id;
    Ok(PullEvent {
        forge: ForgeKind::GitLab,
        from_fork,
        repo: d.project.path_with_namespace,
        project_id: Some(d.project.id),
        number: a.iid,
        action,
        intent,
        base_branch: a.target_branch,
        head_sha: a.last_commit.map(|c| c.id).unwrap_or_default(),
        author: d.user.map(|u| u.username),
    })
}
