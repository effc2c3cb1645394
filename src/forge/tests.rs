//! The forge clients against wiremock: paths, pagination, authorization, error messages.

use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::github::next_link;
use super::*;

const TOKEN: &str = "ghp_test-token-value";

fn marker(body: &str) -> bool {
    body.starts_with("<!-- weir-plan-preview")
}

#[test]
fn link_headers() {
    let h = r#"<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=5>; rel="last""#;
    assert_eq!(
        next_link(h).as_deref(),
        Some("https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2")
    );
    assert_eq!(
        next_link(r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=3>; rel="last""#),
        None
    );
    assert_eq!(next_link(""), None);
    assert_eq!(
        next_link(r#"<https://x/b>; title="t"; rel="next""#).as_deref(),
        Some("https://x/b")
    );
}

#[test]
fn urls_keep_the_base_path_and_encode_segments() {
    let gh = GitHub::new("https://ghe.example.com/api/v3/", TOKEN, "acme/jobs").unwrap();
    let debug = format!("{gh:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    let gl = GitLab::new("https://gitlab.example.com/api/v4", TOKEN, "group/sub/jobs").unwrap();
    let debug = format!("{gl:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(GitHub::new("ftp://x", TOKEN, "a/b").is_err());
    assert!(GitHub::new("https://u:p@x", TOKEN, "a/b").is_err());
    assert!(GitHub::new("https://x", TOKEN, "a").is_err());
    assert!(GitHub::new("https://x", "bad\ntoken", "a/b").is_err());
}

#[test]
fn truncation_and_error_messages() {
    assert_eq!(truncate("abc", 3), "abc");
    assert_eq!(truncate("abcd", 3), "ab…");
    assert_eq!(
        error_message(br#"{"message":"Not Found","documentation_url":"x"}"#),
        "Not Found"
    );
    assert_eq!(
        error_message(br#"{"message":{"note":["is too long"]}}"#),
        r#"{"note":["is too long"]}"#
    );
    assert_eq!(
        error_message(b"<html>\n  bad gateway\n</html>"),
        "<html> bad gateway </html>"
    );
    assert_eq!(error_message(b""), "(no message)");
}

#[tokio::test]
async fn github_pages_through_comments_and_sends_the_token_only_to_its_origin() {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    let base = format!("{}/api/v3", server.uri());
    let list = "/api/v3/repos/acme/jobs/issues/7/comments";
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("page", "2"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"id": 3, "body": "lgtm"},
            {"id": 4, "body": "<!-- weir-plan-preview -->\nold plan"},
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/vnd.github+json"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!(
                        "<{server}{list}?per_page=100&page=2>; rel=\"next\"",
                        server = server.uri()
                    ),
                )
                .set_body_json(serde_json::json!([
                    {"id": 1, "body": "first"},
                    {"id": 2, "body": null},
                ])),
        )
        .mount(&server)
        .await;
    let gh = GitHub::new(&base, TOKEN, "acme/jobs").unwrap();
    let found = gh.find_comment(7, &marker).await.unwrap().unwrap();
    assert_eq!(found.id, 4);

    // A next link to another origin is not followed (the token would go with it).
    let foreign = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!("<{}/steal?page=2>; rel=\"next\"", other.uri()),
                )
                .set_body_json(serde_json::json!([])),
        )
        .mount(&foreign)
        .await;
    let gh2 = GitHub::new(&foreign.uri(), TOKEN, "acme/jobs").unwrap();
    let err = gh2.find_comment(7, &marker).await.unwrap_err();
    assert!(matches!(err, ForgeError::ForeignLink { .. }), "{err}");
    assert!(other.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn github_creates_updates_and_sets_statuses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/jobs/issues/7/comments"))
        .and(body_json(serde_json::json!({"body": "hello"})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": 11, "body": "hello"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/jobs/issues/comments/11"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 11, "body": "again"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/jobs/statuses/abc123"))
        .and(body_json(serde_json::json!({
            "state": "failure",
            "context": "weir/plan",
            "description": format!("{}…", "x".repeat(139)),
            "target_url": "https://weir.example.com/api/v1/plans/p1",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(serde_json::json!({"message": "Not Found"})),
        )
        .mount(&server)
        .await;
    let gh = Forge::GitHub(GitHub::new(&server.uri(), TOKEN, "acme/jobs").unwrap());
    assert_eq!(gh.create_comment(7, "hello").await.unwrap().id, 11);
    assert_eq!(
        gh.update_comment(7, 11, "again").await.unwrap().body,
        "again"
    );
    let long = "x".repeat(300);
    gh.set_status(&Status {
        sha: "abc123",
        state: CommitState::Failure,
        context: "weir/plan",
        description: &long,
        target_url: Some("https://weir.example.com/api/v1/plans/p1"),
    })
    .await
    .unwrap();
    let err = gh.find_comment(8, &marker).await.unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::NOT_FOUND));
    let text = error_chain(&err);
    assert!(
        text.contains("GET /repos/acme/jobs/issues/8/comments: HTTP 404 Not Found: Not Found"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
}

#[tokio::test]
async fn gitlab_pages_with_x_next_page_and_encodes_the_project_path() {
    let server = MockServer::start().await;
    // `group/jobs` is one segment: group%2Fjobs.
    let notes = "/api/v4/projects/group%2Fjobs/merge_requests/3/notes";
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("page", "1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-next-page", "2")
                .set_body_json(serde_json::json!([
                    {"id": 1, "body": "<!-- weir-plan-preview -->\nby GitLab?", "system": true},
                    {"id": 2, "body": "review"},
                ])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-next-page", "")
                .set_body_json(serde_json::json!([
                    {"id": 5, "body": "<!-- weir-plan-preview -->\nplan", "system": false},
                ])),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{notes}/5")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 5, "body": "new"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/group%2Fjobs/statuses/abc"))
        .and(body_json(serde_json::json!({
            "state": "pending", "name": "weir/plan", "description": "planning",
        })))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "message": "Cannot transition status via :enqueue from :pending (Reasons: ...)"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/group%2Fjobs/statuses/abc"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "message": "403 Forbidden"
        })))
        .mount(&server)
        .await;
    let gl = Forge::GitLab(
        GitLab::new(&format!("{}/api/v4", server.uri()), TOKEN, "group/jobs").unwrap(),
    );
    let found = gl.find_comment(3, &marker).await.unwrap().unwrap();
    assert_eq!(found.id, 5);
    assert_eq!(gl.update_comment(3, 5, "new").await.unwrap().id, 5);
    // Pending twice is not an error.
    gl.set_status(&Status {
        sha: "abc",
        state: CommitState::Pending,
        context: "weir/plan",
        description: "planning",
        target_url: None,
    })
    .await
    .unwrap();
    let err = gl
        .set_status(&Status {
            sha: "abc",
            state: CommitState::Error,
            context: "weir/plan",
            description: "x",
            target_url: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::FORBIDDEN));
}
