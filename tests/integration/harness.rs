//! Runs the real `weir` binary against real Flink session clusters and real Git repos in temp
//! dirs. The clusters are started once per test run by `scripts/test.sh`, which passes their
//! addresses in `WEIR_TEST_FLINK2_URL` / `WEIR_TEST_FLINK1_URL`; without them these tests fail
//! (they never skip silently).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub enum Version {
    V2,
    V1_20,
}

pub struct Cluster {
    pub url: String,
    pub jars: PathBuf,
}

pub fn cluster(v: Version) -> Cluster {
    let (url_var, jars_var) = match v {
        Version::V2 => ("WEIR_TEST_FLINK2_URL", "WEIR_TEST_JARS2"),
        Version::V1_20 => ("WEIR_TEST_FLINK1_URL", "WEIR_TEST_JARS1"),
    };
    let url = std::env::var(url_var).unwrap_or_else(|_| {
        panic!("{url_var} is not set: this test needs a real Flink cluster; run scripts/test.sh")
    });
    let jars = PathBuf::from(std::env::var(jars_var).unwrap_or_else(|_| {
        panic!("{jars_var} is not set: run scripts/test.sh (it builds the Java test jobs)")
    }));
    Cluster { url, jars }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "weir failed:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A jobs repo in a temp dir, with its own state store and savepoint directory.
pub struct Repo {
    _dir: tempfile::TempDir,
    names: std::cell::RefCell<Vec<String>>,
    pub root: PathBuf,
    pub state: PathBuf,
    pub savepoints: PathBuf,
    pub url: String,
}

pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{prefix}-{n:06x}")
}

impl Repo {
    /// A repo with `weir.yaml` pointing at `url`, the test jars under `artifacts/`.
    pub fn new(url: &str, jars: Option<&Path>) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("jobs")).unwrap();
        let savepoints = dir.path().join("savepoints");
        std::fs::create_dir_all(&savepoints).unwrap();
        if let Some(jars) = jars {
            std::fs::create_dir_all(root.join("artifacts")).unwrap();
            for jar in ["weir-test-job.jar", "weir-sql-runner.jar"] {
                std::fs::copy(jars.join(jar), root.join("artifacts").join(jar))
                    .unwrap_or_else(|e| panic!("copying {jar} from {}: {e}", jars.display()));
            }
        }
        let repo = Repo {
            state: dir.path().join("state").join("weir.db"),
            _dir: dir,
            names: Default::default(),
            root,
            savepoints,
            url: url.to_string(),
        };
        repo.write_config(false);
        git(&repo.root, &["init", "-q", "-b", "main"]);
        git(&repo.root, &["config", "user.email", "test@weir.dev"]);
        git(&repo.root, &["config", "user.name", "weir test"]);
        repo
    }

    /// A job name unique across concurrent tests; its jobs are cancelled when the repo is dropped.
    pub fn unique(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.names.borrow_mut().push(name.clone());
        name
    }

    pub fn write_config(&self, prune: bool) {
        let runner = if self.root.join("artifacts/weir-sql-runner.jar").exists() {
            "sqlRunner:\n  jar: artifacts/weir-sql-runner.jar\n"
        } else {
            ""
        };
        self.write(
            "weir.yaml",
            &format!(
                // No health window by default: the suite's many applies would each wait it
                // out (tests of the rollback set their own).
                "clusters:\n  local:\n    url: {}\n    savepointDir: file://{}\n{runner}prune: {prune}\nrollback:\n  healthWindowSeconds: 0\n",
                self.url,
                self.savepoints.display()
            ),
        );
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.root.join(rel)).unwrap();
    }

    pub fn commit(&self, message: &str) -> String {
        git(&self.root, &["add", "-A"]);
        git(
            &self.root,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.root, &["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn weir(&self, args: &[&str]) -> Run {
        self.weir_env(args, &[])
    }

    pub fn weir_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(args)
            .arg("--repo")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .env_remove("WEIR_STATE")
            .env_remove("WEIR_FAULT_CRASH_AT")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("running weir"))
    }
}

impl Drop for Repo {
    /// Frees the shared cluster's slots for the tests that follow.
    fn drop(&mut self) {
        for name in self.names.borrow().iter() {
            let Ok(overview) = http().get(format!("{}/jobs/overview", self.url)).send() else {
                return;
            };
            let Ok(v) = overview.json::<Value>() else {
                return;
            };
            for j in v["jobs"].as_array().into_iter().flatten() {
                let (Some(id), Some(state)) = (j["jid"].as_str(), j["state"].as_str()) else {
                    continue;
                };
                let Ok(job_id) = id.parse::<weir::identity::JobId>() else {
                    continue;
                };
                let mine =
                    weir::identity::Identity::decode(&job_id).is_some_and(|i| i.belongs_to(name));
                if mine && !matches!(state, "FINISHED" | "CANCELED" | "FAILED") {
                    let _ = http()
                        .patch(format!("{}/jobs/{id}?mode=cancel", self.url))
                        .send();
                }
            }
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A jar job definition running the test job.
pub fn jar_job(name: &str, parallelism: u32, topic: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\n  labels: {{team: test}}\nspec:\n  cluster: local\n  parallelism: {parallelism}\n  jar:\n    path: artifacts/weir-test-job.jar\n    entryClass: dev.weir.testjob.CounterJob\n    args: [\"--topic\", \"{topic}\", \"--rate\", \"20\"]\n{extra_spec}"
    )
}

/// A jar job definition running the test job with exactly these program arguments.
pub fn jar_job_args(name: &str, parallelism: u32, args: &[&str]) -> String {
    let args = serde_json::to_string(args).unwrap();
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  parallelism: {parallelism}\n  jar:\n    path: artifacts/weir-test-job.jar\n    entryClass: dev.weir.testjob.CounterJob\n    args: {args}\n"
    )
}

/// A SQL job reading datagen and writing two blackhole sinks (one Flink job).
pub fn sql_job(name: &str, rows_per_second: u32) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  parallelism: 1\n  sql: |\n    SET 'pipeline.name' = '{name}';\n    CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '{rows_per_second}');\n    CREATE TABLE sink1 (id BIGINT) WITH ('connector' = 'blackhole');\n    CREATE TABLE sink2 (id BIGINT) WITH ('connector' = 'blackhole');\n    INSERT INTO sink1 SELECT id FROM src;\n    INSERT INTO sink2 SELECT id FROM src;\n"
    )
}

// ---- Direct Flink REST checks (independent of weir's own client) ----

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn get(url: &str) -> Value {
    let resp = http()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.json().unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// (job id, state) of every job on the cluster that weir submitted for definition `name`
/// (decoded from the job id, as weir itself does).
pub fn jobs_named(base: &str, name: &str) -> Vec<(String, String)> {
    let overview = get(&format!("{base}/jobs/overview"));
    overview["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            let id: weir::identity::JobId = j["jid"].as_str().unwrap().parse().unwrap();
            weir::identity::Identity::decode(&id).is_some_and(|i| i.belongs_to(name))
        })
        .map(|j| {
            (
                j["jid"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn running_named(base: &str, name: &str) -> Vec<String> {
    jobs_named(base, name)
        .into_iter()
        .filter(|(_, s)| s == "RUNNING")
        .map(|(id, _)| id)
        .collect()
}

/// The savepoint/checkpoint a job restored from: (path, is_savepoint).
pub fn restored_from(base: &str, id: &str) -> Option<(String, bool)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(&format!("{base}/jobs/{id}/checkpoints"));
        let restored = &v["latest"]["restored"];
        if let Some(path) = restored["external_path"].as_str() {
            return Some((
                path.to_string(),
                restored["is_savepoint"].as_bool().unwrap_or(false),
            ));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn job_parallelism(base: &str, id: &str) -> u64 {
    get(&format!("{base}/jobs/{id}/config"))["execution-config"]["job-parallelism"]
        .as_u64()
        .unwrap()
}

pub fn cancel(base: &str, id: &str) {
    let resp = http()
        .patch(format!("{base}/jobs/{id}?mode=cancel"))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "cancel {id}: {}", resp.status());
    wait_state(base, id, "CANCELED");
}

pub fn wait_state(base: &str, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(&format!("{base}/jobs/{id}"));
        if v["state"].as_str() == Some(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not reach {state}: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the job has at least one completed checkpoint (so that state exists to carry).
pub fn wait_checkpoint(base: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(&format!("{base}/jobs/{id}/checkpoints"));
        if v["counts"]["completed"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} completed no checkpoint: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Run {
    /// stdout parsed as JSON (for `--format json` runs).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.all()))
    }
}

/// `weir plan --format json --detailed-exitcode` with the exit code expected: the plan as JSON.
#[track_caller]
pub fn plan_json(repo: &Repo, code: i32) -> Value {
    repo.weir(&["plan", "--format", "json", "--detailed-exitcode"])
        .code(code)
        .json()
}

/// The one change of `job` in a JSON plan.
#[track_caller]
pub fn change<'a>(plan: &'a Value, job: &str) -> &'a Value {
    let changes: Vec<&Value> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["job"] == job)
        .collect();
    assert_eq!(changes.len(), 1, "one change of {job} in {plan:#}");
    changes[0]
}

/// The `field` diff of a JSON change: `(before, after)`.
#[track_caller]
pub fn diff_of(change: &Value, field: &str) -> (Value, Value) {
    let d = change["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .find(|d| d["field"] == field)
        .unwrap_or_else(|| panic!("no {field} diff in {change:#}"));
    (d["before"].clone(), d["after"].clone())
}

/// The step names of a JSON change, in order (`stop-with-savepoint`, `submit`, …).
pub fn step_names(change: &Value) -> Vec<String> {
    change["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["step"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `weir status --format json`: the row of `job`.
#[track_caller]
pub fn status_row(repo: &Repo, job: &str) -> Value {
    let status = repo.weir(&["status", "--format", "json"]).ok().json();
    status
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == job))
        .cloned()
        .unwrap_or_else(|| panic!("no status row for {job} in {status:#}"))
}
