//! `weir serve` at scale: trigger latency, Flink REST calls per steady-state reconcile and idle
//! memory of the real daemon process managing N jobs on one (fake) cluster.
//!
//! ```sh
//! cargo bench --bench daemon                       # N = 10,1000; 5 runs per trigger
//! WEIR_BENCH_JOBS=1000 WEIR_BENCH_RUNS=7 cargo bench --bench daemon
//! cargo bench --bench daemon -- --jobs 10,1000 --runs 5 --reconciles 5 [--keep]
//! ```
//!
//! `WEIR_BENCH_JOBS` / `--jobs` (comma-separated job counts, default `10,1000`; the smallest is
//! the baseline of the memory and latency ratios), `WEIR_BENCH_RUNS` / `--runs` (trigger runs per
//! trigger kind, default 5), `WEIR_BENCH_RECONCILES` / `--reconciles` (steady-state reconciles
//! counted, default 5), `--keep` keeps the work directories (repo, bare remote, store, daemon
//! log, and the idle daemon's `/proc/PID/smaps` as `idle.smaps` and `idle-32s.smaps`).
//!
//! Per N the bench
//! 1. starts the fake Flink 2.x REST API of `src/testing/fake_flink.rs` (in-process, 127.0.0.1:0, every
//!    request recorded with its arrival time; submitted jobs are RUNNING at once, savepoints
//!    complete at once), generates the jobs repo of `benches/jobs_repo` (N job definitions in 20
//!    directories, the fake's URL in `weir.yaml`), commits it and pushes it to a bare repo;
//! 2. starts the real `weir serve` process (release build) following the bare repo over
//!    `file://`, with an API token and a GitHub webhook secret (from environment variables),
//!    without `SSL_CERT_FILE`/`SSL_CERT_DIR` (which Cargo sets for what it runs; a service
//!    manager does not),
//!    `pollIntervalSeconds: 3600` (polls never interfere) and the default `sync.policy: auto`;
//!    the daemon creates the N jobs on the fake cluster and reaches steady state (last reconcile
//!    `in_sync`, every job `Synced`/`RUNNING`);
//! 3. **steady state**: triggers `--reconciles` reconciles with `POST /api/v1/sync`, one at a time
//!    (waiting on `/metrics`, which is cheap to poll), and records the Flink REST requests each one
//!    made, its duration (from the daemon's status) and the daemon's CPU time over it; then loads
//!    the same commit in-process (`weir::load::load_repo`) for comparison;
//! 4. **idle memory**: waits 2 s and reads `VmRSS`, `VmHWM`, `RssAnon` of `/proc/PID/status`,
//!    and again 30 s later (after the daemon's periodic release of freed memory, every 10 s, and
//!    its store pool's closing of connections unused for 10 s);
//! 5. **trigger latency**: `--runs` times each, alternating which goes first, changes the args of
//!    one `upgradeMode: savepoint` jar job, commits and pushes, then sends either a signed GitHub
//!    push webhook (`X-Hub-Signature-256`, `POST /api/v1/webhooks/github`) or the baseline
//!    `POST /api/v1/sync`, and measures from just before sending to the fake's arrival time of the
//!    first mutating REST call of the resulting apply (`POST /jars/{id}/plan`, the redeploy's
//!    pre-flight, since issue 10; then `POST /jobs/{id}/stop`; the bench blocks on the fake's condition variable meanwhile, it
//!    does not poll the daemon); then waits for the apply and the reconcile after it to finish.
//!
//! Method, results and findings: BENCHMARKS.md.
//!
//! The daemon binary is the one Cargo builds for this bench (`CARGO_BIN_EXE_weir`, i.e.
//! `target/release/weir`); `WEIR_BIN=path` overrides it. Markdown tables go to stdout, progress to
//! stderr.

mod args;
#[path = "../src/testing/fake_flink.rs"]
mod fake_flink;
mod jobs_repo;
#[path = "daemon/process.rs"]
mod process;
#[path = "daemon/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use args::Args;
use fake_flink::{Fake, Request, counts, describe};
use serde_json::Value;

use process::{Daemon, Memory};
use report::{mib, tables};

const TOKEN: &str = "bench-api-token";
const GITHUB_SECRET: &str = "bench-github-secret";
const DIRS: usize = 20;

struct Options {
    jobs: Vec<usize>,
    runs: usize,
    reconciles: usize,
    keep: bool,
}

fn parse_args() -> Options {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let args = Args::parse(&["--jobs", "--runs", "--reconciles"]);
    let mut opts = Options {
        jobs: args.list("--jobs").unwrap_or_else(|| {
            args::parse_list(&env("WEIR_BENCH_JOBS").unwrap_or_else(|| "10,1000".into()))
        }),
        runs: args.get("--runs").unwrap_or_else(|| {
            env("WEIR_BENCH_RUNS").map_or(5, |v| v.parse().expect("WEIR_BENCH_RUNS=N"))
        }),
        reconciles: args.get("--reconciles").unwrap_or_else(|| {
            env("WEIR_BENCH_RECONCILES").map_or(5, |v| v.parse().expect("WEIR_BENCH_RECONCILES=N"))
        }),
        keep: args.has("--keep"),
    };
    assert!(
        opts.runs > 0 && opts.reconciles > 0,
        "runs must be at least 1"
    );
    assert!(opts.jobs.iter().all(|&n| n >= 1), "at least one job");
    opts.jobs.sort_unstable();
    opts.jobs.dedup();
    opts
}

// ------------------------------------------------------------------------------------------
// Measurements

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time (user + system) of the calling thread in ms.
fn thread_cpu_ms() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value; `getrusage` fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    let median = if s.is_empty() {
        f64::NAN
    } else if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    };
    Stats {
        median,
        min: s.first().copied().unwrap_or(f64::NAN),
        max: s.last().copied().unwrap_or(f64::NAN),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trigger {
    Webhook,
    Sync,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Webhook => "signed GitHub webhook",
            Trigger::Sync => "`POST /api/v1/sync` (baseline)",
        }
    }
}

/// One trigger → apply cycle, times from just before the trigger was sent.
struct Cycle {
    trigger: Trigger,
    answer: Duration,
    /// The first REST call of the reconcile (its observation).
    first_call: Duration,
    first_mutating: Duration,
    /// CPU time the daemon used from the trigger until the first mutating call was seen.
    cpu_to_mutating: f64,
    first_mutating_endpoint: String,
    submit: Option<Duration>,
    requests: BTreeMap<String, u64>,
}

/// One steady-state reconcile.
struct Steady {
    requests: BTreeMap<String, u64>,
    duration_ms: i64,
    cpu_ms: f64,
}

struct Measured {
    n: usize,
    startup: Duration,
    startup_requests: BTreeMap<String, u64>,
    overview_bytes: usize,
    steady: Vec<Steady>,
    load_ms: f64,
    load_cpu_ms: f64,
    idle: Memory,
    idle_later: Memory,
    after: Memory,
    cycles: Vec<Cycle>,
}

fn reconciles(s: &Value) -> u64 {
    s["reconciles"].as_u64().unwrap_or(0)
}

fn outcome(s: &Value) -> &str {
    s["lastReconcile"]["outcome"].as_str().unwrap_or("")
}

fn all_synced(s: &Value, n: usize) -> bool {
    s["jobs"].as_array().is_some_and(|jobs| {
        jobs.len() == n
            && jobs
                .iter()
                .all(|j| j["sync"] == "Synced" && j["health"] == "RUNNING")
    })
}

/// Replaces the `args:` line of job `i` (revision `revision`), commits and pushes; returns the
/// commit.
fn change_job(repo: &Path, remote: &Path, i: usize, revision: usize) -> String {
    let file = repo.join(jobs_repo::job_file(i, DIRS));
    let text = fs::read_to_string(&file).unwrap();
    let new_args = jobs_repo::args_line(i, revision);
    let mut changed = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("    args: [") {
            out.push_str(&new_args);
            changed = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(changed, "{} has no args line", file.display());
    fs::write(&file, out).unwrap();
    jobs_repo::commit(repo, &format!("job {i}: revision {revision}"));
    jobs_repo::git(repo, &["push", "-q", remote.to_str().unwrap(), "main"]);
    head(repo)
}

fn head(repo: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bench_one(bin: &Path, n: usize, opts: &Options, rt: &tokio::runtime::Runtime) -> Measured {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("weir-daemon-bench-{n}-"))
        .tempdir()
        .unwrap();
    let work = tmp.path().to_path_buf();
    let repo = work.join("repo");
    let remote = work.join("remote.git");

    let (fake, url) = Fake::start(rt);
    eprintln!("N = {n}: generating the repo in {}", repo.display());
    jobs_repo::generate(&repo, n, DIRS, &url);
    jobs_repo::git(&work, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
    jobs_repo::git(&repo, &["push", "-q", remote.to_str().unwrap(), "main"]);

    // Startup: the daemon creates the N jobs.
    let started = Instant::now();
    let daemon = Daemon::spawn(bin, &work, &remote);
    eprintln!(
        "  weir serve (pid {}) at {}; fake Flink at {url}",
        daemon.pid, daemon.base
    );
    let poll = if n > 100 {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(50)
    };
    daemon.wait_for(
        "steady state after startup",
        Duration::from_secs(3600),
        poll,
        |s| outcome(s) == "in_sync" && all_synced(s, n),
    );
    let startup = started.elapsed();
    let startup_requests = fake.take_counts();
    assert_eq!(fake.jobs_in("RUNNING").len(), n, "the fake runs every job");
    eprintln!(
        "  steady state after {:.1} s: {}",
        startup.as_secs_f64(),
        describe(&startup_requests)
    );

    let steady = steady_reconciles(&daemon, &fake, opts);

    // What loading the repo alone costs (the daemon loads it in every reconcile).
    let (load_ms, load_cpu_ms) = time_loads(&remote, &head(&repo), n, opts.reconciles);

    // Idle memory, and with --keep which mappings it is made of (heap, the binary's text,
    // libraries).
    let keep_smaps = |name: &str| {
        if opts.keep {
            let _ = fs::copy(format!("/proc/{}/smaps", daemon.pid), work.join(name));
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    let idle = daemon.memory();
    keep_smaps("idle.smaps");
    eprintln!(
        "  idle: VmRSS {:.1} MiB, VmHWM {:.1} MiB, RssAnon {:.1} MiB, {} threads",
        idle.rss_kib as f64 / 1024.0,
        idle.hwm_kib as f64 / 1024.0,
        idle.anon_kib as f64 / 1024.0,
        idle.threads
    );
    // Once more after the daemon's periodic release of freed memory (every 10 s) has run and its
    // store pool has closed the connections the reconciles left open (unused for 10 s, checked
    // every 10 s).
    std::thread::sleep(Duration::from_secs(30));
    let idle_later = daemon.memory();
    keep_smaps("idle-32s.smaps");

    let (cycles, rss_after_cycles) = trigger_cycles(&daemon, &fake, &repo, &remote, n, opts);
    eprintln!(
        "  VmRSS after each trigger cycle (MiB): {}",
        rss_after_cycles
            .iter()
            .map(|k| format!("{:.1}", mib(*k)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let after = daemon.memory();
    let overview_bytes = fake.overview_bytes();
    drop(daemon);
    fake.stop();
    if opts.keep {
        let kept = tmp.keep();
        eprintln!("  kept {}", kept.display());
    }
    Measured {
        n,
        startup,
        startup_requests,
        overview_bytes,
        steady,
        load_ms,
        load_cpu_ms,
        idle,
        idle_later,
        after,
        cycles,
    }
}

/// Steady-state reconciles, one at a time: the Flink REST calls, duration and daemon CPU of each.
fn steady_reconciles(daemon: &Daemon, fake: &Fake, opts: &Options) -> Vec<Steady> {
    let mut steady = Vec::new();
    for k in 1..=opts.reconciles {
        std::thread::sleep(Duration::from_millis(300));
        let before = daemon.reconciles();
        let mark = fake.mark();
        let cpu = daemon.cpu_ms();
        daemon.sync();
        let s = daemon.wait_reconciles(
            before + 1,
            Duration::from_secs(300),
            Duration::from_millis(5),
        );
        let cpu_ms = daemon.cpu_ms() - cpu;
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(daemon.reconciles(), before + 1, "exactly one reconcile ran");
        assert_eq!(outcome(&s), "in_sync", "{}", s["lastReconcile"]);
        let r = &s["lastReconcile"];
        let duration_ms =
            r["finishedAtMs"].as_i64().unwrap_or(0) - r["startedAtMs"].as_i64().unwrap_or(0);
        let requests = counts(&fake.since(mark));
        eprintln!(
            "  steady-state reconcile {k}/{}: {duration_ms} ms, {cpu_ms:.0} ms CPU, {}",
            opts.reconciles,
            describe(&requests)
        );
        steady.push(Steady {
            requests,
            duration_ms,
            cpu_ms,
        });
    }

    steady
}

/// Median wall and CPU ms of loading `commit` of `remote` in this process, `runs` times.
fn time_loads(remote: &Path, commit: &str, n: usize, runs: usize) -> (f64, f64) {
    let loads: Vec<(f64, f64)> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let cpu = thread_cpu_ms();
            let source = weir::git::RepoSource::git_tree(remote, commit).unwrap();
            let outcome = weir::load::load_repo(&source);
            let cpu = thread_cpu_ms() - cpu;
            assert!(outcome.desired.is_some_and(|d| d.jobs.len() == n));
            (ms(started.elapsed()), cpu)
        })
        .collect();
    let load_ms = stats(&loads.iter().map(|l| l.0).collect::<Vec<_>>()).median;
    let load_cpu_ms = stats(&loads.iter().map(|l| l.1).collect::<Vec<_>>()).median;
    eprintln!(
        "  in-process load_repo of the commit: {load_ms:.0} ms wall, {load_cpu_ms:.0} ms CPU (median)"
    );

    (load_ms, load_cpu_ms)
}

/// Trigger latency, `opts.runs` times per trigger kind: a changed job, pushed, then the trigger.
/// Returns the cycles and the daemon's VmRSS (KiB) after each.
fn trigger_cycles(
    daemon: &Daemon,
    fake: &Fake,
    repo: &Path,
    remote: &Path,
    n: usize,
    opts: &Options,
) -> (Vec<Cycle>, Vec<u64>) {
    let candidates: Vec<usize> = (0..n)
        .filter(|&i| jobs_repo::upgrade_mode(i) == "savepoint" && !jobs_repo::is_sql(i))
        .collect();
    assert!(!candidates.is_empty());
    let mut cycles = Vec::new();
    let mut rss_after_cycles = Vec::new();
    let mut revision = 0;
    for run in 0..opts.runs {
        let order = if run % 2 == 0 {
            [Trigger::Webhook, Trigger::Sync]
        } else {
            [Trigger::Sync, Trigger::Webhook]
        };
        for trigger in order {
            revision += 1;
            let job = candidates[(revision - 1) % candidates.len()];
            let before_commit = head(repo);
            let commit = change_job(repo, remote, job, revision);
            std::thread::sleep(Duration::from_millis(300));
            let before = daemon.reconciles();
            let last_apply = daemon.status()["lastApply"]["id"].clone();
            let mark = fake.mark();
            let cpu = daemon.cpu_ms();
            let t0 = Instant::now();
            let answer = match trigger {
                Trigger::Webhook => daemon.github_push(&commit, &before_commit),
                Trigger::Sync => daemon.sync(),
            };
            let mutating = fake
                .wait_for(mark, Duration::from_secs(300), Request::is_mutating)
                .expect("a mutating REST call within 300 s of the trigger");
            let cpu_to_mutating = daemon.cpu_ms() - cpu;
            // The reconcile of the trigger applies; the apply triggers one more.
            let s = daemon.wait_reconciles(
                before + 2,
                Duration::from_secs(300),
                Duration::from_millis(20),
            );
            assert!(
                outcome(&s) == "in_sync"
                    && s["lastApply"]["id"] != last_apply
                    && s["lastApply"]["outcome"] == "succeeded",
                "after the trigger: {} / {}",
                s["lastReconcile"],
                s["lastApply"]
            );
            let name = jobs_repo::job_name(job);
            let row = s["jobs"]
                .as_array()
                .and_then(|jobs| jobs.iter().find(|j| j["name"] == name.as_str()))
                .cloned()
                .unwrap_or_default();
            assert!(
                row["sync"] == "Synced" && row["health"] == "RUNNING",
                "{name} after its redeploy: {row}"
            );
            let requests = fake.since(mark);
            let first = requests.first().expect("the reconcile called Flink");
            let cycle = Cycle {
                trigger,
                answer,
                first_call: first.at.duration_since(t0),
                first_mutating: mutating.at.duration_since(t0),
                cpu_to_mutating,
                first_mutating_endpoint: mutating.endpoint.clone(),
                submit: requests
                    .iter()
                    .find(|r| r.endpoint == "POST /jars/{jarid}/run")
                    .map(|r| r.at.duration_since(t0)),
                requests: counts(&requests),
            };
            eprintln!(
                "  run {}/{} {:?} ({name}): answer {:.1} ms, first call {:.1} ms, {} at {:.1} ms ({:.0} ms daemon CPU), submit at {:.1} ms",
                run + 1,
                opts.runs,
                trigger,
                ms(cycle.answer),
                ms(cycle.first_call),
                cycle.first_mutating_endpoint,
                ms(cycle.first_mutating),
                cycle.cpu_to_mutating,
                cycle.submit.map(ms).unwrap_or(f64::NAN),
            );
            cycles.push(cycle);
            rss_after_cycles.push(daemon.memory().rss_kib);
        }
    }
    (cycles, rss_after_cycles)
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

fn main() {
    let opts = parse_args();
    let bin = weir_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average before: {}", load.trim());
    let results: Vec<Measured> = opts
        .jobs
        .iter()
        .map(|&n| bench_one(&bin, n, &opts, &rt))
        .collect();
    let load_after = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    print!("{}", tables(&results, &opts, &bin));
    println!(
        "\nload average (1, 5, 15 min) before: {}; after: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
