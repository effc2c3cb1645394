//! A `weir serve` process for tests that need their own daemon configuration and environment,
//! and the bare remote it follows.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Repo, git};

pub const API_TOKEN: &str = "api-token-for-daemon-tests";

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

    /// Commits everything in `repo` (on its current branch) and force-pushes HEAD to
    /// `remote_ref` (e.g. `refs/heads/main`, `refs/pull/7/head`); returns the commit.
    pub fn push(&self, repo: &Repo, message: &str, remote_ref: &str) -> String {
        let commit = repo.commit(message);
        git(
            &repo.root,
            &[
                "push",
                "-q",
                "-f",
                self.bare.to_str().unwrap(),
                &format!("HEAD:{remote_ref}"),
            ],
        );
        commit
    }
}

/// The `weir serve` process, killed when dropped.
pub struct Serve {
    child: Option<Child>,
    pub base: String,
    state_dir: tempfile::TempDir,
}

impl Serve {
    /// The daemon's bare mirror of the remote.
    pub fn mirror(&self) -> std::path::PathBuf {
        self.state_dir.path().join("mirror.git")
    }

    /// Starts `weir serve` following `main` of `remote`, with the API token [`API_TOKEN`], `extra`
    /// appended to its config file and `env` in its environment.
    pub fn start(remote: &Remote, extra: &str, env: &[(&str, &str)]) -> Serve {
        let state_dir = tempfile::tempdir().unwrap();
        let cfg = state_dir.path().join("serve.yaml");
        std::fs::write(
            &cfg,
            format!(
                "repo:\n  url: {}\n  branch: main\nlisten: 127.0.0.1:0\nstateDir: {}\n\
                 api:\n  tokens: [{{env: WEIR_TEST_API_TOKEN}}]\n\
                 apply: {{savepointTimeoutSeconds: 120, startTimeoutSeconds: 120}}\n{extra}",
                remote.url(),
                state_dir.path().display()
            ),
        )
        .unwrap();
        let addr_file = state_dir.path().join("addr");
        let log = std::fs::File::create(state_dir.path().join("serve.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .arg("--address-file")
            .arg(&addr_file)
            .env_remove("WEIR_STATE")
            .env_remove("WEIR_FAULT_CRASH_AT")
            .env("WEIR_LOG", "info,sqlx=warn,tower_http=warn")
            .env("WEIR_TEST_API_TOKEN", API_TOKEN)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting weir serve");
        let mut serve = Serve {
            child: Some(child),
            base: String::new(),
            state_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                serve.base = format!("http://{a}");
                return serve;
            }
            if let Some(status) = serve.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir serve exited ({status}):\n{}", serve.log());
            }
            assert!(Instant::now() < deadline, "weir serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
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

    pub fn get(&self, path: &str) -> Value {
        let r = Serve::client()
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
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

    pub fn status(&self) -> Value {
        self.get("/api/v1/status")
    }

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

    #[track_caller]
    pub fn wait_job(&self, name: &str, sync: &str, health: &str) -> Value {
        let of = |s: &Value| -> Option<Value> {
            s["jobs"]
                .as_array()?
                .iter()
                .find(|j| j["name"] == name)
                .cloned()
        };
        let s = self.wait_for(
            &format!("{name} {sync} {health}"),
            Duration::from_secs(120),
            |s| of(s).is_some_and(|j| j["sync"] == sync && j["health"] == health),
        );
        of(&s).unwrap()
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
