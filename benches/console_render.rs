//! Server-side render time of the console's jobs page for N jobs (default 1,000; target < 50 ms).
//!
//! ```sh
//! cargo bench --bench console_render                 # N = 1000, 51 renders
//! WEIR_BENCH_JOBS=5000 WEIR_BENCH_RUNS=21 cargo bench --bench console_render
//! ```
//!
//! Builds the typed data the page handler gets from `serve::server::jobs_overview` (N jobs on 4
//! clusters with labels, mixed sync and Flink states, a last apply and savepoint each) and times
//! `console::jobs_page` alone, unfiltered (every row rendered) and with a filter, printing the
//! median and the spread. Gathering the data (status clone, store reads) is the API's cost and is
//! not included. Release build (`cargo bench`).

use std::collections::BTreeMap;
use std::time::Instant;

use weir::serve::console::{Frame, JobsFilter, jobs_page};
use weir::serve::reconcile::{BlockedInfo, ClusterStatus, JobStatus, Status};
use weir::serve::server::{JobRow, JobsOverview, LastApply};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn data(n: usize) -> (Status, JobsOverview) {
    let now = weir::clock::now_ms();
    let syncs = [
        "Synced",
        "Synced",
        "Synced",
        "OutOfSync",
        "InvalidDefinition",
        "Unknown",
    ];
    let states = ["RUNNING", "RUNNING", "RUNNING", "FAILED", "RESTARTING", "-"];
    let mut clusters = BTreeMap::new();
    for c in 0..4 {
        clusters.insert(
            format!("cluster-{c}"),
            ClusterStatus {
                url: format!("http://flink-{c}:8081"),
                reachable: true,
                error: None,
                last_sync_at_ms: Some(now),
            },
        );
    }
    let jobs: Vec<JobStatus> = (0..n)
        .map(|i| JobStatus {
            name: format!("team{}-pipeline-{i:05}", i % 12).into(),
            cluster: format!("cluster-{}", i % 4).into(),
            sync: syncs[i % syncs.len()].into(),
            health: states[i % states.len()].into(),
            job_id: format!("{:032x}", i as u128 * 7919).into(),
            last_savepoint: format!("s3://bucket/savepoints/savepoint-{i:06}").into(),
            drift: (i % 50 == 0).then(|| "job is FAILED".to_string()),
            file: Some(format!("jobs/team{}/pipeline-{i:05}.yaml", i % 12).into()),
            self_heal: None,
            policy: None,
            applying: None,
            flink_version: Some(if i % 4 == 0 { "1.20.5" } else { "2.3.0" }.into()),
            labels: Default::default(),
            job_health: None,
            job_health_reasons: Vec::new(),
        })
        .collect();
    let rows = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| JobRow {
            status: j.clone(),
            labels: [("team".to_string(), format!("team{}", i % 12))].into(),
            last_savepoint_at_ms: Some(now - (i as i64) * 60_000),
            last_apply: Some(LastApply {
                id: format!("apply-20261203T080000-{i:06x}"),
                at_ms: now - (i as i64) * 60_000,
                outcome: if i % 17 == 0 { "failed" } else { "succeeded" }.into(),
            }),
        })
        .collect();
    let status = Status {
        revision: Some("8b66a7d1d0eb".into()),
        blocked: (0..n)
            .step_by(97)
            .map(|i| BlockedInfo {
                job: jobs[i].name.to_string(),
                revision: "8b66a7d1d0eb".into(),
                apply_id: "apply-x".into(),
                error: "failed".into(),
                kind: Default::default(),
            })
            .collect(),
        jobs,
        clusters,
        ..Status::default()
    };
    (status, JobsOverview { jobs: rows })
}

fn median_ms(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    (
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
    )
}

fn main() {
    let n = env_usize("WEIR_BENCH_JOBS", 1000);
    let runs = env_usize("WEIR_BENCH_RUNS", 51).max(1);
    let (status, overview) = data(n);
    let frame = Frame {
        csrf: "0".repeat(32),
        signed_in: true,
        here: "/".into(),
    };
    let filtered = JobsFilter {
        sync: Some("Synced".into()),
        label: Some("team=team3".into()),
        ..JobsFilter::default()
    };
    for (what, filter) in [
        ("unfiltered", JobsFilter::default()),
        ("sync+label filter", filtered),
    ] {
        let mut samples = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let html = jobs_page(&frame, &status, &overview, &filter).into_string();
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = html.len();
        }
        let (median, min, max) = median_ms(samples);
        println!(
            "jobs page, {n} jobs, {what}: median {median:.2} ms (min {min:.2}, max {max:.2}) over {runs} renders, {} KiB of HTML",
            bytes / 1024
        );
    }
}
