//! The `weir serve` process under bench: started on the bench's repo and fake cluster, driven
//! through its HTTP API, measured through `/proc`.

use std::process::{Child, Stdio};

use super::*;

pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
    pub(crate) anon_kib: u64,
    pub(crate) threads: u64,
}

fn read_memory(pid: u32) -> Memory {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        threads: field("Threads:"),
    }
}

pub(crate) struct Daemon {
    child: Option<Child>,
    pub(crate) pid: u32,
    pub(crate) base: String,
    http: reqwest::blocking::Client,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn spawn(bin: &Path, work: &Path, remote: &Path) -> Daemon {
        let state = work.join("state");
        fs::create_dir_all(&state).unwrap();
        let cfg = work.join("serve.yaml");
        fs::write(
            &cfg,
            format!(
                "repo:\n  url: file://{}\n  branch: main\nlisten: 127.0.0.1:0\nstateDir: {}\n\
                 pollIntervalSeconds: 3600\n\
                 api:\n  tokens: [{{env: WEIR_BENCH_API_TOKEN}}]\n\
                 webhooks:\n  github: {{env: WEIR_BENCH_GITHUB_SECRET}}\n",
                remote.display(),
                state.display()
            ),
        )
        .unwrap();
        let addr_file = work.join("addr");
        let log = work.join("serve.log");
        let out = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .arg("--address-file")
            .arg(&addr_file);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WEIR_") {
                cmd.env_remove(k);
            }
        }
        // Cargo exports its OpenSSL probe's findings to what it runs (`SSL_CERT_FILE` =
        // `/usr/lib/ssl/cert.pem` on Debian), and with them OpenSSL parses the whole CA bundle at
        // start; a service manager starts weir without them. The bench's remote is `file://`.
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        let child = cmd
            .env(
                "WEIR_LOG",
                std::env::var("WEIR_BENCH_DAEMON_LOG")
                    .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
            )
            .env("WEIR_BENCH_API_TOKEN", TOKEN)
            .env("WEIR_BENCH_GITHUB_SECRET", GITHUB_SECRET)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting weir serve");
        let pid = child.id();
        let mut daemon = Daemon {
            child: Some(child),
            pid,
            base: String::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        daemon.base = loop {
            if let Ok(a) = fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                break format!("http://{a}");
            }
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir serve exited with {status}:\n{}", daemon.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "weir serve did not start:\n{}",
                daemon.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        daemon
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub(crate) fn status(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/status", self.base))
            .send()
            .expect("GET /api/v1/status");
        assert!(
            r.status().is_success(),
            "GET /api/v1/status: {}",
            r.status()
        );
        r.json().unwrap()
    }

    /// Polls the status every `every` until `ok`; fails on an apply failure or error.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        every: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if ok(&s) {
                return s;
            }
            let outcome = s["lastReconcile"]["outcome"].as_str().unwrap_or("");
            if matches!(
                outcome,
                "apply_failed" | "error" | "repo_invalid" | "blocked" | "lock_busy"
            ) {
                panic!(
                    "waiting for {what}: reconcile {outcome}: {}\n--- daemon log\n{}",
                    s["lastReconcile"]["message"],
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last reconcile: {}\n--- daemon log\n{}",
                s["lastReconcile"],
                self.log_tail()
            );
            std::thread::sleep(every);
        }
    }

    /// POSTs; returns the status code and how long the answer took.
    pub(crate) fn post(
        &self,
        path: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> (u16, Duration) {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let sent = Instant::now();
        let r = req.send().unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let took = sent.elapsed();
        let code = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        assert_eq!(code, 202, "POST {path}: {text}");
        (code, took)
    }

    pub(crate) fn sync(&self) -> Duration {
        let auth = format!("Bearer {TOKEN}");
        self.post("/api/v1/sync", String::new(), &[("Authorization", &auth)])
            .1
    }

    pub(crate) fn github_push(&self, commit: &str, before: &str) -> Duration {
        // The fields of a GitHub push delivery that matter, at a plausible size.
        let body = serde_json::json!({
            "ref": "refs/heads/main",
            "before": before,
            "after": commit,
            "created": false, "deleted": false, "forced": false,
            "repository": {"id": 1, "name": "flink-jobs", "full_name": "bench/flink-jobs",
                           "default_branch": "main", "clone_url": "https://github.com/bench/flink-jobs.git"},
            "pusher": {"name": "bench", "email": "bench@weir.invalid"},
            "head_commit": {"id": commit, "message": "change one job's args",
                            "modified": ["jobs/..."], "added": [], "removed": []},
            "commits": [{"id": commit, "message": "change one job's args"}]
        })
        .to_string();
        let sig = weir::serve::webhook::sign(GITHUB_SECRET.as_bytes(), body.as_bytes());
        self.post(
            "/api/v1/webhooks/github",
            body,
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "00000000-0000-0000-0000-000000000000"),
                ("X-Hub-Signature-256", &sig),
                ("Content-Type", "application/json"),
                ("User-Agent", "GitHub-Hookshot/bench"),
            ],
        )
        .1
    }

    pub(crate) fn memory(&self) -> Memory {
        read_memory(self.pid)
    }

    /// Completed reconciles, from `/metrics` (cheap to poll, unlike the status with N jobs).
    pub(crate) fn reconciles(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .and_then(|r| r.text())
            .expect("GET /metrics");
        text.lines()
            .filter(|l| l.starts_with("weir_reconciles_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Polls `/metrics` until at least `target` reconciles completed, then returns the status
    /// once it shows them too.
    pub(crate) fn wait_reconciles(&self, target: u64, timeout: Duration, every: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        while self.reconciles() < target {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {target} reconciles\n--- daemon log\n{}",
                self.log_tail()
            );
            std::thread::sleep(every);
        }
        // The counter is bumped just before the status is updated.
        self.wait_for("the status", timeout, Duration::from_millis(5), |s| {
            reconciles(s) >= target
        })
    }

    /// User + system CPU time of the daemon (all threads) in ms, 10 ms resolution.
    pub(crate) fn cpu_ms(&self) -> f64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks * 1000.0 / hz
    }

    /// SIGTERM, then waits (SIGKILL after 60 s).
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: `pid` is our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("  weir serve did not stop within 60 s; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
