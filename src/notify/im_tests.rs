//! Chat robots against local receivers that check the documented message format and verify the
//! signature the way DingTalk and Lark do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::notify::{
    DeliveryStatus, EventKind, EventSelector, NotificationRoute, NotificationsConfig, Notifier,
    NotifierOptions, PlanInfo,
};
use crate::plan::Summary;

const ROBOT_SECRET: &str = "SECabcdef0123456789robot-signing-secret";
const TOKEN: &str = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6";

// Vectors computed with Python's hmac/hashlib (independent of this code).
#[test]
fn signatures_match_reference_vectors() {
    assert_eq!(
        dingtalk_sign("SECabcdef0123456789", 1_700_000_000_000),
        "dV0RXHUD72d0VKcnHrBhJ9jhSbDS3HUiduucxO+izso="
    );
    assert_eq!(
        lark_sign("SECabcdef0123456789", 1_700_000_000),
        "d0/XXwWQDJlQG2HZYJsldLJGbu7vAVWF+3DKo7pqzCw="
    );
}

/// What a robot received.
#[derive(Debug, Clone)]
struct Got {
    query: HashMap<String, String>,
    body: Value,
}

/// A robot's verdict on a request: `Err((status, reply))` rejects it.
type Verdict = Result<(), (u16, Value)>;

/// A robot: checks each request with `verify` (the real service's checks) and answers with the
/// next scripted reply, or with the verdict of `verify`.
#[derive(Clone)]
struct Robot {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<Vec<(u16, Value)>>>,
    verify: Arc<dyn Fn(&Got) -> Verdict + Send + Sync>,
}

async fn receive(
    State(robot): State<Robot>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let got = Got { query, body };
    robot.got.lock().unwrap().push(got.clone());
    let (status, reply) = match (robot.verify)(&got) {
        Err(verdict) => verdict,
        Ok(()) => {
            let mut script = robot.script.lock().unwrap();
            if script.is_empty() {
                (
                    200,
                    json!({"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}),
                )
            } else {
                script.remove(0)
            }
        }
    };
    (StatusCode::from_u16(status).unwrap(), axum::Json(reply))
}

async fn start_robot(
    script: Vec<(u16, Value)>,
    verify: impl Fn(&Got) -> Verdict + Send + Sync + 'static,
) -> (Robot, String) {
    let robot = Robot {
        got: Arc::default(),
        script: Arc::new(Mutex::new(script)),
        verify: Arc::new(verify),
    };
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(robot.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (robot, format!("http://{addr}"))
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's check: `timestamp` (ms) within an hour, `sign` = base64(HMAC-SHA256(secret,
/// "timestamp\nsecret")); errcode 310000 otherwise.
fn dingtalk_verify(secret: &'static str) -> impl Fn(&Got) -> Verdict {
    move |got: &Got| {
        let fail = || (200, json!({"errcode": 310000, "errmsg": "sign not match"}));
        let ts: i64 = got
            .query
            .get("timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(fail)?;
        if (now_ms() - ts).abs() > 3_600_000 {
            return Err(fail());
        }
        let expected = hmac_b64(secret.as_bytes(), format!("{ts}\n{secret}").as_bytes());
        if got.query.get("sign") != Some(&expected) {
            return Err(fail());
        }
        Ok(())
    }
}

/// Lark's check: body `timestamp` (seconds, a string) within an hour, `sign` =
/// base64(HMAC-SHA256(key = "timestamp\nsecret", message = "")); code 19021 otherwise.
fn lark_verify(secret: &'static str) -> impl Fn(&Got) -> Verdict {
    move |got: &Got| {
        let fail = || {
            (
                200,
                json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
            )
        };
        let ts: i64 = got.body["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(fail)?;
        if (now_ms() / 1000 - ts).abs() > 3600 {
            return Err(fail());
        }
        let expected = hmac_b64(format!("{ts}\n{secret}").as_bytes(), b"");
        if got.body["sign"].as_str() != Some(expected.as_str()) {
            return Err(fail());
        }
        Ok(())
    }
}

fn fast() -> NotifierOptions {
    NotifierOptions {
        max_attempts: 3,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        max_concurrency: 4,
    }
}

fn notifier(format: NotificationFormat, url: &str, secret: Option<&str>) -> Notifier {
    let route = NotificationRoute {
        name: "chat".into(),
        events: vec![EventSelector::All],
        format,
        url_from_env: Some("CHAT_URL".into()),
        secret_from_env: secret.map(|_| "CHAT_SECRET".into()),
        ..Default::default()
    };
    let config = NotificationsConfig {
        dedup_window_seconds: Some(0),
        routes: vec![route],
    };
    let url = url.to_string();
    let secret = secret.map(str::to_string);
    Notifier::from_config_with(
        &config,
        None,
        move |var| match var {
            "CHAT_URL" => Some(url.clone()),
            "CHAT_SECRET" => secret.clone(),
            _ => None,
        },
        fast(),
    )
    .unwrap()
}

fn event() -> Event {
    Event::new(EventKind::ApplyFailed, now_ms())
        .job("orders")
        .cluster("prod")
        .revision("4f2a9c1e0b7d4f2a9c1e0b7d")
        .plan(PlanInfo {
            id: "plan-1".into(),
            summary: Summary {
                redeploy: 1,
                ..Summary::default()
            },
        })
        .link("commit", "https://git.example.com/acme/jobs/commit/4f2a9c1")
        .message(format!(
            "submit failed: [boom] *bold* leaked {ROBOT_SECRET} and https://x/?token={TOKEN}"
        ))
}

/// Neither the URL's token nor (when the route knows it) the signing secret reached the robot.
fn assert_clean(body: &Value, signed: bool) {
    let text = body.to_string();
    assert!(!signed || !text.contains(ROBOT_SECRET), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn dingtalk_markdown_signed_and_verified() {
    let (robot, base) = start_robot(vec![], dingtalk_verify(ROBOT_SECRET)).await;
    let url = format!("{base}/robot/send?access_token={TOKEN}");
    let n = notifier(NotificationFormat::Dingtalk, &url, Some(ROBOT_SECRET));
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d[0].status_code, Some(200));
    assert!(!d[0].url.contains(TOKEN), "{}", d[0].url);
    let got = robot.got.lock().unwrap()[0].clone();
    assert_eq!(
        got.query["access_token"], TOKEN,
        "the URL's own query is kept"
    );
    assert_eq!(got.body["msgtype"], "markdown");
    assert_eq!(
        got.body["markdown"]["title"],
        "Apply failed: orders on prod"
    );
    let text = got.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("### Apply failed: orders on prod\n"),
        "{text}"
    );
    assert!(text.contains("**Job:** orders"), "{text}");
    assert!(
        text.contains("**Plan:** Plan: 0 to create, 1 to redeploy"),
        "{text}"
    );
    assert!(text.contains("\\[boom\\] \\*bold\\*"), "escaped: {text}");
    assert!(
        text.contains("[commit](https://git.example.com/acme/jobs/commit/4f2a9c1)"),
        "{text}"
    );
    assert_clean(&got.body, true);

    // A wrong secret: DingTalk answers 200 with errcode 310000; not retried, reported.
    let n = notifier(
        NotificationFormat::Dingtalk,
        &url,
        Some("SECsome-other-secret-value"),
    );
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!(d[0].attempts, 1);
    let error = d[0].error.as_deref().unwrap();
    assert!(
        error.contains("310000") && error.contains("sign not match"),
        "{error}"
    );
    assert!(!error.contains("SECsome-other"), "{error}");

    // Unsigned: no timestamp or sign parameters.
    let (robot, base) = start_robot(vec![], |_| Ok(())).await;
    let n = notifier(
        NotificationFormat::Dingtalk,
        &format!("{base}/robot/send?access_token={TOKEN}"),
        None,
    );
    assert_eq!(n.notify(event()).await[0].status, DeliveryStatus::Delivered);
    let got = robot.got.lock().unwrap()[0].clone();
    assert!(!got.query.contains_key("sign") && !got.query.contains_key("timestamp"));
}

#[tokio::test]
async fn wecom_markdown_with_rate_limit_retried() {
    let (robot, base) = start_robot(
        vec![(
            200,
            json!({"errcode": 45009, "errmsg": "api freq out of limit"}),
        )],
        |got: &Got| {
            let content = got.body["markdown"]["content"].as_str().unwrap_or_default();
            if got.body["msgtype"] != "markdown" || content.is_empty() || content.len() > 4096 {
                return Err((
                    200,
                    json!({"errcode": 40008, "errmsg": "invalid message type"}),
                ));
            }
            Ok(())
        },
    )
    .await;
    let n = notifier(
        NotificationFormat::Wecom,
        &format!("{base}/cgi-bin/webhook/send?key={TOKEN}"),
        None,
    );
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d[0].attempts, 2, "the rate limit is retried");
    let got = robot.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let content = got[1].body["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("**Cluster:** prod"), "{content}");
    assert_clean(&got[1].body, false);

    // A long message stays within WeCom's 4096 bytes.
    let long = Event::new(EventKind::JobFailed, now_ms())
        .job("orders")
        .message("é".repeat(10_000));
    let body = super::body(NotificationFormat::Wecom, &long, &Scrubber::default()).unwrap();
    assert!(body["markdown"]["content"].as_str().unwrap().len() <= 4096);
}

#[tokio::test]
async fn lark_post_signed_and_verified() {
    let (robot, base) = start_robot(vec![], lark_verify(ROBOT_SECRET)).await;
    let url = format!("{base}/open-apis/bot/v2/hook/{TOKEN}");
    let n = notifier(NotificationFormat::Lark, &url, Some(ROBOT_SECRET));
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert!(!d[0].url.contains(TOKEN), "{}", d[0].url);
    let got = robot.got.lock().unwrap()[0].clone();
    assert_eq!(got.body["msg_type"], "post");
    let post = &got.body["content"]["post"]["en_us"];
    assert_eq!(post["title"], "Apply failed: orders on prod");
    let lines = post["content"].as_array().unwrap();
    assert!(lines.iter().all(|l| l.is_array()), "{post}");
    assert!(
        lines
            .iter()
            .flat_map(|l| l.as_array().unwrap())
            .any(|e| e["tag"] == "a"
                && e["text"] == "commit"
                && e["href"] == "https://git.example.com/acme/jobs/commit/4f2a9c1"),
        "{post}"
    );
    assert!(post.to_string().contains("Cluster: prod"), "{post}");
    assert_clean(&got.body, true);

    let n = notifier(
        NotificationFormat::Lark,
        &url,
        Some("another-secret-entirely"),
    );
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed, "{d:?}");
    assert!(d[0].error.as_deref().unwrap().contains("19021"), "{d:?}");
}

#[tokio::test]
async fn teams_adaptive_card() {
    let (robot, base) = start_robot(vec![(202, json!({}))], |got: &Got| {
        let a = &got.body["attachments"][0];
        let ok = got.body["type"] == "message"
            && a["contentType"] == "application/vnd.microsoft.card.adaptive"
            && a["content"]["type"] == "AdaptiveCard"
            && a["content"]["version"].is_string()
            && a["content"]["body"].is_array();
        if ok {
            Ok(())
        } else {
            Err((400, json!({"error": "bad card"})))
        }
    })
    .await;
    let n = notifier(
        NotificationFormat::Teams,
        &format!("{base}/workflows/{TOKEN}/triggers/manual/paths/invoke?sig={TOKEN}"),
        None,
    );
    let d = n.notify(event()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d[0].status_code, Some(202));
    let got = robot.got.lock().unwrap()[0].clone();
    let card = &got.body["attachments"][0]["content"];
    assert_eq!(card["body"][0]["text"], "Apply failed: orders on prod");
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert!(
        facts.contains(&json!({"title": "Job", "value": "orders"})),
        "{card}"
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://git.example.com/acme/jobs/commit/4f2a9c1"
    );
    assert_clean(&got.body, false);
}

#[test]
fn replies_with_error_codes() {
    use NotificationFormat::*;
    assert_eq!(
        check_reply(Dingtalk, r#"{"errcode":0,"errmsg":"ok"}"#),
        Ok(())
    );
    assert!(
        check_reply(Dingtalk, r#"{"errcode":130101,"errmsg":"send too fast"}"#)
            .unwrap_err()
            .retryable
    );
    assert!(
        !check_reply(Wecom, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#)
            .unwrap_err()
            .retryable
    );
    assert_eq!(
        check_reply(Lark, r#"{"StatusCode":0,"StatusMessage":"success"}"#),
        Ok(())
    );
    assert_eq!(
        check_reply(Lark, r#"{"code":19024,"msg":"Key Words Not Found"}"#)
            .unwrap_err()
            .code,
        19024
    );
    assert_eq!(check_reply(Lark, "<html>proxy</html>"), Ok(()));
    assert_eq!(check_reply(Teams, r#"{"errcode":1}"#), Ok(()));
}

#[test]
fn bodies_of_a_bare_event() {
    let bare = Event::new(EventKind::RepoUnreachable, 0);
    for format in [
        NotificationFormat::Dingtalk,
        NotificationFormat::Wecom,
        NotificationFormat::Lark,
        NotificationFormat::Teams,
    ] {
        let b = body(format, &bare, &Scrubber::default()).unwrap();
        assert!(b.to_string().contains("Repo unreachable"), "{b}");
    }
    assert!(body(NotificationFormat::Email, &bare, &Scrubber::default()).is_none());
    assert_eq!(truncate_bytes("ééé", 5), "é…");
    assert_eq!(truncate_bytes("abc", 3), "abc");
    assert_eq!(md_escape("a_b*[c]"), "a\\_b\\*\\[c\\]");
}
