//! The one harness for tests of the real `weir serve` process: the bare remote it follows, its
//! config file written from parts ([`Options`]), its environment, address and log files, status
//! waits that print the status and the daemon log when they time out, SIGTERM and a restart on
//! the same state directory, signed webhook deliveries, and a receiver of its notifications.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Repo, git};

pub const API_TOKEN: &str = "api-token-for-daemon-tests";
pub const GITHUB_SECRET: &str = "github-webhook-secret-for-daemon-tests";
pub const GITLAB_SECRET: &str = "gitlab-webhook-secret-for-daemon-tests";

/// The `apply:` section of a daemon unless a test sets its own (shorter than the daemon's
/// defaults, so a stuck step fails the test sooner).
const APPLY_DEFAULTS: &str = "{savepointTimeoutSeconds: 120, startTimeoutSeconds: 120}";

/// A bare repo in a temp dir that tests push branches and pull-request refs to.
pub struct Remote {
    _dir: tempfile::TempDir,
    pub bare: PathBuf,
}

impl Remote {
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "jobs.git"],
        );
        let bare = dir.path().join("jobs.git");
        Remote { _dir: dir, bare }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits everything in `repo` and force-pushes its `main`; returns the commit.
    pub fn push(&self, repo: &Repo, message: &str) -> String {
        self.push_refspec(repo, message, "main")
    }

    /// Commits everything in `repo` (on its current branch) and force-pushes HEAD to
    /// `remote_ref` (e.g. `refs/heads/main`, `refs/pull/7/head`); returns the commit.
    pub fn push_to(&self, repo: &Repo, message: &str, remote_ref: &str) -> String {
        self.push_refspec(repo, message, &format!("HEAD:{remote_ref}"))
    }

    fn push_refspec(&self, repo: &Repo, message: &str, refspec: &str) -> String {
        let commit = repo.commit(message);
        git(
            &repo.root,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), refspec],
        );
        commit
    }
}

/// The daemon's config file and environment, built from parts. Every daemon listens on
/// 127.0.0.1:0, keeps its state in its own temp dir and accepts [`API_TOKEN`].
pub struct Options {
    repo: String,
    apply: Option<String>,
    reads_need_token: bool,
    github_webhook: bool,
    gitlab_webhook: bool,
    extra: String,
    env: Vec<(String, String)>,
    unset_env: Vec<String>,
    log_filter: String,
}

impl Options {
    /// Follows `main` of `remote`.
    pub fn following(remote: &Remote) -> Options {
        Options::url(&remote.url())
    }

    /// Follows `main` of the repo at `url`.
    pub fn url(url: &str) -> Options {
        Options::repo(&format!("repo:\n  url: {url}\n  branch: main\n"))
    }

    /// `section` is the whole `repo:` section (credentials, CA file, ...).
    pub fn repo(section: &str) -> Options {
        Options {
            repo: section.to_string(),
            apply: Some(APPLY_DEFAULTS.to_string()),
            reads_need_token: false,
            github_webhook: false,
            gitlab_webhook: false,
            extra: String::new(),
            env: Vec::new(),
            unset_env: Vec::new(),
            log_filter: "info,sqlx=warn,tower_http=warn".to_string(),
        }
    }

    /// Appends `lines` (top-level keys) to the config file.
    pub fn config(mut self, lines: &str) -> Options {
        self.extra.push_str(lines);
        self
    }

    /// `apply: {settings}` instead of the default timeouts.
    pub fn apply(mut self, settings: &str) -> Options {
        self.apply = Some(settings.to_string());
        self
    }

    /// No `apply:` section: the daemon's own defaults.
    pub fn no_apply(mut self) -> Options {
        self.apply = None;
        self
    }

    /// `api.requireTokenForReads`; the harness's own reads then send [`API_TOKEN`].
    pub fn reads_need_token(mut self) -> Options {
        self.reads_need_token = true;
        self
    }

    /// The GitHub receiver, with [`GITHUB_SECRET`].
    pub fn github_webhook(mut self) -> Options {
        self.github_webhook = true;
        self
    }

    /// The GitLab receiver, with [`GITLAB_SECRET`].
    pub fn gitlab_webhook(mut self) -> Options {
        self.gitlab_webhook = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the daemon without the test process's variable `key`.
    pub fn without_env(mut self, key: &str) -> Options {
        self.unset_env.push(key.to_string());
        self
    }

    /// `WEIR_LOG` of the daemon.
    pub fn log(mut self, filter: &str) -> Options {
        self.log_filter = filter.to_string();
        self
    }

    pub fn start(self) -> Serve {
        Serve::start(self)
    }

    fn config_file(&self, state_dir: &Path) -> String {
        let mut cfg = format!(
            "{}listen: 127.0.0.1:0\nstateDir: {}\napi:\n  tokens: [{{env: WEIR_TEST_API_TOKEN}}]\n",
            self.repo,
            state_dir.display()
        );
        if self.reads_need_token {
            cfg.push_str("  requireTokenForReads: true\n");
        }
        if self.github_webhook || self.gitlab_webhook {
            cfg.push_str("webhooks:\n");
        }
        if self.github_webhook {
            cfg.push_str("  github: {env: WEIR_TEST_GITHUB_SECRET}\n");
        }
        if self.gitlab_webhook {
            cfg.push_str("  gitlab: {env: WEIR_TEST_GITLAB_SECRET}\n");
        }
        if let Some(apply) = &self.apply {
            cfg.push_str(&format!("apply: {apply}\n"));
        }
        cfg.push_str(&self.extra);
        cfg
    }
}

/// The `weir serve` process, killed when dropped.
pub struct Serve {
    child: Option<Child>,
    pub base: String,
    state_dir: tempfile::TempDir,
    options: Options,
}

impl Serve {
    fn start(options: Options) -> Serve {
        let state_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            state_dir.path().join("serve.yaml"),
            options.config_file(state_dir.path()),
        )
        .unwrap();
        let mut serve = Serve {
            child: None,
            base: String::new(),
            state_dir,
            options,
        };
        serve.spawn();
        serve
    }

    /// Starts the process on the state directory (store and mirror) and waits for its address.
    fn spawn(&mut self) {
        let dir = self.state_dir.path();
        let addr_file = dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        // Appended to: a restart's log follows the first run's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["serve", "--config"])
            .arg(dir.join("serve.yaml"))
            .arg("--address-file")
            .arg(&addr_file)
            .env_remove("WEIR_STATE")
            .env_remove("WEIR_FAULT_CRASH_AT")
            .env("WEIR_LOG", &self.options.log_filter)
            .env("WEIR_TEST_API_TOKEN", API_TOKEN)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.options.github_webhook {
            cmd.env("WEIR_TEST_GITHUB_SECRET", GITHUB_SECRET);
        }
        if self.options.gitlab_webhook {
            cmd.env("WEIR_TEST_GITLAB_SECRET", GITLAB_SECRET);
        }
        for key in &self.options.unset_env {
            cmd.env_remove(key);
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(cmd.spawn().expect("starting weir serve"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                self.base = format!("http://{a}");
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir serve exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "weir serve did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("weir serve did not exit after SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end by itself (e.g. a fault-injection abort); its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("weir serve did not exit\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drops an environment variable of later restarts (e.g. a fault to inject only once).
    pub fn forget_env(&mut self, key: &str) {
        self.options.env.retain(|(k, _)| k != key);
    }

    /// Starts a terminated daemon again with the same config on the same state directory.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "terminate the daemon before restarting"
        );
        self.spawn();
    }

    /// The daemon's bare mirror of the remote.
    pub fn mirror(&self) -> PathBuf {
        self.state_dir.path().join("mirror.git")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("serve.log")).unwrap_or_default()
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// The token the harness's own reads carry.
    fn read_token(&self) -> Option<&'static str> {
        self.options.reads_need_token.then_some(API_TOKEN)
    }

    /// (status, content type, body) of `GET path` with `token` as the bearer token, if any.
    pub fn get_full(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut req = Serve::client().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (r.status().as_u16(), content_type, r.text().unwrap())
    }

    /// (status, body) of `GET path` with `token` as the bearer token, if any.
    pub fn get_raw(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let (code, _, body) = self.get_full(path, token);
        (code, body)
    }

    /// The body of `GET path`, whatever its status.
    pub fn get_text(&self, path: &str) -> String {
        self.get_raw(path, self.read_token()).1
    }

    /// The JSON of a successful `GET path`.
    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        let (code, body) = self.get_raw(path, self.read_token());
        assert!((200..300).contains(&code), "GET {path}: {code} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}:\n{body}"))
    }

    pub fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = Serve::client()
            .post(format!("{}{path}", self.base))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// A GitHub `event` delivery of `body`, signed with [`GITHUB_SECRET`].
    pub fn github(&self, event: &str, body: &str) -> (u16, String) {
        let sig = weir::serve::webhook::sign(GITHUB_SECRET.as_bytes(), body.as_bytes());
        self.post(
            "/api/v1/webhooks/github",
            body,
            &[
                ("X-GitHub-Event", event),
                ("X-Hub-Signature-256", &sig),
                ("Content-Type", "application/json"),
            ],
        )
    }

    pub fn status(&self) -> Value {
        self.get("/api/v1/status")
    }

    /// Triggers a reconcile through the API.
    #[track_caller]
    pub fn sync(&self) {
        let r = self.post(
            "/api/v1/sync",
            "",
            &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        );
        assert_eq!(r.0, 202, "{}", r.1);
    }

    /// Triggers a reconcile and waits until one started after the trigger has finished.
    #[track_caller]
    pub fn sync_and_wait(&self) -> Value {
        let before = self.status()["reconciles"].as_u64().unwrap();
        self.sync();
        // The trigger may coalesce with one in progress, which schedules exactly one more.
        self.wait_for("a reconcile", Duration::from_secs(60), |s| {
            s["reconciles"].as_u64().unwrap() >= before + 2
                || (s["reconciles"].as_u64().unwrap() > before
                    && s["lastReconcile"]["triggers"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "api")))
        })
    }

    /// Polls the status until `ok`; on timeout panics with the status and the daemon log.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status:\n{}\n--- daemon log\n{}",
                    serde_json::to_string_pretty(&s).unwrap(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to two minutes) for job `name` to be `sync` and `health`; returns its status.
    #[track_caller]
    pub fn wait_job(&self, name: &str, sync: &str, health: &str) -> Value {
        let s = self.wait_for(
            &format!("{name} {sync} {health}"),
            Duration::from_secs(120),
            |s| job_of(s, name).is_some_and(|j| j["sync"] == sync && j["health"] == health),
        );
        job_of(&s, name).unwrap().clone()
    }

    /// The output of the `weir` CLI on the daemon's store (read while the daemon runs).
    #[track_caller]
    pub fn cli_text(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .arg("--state")
            .arg(self.state_dir.path().join("state.db"))
            .env_remove("WEIR_STATE")
            .output()
            .expect("running weir");
        assert!(
            out.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> Value {
        let text = self.cli_text(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("weir {args:?}: {e}:\n{text}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Job `name` in a daemon status.
pub fn job_of<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["jobs"].as_array()?.iter().find(|j| j["name"] == name)
}

/// The summary of the plan waiting for approval in a daemon status ("" when there is none).
pub fn pending_summary(s: &Value) -> &str {
    s["pendingPlan"]["summary"].as_str().unwrap_or_default()
}

/// A real HTTP receiver of the daemon's notifications (its own runtime on a thread).
pub struct Sink {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
pub struct Delivery {
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    #[track_caller]
    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

impl Sink {
    pub fn start() -> Sink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let store = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let store = store.clone();
                    async move {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| {
                                (k.to_string(), v.to_str().unwrap_or_default().to_string())
                            })
                            .collect();
                        store.lock().unwrap().push(Delivery {
                            headers,
                            body: body.to_vec(),
                        });
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/hook"),
            got,
            _runtime: runtime,
        }
    }

    /// The first delivery whose JSON body is `ok`; on timeout panics with every body received.
    #[track_caller]
    pub fn wait_for(&self, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Delivery {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.lock().unwrap().clone();
            if let Some(d) = got.iter().find(|d| {
                serde_json::from_slice::<Value>(&d.body)
                    .map(|b| ok(&b))
                    .unwrap_or(false)
            }) {
                return d.clone();
            }
            if Instant::now() > deadline {
                let bodies: Vec<String> = got
                    .iter()
                    .map(|d| String::from_utf8_lossy(&d.body).into_owned())
                    .collect();
                panic!("no such notification; received:\n{}", bodies.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
