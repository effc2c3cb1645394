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
//! 1. generates a jobs repo (`benches/jobs_repo`) in a temp dir (N job files under `jobs/team-XX/`, jar jobs that share
//!    one small jar under `artifacts/`, every 50th job a SQL job via `sqlFile` run by the
//!    `sqlRunner` jar) and commits it with `git`;
//! 2. loads it with the weir library (`weir::load::load_repo`) and computes each job's weir job id
//!    (`weir::plan::submission_identity(job, nonce).job_id()`), so the fake cluster runs exactly
//!    what the repo asks for, except ~5% of the jobs: 2.5% run another parallelism (rescale) and
//!    2.5% another code fingerprint (redeploy);
//! 3. serves the fake Flink 2.x JobManager REST API of `src/testing/fake_flink.rs` on 127.0.0.1:0
//!    (in-process, axum), which answers `GET /jobs/overview` with those N RUNNING jobs (and other
//!    calls with plausible JSON) and records every request;
//! 4. runs the real `weir` binary (`weir validate --repo DIR`, then
//!    `weir plan --repo DIR --state FILE`, text output to /dev/null): one warm-up run each (it
//!    creates the store and fills the page cache; its output is shown), then `--runs` measured
//!    runs, each timed (wall clock) and its peak RSS read from `wait4`'s `ru_maxrss` by a small
//!    measuring process between the bench and `weir` (see `measure`).
//!
//! The `weir` binary is the one Cargo builds for this bench (`CARGO_BIN_EXE_weir`, i.e.
//! `target/release/weir`, rebuilt by `cargo bench` whenever a source changed); `WEIR_BIN=path`
//! overrides it. A markdown table goes to stdout, progress to stderr.

mod args;
#[path = "../src/testing/fake_flink.rs"]
mod fake_flink;
mod jobs_repo;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use args::Args;
use fake_flink::{Fake, FakeJob};
use jobs_repo::is_sql;
use weir::identity::Identity;

const DEFAULT_JOBS: &[usize] = &[1_000, 10_000];
const DEFAULT_RUNS: usize = 5;
/// Job files are spread over this many directories `jobs/team-XX/` by default.
const DEFAULT_DIRS: usize = 20;
/// Out of every OUT_OF_SYNC_PERIOD jobs, one runs another parallelism and one another program.
const OUT_OF_SYNC_PERIOD: usize = 40;

struct Options {
    jobs: Vec<usize>,
    runs: usize,
    dirs: usize,
    keep: bool,
}

fn parse_args() -> Options {
    let args = Args::parse(&["--jobs", "--runs", "--dirs"]);
    let opts = Options {
        jobs: args.list("--jobs").unwrap_or_else(|| DEFAULT_JOBS.to_vec()),
        runs: args.get("--runs").unwrap_or(DEFAULT_RUNS),
        dirs: args.get("--dirs").unwrap_or(DEFAULT_DIRS),
        keep: args.has("--keep"),
    };
    assert!(opts.runs > 0, "--runs must be at least 1");
    assert!(opts.dirs > 0, "--dirs must be at least 1");
    opts
}

// ------------------------------------------------------------------------------------------
// The fake cluster's jobs

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
                id: ident.job_id().to_string(),
                name: if is_sql(i) {
                    "insert-into_default_catalog.default_database.dst".to_string()
                } else {
                    format!("Bench job {}", job.name)
                },
                state: "RUNNING",
                parallelism: ident.parallelism,
                start_ms: NOW_MS - 86_400_000 + i as i64 * 1_000,
                end_ms: None,
            }
        })
        .collect();
    (jobs, load_time)
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

/// Runs `weir_bin args` to completion through a measuring process (this bench binary,
/// re-executed: see [`measuring_process`]); wall time from spawn to reap, peak RSS from `wait4`.
///
/// Why not `wait4` on a child of this process: Linux carries the peak RSS of the address space
/// a process replaces at `execve` into its `ru_maxrss`, and a child of this process starts as
/// (a copy of, or with `vfork` the very) address space of this bench, which holds a repo and a
/// fake cluster of N jobs. Its `ru_maxrss` was the bench's peak whenever that was the larger
/// (up to 15 MiB too much at N = 10,000). A child of the small measuring process is measured
/// on its own.
fn measure(
    weir_bin: &Path,
    args: &[&str],
    stdout: Stdio,
    stderr_file: &Path,
) -> (Sample, ExitStatus) {
    let stderr = fs::File::create(stderr_file).unwrap();
    let result_file = stderr_file.with_extension("measured");
    let status = Command::new(std::env::current_exe().expect("the bench's own path"))
        .env(MEASURE_ENV, &result_file)
        .env_remove("WEIR_LOG")
        .env_remove("WEIR_STATE")
        // Cargo exports its OpenSSL probe's findings to what it runs (`SSL_CERT_FILE` =
        // `/usr/lib/ssl/cert.pem` on Debian), and with them libgit2's OpenSSL parses the whole CA
        // bundle when weir starts (~10 ms); a user's shell has neither (as in benches/daemon).
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .arg(weir_bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .expect("spawning the measuring process");
    assert!(status.success(), "the measuring process failed: {status}");
    let measured = fs::read_to_string(&result_file).expect("the measuring process's result");
    let fields: Vec<i64> = measured
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect();
    let [wall_us, cpu_us, max_rss_kib, raw_status] = fields[..] else {
        panic!("unexpected measurement `{measured}`");
    };
    (
        Sample {
            wall: Duration::from_micros(wall_us as u64),
            cpu: Duration::from_micros(cpu_us as u64),
            max_rss_kib,
        },
        ExitStatus::from_raw(raw_status as i32),
    )
}

/// Set (to the file for the result) when this binary runs as the measuring process.
const MEASURE_ENV: &str = "WEIR_BENCH_MEASURE_INTO";

/// The measuring process: runs `argv[1..]` with this process's stdio, cwd and environment
/// (less [`MEASURE_ENV`]), reaps it with `wait4` and writes `wall_us cpu_us max_rss_kib
/// status` into the file [`MEASURE_ENV`] names.
fn measuring_process(result_file: &Path) {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_remove(MEASURE_ENV);
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
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    fs::write(
        result_file,
        format!(
            "{} {} {} {status}",
            wall.as_micros(),
            cpu.as_micros(),
            usage.ru_maxrss
        ),
    )
    .expect("writing the measurement");
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
        weir_bin,
        args,
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
    fake.take_counts();

    for run in 1..=runs {
        let (sample, status) = measure(weir_bin, args, Stdio::null(), &stderr_file);
        check(status, &format!("run {run}"));
        eprintln!(
            "  {label} run {run}/{runs}: {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MiB",
            sample.wall.as_secs_f64(),
            sample.cpu.as_secs_f64(),
            sample.max_rss_kib as f64 / 1024.0
        );
        series.samples.push(sample);
        series.requests.push(fake.take_counts());
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

    let (fake, url) = Fake::start(rt);

    eprintln!("N = {n}: generating the repo in {}", repo.display());
    let started = Instant::now();
    jobs_repo::generate(&repo, n, opts.dirs, &url);
    eprintln!(
        "  generated and committed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (jobs, load_in_process) = fake_jobs(&repo, n);
    fake.insert_jobs(jobs);
    let overview_bytes = fake.overview_bytes();
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
    fake.stop();
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
    if let Some(result_file) = std::env::var_os(MEASURE_ENV) {
        return measuring_process(Path::new(&result_file));
    }
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
