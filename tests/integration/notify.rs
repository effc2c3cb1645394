//! Notifications against a real HTTP receiver on 127.0.0.1 that records every request and answers
//! with scripted statuses: signatures verified independently of weir's signing code, the Slack
//! format, retries (503, 429, connection refused), no retry on 400, de-duplication, background
//! delivery, bounded concurrency and the delivery rows in a real store file.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use weir::notify::{
    DeliveryStatus, Event, EventKind, EventSelector, NotificationFormat, NotificationRoute,
    NotificationsConfig, Notifier, NotifierOptions, PlanInfo,
};
use weir::plan::Summary;
use weir::store::Store;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The secret's key bytes, decoded here independently of weir.
fn key_bytes() -> Vec<u8> {
    STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap()
}

// ---- the receiver ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Verifies the Standard Webhooks signature with `hmac` directly, as a receiver would.
    fn verify_signature(&self) -> Result<(), String> {
        let id = self.header("webhook-id").ok_or("no webhook-id")?;
        let ts = self
            .header("webhook-timestamp")
            .ok_or("no webhook-timestamp")?;
        let sigs = self
            .header("webhook-signature")
            .ok_or("no webhook-signature")?;
        let ts_num: i64 = ts.parse().map_err(|_| "bad timestamp")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if (now - ts_num).abs() > 300 {
            return Err(format!(
                "timestamp {ts_num} is not within 5 minutes of {now}"
            ));
        }
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&self.body);
        for sig in sigs.split(' ') {
            let Some(b64) = sig.strip_prefix("v1,") else {
                continue;
            };
            let Ok(bytes) = STANDARD.decode(b64) else {
                continue;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes()).unwrap();
            mac.update(&signed);
            if mac.verify_slice(&bytes).is_ok() {
                return Ok(());
            }
        }
        Err(format!("no valid v1 signature in {sigs:?}"))
    }
}

/// A scripted answer: status, `Retry-After`, body.
#[derive(Debug, Clone)]
struct Answer(u16, Option<&'static str>, String);

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    delay: Mutex<Duration>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_active.fetch_max(now, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    state
        .received
        .lock()
        .unwrap()
        .push(Received { uri, headers, body });
    let answer =
        state
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer(204, None, String::new()));
    state.active.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(answer.0).unwrap(), answer.2).into_response();
    if let Some(after) = answer.1 {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            state,
            server,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

// ---- helpers -----------------------------------------------------------------------------------

fn fast() -> NotifierOptions {
    NotifierOptions {
        max_attempts: 4,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        max_concurrency: 8,
    }
}

fn route(name: &str, format: NotificationFormat, secret: bool) -> NotificationRoute {
    NotificationRoute {
        name: name.into(),
        events: vec![EventSelector::All],
        format,
        url_from_env: Some(format!("{}_URL", name.to_uppercase())),
        secret_from_env: secret.then(|| format!("{}_SECRET", name.to_uppercase())),
        ..Default::default()
    }
}

fn config(window: Option<u64>, routes: Vec<NotificationRoute>) -> NotificationsConfig {
    NotificationsConfig {
        dedup_window_seconds: window,
        routes,
    }
}

fn env(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.into_iter().collect();
    move |k| map.get(k).cloned()
}

fn notifier(
    cfg: &NotificationsConfig,
    store: Option<Store>,
    vars: Vec<(String, String)>,
    options: NotifierOptions,
) -> Notifier {
    Notifier::from_config_with(cfg, store, env(vars), options).unwrap()
}

fn apply_succeeded(at_ms: i64) -> Event {
    Event::new(EventKind::ApplySucceeded, at_ms)
        .job("orders")
        .cluster("prod")
        .revision("4f2a9c1e0b7d")
        .author("Ada <ada@example.com>")
        .plan(PlanInfo {
            id: "plan-1".into(),
            summary: Summary {
                redeploy: 1,
                ..Summary::default()
            },
        })
        .savepoint("file:///tmp/sp/savepoint-1")
        .link("commit", "https://git.example.com/jobs/commit/4f2a9c1e0b7d")
        .message("redeployed from savepoint")
}

fn now_ms() -> i64 {
    weir::clock::now_ms()
}

// ---- tests -------------------------------------------------------------------------------------

#[tokio::test]
async fn signed_generic_delivery_is_verified_by_the_receiver() {
    let rx = Receiver::start().await;
    let cfg = config(
        None,
        vec![route("audit", NotificationFormat::Generic, true)],
    );
    let n = notifier(
        &cfg,
        None,
        vec![
            ("AUDIT_URL".into(), rx.url("/hooks/weir")),
            ("AUDIT_SECRET".into(), SECRET.into()),
        ],
        fast(),
    );
    let at = now_ms();
    let out = n.notify(apply_succeeded(at)).await;

    assert_eq!(out.len(), 1);
    let d = &out[0];
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(
        (d.attempts, d.status_code, d.error.as_deref()),
        (1, Some(204), None)
    );
    assert_eq!(d.route, "audit");
    assert_eq!(d.url, rx.url("/hooks/weir"));

    let got = rx.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.uri.path(), "/hooks/weir");
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.verify_signature().unwrap();
    assert_eq!(r.header("webhook-id"), Some(d.event_id.as_str()));
    let body = r.json();
    assert_eq!(body["id"], d.event_id);
    assert_eq!(body["event"], "apply.succeeded");
    assert_eq!(body["job"], "orders");
    assert_eq!(body["cluster"], "prod");
    assert_eq!(body["revision"], "4f2a9c1e0b7d");
    assert_eq!(body["author"], "Ada <ada@example.com>");
    assert_eq!(body["message"], "redeployed from savepoint");
    assert_eq!(body["plan"]["id"], "plan-1");
    assert_eq!(
        body["plan"]["summary"],
        "Plan: 0 to create, 1 to redeploy, 0 to delete."
    );
    assert_eq!(body["plan"]["changes"]["redeploy"], 1);
    assert_eq!(
        body["savepoints"],
        serde_json::json!(["file:///tmp/sp/savepoint-1"])
    );
    assert_eq!(
        body["links"]["commit"],
        "https://git.example.com/jobs/commit/4f2a9c1e0b7d"
    );
    assert_eq!(body["timestamp"], weir::clock::rfc3339(at));

    // A tampered body fails verification.
    let mut tampered = r.clone();
    tampered.body = Bytes::from(String::from_utf8_lossy(&r.body).replace("orders", "0rders"));
    assert!(tampered.verify_signature().is_err());
}

#[tokio::test]
async fn slack_format_is_a_slack_message() {
    let rx = Receiver::start().await;
    let cfg = config(None, vec![route("ops", NotificationFormat::Slack, false)]);
    let n = notifier(
        &cfg,
        None,
        vec![("OPS_URL".into(), rx.url("/slack"))],
        fast(),
    );
    let out = n
        .notify(
            Event::new(EventKind::ApplyFailed, now_ms())
                .job("orders")
                .cluster("prod")
                .message("submit failed: <jar> not found & retried"),
        )
        .await;
    assert_eq!(out[0].status, DeliveryStatus::Delivered, "{out:?}");
    let got = rx.received();
    let body = got[0].json();
    let text = body["text"].as_str().unwrap();
    assert_eq!(
        text,
        "Apply failed: orders on prod: submit failed: &lt;jar&gt; not found &amp; retried"
    );
    let section = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains(":x: *Apply failed* `orders` on `prod`"),
        "{section}"
    );
    assert!(
        section.contains("&lt;jar&gt; not found &amp; retried"),
        "{section}"
    );
    assert_eq!(body["blocks"][0]["type"], "section");
    assert_eq!(
        body["blocks"].as_array().unwrap().last().unwrap()["type"],
        "context"
    );
    // Unsigned route: id and timestamp, no signature.
    assert!(got[0].header("webhook-id").is_some());
    assert!(got[0].header("webhook-timestamp").is_some());
    assert!(got[0].header("webhook-signature").is_none());
}

#[tokio::test]
async fn retries_after_503_and_429_then_succeeds() {
    let rx = Receiver::start().await;
    rx.script([
        Answer(503, None, "busy".into()),
        Answer(429, Some("0"), String::new()),
    ]);
    let cfg = config(
        None,
        vec![route("audit", NotificationFormat::Generic, true)],
    );
    let n = notifier(
        &cfg,
        None,
        vec![
            ("AUDIT_URL".into(), rx.url("/h")),
            ("AUDIT_SECRET".into(), SECRET.into()),
        ],
        fast(),
    );
    let out = n.notify(apply_succeeded(now_ms())).await;
    let d = &out[0];
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!((d.attempts, d.status_code), (3, Some(204)));

    let got = rx.received();
    assert_eq!(got.len(), 3);
    for r in &got {
        // Every attempt is signed afresh, with the same id and body.
        r.verify_signature().unwrap();
        assert_eq!(r.header("webhook-id"), Some(d.event_id.as_str()));
        assert_eq!(r.body, got[0].body);
    }
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let rx = Receiver::start().await;
    rx.script((0..10).map(|_| Answer(500, None, "internal error".into())));
    let cfg = config(
        None,
        vec![route("audit", NotificationFormat::Generic, false)],
    );
    let n = notifier(&cfg, None, vec![("AUDIT_URL".into(), rx.url("/h"))], fast());
    let out = n.notify(apply_succeeded(now_ms())).await;
    let d = &out[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!((d.attempts, d.status_code), (4, Some(500)));
    assert_eq!(
        d.error.as_deref(),
        Some("HTTP 500 Internal Server Error: internal error")
    );
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test]
async fn no_retry_on_400() {
    let rx = Receiver::start().await;
    rx.script([Answer(400, None, "invalid_payload".into())]);
    let cfg = config(None, vec![route("ops", NotificationFormat::Slack, false)]);
    let n = notifier(&cfg, None, vec![("OPS_URL".into(), rx.url("/h"))], fast());
    let out = n.notify(apply_succeeded(now_ms())).await;
    let d = &out[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!((d.attempts, d.status_code), (1, Some(400)));
    assert_eq!(
        d.error.as_deref(),
        Some("HTTP 400 Bad Request: invalid_payload")
    );
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn connection_errors_are_retried_and_reported_without_the_url_token() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(None, vec![route("ops", NotificationFormat::Generic, false)]);
    let url = format!("http://127.0.0.1:{port}/hook?token=s3cr3t-t0ken");
    let n = notifier(&cfg, None, vec![("OPS_URL".into(), url)], fast());
    let out = n.notify(apply_succeeded(now_ms())).await;
    let d = &out[0];
    assert_eq!(d.status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!((d.attempts, d.status_code), (4, None));
    let error = d.error.as_deref().unwrap();
    assert!(!error.contains("s3cr3t-t0ken"), "{error}");
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert_eq!(d.url, format!("http://127.0.0.1:{port}/hook"));
}

#[tokio::test]
async fn identical_events_are_sent_once_per_window() {
    let rx = Receiver::start().await;
    let cfg = config(
        Some(300),
        vec![
            route("ops", NotificationFormat::Slack, false),
            route("audit", NotificationFormat::Generic, false),
        ],
    );
    let n = notifier(
        &cfg,
        None,
        vec![
            ("OPS_URL".into(), rx.url("/ops")),
            ("AUDIT_URL".into(), rx.url("/audit")),
        ],
        fast(),
    );
    let drift = |at: i64, msg: &str| {
        Event::new(EventKind::DriftDetected, at)
            .job("orders")
            .cluster("prod")
            .revision("abc")
            .message(msg.to_string())
    };
    let t0 = 1_700_000_000_000;
    let statuses = |out: Vec<weir::notify::Delivery>| -> Vec<DeliveryStatus> {
        out.into_iter().map(|d| d.status).collect()
    };
    use DeliveryStatus::{Delivered, Suppressed};

    assert_eq!(
        statuses(n.notify(drift(t0, "FAILED")).await),
        [Delivered, Delivered]
    );
    // The same event within the window (even with other links or author) is suppressed.
    let again = drift(t0 + 60_000, "FAILED")
        .author("someone")
        .link("x", "https://x/");
    let out = n.notify(again).await;
    assert_eq!(out[0].attempts, 0);
    assert_eq!(statuses(out), [Suppressed, Suppressed]);
    // A different message is a different event.
    assert_eq!(
        statuses(n.notify(drift(t0 + 61_000, "CANCELED")).await),
        [Delivered, Delivered]
    );
    // Clones share the window.
    assert_eq!(
        statuses(n.clone().notify(drift(t0 + 299_999, "FAILED")).await),
        [Suppressed, Suppressed]
    );
    // After the window the event is sent again.
    assert_eq!(
        statuses(n.notify(drift(t0 + 300_000, "FAILED")).await),
        [Delivered, Delivered]
    );
    assert_eq!(rx.received().len(), 6);

    // A failed delivery does not hold the slot: the next identical event is tried again.
    rx.script([Answer(400, None, String::new())]);
    let out = n.notify(drift(t0, "other")).await;
    let failed: Vec<_> = out
        .iter()
        .filter(|d| d.status == DeliveryStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{out:?}");
    let failed_route = failed[0].route.clone();
    let out = n.notify(drift(t0 + 1, "other")).await;
    for d in out {
        let expected = if d.route == failed_route {
            Delivered
        } else {
            Suppressed
        };
        assert_eq!(d.status, expected, "{d:?}");
    }
}

#[tokio::test]
async fn window_zero_sends_every_event_and_routes_filter_events() {
    let rx = Receiver::start().await;
    let mut only_failures = route("ops", NotificationFormat::Generic, false);
    only_failures.events = vec![EventSelector::ApplyFailed, EventSelector::JobFailed];
    let cfg = config(Some(0), vec![only_failures]);
    let n = notifier(&cfg, None, vec![("OPS_URL".into(), rx.url("/h"))], fast());
    let ev = || Event::new(EventKind::JobFailed, 0).job("a");
    assert_eq!(n.notify(ev()).await.len(), 1);
    assert_eq!(n.notify(ev()).await[0].status, DeliveryStatus::Delivered);
    assert!(
        n.notify(Event::new(EventKind::PlanReady, 0))
            .await
            .is_empty()
    );
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn deliveries_are_recorded_in_the_store_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let rx = Receiver::start().await;
    rx.script([
        Answer(503, Some("0"), String::new()),
        // The receiver echoes the token in its error body: it must not reach the store.
        Answer(
            403,
            None,
            "forbidden for token=tok-123456789 (secret whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD)"
                .into(),
        ),
    ]);
    let cfg = config(
        None,
        vec![
            route("ops", NotificationFormat::Slack, false),
            route("audit", NotificationFormat::Generic, true),
        ],
    );
    let n = notifier(
        &cfg,
        Some(store.clone()),
        vec![
            ("OPS_URL".into(), rx.url("/ops?token=tok-123456789")),
            ("AUDIT_URL".into(), rx.url("/audit")),
            ("AUDIT_SECRET".into(), SECRET.into()),
        ],
        NotifierOptions {
            max_concurrency: 1,
            ..fast()
        },
    );
    let at = now_ms();
    let out = n.notify(apply_succeeded(at)).await;
    assert_eq!(out.len(), 2);
    let event_id = out[0].event_id.clone();
    assert_eq!(out[1].event_id, event_id);
    n.notify(Event::new(EventKind::RepoUnreachable, at + 1).message("fetch failed"))
        .await;

    let rows = store.deliveries(Some(&event_id), 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    let mut by_route: HashMap<String, weir::notify::Delivery> =
        rows.into_iter().map(|d| (d.route.clone(), d)).collect();
    let ops = by_route.remove("ops").unwrap();
    let audit = by_route.remove("audit").unwrap();
    // Which route met which scripted answer depends on the order of the requests; with one
    // request at a time, the first two requests got 503 and 403.
    let (failed, ok) = if ops.status == DeliveryStatus::Failed {
        (ops, audit)
    } else {
        (audit, ops)
    };
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.status_code, Some(403));
    assert_eq!(ok.status, DeliveryStatus::Delivered);
    assert_eq!(ok.status_code, Some(204));
    assert_eq!(failed.attempts + ok.attempts, 3);
    for d in [&failed, &ok] {
        assert_eq!(d.event, EventKind::ApplySucceeded);
        assert_eq!(d.job.as_deref(), Some("orders"));
        assert_eq!(d.cluster.as_deref(), Some("prod"));
        assert_eq!(d.revision.as_deref(), Some("4f2a9c1e0b7d"));
        assert_eq!(d.event_at_ms, at);
        assert!(d.started_at_ms <= d.finished_at_ms);
        assert!(!d.url.contains('?'), "{}", d.url);
    }
    let error = failed.error.as_deref().unwrap();
    assert_eq!(
        error,
        "HTTP 403 Forbidden: forbidden for <redacted> (secret <redacted>)"
    );
    assert!(!error.contains("tok-123456789"), "{error}");
    assert!(!error.contains("C2FVsBQIhrscChlQIMV"), "{error}");

    // Everything in the store, as text: no URL token, no secret.
    let all = store.deliveries(None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    let dump = serde_json::to_string(&all).unwrap();
    assert!(!dump.contains("tok-123456789"), "{dump}");
    assert!(!dump.contains("C2FVsBQIhrscChlQIMV"), "{dump}");
    let totals = store.delivery_totals().await.unwrap();
    assert_eq!(totals.values().sum::<u64>(), 4);
    store.close().await;

    // The rows survive reopening the file.
    let reopened = Store::open(&dir.path().join("state.db")).await.unwrap();
    assert_eq!(reopened.deliveries(None, 100).await.unwrap(), all);
}

#[tokio::test]
async fn background_deliveries_are_flushed() {
    let rx = Receiver::start().await;
    *rx.state.delay.lock().unwrap() = Duration::from_millis(100);
    let cfg = config(
        Some(0),
        vec![route("audit", NotificationFormat::Generic, false)],
    );
    let n = notifier(&cfg, None, vec![("AUDIT_URL".into(), rx.url("/h"))], fast());
    let handles: Vec<_> = (0..3)
        .map(|i| n.spawn(Event::new(EventKind::JobRecovered, i).job(format!("job-{i}"))))
        .collect();
    assert!(n.in_flight() > 0);
    tokio::time::timeout(Duration::from_secs(10), n.flush())
        .await
        .expect("flush returns once the deliveries ended");
    assert_eq!(n.in_flight(), 0);
    assert_eq!(rx.received().len(), 3);
    for h in handles {
        assert_eq!(h.await.unwrap()[0].status, DeliveryStatus::Delivered);
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let rx = Receiver::start().await;
    *rx.state.delay.lock().unwrap() = Duration::from_millis(50);
    let cfg = config(
        Some(0),
        vec![
            route("a", NotificationFormat::Generic, false),
            route("b", NotificationFormat::Slack, false),
        ],
    );
    let n = notifier(
        &cfg,
        None,
        vec![
            ("A_URL".into(), rx.url("/a")),
            ("B_URL".into(), rx.url("/b")),
        ],
        NotifierOptions {
            max_concurrency: 2,
            ..fast()
        },
    );
    let events = (0..4).map(|i| n.notify(Event::new(EventKind::PlanReady, i)));
    let results = futures::future::join_all(events).await;
    assert!(
        results
            .iter()
            .flatten()
            .all(|d| d.status == DeliveryStatus::Delivered)
    );
    assert_eq!(rx.received().len(), 8);
    let max = rx.state.max_active.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} requests at once");
}

/// Collects what the tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_urls_tokens_or_secrets() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rx = Receiver::start().await;
    rx.script([
        Answer(500, None, "echo token=tok-987654321".into()),
        Answer(400, None, "nope".into()),
    ]);
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(
        None,
        vec![
            route("audit", NotificationFormat::Generic, true),
            route("down", NotificationFormat::Generic, false),
        ],
    );
    let n = notifier(
        &cfg,
        None,
        vec![
            ("AUDIT_URL".into(), rx.url("/a?token=tok-987654321")),
            ("AUDIT_SECRET".into(), SECRET.into()),
            (
                "DOWN_URL".into(),
                format!("http://user:pa55w0rd-x@127.0.0.1:{closed_port}/d?sig=sig-123456789"),
            ),
        ],
        fast(),
    );
    let out = n
        .notify(apply_succeeded(now_ms()).message("see http://127.0.0.1/x?token=tok-987654321"))
        .await;
    assert!(
        out.iter().all(|d| d.status == DeliveryStatus::Failed),
        "{out:?}"
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("notification not delivered"), "{text}");
    assert!(text.contains("notification attempt failed"), "{text}");
    for leaked in [
        "tok-987654321",
        "pa55w0rd-x",
        "sig-123456789",
        "C2FVsBQIhrscChlQIMV",
    ] {
        assert!(!text.contains(leaked), "{leaked} in logs:\n{text}");
    }
    // The received payload is scrubbed too.
    for r in rx.received() {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(!body.contains("tok-987654321"), "{body}");
    }
}
