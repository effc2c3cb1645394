//! `weir plan` at scale: wall time and peak memory for N job definitions against a fake Flink
//! cluster that runs the same N jobs.
//!
//! ```sh
//! cargo bench --bench plan_scale                              # N = 1000,10000, 5 runs each
//! cargo bench --bench plan_scale -- --jobs 1000,10000 --runs 5 [--dirs 20] [--keep]
//! ```
//!
//! `--dirs K` spreads the job files over K directories `jobs/team-XX/` (default 20; 1 puts them
//! all directly under `jobs/`); `--keep` keeps the generated repos and logs.
//!
//! Per N the bench
//! 1. generates a jobs repo in a temp dir (N job files under `jobs/team-XX/`, jar jobs that share
//!    one small jar under `artifacts/`, every 50th job a SQL job via `sqlFile` run by the
//!    `sqlRunner` jar) and commits it with `git`;
//! 2. loads it with the weir library (`weir::load::load_repo`) and computes each job's weir job id
//!    (`weir::plan::submission_identity(job, nonce).job_id()`), so the fake cluster runs exactly
//!    what the repo asks for, except ~5% of the jobs: 2.5% run another parallelism (rescale) and
//!    2.5% another code fingerprint (redeploy);
//! 3. serves a fake Flink 2.x JobManager REST API on 127.0.0.1:0 (in-process, axum) that answers
//!    `GET /jobs/overview` with those N RUNNING jobs (and other GETs with plausible JSON), counting
//!    requests per endpoint;
//! 4. runs the real `weir` binary (`weir validate --repo DIR`, then
//!    `weir plan --repo DIR --state FILE`, text output to /dev/null): one warm-up run each (it
//!    creates the store and fills the page cache; its output is shown), then `--runs` measured
//!    runs, each timed (wall clock) and its peak RSS read from `wait4`'s `ru_maxrss`.
//!
//! The `weir` binary is the one Cargo builds for this bench (`CARGO_BIN_EXE_weir`, i.e.
//! `target/release/weir`, rebuilt by `cargo bench` whenever a source changed); `WEIR_BIN=path`
//! overrides it. A markdown table goes to stdout, progress to stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use weir::identity::{Identity, JobId};

const DEFAULT_JOBS: &[usize] = &[1_000, 10_000];
const DEFAULT_RUNS: usize = 5;
/// Job files are spread over this many directories `jobs/team-XX/` by default.
const DEFAULT_DIRS: usize = 20;
/// Every SQL_EVERY-th job is a SQL job (`sqlFile`).
const SQL_EVERY: usize = 50;
/// Out of every OUT_OF_SYNC_PERIOD jobs, one runs another parallelism and one another program.
const OUT_OF_SYNC_PERIOD: usize = 40;
const CLUSTER: &str = "bench";

struct Options {
    jobs: Vec<usize>,
    runs: usize,
    dirs: usize,
    keep: bool,
}

fn parse_args() -> Options {
    let mut opts = Options {
        jobs: DEFAULT_JOBS.to_vec(),
        runs: DEFAULT_RUNS,
        dirs: DEFAULT_DIRS,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match key.as_str() {
            "--jobs" => {
                opts.jobs = value("--jobs")
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse().expect("--jobs N[,N...]"))
                    .collect();
            }
            "--runs" => opts.runs = value("--runs").parse().expect("--runs N"),
            "--dirs" => opts.dirs = value("--dirs").parse().expect("--dirs K"),
            "--keep" => opts.keep = true,
            // `cargo bench` passes `--bench`; ignore it and any other harness flag.
            _ => {}
        }
    }
    assert!(opts.runs > 0, "--runs must be at least 1");
    assert!(opts.dirs > 0, "--dirs must be at least 1");
    opts
}

// ------------------------------------------------------------------------------------------
// The generated jobs repo

fn job_name(i: usize) -> String {
    format!("job-{i:05}")
}

fn is_sql(i: usize) -> bool {
    i % SQL_EVERY == SQL_EVERY - 1
}

/// How job `i` on the fake cluster differs from its definition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drift {
    InSync,
    /// Runs with another parallelism: planned as a rescale.
    Parallelism,
    /// Runs another program (code fingerprint): planned as a redeploy.
    Code,
}

fn drift(i: usize) -> Drift {
    match i % OUT_OF_SYNC_PERIOD {
        7 => Drift::Parallelism,
        27 => Drift::Code,
        _ => Drift::InSync,
    }
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

fn generate_repo(dir: &Path, n: usize, dirs: usize, flink_url: &str) {
    write(
        &dir.join("weir.yaml"),
        format!(
            "# Generated by benches/plan_scale.rs\n\
             clusters:\n  {CLUSTER}:\n    url: {flink_url}\n    savepointDir: file:///tmp/weir-bench/savepoints\n    timeoutSeconds: 60\n\
             sqlRunner:\n  jar: artifacts/weir-sql-runner.jar\n\
             prune: false\n"
        ),
    );
    // Small stand-ins for the jars: weir only reads and hashes them while planning.
    let mut jar = b"PK\x03\x04 weir bench job jar ".to_vec();
    jar.extend((0..64 * 1024).map(|i| (i % 251) as u8));
    write(&dir.join("artifacts/bench-job.jar"), &jar);
    write(
        &dir.join("artifacts/weir-sql-runner.jar"),
        b"PK\x03\x04 weir bench sql runner jar",
    );
    let modes = ["savepoint", "last-state", "stateless"];
    for i in 0..n {
        let name = job_name(i);
        let parallelism = 1 + i % 4;
        let program = if is_sql(i) {
            let sql = format!("sql/{name}.sql");
            write(
                &dir.join(&sql),
                format!(
                    "SET 'pipeline.name' = '{name}';\n\
                     CREATE TABLE src_{i} (id BIGINT, v STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '{r}');\n\
                     CREATE TABLE dst_{i} (id BIGINT, v STRING) WITH ('connector' = 'blackhole');\n\
                     INSERT INTO dst_{i} SELECT id, v FROM src_{i} WHERE id % {m} = 0;\n",
                    r = 10 + i % 90,
                    m = 2 + i % 7,
                ),
            );
            format!("  sqlFile: {sql}\n")
        } else {
            format!(
                "  jar:\n    path: artifacts/bench-job.jar\n    entryClass: dev.weir.bench.Job{c}\n    \
                 args: [\"--topic\", \"topic-{i}\", \"--rate\", \"{r}\", \"--group\", \"g{g}\"]\n",
                c = i % 3,
                r = 10 + i % 90,
                g = i % 17,
            )
        };
        let job = format!(
            "apiVersion: weir/v1\n\
             kind: FlinkJob\n\
             metadata:\n  name: {name}\n  labels:\n    team: team-{t:02}\n    tier: \"{tier}\"\n\
             spec:\n  cluster: {CLUSTER}\n  state: running\n  upgradeMode: {mode}\n  parallelism: {parallelism}\n\
             {program}\
             \x20 flinkConfiguration:\n    execution.checkpointing.interval: {ck}s\n    pipeline.max-parallelism: 128\n\
             \x20 savepoint:\n    allowNonRestoredState: {anrs}\n\
             \x20 restartNonce: {nonce}\n",
            t = i % 20,
            tier = i % 3,
            mode = modes[i % modes.len()],
            ck = 10 + i % 5 * 10,
            anrs = i % 2 == 0,
            nonce = i % 3,
        );
        let file = if dirs == 1 {
            format!("jobs/{name}.yaml")
        } else {
            format!("jobs/team-{:02}/{name}.yaml", i % dirs)
        };
        write(&dir.join(file), job);
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=weir bench",
            "-c",
            "user.email=bench@weir.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "generated jobs",
        ],
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("running git");
    assert!(status.success(), "git {args:?} failed in {}", dir.display());
}

// ------------------------------------------------------------------------------------------
// The fake Flink cluster

struct FakeJob {
    id: JobId,
    name: String,
    parallelism: u16,
    start_ms: i64,
}

struct Fake {
    jobs: BTreeMap<String, FakeJob>,
    /// The `/jobs/overview` answer, serialized once.
    overview: axum::body::Bytes,
    requests: Mutex<BTreeMap<String, u64>>,
}

const NOW_MS: i64 = 1_790_000_000_000;

/// The jobs the fake cluster runs: computed from the definitions with weir's own identity code.
fn fake_jobs(repo: &Path, n: usize) -> (Vec<FakeJob>, Duration) {
    let source = weir::git::RepoSource::work_tree(repo).expect("opening the generated repo");
    let started = Instant::now();
    let outcome = weir::load::load_repo(&source);
    let load_time = started.elapsed();
    assert!(
        outcome.diagnostics.is_empty(),
        "the generated repo is invalid: {}",
        outcome
            .diagnostics
            .iter()
            .take(5)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let desired = outcome.desired.expect("a valid repo has a desired state");
    assert_eq!(desired.jobs.len(), n);
    let jobs = desired
        .jobs
        .iter()
        .map(|job| {
            let i: usize = job.name["job-".len()..].parse().unwrap();
            let nonce = (i as u32).wrapping_mul(2_654_435_761) & 0x00ff_ffff;
            let mut ident: Identity = weir::plan::submission_identity(job, nonce);
            match drift(i) {
                Drift::InSync => {}
                Drift::Parallelism => ident.parallelism = ident.parallelism % 4 + 1,
                Drift::Code => ident.code_hash ^= 0x5a5a_5a5a,
            }
            FakeJob {
                id: ident.job_id(),
                name: if is_sql(i) {
                    "insert-into_default_catalog.default_database.dst".to_string()
                } else {
                    format!("Bench job {}", job.name)
                },
                parallelism: ident.parallelism,
                start_ms: NOW_MS - 86_400_000 + i as i64 * 1_000,
            }
        })
        .collect();
    (jobs, load_time)
}

impl Fake {
    fn new(jobs: Vec<FakeJob>) -> Self {
        let entries: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                let p = j.parallelism as u64 * 2;
                serde_json::json!({
                    "jid": j.id.to_string(),
                    "name": j.name,
                    "state": "RUNNING",
                    "start-time": j.start_ms,
                    "end-time": -1,
                    "duration": NOW_MS - j.start_ms,
                    "last-modification": j.start_ms + 2_000,
                    "tasks": {
                        "running": p, "canceling": 0, "canceled": 0, "total": p, "created": 0,
                        "scheduled": 0, "deploying": 0, "reconciling": 0, "finished": 0,
                        "initializing": 0, "failed": 0
                    },
                    "jobType": "STREAMING",
                    "schedulerType": "Default",
                    "pending-operators": 0
                })
            })
            .collect();
        let overview = serde_json::to_vec(&serde_json::json!({ "jobs": entries })).unwrap();
        Fake {
            jobs: jobs.into_iter().map(|j| (j.id.to_string(), j)).collect(),
            overview: overview.into(),
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    fn take_requests(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(body.into())
        .unwrap()
}

fn not_found(what: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({ "errors": [format!("Not found: {what}")] }).to_string(),
    )
}

/// One handler for everything, like Flink's router: counts the request under
/// `METHOD /path` with job ids replaced by `{jobid}`, then answers.
async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_job_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let endpoint: Vec<&str> = segments
        .iter()
        .map(|s| if is_job_id(s) { "{jobid}" } else { s })
        .collect();
    *fake
        .requests
        .lock()
        .unwrap()
        .entry(format!("{method} /{}", endpoint.join("/")))
        .or_default() += 1;

    if method != Method::GET {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"errors":["the benchmark's fake Flink only answers GET"]}"#,
        );
    }
    match segments.as_slice() {
        ["jobs", "overview"] => json(StatusCode::OK, fake.overview.clone()),
        ["config"] => json(
            StatusCode::OK,
            r#"{"refresh-interval":3000,"timezone-name":"Coordinated Universal Time","timezone-offset":0,"flink-version":"2.1.0","flink-revision":"bench","features":{"web-submit":true,"web-cancel":true,"web-rescale":false,"web-history":false}}"#,
        ),
        ["overview"] => json(
            StatusCode::OK,
            serde_json::json!({
                "taskmanagers": 1, "slots-total": 100_000, "slots-available": 0,
                "jobs-running": fake.jobs.len(), "jobs-finished": 0, "jobs-cancelled": 0,
                "jobs-failed": 0, "flink-version": "2.1.0", "flink-commit": "bench"
            })
            .to_string(),
        ),
        ["jobs", id, rest @ ..] => {
            let Some(job) = fake.jobs.get(*id) else {
                return not_found(&format!("Job {id} not found"));
            };
            match rest {
                [] => json(
                    StatusCode::OK,
                    serde_json::json!({
                        "jid": id, "name": job.name, "isStoppable": false, "state": "RUNNING",
                        "job-type": "STREAMING", "start-time": job.start_ms, "end-time": -1,
                        "duration": NOW_MS - job.start_ms, "maxParallelism": 128, "now": NOW_MS,
                        "timestamps": {"RUNNING": job.start_ms + 2_000, "CREATED": job.start_ms},
                        "vertices": [{"id": "cbc357ccb763df2852fee8c4fc7d55f2", "name": "Source -> Sink",
                                      "parallelism": job.parallelism, "status": "RUNNING"}],
                        "status-counts": {"RUNNING": 1}
                    })
                    .to_string(),
                ),
                ["config"] => json(
                    StatusCode::OK,
                    serde_json::json!({
                        "jid": id, "name": job.name,
                        "execution-config": {"execution-mode": "PIPELINED", "restart-strategy": "default",
                                             "job-parallelism": job.parallelism,
                                             "object-reuse-mode": false, "user-config": {}}
                    })
                    .to_string(),
                ),
                ["checkpoints"] => json(
                    StatusCode::OK,
                    r#"{"counts":{"restored":0,"total":0,"in_progress":0,"completed":0,"failed":0},"summary":{},"latest":{"completed":null,"savepoint":null,"failed":null,"restored":null},"history":[]}"#,
                ),
                ["checkpoints", "config"] => json(
                    StatusCode::OK,
                    r#"{"mode":"exactly_once","interval":10000,"timeout":600000,"externalization":{"enabled":true,"delete_on_cancellation":false}}"#,
                ),
                ["exceptions"] => json(
                    StatusCode::OK,
                    r#"{"exceptionHistory":{"entries":[],"truncated":false}}"#,
                ),
                _ => not_found(path),
            }
        }
        _ => not_found(path),
    }
}

// ------------------------------------------------------------------------------------------
// Measuring the weir process

struct Sample {
    wall: Duration,
    /// User + system CPU time of the process (less sensitive to a busy machine than wall time).
    cpu: Duration,
    max_rss_kib: i64,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `cmd` to completion; wall time from spawn to reap, peak RSS from `wait4`.
fn measure(mut cmd: Command, stdout: Stdio, stderr_file: &Path) -> (Sample, ExitStatus) {
    let stderr = fs::File::create(stderr_file).unwrap();
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let started = Instant::now();
    let child = cmd.spawn().expect("spawning weir");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value; `wait4` fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not reaped yet (`child` is never waited on).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(
        reaped,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    drop(child);
    (
        Sample {
            wall,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss,
        },
        ExitStatus::from_raw(status),
    )
}

#[derive(Default)]
struct Series {
    samples: Vec<Sample>,
    /// REST requests per measured run: endpoint → count, for each run.
    requests: Vec<BTreeMap<String, u64>>,
    /// Last line of the warm-up run's stdout.
    summary: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(v: Vec<f64>) -> Stats {
    Stats {
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        median: median(v),
    }
}

impl Series {
    fn wall(&self) -> Stats {
        stats(self.samples.iter().map(|s| s.wall.as_secs_f64()).collect())
    }
    fn cpu(&self) -> Stats {
        stats(self.samples.iter().map(|s| s.cpu.as_secs_f64()).collect())
    }
    fn rss_mib(&self) -> Stats {
        stats(
            self.samples
                .iter()
                .map(|s| s.max_rss_kib as f64 / 1024.0)
                .collect(),
        )
    }
}

fn run_series(
    weir_bin: &Path,
    args: &[&str],
    runs: usize,
    work: &Path,
    fake: &Fake,
    label: &str,
) -> Series {
    let stderr_file = work.join(format!("{label}.stderr"));
    let command = || {
        let mut c = Command::new(weir_bin);
        c.args(args).env_remove("WEIR_LOG").env_remove("WEIR_STATE");
        c
    };
    let check = |status: ExitStatus, what: &str| {
        assert!(
            status.success(),
            "`weir {}` ({what}) failed with {status}; stderr:\n{}",
            args.join(" "),
            fs::read_to_string(&stderr_file).unwrap_or_default()
        );
    };
    let mut series = Series::default();

    // Warm-up: creates the store, fills the page cache; its output is kept for the report.
    let out_file = work.join(format!("{label}.stdout"));
    let (_, status) = measure(
        command(),
        fs::File::create(&out_file).unwrap().into(),
        &stderr_file,
    );
    check(status, "warm-up");
    series.summary = fs::read_to_string(&out_file)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string();
    fake.take_requests();

    for run in 1..=runs {
        let (sample, status) = measure(command(), Stdio::null(), &stderr_file);
        check(status, &format!("run {run}"));
        eprintln!(
            "  {label} run {run}/{runs}: {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MiB",
            sample.wall.as_secs_f64(),
            sample.cpu.as_secs_f64(),
            sample.max_rss_kib as f64 / 1024.0
        );
        series.samples.push(sample);
        series.requests.push(fake.take_requests());
    }
    series
}

// ------------------------------------------------------------------------------------------

struct Measured {
    n: usize,
    load_in_process: Duration,
    overview_bytes: usize,
    validate: Series,
    plan: Series,
}

fn bench_one(weir_bin: &Path, n: usize, opts: &Options, rt: &tokio::runtime::Runtime) -> Measured {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("weir-plan-scale-{n}-"))
        .tempdir()
        .unwrap();
    let work = tmp.path().to_path_buf();
    let repo = work.join("repo");
    let state = work.join("state.db");

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("binding the fake Flink port");
    let url = format!("http://{}", listener.local_addr().unwrap());

    eprintln!("N = {n}: generating the repo in {}", repo.display());
    let started = Instant::now();
    generate_repo(&repo, n, opts.dirs, &url);
    eprintln!(
        "  generated and committed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (jobs, load_in_process) = fake_jobs(&repo, n);
    let fake = Arc::new(Fake::new(jobs));
    let overview_bytes = fake.overview.len();
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let server = rt.spawn(async move { axum::serve(listener, app).await });
    eprintln!("  fake Flink at {url} with {n} jobs ({overview_bytes} bytes of /jobs/overview)");

    let repo_s = repo.to_str().unwrap();
    let state_s = state.to_str().unwrap();
    let validate = run_series(
        weir_bin,
        &["validate", "--repo", repo_s],
        opts.runs,
        &work,
        &fake,
        "validate",
    );
    let plan = run_series(
        weir_bin,
        &["plan", "--repo", repo_s, "--state", state_s],
        opts.runs,
        &work,
        &fake,
        "plan",
    );
    server.abort();
    if opts.keep {
        let kept = tmp.keep();
        eprintln!("  kept {}", kept.display());
    }
    Measured {
        n,
        load_in_process,
        overview_bytes,
        validate,
        plan,
    }
}

fn weir_binary() -> PathBuf {
    let bin = std::env::var_os("WEIR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weir")));
    assert!(
        bin.is_file(),
        "{} does not exist; run `cargo build --release --bin weir` (or `cargo bench`, which builds it)",
        bin.display()
    );
    bin
}

fn report(results: &[Measured], opts: &Options, weir_bin: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "weir binary: `{}`; job files in {} director{} under `jobs/`; {} measured runs per row \
         (after 1 warm-up run); wall time in seconds (CPU = user + system time of the weir \
         process), peak RSS in MiB: median (min–max).\n",
        weir_bin.display(),
        opts.dirs,
        if opts.dirs == 1 { "y" } else { "ies" },
        opts.runs,
    );
    let _ = writeln!(
        out,
        "| jobs | command | wall median (s) | wall min–max (s) | CPU median (s) | CPU min–max (s) | peak RSS median (MiB) | RSS min–max (MiB) |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for (name, s) in [("weir validate", &r.validate), ("weir plan", &r.plan)] {
            let (w, c, m) = (s.wall(), s.cpu(), s.rss_mib());
            let _ = writeln!(
                out,
                "| {} | `{name}` | {:.3} | {:.3}–{:.3} | {:.3} | {:.3}–{:.3} | {:.1} | {:.1}–{:.1} |",
                r.n, w.median, w.min, w.max, c.median, c.min, c.max, m.median, m.min, m.max
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| jobs | plan / validate (median wall) | plan − validate (wall, s) | plan / validate (median CPU) | plan / validate (median RSS) | in-process `load_repo` (s) | `/jobs/overview` body (KiB) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let (p, v) = (r.plan.wall().median, r.validate.wall().median);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.3} | {:.2} | {:.2} | {:.3} | {:.0} |",
            r.n,
            p / v,
            p - v,
            r.plan.cpu().median / r.validate.cpu().median,
            r.plan.rss_mib().median / r.validate.rss_mib().median,
            r.load_in_process.as_secs_f64(),
            r.overview_bytes as f64 / 1024.0
        );
    }
    let _ = writeln!(
        out,
        "\n| jobs | command | REST requests per run (endpoint × count, every measured run) | output (warm-up run) |"
    );
    let _ = writeln!(out, "|---:|---|---|---|");
    for r in results {
        for (name, s) in [("weir validate", &r.validate), ("weir plan", &r.plan)] {
            let first = s.requests.first().cloned().unwrap_or_default();
            let same = s.requests.iter().all(|q| *q == first);
            let mut text = if first.is_empty() {
                "none".to_string()
            } else {
                first
                    .iter()
                    .map(|(k, v)| format!("`{k}` × {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !same {
                text.push_str(" (varies between runs!)");
            }
            let _ = writeln!(out, "| {} | `{name}` | {text} | {} |", r.n, s.summary);
        }
    }
    out
}

fn main() {
    let opts = parse_args();
    let weir_bin = weir_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<Measured> = opts
        .jobs
        .iter()
        .map(|&n| bench_one(&weir_bin, n, &opts, &rt))
        .collect();
    print!("{}", report(&results, &opts, &weir_bin));
}
