//! Fast tests of the console: pages rendered from typed data, and the real router served on a
//! local port (cookies, CSRF, sign-in, approval through the API's code path, secrets).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::serve::config::DaemonConfig;
use crate::serve::reconcile::{
    ApplyRefusal, BlockedInfo, ClusterStatus, JobStatus, PlanInfo, Shared, Status,
};
use crate::serve::server::{JobRow, JobsOverview, Secrets, router as api_router};
use crate::store::Store;

const TOKEN: &str = "tok-console-SECRET-5f1e";
const HOSTILE: &str = "<script>alert(1)</script>";

fn job(name: &str, cluster: &str, sync: &str, health: &str) -> JobStatus {
    JobStatus {
        name: name.into(),
        cluster: cluster.into(),
        sync: sync.into(),
        health: health.into(),
        job_id: "3efa3ff3bf4fe7f49bf7e20002000002".into(),
        last_savepoint: "-".into(),
        drift: None,
        file: Some(format!("jobs/{name}.yaml").into()),
        self_heal: None,
        policy: None,
        applying: None,
        flink_version: Some("2.3.0".into()),
        labels: Default::default(),
        job_health: None,
        job_health_reasons: Vec::new(),
    }
}

fn status() -> Status {
    let mut clusters = BTreeMap::new();
    clusters.insert(
        "main".to_string(),
        ClusterStatus {
            url: "http://flink:8081".into(),
            reachable: true,
            error: None,
            last_sync_at_ms: Some(1),
        },
    );
    let mut hostile = job(HOSTILE, "main", "OutOfSync", "FAILED");
    hostile.drift = Some("<img src=x onerror=alert(2)>".into());
    Status {
        jobs: vec![
            job("orders", "main", "Synced", "RUNNING"),
            job("payments", "main", "OutOfSync", "RUNNING"),
            hostile,
        ],
        clusters,
        pending_plan: Some(PlanInfo {
            id: "plan-1".into(),
            revision: "abc".into(),
            summary: "Plan: 1 to redeploy.".into(),
            created_at_ms: 1,
        }),
        blocked: vec![BlockedInfo {
            job: "payments".into(),
            revision: "abc".into(),
            apply_id: "apply-0".into(),
            error: "</td><b>boom".into(),
            kind: Default::default(),
        }],
        ..Status::default()
    }
}

fn frame() -> Frame {
    Frame {
        csrf: "0".repeat(32),
        signed_in: false,
        here: "/".into(),
    }
}

fn overview(s: &Status) -> JobsOverview {
    JobsOverview {
        jobs: s
            .jobs
            .iter()
            .map(|j| JobRow {
                status: j.clone(),
                labels: [("team".to_string(), format!("team-{}", j.name.len() % 2))].into(),
                last_savepoint_at_ms: None,
                last_apply: None,
            })
            .collect(),
    }
}

#[test]
fn hostile_names_are_escaped_on_the_jobs_page() {
    let s = status();
    let html = jobs_page(&frame(), &s, &overview(&s), &JobsFilter::default()).into_string();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The link to its page is percent-encoded, not raw.
    assert!(
        html.contains("/jobs/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"),
        "{html}"
    );
}

#[test]
fn the_jobs_page_counts_every_job_and_filters_narrow_the_rows() {
    let s = status();
    let ov = overview(&s);
    let html = jobs_page(&frame(), &s, &ov, &JobsFilter::default()).into_string();
    assert!(html.contains("Showing 3 of 3 jobs"), "{html}");
    // Each job's cluster Flink version has a column.
    assert!(html.contains(r#"<th scope="col">Flink</th>"#), "{html}");
    assert!(html.contains("<td>2.3.0</td>"), "{html}");
    // Blocked is shown as a sync label with its word, next to the daemon's own state.
    assert!(html.contains("Blocked"));
    let filter = JobsFilter {
        sync: Some("Synced".into()),
        ..JobsFilter::default()
    };
    let html = jobs_page(&frame(), &s, &ov, &filter).into_string();
    assert!(html.contains("Showing 1 of 3 jobs"), "{html}");
    assert!(html.contains("href=\"/jobs/orders\""));
    assert!(!html.contains("href=\"/jobs/payments\""));
    let by_name = JobsFilter {
        q: Some("PAY".into()),
        ..JobsFilter::default()
    };
    let html = jobs_page(&frame(), &s, &ov, &by_name).into_string();
    assert!(html.contains("Showing 1 of 3 jobs"), "{html}");
    let by_label = JobsFilter {
        label: Some("team=team-0".into()),
        ..JobsFilter::default()
    };
    // `orders` and `payments` have names of even length: team-0.
    let html = jobs_page(&frame(), &s, &ov, &by_label).into_string();
    assert!(html.contains("Showing 2 of 3 jobs"), "{html}");
    // The chosen filter stays selected (it lives in the query string).
    assert!(
        html.contains("<option value=\"team=team-0\" selected>"),
        "{html}"
    );
}

#[test]
fn a_rolled_back_job_is_labelled_and_health_filters_the_rows() {
    use crate::lifecycle::health::Health;
    use crate::serve::reconcile::BlockKind;
    let mut s = status();
    s.blocked[0].kind = BlockKind::RolledBack;
    s.jobs[0].job_health = Some(Health::Degraded);
    let ov = overview(&s);
    let html = jobs_page(&frame(), &s, &ov, &JobsFilter::default()).into_string();
    assert!(html.contains("RolledBack"), "{html}");
    let by_sync = JobsFilter {
        sync: Some("RolledBack".into()),
        ..JobsFilter::default()
    };
    let html = jobs_page(&frame(), &s, &ov, &by_sync).into_string();
    assert!(html.contains("Showing 1 of 3 jobs"), "{html}");
    assert!(html.contains("href=\"/jobs/payments\""), "{html}");
    let by_health = JobsFilter {
        health: Some("degraded".into()),
        ..JobsFilter::default()
    };
    let html = jobs_page(&frame(), &s, &ov, &by_health).into_string();
    assert!(html.contains("Showing 1 of 3 jobs"), "{html}");
    assert!(html.contains("href=\"/jobs/orders\""), "{html}");
    assert!(!html.contains("href=\"/jobs/payments\""), "{html}");
}

#[test]
fn sql_is_highlighted_and_escaped() {
    let html = highlight_sql("SELECT '<b>' FROM t -- </pre>\nWHERE x > 1").into_string();
    assert!(html.contains("<span class=\"k\">SELECT</span>"), "{html}");
    assert!(
        html.contains("<span class=\"s\">&#39;&lt;b&gt;&#39;</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"c\">-- &lt;/pre&gt;</span>"),
        "{html}"
    );
    assert!(html.contains("x &gt; <span class=\"n\">1</span>"), "{html}");
    assert!(!html.contains("<b>") && !html.contains("</pre>"));
}

#[test]
fn the_flink_ui_link_uses_its_routes_and_drops_credentials() {
    assert_eq!(
        flink_ui_link("http://u:pw@flink:8081/", "abc", "RUNNING").as_deref(),
        Some("http://flink:8081/#/job/running/abc/overview")
    );
    assert_eq!(
        flink_ui_link("http://flink:8081", "abc", "FAILED").as_deref(),
        Some("http://flink:8081/#/job/completed/abc/overview")
    );
    assert_eq!(flink_ui_link("http://flink:8081", "-", "-"), None);
}

#[test]
fn cookies_are_http_only_and_same_site_strict() {
    let c = set_cookie(TOKEN_COOKIE, "t", Some(60));
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, "a=1; weir_csrf=xyz".parse().unwrap());
    assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
    assert_eq!(local_path(Some("//evil.example/")), "/");
    assert_eq!(local_path(Some("https://evil.example/")), "/");
    assert_eq!(local_path(Some("/jobs/a?x=1")), "/jobs/a?x=1");
}

/// The daemon's router on a local port, with a stand-in worker answering approvals.
struct Served {
    base: String,
    client: reqwest::Client,
    approved: Arc<std::sync::Mutex<Vec<String>>>,
    _cancel: CancellationToken,
}

async fn serve(reads_need_token: bool, stale: bool) -> Served {
    let yaml = format!(
        "repo:\n  url: /nowhere\n  branch: main\napi:\n  requireTokenForReads: {reads_need_token}\n"
    );
    let cfg = DaemonConfig::parse(&yaml).unwrap();
    let store = Store::open_in_memory().await.unwrap();
    let cancel = CancellationToken::new();
    let (shared, mut apply_rx) = Shared::new(cfg, store, status(), cancel.clone());
    let approved = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = approved.clone();
    tokio::spawn(async move {
        while let Some(req) = apply_rx.recv().await {
            seen.lock().unwrap().push(req.plan_id.clone());
            let answer = if stale {
                Err(ApplyRefusal::Stale(crate::engine::Stale::Empty))
            } else {
                Ok("apply-1".to_string())
            };
            let _ = req.reply.send(answer);
        }
    });
    let app = api_router(AppState {
        shared,
        secrets: Arc::new(Secrets {
            api_tokens: vec![TOKEN.into()],
            github: Some("gh-SECRET-9a".into()),
            gitlab: None,
            generic: None,
        }),
        previews: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Served {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        approved,
        _cancel: cancel,
    }
}

const CSRF: &str = "0123456789abcdef0123456789abcdef";

impl Served {
    async fn get(&self, path: &str, cookies: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, cookies: &str, form: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", cookies)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn approving_needs_the_csrf_token_and_an_api_token() {
    let s = serve(false, false).await;
    let csrf = format!("weir_csrf={CSRF}");
    // No CSRF field: refused before anything else.
    let r = s
        .post(
            "/plans/plan-1/approve",
            &format!("{csrf}; weir_token={TOKEN}"),
            "",
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // A field that is not the cookie's: refused.
    let r = s
        .post(
            "/plans/plan-1/approve",
            &format!("{csrf}; weir_token={TOKEN}"),
            &format!("csrf={}", "f".repeat(32)),
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // CSRF right, no token: refused, and the worker never heard of it.
    let r = s
        .post("/plans/plan-1/approve", &csrf, &format!("csrf={CSRF}"))
        .await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("Sign in"));
    let r = s
        .post(
            "/plans/plan-1/approve",
            &format!("{csrf}; weir_token=wrong"),
            &format!("csrf={CSRF}"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(s.approved.lock().unwrap().is_empty());
    // Both: the plan goes to the worker, the browser to the apply's page.
    let r = s
        .post(
            "/plans/plan-1/approve",
            &format!("{csrf}; weir_token={TOKEN}"),
            &format!("csrf={CSRF}"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/applies/apply-1");
    assert_eq!(*s.approved.lock().unwrap(), vec!["plan-1".to_string()]);
}

#[tokio::test]
async fn a_stale_plan_is_refused_as_the_api_refuses_it() {
    let s = serve(false, true).await;
    let r = s
        .post(
            "/plans/plan-1/approve",
            &format!("weir_csrf={CSRF}; weir_token={TOKEN}"),
            &format!("csrf={CSRF}"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().await.unwrap().contains("stale"));
}

#[tokio::test]
async fn signing_in_sets_the_token_cookie_only_for_a_valid_token() {
    let s = serve(false, false).await;
    let csrf = format!("weir_csrf={CSRF}");
    let r = s
        .post(
            "/login",
            &csrf,
            &format!("csrf={CSRF}&token=nope&next=/settings"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("weir_token"))
    );
    let r = s
        .post(
            "/login",
            "",
            &format!("csrf={CSRF}&token={TOKEN}&next=/settings"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "no CSRF cookie: refused");
    let r = s
        .post(
            "/login",
            &csrf,
            &format!("csrf={CSRF}&token={TOKEN}&next=//evil.example"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("weir_token=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A first visit gets a CSRF cookie of the same kind.
    let r = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    let c = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        c.starts_with("weir_csrf=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
}

#[tokio::test]
async fn with_require_token_for_reads_the_console_asks_for_the_token() {
    let s = serve(true, false).await;
    for path in ["/", "/jobs/orders", "/plans", "/settings", "/pulls"] {
        let (code, body) = s.get(path, "").await;
        assert_eq!(code, 401, "{path}");
        assert!(body.contains("name=\"token\""), "{path}: {body}");
        assert!(
            !body.contains("orders") || path == "/jobs/orders",
            "{path}: {body}"
        );
    }
    let (code, body) = s.get("/", &format!("weir_token={TOKEN}")).await;
    assert_eq!(code, 200);
    assert!(body.contains("orders"));
}

#[tokio::test]
async fn secrets_never_reach_a_page() {
    let s = serve(false, false).await;
    let signed_in = format!("weir_csrf={CSRF}; weir_token={TOKEN}");
    for path in [
        "/",
        "/?q=ord",
        "/jobs/orders",
        "/plans",
        "/plans/plan-1",
        "/pulls",
        "/settings",
        "/login",
        "/applies/none",
        "/assets/console.js",
        "/assets/console.css",
    ] {
        for cookies in ["", signed_in.as_str()] {
            let (code, body) = s.get(path, cookies).await;
            assert!(code < 500, "{path}: {code}");
            assert!(!body.contains(TOKEN), "{path} shows the API token");
            assert!(
                !body.contains("gh-SECRET-9a"),
                "{path} shows the webhook secret"
            );
        }
    }
    let (code, body) = s.get("/jobs/orders", "").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.get("/jobs/nope", "").await;
    assert_eq!(code, 404);
    assert!(body.contains("no job"));
    let (_, body) = s.get("/", "").await;
    assert!(body.contains("Showing 3 of 3 jobs"));
}

#[test]
fn the_job_page_escapes_hostile_args_and_sql_and_shows_the_pending_change() {
    use crate::serve::server::{JobDetail, PendingChange};
    let s = status();
    let definition = serde_json::json!({
        "file": "jobs/orders.yaml", "parallelism": 2, "upgradeMode": "savepoint", "state": "running",
        "program": {"kind": "sql", "script": "SELECT '<script>x</script>' FROM t", "args": ["--x", HOSTILE]},
    });
    let detail = JobDetail {
        job: s.jobs[1].clone(),
        history: Vec::new(),
        savepoints: Vec::new(),
        definition: Some(definition),
        lineage: crate::audit::Lineage {
            job: "payments".into(),
            savepoints: Vec::new(),
        },
        applies: Vec::new(),
        pending_change: Some(PendingChange {
            plan_id: "plan-1".into(),
            change: serde_json::json!({
                "action": "redeploy", "reason": "args changed <b>",
                "diff": [{"field": "args", "severity": "redeploy", "before": "--x\na", "after": "--x\n<script>"}],
            }),
        }),
    };
    let html = job_page(&frame(), &s, &detail).into_string();
    assert!(
        !html.contains("<script>x") && !html.contains("<script>alert") && !html.contains("<b>"),
        "{html}"
    );
    assert!(html.contains("<span class=\"k\">SELECT</span>"), "{html}");
    assert!(
        html.contains("Why it is out of sync") && html.contains("+&lt;script&gt;"),
        "{html}"
    );
    // The blocked apply is explained, and Flink's UI is linked.
    assert!(
        html.contains("Blocked.") && html.contains("&lt;/td&gt;&lt;b&gt;boom"),
        "{html}"
    );
    assert!(
        html.contains("http://flink:8081/#/job/running/3efa3ff3bf4fe7f49bf7e20002000002/overview")
    );
}

#[test]
fn the_settings_page_lists_routes_with_masked_destinations_and_the_unusable_ones() {
    use crate::notify::{Notifier, NotifierOptions};
    use crate::serve::server::NotificationRoutes;
    use crate::spec::{EventSelector, NotificationFormat, NotificationRoute, NotificationsConfig};
    let secret_url =
        "https://hooks.example.com/services/T0A1B2C3/B9Z8Y7X6/s3cr3tT0kenValue42?sig=qq77";
    let config = NotificationsConfig {
        dedup_window_seconds: None,
        routes: vec![
            NotificationRoute {
                name: "ops-slack".into(),
                events: vec![EventSelector::ApplyFailed, EventSelector::JobFailed],
                format: NotificationFormat::Slack,
                url_from_env: Some("OPS_SLACK_URL".into()),
                ..NotificationRoute::default()
            },
            NotificationRoute {
                name: "audit-hook".into(),
                events: vec![EventSelector::All],
                url_from_env: Some("UNSET_HOOK_URL".into()),
                ..NotificationRoute::default()
            },
        ],
    };
    let (notifier, errors) = Notifier::from_config_lenient(
        &config,
        None,
        |name| (name == "OPS_SLACK_URL").then(|| secret_url.to_string()),
        NotifierOptions::default(),
    );
    let routes = NotificationRoutes {
        routes: notifier.summaries(),
        problems: errors.iter().map(|e| crate::text::error_chain(e)).collect(),
    };
    assert_eq!(routes.routes.len(), 1);
    assert_eq!(routes.routes[0].events, ["apply.failed", "job.failed"]);
    let cfg = DaemonConfig::parse("repo:\n  url: /nowhere\n  branch: main\n").unwrap();
    let html = settings_page(&frame(), &status(), &cfg, &routes).into_string();
    assert!(html.contains("ops-slack"), "{html}");
    assert!(
        html.contains("https://hooks.example.com/services/"),
        "{html}"
    );
    assert!(
        html.contains("audit-hook") && html.contains("UNSET_HOOK_URL"),
        "{html}"
    );
    for secret in ["s3cr3tT0kenValue42", "sig=qq77", secret_url] {
        assert!(!html.contains(secret), "{secret} leaked: {html}");
    }
}
