//! A fake Flink 2.x JobManager REST API for the unit tests of the executor (`src/apply/tests.rs`)
//! and the scale benchmarks (`plan_scale`, `daemon`): an in-process axum server on 127.0.0.1:0
//! that records every request with its arrival time.
//!
//! One source for both: the library includes it as `testing::fake_flink` (under `cfg(test)`),
//! the benches with `#[path = "../src/testing/fake_flink.rs"] mod fake_flink;`. So it uses
//! external crates only, never `crate::` or `weir::` (job ids are their 32 hex digits).
//!
//! It is a stand-in (real Flink is tested by `scripts/test.sh` and the integration tests). It
//! answers what weir's observer and applier call, in Flink 2.x's shapes:
//!
//! - `GET /jobs/overview` (every job, serialized once per change of the job table), `/config`,
//!   `/overview`, `/jobs/{id}`, `/jobs/{id}/config`, `/jobs/{id}/checkpoints`,
//!   `/jobs/{id}/checkpoints/config`, `/jobs/{id}/exceptions` (404 for unknown jobs);
//! - `GET /jars`, `POST /jars/upload` (multipart; the file name is kept, the bytes are not),
//!   `DELETE /jars/{id}`;
//! - `POST /jars/{id}/run`: the job (with the `jobId` the caller chose) is RUNNING at once, all
//!   tasks deployed; a known id is refused like Flink does (`DuplicateJobSubmissionException`);
//! - `POST /jobs/{id}/stop`: the savepoint completes at once and the job is FINISHED;
//!   `GET /jobs/{id}/savepoints/{request}` reports it COMPLETED with its location;
//! - `PATCH /jobs/{id}?mode=cancel`: the job is CANCELED.
//!
//! Any endpoint can be made to fail ([`Fake::fail`]): it then answers with the given status and
//! Flink's error body, and changes nothing.

// Shared by several targets: each uses a different part of the fake.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;

/// A job the fake cluster knows.
#[derive(Clone, Debug)]
pub struct FakeJob {
    /// The Flink job id: 32 hex digits.
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub parallelism: u16,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub method: Method,
    /// `METHOD /path` with job ids replaced by `{jobid}` and other variable segments by
    /// `{jarid}` / `{requestid}`.
    pub endpoint: String,
    pub path: String,
    /// The body, when it is JSON (a run request's `jobId`, `savepointPath`, ...).
    pub json: Option<serde_json::Value>,
}

impl Request {
    /// Anything but a read: a call that changes the cluster.
    pub fn is_mutating(&self) -> bool {
        self.method != Method::GET && self.method != Method::HEAD
    }
}

#[derive(Default)]
struct Cluster {
    jobs: BTreeMap<String, FakeJob>,
    /// The `/jobs/overview` answer; rebuilt after the job table changed.
    overview: Option<Bytes>,
    /// (jar id, file name, uploaded at).
    jars: Vec<(String, String, i64)>,
    /// Savepoint request id → (job id, location).
    savepoints: BTreeMap<String, (String, String)>,
    /// Jobs submitted with `--fail-after-records N` (the test job's fail switch): job id → the
    /// time it turns FAILED (N ms after it started, in the fake).
    failing: BTreeMap<String, i64>,
}

impl Cluster {
    /// Turns the jobs whose failure is due FAILED.
    fn fail_due(&mut self, now: i64) {
        let due: Vec<String> = self
            .failing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.failing.remove(&id);
            set_state(self, &id, "FAILED", now);
        }
    }
}

/// An injected failure of one endpoint.
#[derive(Clone, Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    /// How many more requests fail (`None`: all of them).
    left: Option<u32>,
}

pub struct Fake {
    cluster: Mutex<Cluster>,
    /// Endpoint (as [`Request::endpoint`] names it) → its injected failure.
    failures: Mutex<BTreeMap<String, Failure>>,
    /// Endpoint → how long it delays its answer after acting ([`Fake::answer_late`]).
    late: Mutex<BTreeMap<String, Duration>>,
    /// Endpoint → how long it waits (after recording the request) before answering.
    delays: Mutex<BTreeMap<String, Duration>>,
    log: Mutex<Vec<Request>>,
    /// Signalled after every request recorded.
    arrived: Condvar,
    counter: AtomicU64,
    server: Mutex<Option<tokio::task::AbortHandle>>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Fake {
    /// Serves an empty cluster on 127.0.0.1:0 from `rt`; returns it and its base URL.
    pub fn start(rt: &tokio::runtime::Runtime) -> (Arc<Fake>, String) {
        rt.block_on(Fake::serve())
    }

    /// Serves an empty cluster on 127.0.0.1:0 from the current runtime; returns it and its base
    /// URL.
    pub async fn serve() -> (Arc<Fake>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Flink port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Arc::new(Fake {
            cluster: Mutex::new(Cluster::default()),
            failures: Mutex::new(BTreeMap::new()),
            late: Mutex::new(BTreeMap::new()),
            delays: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            counter: AtomicU64::new(0),
            server: Mutex::new(None),
        });
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        *fake.server.lock().unwrap() = Some(server.abort_handle());
        (fake, url)
    }

    /// Makes `endpoint` (e.g. `POST /jobs/{jobid}/stop`) answer `status` with `message` as
    /// Flink's error, `times` times (`None`: until [`Fake::heal`]).
    pub fn fail(&self, endpoint: &str, status: StatusCode, message: &str, times: Option<u32>) {
        self.failures.lock().unwrap().insert(
            endpoint.to_string(),
            Failure {
                status,
                message: message.to_string(),
                left: times,
            },
        );
    }

    /// Makes `endpoint` (e.g. `GET /jobs/overview`) answer only `delay` after the request
    /// arrived (a slow or overloaded JobManager). The arrival is recorded at once.
    pub fn delay(&self, endpoint: &str, delay: Duration) {
        self.delays
            .lock()
            .unwrap()
            .insert(endpoint.to_string(), delay);
    }

    /// Ends every injected failure.
    pub fn heal(&self) {
        self.failures.lock().unwrap().clear();
        self.late.lock().unwrap().clear();
    }

    /// Makes `endpoint` act as usual but answer only after `delay` (a lost or late answer:
    /// the call took effect, the caller timed out), until [`Fake::heal`].
    pub fn answer_late(&self, endpoint: &str, delay: Duration) {
        self.late
            .lock()
            .unwrap()
            .insert(endpoint.to_string(), delay);
    }

    /// Uploads a jar (as if an earlier apply had); returns its id.
    pub fn insert_jar(&self, name: &str) -> String {
        let now = now_ms();
        let id = format!("{:08x}-fake-{:04x}_{name}", now, self.next());
        self.cluster
            .lock()
            .unwrap()
            .jars
            .push((id.clone(), name.to_string(), now));
        id
    }

    /// The job with this id, if the cluster knows it.
    pub fn job(&self, id: &str) -> Option<FakeJob> {
        self.cluster.lock().unwrap().jobs.get(id).cloned()
    }

    /// Every job the cluster knows.
    pub fn jobs(&self) -> Vec<FakeJob> {
        self.cluster
            .lock()
            .unwrap()
            .jobs
            .values()
            .cloned()
            .collect()
    }

    /// The failure to answer a request to `endpoint` with, counting it down.
    fn injected(&self, endpoint: &str) -> Option<Failure> {
        let mut failures = self.failures.lock().unwrap();
        let failure = failures.get_mut(endpoint)?;
        let answer = failure.clone();
        match &mut failure.left {
            Some(0) => {
                failures.remove(endpoint);
                return None;
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(answer)
    }

    /// Stops serving.
    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    /// Adds jobs (e.g. ones the cluster runs before weir looks at it).
    pub fn insert_jobs(&self, jobs: impl IntoIterator<Item = FakeJob>) {
        let mut c = self.cluster.lock().unwrap();
        for j in jobs {
            c.jobs.insert(j.id.clone(), j);
        }
        c.overview = None;
    }

    /// All jobs in `state`.
    pub fn jobs_in(&self, state: &str) -> Vec<FakeJob> {
        let c = self.cluster.lock().unwrap();
        c.jobs
            .values()
            .filter(|j| j.state == state)
            .cloned()
            .collect()
    }

    /// The current `/jobs/overview` answer's size in bytes.
    pub fn overview_bytes(&self) -> usize {
        let mut c = self.cluster.lock().unwrap();
        overview(&mut c).len()
    }

    /// How many requests were recorded so far (a mark for [`Fake::since`]).
    pub fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The requests recorded after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Request> {
        self.log.lock().unwrap()[mark..].to_vec()
    }

    /// Blocks until a request after `mark` satisfies `pick` (without polling); `None` after
    /// `timeout`.
    pub fn wait_for(
        &self,
        mark: usize,
        timeout: Duration,
        pick: impl Fn(&Request) -> bool,
    ) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.lock().unwrap();
        let mut seen = mark;
        loop {
            if let Some(r) = log[seen.min(log.len())..].iter().find(|r| pick(r)) {
                return Some(r.clone());
            }
            seen = log.len();
            let left = deadline.checked_duration_since(Instant::now())?;
            log = self.arrived.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Drops the log and returns its requests counted per endpoint.
    pub fn take_counts(&self) -> BTreeMap<String, u64> {
        counts(&std::mem::take(&mut *self.log.lock().unwrap()))
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// Requests counted per endpoint.
pub fn counts(requests: &[Request]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(r.endpoint.clone()).or_default() += 1;
    }
    out
}

/// `endpoint × count, ...` (or `none`).
pub fn describe(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("`{k}` × {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn overview(c: &mut Cluster) -> Bytes {
    if let Some(b) = &c.overview {
        return b.clone();
    }
    let now = now_ms();
    let entries: Vec<serde_json::Value> = c
        .jobs
        .values()
        .map(|j| {
            let p = j.parallelism as u64 * 2;
            let running = if j.state == "RUNNING" { p } else { 0 };
            let finished = if j.state == "FINISHED" { p } else { 0 };
            let canceled = if j.state == "CANCELED" { p } else { 0 };
            serde_json::json!({
                "jid": j.id,
                "name": j.name,
                "state": j.state,
                "start-time": j.start_ms,
                "end-time": j.end_ms.unwrap_or(-1),
                "duration": j.end_ms.unwrap_or(now) - j.start_ms,
                "last-modification": j.end_ms.unwrap_or(j.start_ms + 2_000),
                "tasks": {
                    "running": running, "canceling": 0, "canceled": canceled, "total": p,
                    "created": 0, "scheduled": 0, "deploying": 0, "reconciling": 0,
                    "finished": finished, "initializing": 0, "failed": 0
                },
                "jobType": "STREAMING",
                "schedulerType": "Default",
                "pending-operators": 0
            })
        })
        .collect();
    let body: Bytes = serde_json::to_vec(&serde_json::json!({ "jobs": entries }))
        .unwrap()
        .into();
    c.overview = Some(body.clone());
    body
}

/// A job graph of one vertex (the id every fake job's vertex has), as `.../plan` answers it.
fn plan_body(jid: &str, parallelism: u64) -> serde_json::Value {
    serde_json::json!({"plan": {"jid": jid, "name": "fake", "type": "STREAMING", "nodes": [
        {"id": "cbc357ccb763df2852fee8c4fc7d55f2", "parallelism": parallelism,
         "description": "Source -> Sink", "operator": "", "inputs": []}
    ]}})
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(body.into())
        .unwrap()
}

fn ok(v: serde_json::Value) -> Response {
    json(StatusCode::OK, v.to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        serde_json::json!({ "errors": [message] }).to_string(),
    )
}

fn is_job_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the fake "writes" a savepoint of job `id` for `request`.
fn savepoint_location(id: &str, request: &str) -> String {
    format!(
        "file:/tmp/weir-bench/savepoints/savepoint-{}-{request}",
        &id[..6]
    )
}

/// The endpoint a path belongs to, with its variable segments named.
fn endpoint(method: &Method, segments: &[&str]) -> String {
    let named: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i == 3 && segments[0] == "jobs" && segments[2] == "savepoints" {
                "{requestid}"
            } else if is_job_id(s) {
                "{jobid}"
            } else if i == 1 && segments[0] == "jars" && *s != "upload" {
                "{jarid}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} /{}", named.join("/"))
}

/// One handler for everything, like Flink's router: records the request, then answers.
async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let at = Instant::now();
    let path = uri.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let endpoint = endpoint(&method, &segments);
    fake.log.lock().unwrap().push(Request {
        at,
        endpoint: endpoint.clone(),
        method: method.clone(),
        path: path.clone(),
        json: serde_json::from_slice(&body).ok(),
    });
    fake.arrived.notify_all();
    let delay = fake.delays.lock().unwrap().get(&endpoint).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(failure) = fake.injected(&endpoint) {
        return error(failure.status, &failure.message);
    }
    let answer = act(&fake, &method, &uri, &path, &segments, &body);
    // A late answer: the call took effect, the caller may have given up waiting for it.
    let late = fake.late.lock().unwrap().get(&endpoint).copied();
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    answer
}

/// Does what the request asks and builds the answer.
fn act(
    fake: &Arc<Fake>,
    method: &Method,
    uri: &Uri,
    path: &str,
    segments: &[&str],
    body: &Bytes,
) -> Response {
    let fake = fake.clone();
    let (method, uri, path, body) = (method.clone(), uri.clone(), path.to_string(), body.clone());
    let mut c = fake.cluster.lock().unwrap();
    let now = now_ms();
    c.fail_due(now);
    match (&method, segments) {
        (&Method::GET, ["jobs", "overview"]) => json(StatusCode::OK, overview(&mut c)),
        (&Method::GET, ["config"]) => ok(serde_json::json!({
            "refresh-interval": 3000, "timezone-name": "Coordinated Universal Time",
            "timezone-offset": 0, "flink-version": "2.1.0", "flink-revision": "bench",
            "features": {"web-submit": true, "web-cancel": true, "web-rescale": false, "web-history": false}
        })),
        (&Method::GET, ["overview"]) => {
            let running = c.jobs.values().filter(|j| j.state == "RUNNING").count();
            ok(serde_json::json!({
                "taskmanagers": 1, "slots-total": 100_000, "slots-available": 0,
                "jobs-running": running, "jobs-finished": 0, "jobs-cancelled": 0,
                "jobs-failed": 0, "flink-version": "2.1.0", "flink-commit": "bench"
            }))
        }
        (&Method::GET, ["jars"]) => {
            let files: Vec<serde_json::Value> = c
                .jars
                .iter()
                .map(|(id, name, at)| {
                    serde_json::json!({"id": id, "name": name, "uploaded": at,
                                       "entry": [{"name": "dev.weir.bench.Job0", "description": null}]})
                })
                .collect();
            ok(serde_json::json!({"address": "http://localhost:8081", "files": files}))
        }
        (&Method::POST, ["jars", "upload"]) => {
            let Some(name) = upload_file_name(&body) else {
                return error(StatusCode::BAD_REQUEST, "no file in the upload");
            };
            let id = format!("{:08x}-bench-{:04x}_{name}", now, fake.next());
            // Distinct upload times, as a real Flink's file times are for uploads in a row.
            let last = c.jars.iter().map(|(_, _, at)| *at).max().unwrap_or(0);
            c.jars.push((id.clone(), name, now.max(last + 1)));
            ok(serde_json::json!({
                "filename": format!("/tmp/flink-web-bench/flink-web-upload/{id}"),
                "status": "success"
            }))
        }
        (&Method::DELETE, ["jars", id]) => {
            c.jars.retain(|(j, _, _)| j != id);
            ok(serde_json::json!({}))
        }
        (&Method::POST, ["jars", jar, "run"]) => run_jar(&fake, &mut c, jar, &body, now),
        (&Method::POST, ["jars", jar, "plan"]) => {
            if !c.jars.iter().any(|(j, _, _)| j == jar) {
                return error(StatusCode::BAD_REQUEST, "Jar file does not exist");
            }
            let parallelism = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b["parallelism"].as_u64())
                .unwrap_or(1);
            ok(plan_body("fake", parallelism))
        }
        (_, ["jobs", id, rest @ ..]) => {
            let id = id.to_string();
            let Some(job) = c.jobs.get(&id).cloned() else {
                return error(StatusCode::NOT_FOUND, &format!("Job {id} not found"));
            };
            job_endpoint(&fake, &mut c, &method, &uri, job, rest, now)
        }
        (&Method::GET, _) => error(StatusCode::NOT_FOUND, &format!("Not found: {path}")),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the benchmark's fake Flink does not answer this",
        ),
    }
}

/// `POST /jars/{jar}/run`: the job is RUNNING at once with every task deployed.
fn run_jar(fake: &Fake, c: &mut Cluster, jar: &str, body: &[u8], now: i64) -> Response {
    if !c.jars.iter().any(|(j, _, _)| j == jar) {
        return error(StatusCode::BAD_REQUEST, "Jar file does not exist");
    }
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let id = match req["jobId"].as_str() {
        Some(s) if is_job_id(s) => s.to_ascii_lowercase(),
        Some(s) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid job id {s:?}: expected 32 hex digits"),
            );
        }
        None => format!("7f{:030x}", fake.next()),
    };
    if c.jobs.contains_key(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "org.apache.flink.runtime.client.DuplicateJobSubmissionException: Job has already been submitted. JobID: {id}"
            ),
        );
    }
    let parallelism = req["parallelism"].as_u64().unwrap_or(1) as u16;
    let args: Vec<&str> = req["programArgsList"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(i) = args.iter().position(|a| *a == "--fail-after-records") {
        let after = args.get(i + 1).and_then(|n| n.parse::<i64>().ok());
        c.failing.insert(id.clone(), now + after.unwrap_or(0));
    }
    let name = req["entryClass"]
        .as_str()
        .map(|c| format!("Bench {c}"))
        .unwrap_or_else(|| "Bench job".into());
    c.jobs.insert(
        id.clone(),
        FakeJob {
            id: id.clone(),
            name,
            state: "RUNNING",
            parallelism,
            start_ms: now,
            end_ms: None,
        },
    );
    c.overview = None;
    ok(serde_json::json!({"jobid": id, "applicationId": id}))
}

fn job_endpoint(
    fake: &Fake,
    c: &mut Cluster,
    method: &Method,
    uri: &Uri,
    job: FakeJob,
    rest: &[&str],
    now: i64,
) -> Response {
    let id = job.id.clone();
    match (method, rest) {
        (&Method::GET, []) => ok(serde_json::json!({
            "jid": id, "name": job.name, "isStoppable": false, "state": job.state,
            "job-type": "STREAMING", "start-time": job.start_ms, "end-time": job.end_ms.unwrap_or(-1),
            "duration": job.end_ms.unwrap_or(now) - job.start_ms, "maxParallelism": 128, "now": now,
            "timestamps": {"RUNNING": job.start_ms, "CREATED": job.start_ms},
            "vertices": [{"id": "cbc357ccb763df2852fee8c4fc7d55f2", "name": "Source -> Sink",
                          "parallelism": job.parallelism, "status": job.state}],
            "status-counts": {job.state: 1}
        })),
        (&Method::PATCH, []) => {
            if !uri.query().unwrap_or_default().contains("mode=cancel") {
                return error(StatusCode::BAD_REQUEST, "unsupported mode");
            }
            set_state(c, &id, "CANCELED", now);
            json(StatusCode::ACCEPTED, "{}")
        }
        (&Method::POST, ["stop"]) => {
            let request = format!("{:032x}", fake.next() + 0xbe00_0000);
            let location = savepoint_location(&id, &request);
            c.savepoints.insert(request.clone(), (id.clone(), location));
            set_state(c, &id, "FINISHED", now);
            json(
                StatusCode::ACCEPTED,
                serde_json::json!({"request-id": request}).to_string(),
            )
        }
        // A savepoint of a running job (`weir savepoint`, periodic): the job keeps running.
        (&Method::POST, ["savepoints"]) => {
            let request = format!("{:032x}", fake.next() + 0xbe00_0000);
            let location = savepoint_location(&id, &request);
            c.savepoints.insert(request.clone(), (id.clone(), location));
            json(
                StatusCode::ACCEPTED,
                serde_json::json!({"request-id": request}).to_string(),
            )
        }
        (&Method::GET, ["savepoints", request]) => match c.savepoints.get(*request) {
            Some((job_id, location)) if *job_id == id => ok(serde_json::json!({
                "status": {"id": "COMPLETED"},
                "operation": {"location": location}
            })),
            _ => error(StatusCode::NOT_FOUND, "unknown savepoint request"),
        },
        (&Method::GET, ["config"]) => ok(serde_json::json!({
            "jid": id, "name": job.name,
            "execution-config": {"execution-mode": "PIPELINED", "restart-strategy": "default",
                                 "job-parallelism": job.parallelism,
                                 "object-reuse-mode": false, "user-config": {}}
        })),
        (&Method::GET, ["plan"]) => ok(plan_body(&id, u64::from(job.parallelism))),
        (&Method::GET, ["checkpoints"]) => {
            // A job stopped with a savepoint reports it as its latest savepoint, like Flink.
            let savepoint =
                c.savepoints
                    .values()
                    .find(|(job_id, _)| *job_id == id)
                    .map(|(_, location)| {
                        serde_json::json!({"id": 7, "status": "COMPLETED", "is_savepoint": true,
                                       "trigger_timestamp": now, "external_path": location,
                                       "discarded": false})
                    });
            ok(serde_json::json!({
                "counts": {"restored": 0, "total": 0, "in_progress": 0, "completed": 0, "failed": 0},
                "summary": {},
                "latest": {"completed": savepoint, "savepoint": savepoint, "failed": null,
                           "restored": null},
                "history": []
            }))
        }
        (&Method::GET, ["checkpoints", "config"]) => json(
            StatusCode::OK,
            r#"{"mode":"exactly_once","interval":10000,"timeout":600000,"externalization":{"enabled":true,"delete_on_cancellation":false}}"#,
        ),
        (&Method::GET, ["exceptions"]) if job.state == "FAILED" => json(
            StatusCode::OK,
            r#"{"exceptionHistory":{"entries":[{"exceptionName":"java.lang.RuntimeException","stacktrace":"java.lang.RuntimeException: weir test job: --fail-after-records reached\n\tat dev.weir.testjob.CounterJob(CounterJob.java:1)\n","timestamp":1,"failureLabels":{},"concurrentExceptions":[]}],"truncated":false}}"#,
        ),
        (&Method::GET, ["exceptions"]) => json(
            StatusCode::OK,
            r#"{"exceptionHistory":{"entries":[],"truncated":false}}"#,
        ),
        (&Method::GET, _) => error(StatusCode::NOT_FOUND, &format!("Not found: {}", uri.path())),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the benchmark's fake Flink does not answer this",
        ),
    }
}

fn set_state(c: &mut Cluster, id: &str, state: &'static str, now: i64) {
    if let Some(j) = c.jobs.get_mut(id)
        && j.end_ms.is_none()
    {
        j.state = state;
        j.end_ms = Some(now);
        c.overview = None;
    }
}

/// The `filename="..."` of a multipart upload.
fn upload_file_name(body: &[u8]) -> Option<String> {
    let needle = b"filename=\"";
    let start = body.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    String::from_utf8(body[start..start + len].to_vec()).ok()
}
