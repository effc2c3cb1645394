//! Email notifications against a real SMTP server: `tests/support/smtp_sink.py` (aiosmtpd) run
//! as a subprocess on a free local port, with STARTTLS or implicit TLS (a certificate from a CA
//! made here) and authentication. The messages it received are read back from its directory.
//! Needs `python3` with `aiosmtpd` (`python3 -m pip install aiosmtpd`; scripts/test.sh does it);
//! no Flink.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir::notify::{
    DeliveryStatus, Event, EventKind, EventSelector, NotificationFormat, NotificationRoute,
    NotificationsConfig, Notifier, NotifierOptions, PlanInfo,
};
use weir::plan::Summary;
use weir::store::Store;

use crate::daemon::{Options, Remote};
use crate::harness::{Repo, Version, cluster, jar_job, running_named};

pub(crate) const SMTP_USER: &str = "weir-mailer";
pub(crate) const SMTP_PASSWORD: &str = "smtp-pa55word-do-not-leak";

/// How the sink protects its port.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Tls {
    Plain,
    Starttls,
    Implicit,
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "weir test mail CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The aiosmtpd process; killed when dropped.
pub(crate) struct SmtpSink {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    _certs: Option<Certs>,
}

impl SmtpSink {
    pub(crate) fn start(tls: Tls, auth: bool, fail_first: u32) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .args(["--fail-first", &fail_first.to_string()]);
        let certs = (tls != Tls::Plain).then(Certs::new);
        if let Some(certs) = &certs {
            let mode = if tls == Tls::Starttls {
                "starttls"
            } else {
                "implicit"
            };
            cmd.args(["--tls", mode])
                .arg("--cert")
                .arg(certs.path("cert.pem"))
                .arg("--key")
                .arg(certs.path("key.pem"));
        }
        if auth {
            cmd.args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/support/smtp_sink.py (needs `pip install aiosmtpd`)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the SMTP sink did not start (is aiosmtpd installed?)"
        );
        SmtpSink {
            child,
            port,
            dir,
            _certs: certs,
        }
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self._certs.as_ref().unwrap().path("ca.pem")
    }

    /// The `n`th message received (1-based) and its envelope, waiting up to `timeout`.
    pub(crate) fn message(&self, n: usize, timeout: Duration) -> (String, Value) {
        let eml = self.dir.path().join(format!("{n}.eml"));
        let deadline = Instant::now() + timeout;
        while !eml.exists() {
            assert!(
                Instant::now() < deadline,
                "no message {n} reached the SMTP server within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let raw = std::fs::read_to_string(&eml).unwrap();
        let envelope = std::fs::read_to_string(self.dir.path().join(format!("{n}.json"))).unwrap();
        (raw, serde_json::from_str(&envelope).unwrap())
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MIME part's body decoded from quoted-printable (soft line breaks, `=XX`) enough to read.
pub(crate) fn unfold(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn email_route(events: Vec<EventSelector>) -> NotificationRoute {
    NotificationRoute {
        name: "mail".into(),
        events,
        format: NotificationFormat::Email,
        smtp_url_from_env: Some("WEIR_SMTP_URL".into()),
        from: Some("weir <weir@example.com>".into()),
        to: vec![
            "ops@example.com".into(),
            "On Call <oncall@example.com>".into(),
        ],
        ..Default::default()
    }
}

fn notifier(smtp_url: String, store: Option<Store>) -> Notifier {
    let config = NotificationsConfig {
        dedup_window_seconds: Some(300),
        routes: vec![email_route(vec![EventSelector::All])],
    };
    Notifier::from_config_with(
        &config,
        store,
        move |var| (var == "WEIR_SMTP_URL").then(|| smtp_url.clone()),
        NotifierOptions {
            max_attempts: 3,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
            max_concurrency: 2,
        },
    )
    .unwrap()
}

fn now_ms() -> i64 {
    weir::clock::now_ms()
}

fn apply_failed() -> Event {
    Event::new(EventKind::ApplyFailed, now_ms())
        .job("orders")
        .cluster("prod")
        .revision("4f2a9c1e0b7d4f2a9c1e0b7d")
        .author("Ada <ada@example.com>")
        .plan(PlanInfo {
            id: "plan-7".into(),
            summary: Summary {
                redeploy: 1,
                ..Summary::default()
            },
        })
        .link("commit", "https://git.example.com/acme/jobs/commit/4f2a9c1")
        .link("flink", "http://flink-prod:8081/#/job/running")
        .message(format!(
            "submit failed: <html-ish> & the server said auth {SMTP_USER}:{SMTP_PASSWORD} failed"
        ))
}

/// Headers, both parts, links, and (when the route knows the password: it is in its SMTP URL)
/// no password anywhere in what the server received.
fn assert_email(raw: &str, envelope: &Value, password_known: bool) {
    assert_eq!(envelope["from"], "weir@example.com", "{envelope}");
    assert_eq!(
        envelope["to"],
        serde_json::json!(["ops@example.com", "oncall@example.com"]),
        "{envelope}"
    );
    let text = unfold(raw);
    assert!(text.contains("From: weir <weir@example.com>"), "{text}");
    assert!(
        text.contains("To: ops@example.com, \"On Call\" <oncall@example.com>")
            || text.contains("To: ops@example.com, On Call <oncall@example.com>"),
        "{text}"
    );
    assert!(
        text.contains("Subject: [weir] Apply failed: orders on prod"),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: multipart/alternative"),
        "{text}"
    );
    let plain_at = text
        .find("Content-Type: text/plain")
        .expect("a plain-text part");
    let html_at = text.find("Content-Type: text/html").expect("an HTML part");
    let (plain, html) = (&text[plain_at..html_at], &text[html_at..]);
    assert!(
        plain.contains("submit failed: <html-ish> & the server"),
        "{plain}"
    );
    assert!(plain.contains("Job: orders"), "{plain}");
    assert!(plain.contains("Cluster: prod"), "{plain}");
    assert!(
        plain.contains("Plan: Plan: 0 to create, 1 to redeploy, 0 to delete."),
        "{plain}"
    );
    assert!(
        plain.contains("commit: https://git.example.com/acme/jobs/commit/4f2a9c1"),
        "{plain}"
    );
    assert!(
        html.contains("<h2>Apply failed: orders on prod</h2>"),
        "{html}"
    );
    assert!(html.contains("&lt;html-ish&gt; &amp; the server"), "{html}");
    assert!(
        html.contains("<a href=\"http://flink-prod:8081/#/job/running\">flink</a>"),
        "{html}"
    );
    assert!(!password_known || !text.contains(SMTP_PASSWORD), "{text}");
}

/// STARTTLS (required) with authentication: the message arrives encrypted and authenticated,
/// with both parts, and without the SMTP password (which the event's message contained).
/// The delivery is recorded in the store; an identical event is de-duplicated.
#[tokio::test]
async fn email_over_starttls_with_auth_reaches_a_real_smtp_server() {
    let sink = SmtpSink::start(Tls::Starttls, true, 0);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let url = format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?cafile={}",
        sink.port,
        sink.ca_file().display()
    );
    let n = notifier(url, Some(store.clone()));
    let event = apply_failed();
    let d = n.notify(event.clone()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d[0].status_code, Some(250));
    assert_eq!(d[0].url, format!("smtp://127.0.0.1:{}", sink.port));
    let (raw, envelope) = sink.message(1, Duration::from_secs(10));
    assert_eq!(envelope["encrypted"], true, "{envelope}");
    assert_eq!(envelope["user"], SMTP_USER, "{envelope}");
    assert_email(&raw, &envelope, true);

    // The same event again: suppressed, nothing sent.
    let again = n.notify(event).await;
    assert_eq!(again[0].status, DeliveryStatus::Suppressed);
    assert_eq!(sink.count(), 1);

    let rows = store.deliveries(Some(&d[0].event_id), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, DeliveryStatus::Delivered);
    assert_eq!(rows[0].route, "mail");
    let stored = serde_json::to_string(&rows).unwrap();
    assert!(!stored.contains(SMTP_PASSWORD), "{stored}");
}

/// Implicit TLS (`smtps://`); the server refuses the first message with a temporary `451`, so
/// the delivery takes a second attempt.
#[tokio::test]
async fn email_over_implicit_tls_retries_a_temporary_refusal() {
    let sink = SmtpSink::start(Tls::Implicit, true, 1);
    let url = format!(
        "smtps://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?cafile={}",
        sink.port,
        sink.ca_file().display()
    );
    let d = notifier(url, None).notify(apply_failed()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d[0].attempts, 2, "{d:?}");
    let (raw, envelope) = sink.message(1, Duration::from_secs(10));
    assert_eq!(envelope["encrypted"], true, "{envelope}");
    assert_email(&raw, &envelope, true);
}

/// A certificate the client does not trust (no `cafile`) fails the delivery, after retries,
/// with an error that names neither the password nor the user; nothing is sent.
#[tokio::test]
async fn untrusted_certificate_fails_without_leaking_credentials() {
    let sink = SmtpSink::start(Tls::Starttls, true, 0);
    let url = format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", sink.port);
    let d = notifier(url, None).notify(apply_failed()).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!(d[0].attempts, 3, "{d:?}");
    let error = d[0].error.clone().unwrap();
    assert!(
        !error.contains(SMTP_PASSWORD) && !error.contains(SMTP_USER),
        "{error}"
    );
    assert_eq!(sink.count(), 0);
}

/// Plain SMTP only when asked for (`?tls=none`), here to a loopback relay without credentials.
#[tokio::test]
async fn plain_smtp_to_a_local_relay_when_asked_for() {
    let sink = SmtpSink::start(Tls::Plain, false, 0);
    let url = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let d = notifier(url, None).notify(apply_failed()).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{d:?}");
    let (raw, envelope) = sink.message(1, Duration::from_secs(10));
    assert_eq!(envelope["encrypted"], false, "{envelope}");
    assert_email(&raw, &envelope, false);

    // Without `tls=none` the same server is refused: it does not offer STARTTLS.
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let d = notifier(url, None).notify(apply_failed()).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!(sink.count(), 1);
}

/// The real daemon: a repo whose `weir.yaml` routes `repo.invalid` to email and which holds an
/// invalid job file. `weir serve` loads it and the event reaches the SMTP server over STARTTLS
/// as an email; the daemon's log never shows the SMTP password.
#[test]
fn daemon_sends_repo_invalid_by_email() {
    let sink = SmtpSink::start(Tls::Starttls, true, 0);
    // No Flink needed: the repo is invalid before any cluster is asked.
    let repo = Repo::new("http://127.0.0.1:9", None);
    let remote = Remote::new();
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  routes:\n    - name: mail\n      events: [repo.invalid]\n      \
             format: email\n      smtpUrlFromEnv: WEIR_TEST_SMTP_URL\n      \
             from: weir <weir@example.com>\n      to: [ops@example.com]\n"
        ),
    );
    repo.write(
        "jobs/broken.yaml",
        "apiVersion: weir.dev/v1\nkind: FlinkJob\nmetadata: {name: broken}\nspec: {paralelism: 2}\n",
    );
    let commit = remote.push(&repo, "a broken job");
    let url = format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?cafile={}",
        sink.port,
        sink.ca_file().display()
    );
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .env("WEIR_TEST_SMTP_URL", &url)
        .start();
    let (raw, envelope) = sink.message(1, Duration::from_secs(60));
    assert_eq!(envelope["to"], serde_json::json!(["ops@example.com"]));
    assert_eq!(envelope["encrypted"], true);
    assert_eq!(envelope["user"], SMTP_USER);
    let text = unfold(&raw);
    assert!(text.contains("Subject: [weir] Repo invalid"), "{text}");
    assert!(text.contains("jobs/broken.yaml"), "{text}");
    assert!(text.contains(&commit[..12]), "{text}");
    assert!(text.contains("Content-Type: text/html"), "{text}");
    assert!(!text.contains(SMTP_PASSWORD), "{text}");
    let log = d.log();
    assert!(log.contains("notification delivered"), "{log}");
    assert!(!log.contains(SMTP_PASSWORD), "{log}");
}

/// The real daemon and a real Flink cluster: a job deployed by `weir serve` announces
/// `apply.succeeded` by email (implicit TLS), with the job, the cluster, the plan summary and the
/// revision.
#[test]
fn daemon_emails_apply_succeeded_after_a_real_deploy() {
    let sink = SmtpSink::start(Tls::Implicit, true, 0);
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    let job = repo.unique("mailed");
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  routes:\n    - name: mail\n      \
             events: [apply.succeeded, apply.failed]\n      format: email\n      \
             smtpUrlFromEnv: WEIR_TEST_SMTP_URL\n      from: weir@example.com\n      \
             to: [ops@example.com]\n"
        ),
    );
    repo.write(&format!("jobs/{job}.yaml"), &jar_job(&job, 1, "m", ""));
    let commit = remote.push(&repo, "a mailed job");
    let url = format!(
        "smtps://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?cafile={}",
        sink.port,
        sink.ca_file().display()
    );
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .env("WEIR_TEST_SMTP_URL", &url)
        .start();
    d.wait_job(&job, "Synced", "RUNNING");
    assert_eq!(running_named(&cluster.url, &job).len(), 1);
    let (raw, envelope) = sink.message(1, Duration::from_secs(60));
    assert_eq!(envelope["encrypted"], true, "{envelope}");
    let text = unfold(&raw);
    assert!(
        text.contains(&format!("Subject: [weir] Apply succeeded: {job} on local")),
        "{text}"
    );
    assert!(text.contains("Plan: Plan: 1 to create"), "{text}");
    assert!(
        text.contains(&format!("Revision: {}", &commit[..12])),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/html"), "{text}");
    assert!(!text.contains(SMTP_PASSWORD), "{text}");
    assert!(!d.log().contains(SMTP_PASSWORD));
}
