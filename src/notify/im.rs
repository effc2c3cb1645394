//! Chat robots: DingTalk, WeCom (WeChat Work), Lark (Feishu) and Microsoft Teams. Each receives
//! the event in its own documented message format; DingTalk and Lark requests are signed when
//! the route has a secret; the JSON reply of DingTalk, WeCom and Lark is checked (they answer
//! `200` with an error code in the body).
//!
//! References (the field names and signing rules below follow them):
//! * DingTalk custom robot: <https://open.dingtalk.com/document/robots/custom-robot-access>
//!   (`msgtype: markdown` with `markdown.title` and `markdown.text`) and
//!   <https://open.dingtalk.com/document/robots/customize-robot-security-settings> (signing:
//!   `timestamp` in milliseconds and `sign` = url-encoded base64 of HMAC-SHA256 keyed with the
//!   secret over `"{timestamp}\n{secret}"`, both as query parameters; the timestamp must be
//!   within an hour of the server's time). Reply `{"errcode":0,"errmsg":"ok"}`.
//! * WeCom group robot: <https://developer.work.weixin.qq.com/document/path/91770>
//!   (`msgtype: markdown` with `markdown.content`, at most 4096 bytes; the URL's `key` is the
//!   credential, there is no signing). Reply `{"errcode":0,"errmsg":"ok"}`; `45009` is the rate
//!   limit (20 messages a minute).
//! * Lark / Feishu custom bot: <https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot>
//!   (`msg_type: post` with `content.post.<locale>.title` and `content` lines of `text` / `a`
//!   tags; signing: `timestamp` in seconds and `sign` = base64 of HMAC-SHA256 keyed with
//!   `"{timestamp}\n{secret}"` over an empty message, both in the body). Reply
//!   `{"code":0,"msg":"success"}`; `11232` is the rate limit.
//! * Microsoft Teams incoming webhook / Workflows "post to a channel when a webhook request is
//!   received":
//!   <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>
//!   (`type: message` with one attachment of `contentType:
//!   application/vnd.microsoft.card.adaptive` whose `content` is an `AdaptiveCard`). Answers
//!   `200` or `202`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::payload::{GenericPayload, generic, title};
use super::scrub::Scrubber;
use super::{AttemptError, Event, MAX_ERROR_BODY, read_prefix};
use crate::spec::NotificationFormat;
use crate::text::truncate;

/// Longest message kept in a chat message (characters); the robots cap whole messages at a few
/// thousand bytes.
const MAX_CHAT_MESSAGE_CHARS: usize = 1500;
/// WeCom's limit on `markdown.content` (bytes of UTF-8).
const MAX_WECOM_BYTES: usize = 4096;
/// Most savepoint paths listed.
const MAX_SAVEPOINTS: usize = 5;
/// The last line of a chat message; `weir` is the keyword to configure for a robot with keyword
/// security.
pub const SIGNATURE: &str = "Sent by weir";
/// The Adaptive Card schema version sent to Teams (Workflows and webhooks render 1.4).
const ADAPTIVE_CARD_VERSION: &str = "1.4";

/// The request body of `event` for a chat `format` (`None` for formats that are not chats).
pub fn body(format: NotificationFormat, event: &Event, scrubber: &Scrubber) -> Option<Value> {
    let p = generic("", event, scrubber);
    match format {
        NotificationFormat::Dingtalk => Some(json!({
            "msgtype": "markdown",
            "markdown": {"title": headline(&p), "text": markdown(&p)},
        })),
        NotificationFormat::Wecom => Some(json!({
            "msgtype": "markdown",
            "markdown": {"content": truncate_bytes(&markdown(&p), MAX_WECOM_BYTES)},
        })),
        NotificationFormat::Lark => Some(lark(&p)),
        NotificationFormat::Teams => Some(teams(&p)),
        NotificationFormat::Generic | NotificationFormat::Slack | NotificationFormat::Email => None,
    }
}

/// `Apply failed: orders on prod` (what a notification preview shows).
pub fn headline(p: &GenericPayload) -> String {
    let kind = crate::spec::EventKind::from_name(p.event).map_or(p.event, title);
    match subject(p) {
        Some(subject) => format!("{kind}: {subject}"),
        None => kind.to_string(),
    }
}

/// `orders on prod`, `orders`, `on prod` or nothing.
pub fn subject(p: &GenericPayload) -> Option<String> {
    match (&p.job, &p.cluster) {
        (Some(job), Some(cluster)) => Some(format!("{job} on {cluster}")),
        (Some(job), None) => Some(job.clone()),
        (None, Some(cluster)) => Some(format!("on {cluster}")),
        (None, None) => None,
    }
}

/// The facts of an event as `(label, value)` pairs, in display order.
pub fn facts(p: &GenericPayload) -> Vec<(&'static str, String)> {
    let mut out = vec![("Event", p.event.to_string())];
    if let Some(job) = &p.job {
        out.push(("Job", job.clone()));
    }
    if let Some(cluster) = &p.cluster {
        out.push(("Cluster", cluster.clone()));
    }
    if let Some(plan) = &p.plan {
        out.push(("Plan", plan.summary.clone()));
    }
    if let Some(revision) = &p.revision {
        out.push(("Revision", revision.chars().take(12).collect()));
    }
    if let Some(author) = &p.author {
        out.push(("Author", author.clone()));
    }
    if !p.savepoints.is_empty() {
        let mut list: Vec<String> = p.savepoints.iter().take(MAX_SAVEPOINTS).cloned().collect();
        if p.savepoints.len() > MAX_SAVEPOINTS {
            list.push(format!("and {} more", p.savepoints.len() - MAX_SAVEPOINTS));
        }
        out.push(("Savepoints", list.join(", ")));
    }
    out.push(("Time", p.timestamp.clone()));
    out
}

/// The links of an event that can be opened (absolute `http(s)` URLs).
pub fn web_links(p: &GenericPayload) -> Vec<(&str, &str)> {
    p.links
        .iter()
        .filter(|(_, url)| url.starts_with("https://") || url.starts_with("http://"))
        .map(|(name, url)| (name.as_str(), url.as_str()))
        .collect()
}

/// The message, shortened for a chat.
fn chat_message(p: &GenericPayload) -> Option<String> {
    p.message
        .as_deref()
        .map(|m| truncate(m, MAX_CHAT_MESSAGE_CHARS))
}

/// The Markdown shared by DingTalk and WeCom (both render headings, bold, quotes and links).
fn markdown(p: &GenericPayload) -> String {
    let mut out = format!("### {}\n\n", md_escape(&headline(p)));
    if let Some(message) = chat_message(p) {
        for line in message.lines() {
            out.push_str(&format!("> {}\n", md_escape(line)));
        }
        out.push('\n');
    }
    for (label, value) in facts(p) {
        out.push_str(&format!("**{label}:** {}  \n", md_escape(&value)));
    }
    let links = web_links(p);
    if !links.is_empty() {
        let links: Vec<String> = links
            .iter()
            .map(|(name, url)| format!("[{}]({})", md_escape(name), md_url(url)))
            .collect();
        out.push_str(&format!("\n{}\n", links.join(" · ")));
    }
    // Also the keyword a DingTalk or Lark robot with keyword security can require.
    out.push_str(&format!("\n{SIGNATURE}\n"));
    out
}

/// A Lark `post` (rich text): one line per fact, the message, and the links.
fn lark(p: &GenericPayload) -> Value {
    let mut lines: Vec<Value> = Vec::new();
    if let Some(message) = chat_message(p) {
        lines.push(json!([{"tag": "text", "text": message}]));
    }
    for (label, value) in facts(p) {
        lines.push(json!([{"tag": "text", "text": format!("{label}: {value}")}]));
    }
    let links: Vec<Value> = web_links(p)
        .iter()
        .map(|(name, url)| json!({"tag": "a", "text": name, "href": url}))
        .collect();
    if !links.is_empty() {
        lines.push(Value::Array(links));
    }
    lines.push(json!([{"tag": "text", "text": SIGNATURE}]));
    json!({
        "msg_type": "post",
        "content": {"post": {"en_us": {"title": headline(p), "content": lines}}},
    })
}

/// A Teams message carrying an Adaptive Card: the headline, the message, a fact set and one
/// `Action.OpenUrl` per link.
fn teams(p: &GenericPayload) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": headline(p),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    })];
    if let Some(message) = chat_message(p) {
        body.push(json!({"type": "TextBlock", "text": message, "wrap": true}));
    }
    let facts: Vec<Value> = facts(p)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    body.push(json!({"type": "FactSet", "facts": facts}));
    let actions: Vec<Value> = web_links(p)
        .iter()
        .map(|(name, url)| json!({"type": "Action.OpenUrl", "title": name, "url": url}))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Markdown's active characters escaped, so that a job name or message cannot add links or
/// formatting.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A URL inside `(...)`: parentheses and spaces would end it early.
fn md_url(url: &str) -> String {
    url.replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20")
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when shortened.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// ---------------------------------------------------------------------------------------------
// Signing

fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's `sign` (before url-encoding) for `timestamp_ms`: base64 of HMAC-SHA256 keyed with
/// the secret over `"{timestamp_ms}\n{secret}"`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

/// Lark's `sign` for `timestamp_s`: base64 of HMAC-SHA256 keyed with `"{timestamp_s}\n{secret}"`
/// over an empty message.
pub fn lark_sign(secret: &str, timestamp_s: i64) -> String {
    hmac_sha256_base64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

/// The URL and body of one attempt: signed with `secret` (when the format signs) at `now_ms`.
pub fn signed(
    format: NotificationFormat,
    secret: Option<&str>,
    url: &reqwest::Url,
    body: &[u8],
    now_ms: i64,
) -> (reqwest::Url, Vec<u8>) {
    let Some(secret) = secret else {
        return (url.clone(), body.to_vec());
    };
    match format {
        NotificationFormat::Dingtalk => {
            let mut url = url.clone();
            // `append_pair` percent-encodes `+`, `/` and `=` of the base64, as DingTalk expects.
            url.query_pairs_mut()
                .append_pair("timestamp", &now_ms.to_string())
                .append_pair("sign", &dingtalk_sign(secret, now_ms));
            (url, body.to_vec())
        }
        NotificationFormat::Lark => {
            let seconds = now_ms.div_euclid(1000);
            let mut value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("timestamp".into(), Value::String(seconds.to_string()));
                object.insert("sign".into(), Value::String(lark_sign(secret, seconds)));
            }
            let body = serde_json::to_vec(&value).expect("JSON values serialize");
            (url.clone(), body)
        }
        _ => (url.clone(), body.to_vec()),
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// A `2xx` reply that nevertheless reports an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    pub code: i64,
    pub message: String,
    /// The robot's rate limit: worth retrying later.
    pub retryable: bool,
}

/// Checks the JSON reply of a robot that answers errors with `200` and a code in the body.
/// Bodies that are not the robot's JSON (a proxy's page) are accepted: the status was `2xx`.
pub fn check_reply(format: NotificationFormat, body: &str) -> Result<(), ReplyError> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Ok(());
    };
    let (code_field, message_field, rate_limited): (&[&str], &[&str], &[i64]) = match format {
        NotificationFormat::Dingtalk => (&["errcode"], &["errmsg"], &[130_101, 410_100]),
        NotificationFormat::Wecom => (&["errcode"], &["errmsg"], &[45_009]),
        NotificationFormat::Lark => (
            &["code", "StatusCode"],
            &["msg", "StatusMessage"],
            &[11_232],
        ),
        _ => return Ok(()),
    };
    let Some(code) = code_field.iter().find_map(|f| value[*f].as_i64()) else {
        return Ok(());
    };
    if code == 0 {
        return Ok(());
    }
    let message = message_field
        .iter()
        .find_map(|f| value[*f].as_str())
        .unwrap_or_default()
        .to_string();
    Err(ReplyError {
        code,
        message,
        retryable: rate_limited.contains(&code),
    })
}

/// A robot's `2xx` response as an attempt's outcome: an error code in the body fails the
/// attempt (retried when the code is the robot's rate limit).
pub(super) async fn check_response(
    format: NotificationFormat,
    response: reqwest::Response,
    scrubber: &Scrubber,
) -> Result<u16, AttemptError> {
    let code = response.status().as_u16();
    if !matches!(
        format,
        NotificationFormat::Dingtalk | NotificationFormat::Wecom | NotificationFormat::Lark
    ) {
        return Ok(code);
    }
    let body = read_prefix(response, MAX_ERROR_BODY).await;
    check_reply(format, &body).map_err(|e| AttemptError {
        status: Some(code),
        retryable: e.retryable,
        retry_after: None,
        message: scrubber.text(&format!(
            "HTTP {code} with error code {}: {}",
            e.code,
            truncate(&e.message, MAX_ERROR_BODY)
        )),
    })?;
    Ok(code)
}

#[cfg(test)]
#[path = "im_tests.rs"]
mod tests;
