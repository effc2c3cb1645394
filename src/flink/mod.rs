//! Typed async client for the Flink JobManager REST API (session clusters, Flink 1.20.x and 2.x).
//!
//! Idempotent reads (GET) are retried with exponential backoff on connection errors, timeouts
//! and 5xx answers. Writes (POST, PATCH, DELETE) are sent exactly once: a submission is made
//! idempotent by the caller choosing its job id (Flink rejects an id it has seen, see
//! [`FlinkError::is_duplicate_submission`]), not by blind resending.
//!
//! Differences between the versions this client absorbs:
//! - `POST /jars/{id}/run` answers `{"jobid"}` on 1.20 and `{"jobid", "applicationId"}` on 2.x;
//!   a duplicate id fails with `DuplicateJobSubmissionException` (1.20) or
//!   `DuplicateApplicationSubmissionException` (2.x).
//! - `GET /jobs/{id}/exceptions` has `root-exception` only on 1.20; both have `exceptionHistory`.
//! - `GET /jobs/overview` entries carry `jobType`, `schedulerType`, `pending-operators` on 2.x.
//! - `PATCH /jobs/{id}?mode=cancel` works on both (`mode=stop` is gone on both).
//!
//! Observed on both versions: `GET /jobs/{id}/checkpoints` lags a few seconds behind (Flink caches
//! the statistics), e.g. the savepoint of a stop-with-savepoint shows up in `latest.savepoint`
//! only some seconds after the job is FINISHED. Use the location [`FlinkClient::wait_for_savepoint`]
//! returns, not the statistics. `POST /jobs/{id}/stop` for an unknown job is accepted (202); the
//! failure shows in the savepoint status.

mod error;
mod lifecycle;
mod model;
mod plan;
pub use plan::{GraphNode, JobGraph, ProgramPlan, ProgramRefusal};

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::identity::JobId;
use crate::spec::ClusterConfig;

pub use error::{BaseUrlError, FlinkError, JavaErrorSummary, summarize_java_error};
pub use lifecycle::{DisposalStatus, HealthFacts};
pub use model::{
    CheckpointCounts, CheckpointSummary, ClusterOverview, CompletedCheckpoint, JobOverview,
    JobState, RestoredCheckpoint, RunJar, SavepointStatus, UploadedJar,
};

use crate::text::truncate;
use error::{Redacted, summarize_flink_errors};
use model::*;

/// Per-request timeout when `timeoutSeconds` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a submission (`POST /jars/{id}/run`) may take by default: Flink runs the program's
/// main() before it answers.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Jar uploads get at least this long, whatever the per-request timeout.
pub const MIN_UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// An answer's declared length is trusted for its buffer up to this size (a larger one grows as
/// it arrives).
const MAX_PREALLOCATED_BODY: u64 = 64 << 20;

/// How idempotent requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// A client for one Flink session cluster.
#[derive(Clone)]
pub struct FlinkClient {
    name: String,
    base: Url,
    /// `base` without credentials, as shown in errors and `Debug`.
    shown: String,
    http: reqwest::Client,
    timeout: Duration,
    retry: RetryPolicy,
    /// Names of the headers sent with every request (values never kept outside `http`).
    header_names: Vec<String>,
}

impl fmt::Debug for FlinkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, Redacted)> = self
            .header_names
            .iter()
            .map(|n| (n.as_str(), Redacted))
            .collect();
        f.debug_struct("FlinkClient")
            .field("name", &self.name)
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("headers", &headers)
            .finish()
    }
}

impl FlinkClient {
    /// A client for the `weir.yaml` cluster entry `name`, reading the bearer token and extra
    /// header values from the environment variables the entry names.
    pub fn new(name: &str, cfg: &ClusterConfig) -> Result<Self, FlinkError> {
        Self::with_env(name, cfg, |var| std::env::var(var).ok())
    }

    /// Like [`FlinkClient::new`], with environment variables looked up through `env`.
    pub fn with_env(
        name: &str,
        cfg: &ClusterConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, FlinkError> {
        let invalid = |reason: String| FlinkError::InvalidConfig {
            cluster: name.to_string(),
            reason,
        };
        let base = parse_base_url(&cfg.url).map_err(|source| FlinkError::InvalidUrl {
            cluster: name.to_string(),
            source,
        })?;
        let timeout = match cfg.timeout_seconds {
            None => DEFAULT_TIMEOUT,
            Some(0) => return Err(invalid("timeoutSeconds must be at least 1".into())),
            Some(s) => Duration::from_secs(s),
        };
        let lookup = |var: &str, purpose: String| -> Result<String, FlinkError> {
            match env(var) {
                Some(v) if !v.trim().is_empty() => {
                    // Never printed, logged or stored, even when a proxy or Flink echoes it.
                    crate::redact::register_secret(&v);
                    Ok(v.trim().to_string())
                }
                _ => Err(FlinkError::MissingEnv {
                    var: var.to_string(),
                    cluster: name.to_string(),
                    purpose,
                }),
            }
        };
        let header_value = |var: &str, value: String| -> Result<HeaderValue, FlinkError> {
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                invalid(format!(
                    "the value of environment variable {var} is not a valid HTTP header value"
                ))
            })?;
            v.set_sensitive(true);
            Ok(v)
        };

        let mut headers = HeaderMap::new();
        if let Some(var) = &cfg.bearer_token_env {
            let token = lookup(var, "bearerTokenEnv".into())?;
            headers.insert(AUTHORIZATION, header_value(var, format!("Bearer {token}"))?);
        }
        for (header, var) in &cfg.headers_from_env {
            let hname = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                invalid(format!(
                    "headersFromEnv: {header:?} is not a valid HTTP header name"
                ))
            })?;
            if headers.contains_key(&hname) {
                return Err(invalid(format!(
                    "header {header:?} is set twice (bearerTokenEnv already sets Authorization)"
                )));
            }
            let value = lookup(var, format!("header {header}"))?;
            headers.insert(hname, header_value(var, value)?);
        }
        let header_names = headers.keys().map(|k| k.as_str().to_string()).collect();

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build an HTTP client: {e}")))?;
        Ok(FlinkClient {
            name: name.to_string(),
            shown: shown_url(&base),
            base,
            http,
            timeout,
            retry: RetryPolicy::default(),
            header_names,
        })
    }

    /// Replaces the retry policy of idempotent requests.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The cluster's name in `weir.yaml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The REST endpoint (without credentials, if the URL had any).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// `GET /config` → `flink-version`.
    pub async fn flink_version(&self) -> Result<String, FlinkError> {
        let url = self.endpoint(&["config"], &[]);
        let body: ConfigBody = self.get_json(&url).await?;
        body.flink_version
            .ok_or_else(|| decode_error(&url, "no \"flink-version\" in /config"))
    }

    /// `GET /overview`.
    pub async fn overview(&self) -> Result<ClusterOverview, FlinkError> {
        self.get_json(&self.endpoint(&["overview"], &[])).await
    }

    /// `GET /jobs/overview`: every job the cluster knows (running and recently ended).
    pub async fn jobs_overview(&self) -> Result<Vec<JobOverview>, FlinkError> {
        let body: JobsOverviewBody = self
            .get_json(&self.endpoint(&["jobs", "overview"], &[]))
            .await?;
        Ok(body.jobs.into_iter().map(Into::into).collect())
    }

    /// `GET /jobs/{id}` → state; `None` when the cluster does not know the job.
    pub async fn job_state(&self, id: &JobId) -> Result<Option<JobState>, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string()], &[]);
        Ok(self
            .get_json_opt::<JobDetailsBody>(&url)
            .await?
            .map(|b| b.state))
    }

    /// Whether every task of the job is deployed and running (`GET /jobs/{id}`, vertex status;
    /// finished vertices of bounded sources count as done). A job is RUNNING as soon as it is
    /// scheduled, but a savepoint can only be taken once all its tasks run.
    pub async fn all_tasks_running(&self, id: &JobId) -> Result<bool, FlinkError> {
        Ok(self
            .task_progress(id)
            .await?
            .is_some_and(|(state, all)| state == JobState::Running && all))
    }

    /// The job's state and whether every task is deployed and running (as in
    /// [`Self::all_tasks_running`]); `None` when the cluster does not know the job.
    pub async fn task_progress(&self, id: &JobId) -> Result<Option<(JobState, bool)>, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string()], &[]);
        Ok(self.get_json_opt::<JobDetailsBody>(&url).await?.map(|b| {
            let all = !b.vertices.is_empty()
                && b.vertices
                    .iter()
                    .all(|v| v.status == "RUNNING" || v.status == "FINISHED");
            (b.state, all)
        }))
    }

    /// `GET /jobs/{id}/config` → `execution-config.job-parallelism`; `None` when the job is
    /// unknown or its parallelism was left to the cluster default.
    pub async fn job_parallelism(&self, id: &JobId) -> Result<Option<u32>, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "config"], &[]);
        let Some(body) = self.get_json_opt::<JobConfigBody>(&url).await? else {
            return Ok(None);
        };
        Ok(body
            .execution_config
            .and_then(|c| c.job_parallelism)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0))
    }

    /// `GET /jobs/{id}/checkpoints`: latest completed checkpoint, latest savepoint and what the
    /// job was restored from. Empty when there are none or checkpointing is disabled.
    pub async fn checkpoints(&self, id: &JobId) -> Result<CheckpointSummary, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "checkpoints"], &[]);
        match self.get_json::<CheckpointsBody>(&url).await {
            Ok(body) => Ok(body.into()),
            // Older versions answer 404 "Checkpointing has not been enabled." (current ones 200 with nulls).
            Err(FlinkError::Api {
                status: StatusCode::NOT_FOUND,
                message,
                ..
            }) if message.contains("not been enabled") => Ok(CheckpointSummary::default()),
            Err(e) => Err(e),
        }
    }

    /// Whether the job's checkpoints outlive a cancel (`GET /jobs/{id}/checkpoints/config`,
    /// `externalization`): `Some(false)` when Flink deletes them on cancellation, `None` when the
    /// job or the information is not there.
    pub async fn checkpoints_retained_on_cancel(
        &self,
        id: &JobId,
    ) -> Result<Option<bool>, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "checkpoints", "config"], &[]);
        let Some(body) = self.get_json_opt::<serde_json::Value>(&url).await? else {
            return Ok(None);
        };
        let ext = &body["externalization"];
        Ok(
            match (
                ext["enabled"].as_bool(),
                ext["delete_on_cancellation"].as_bool(),
            ) {
                (Some(false), _) => Some(false),
                (Some(true), Some(delete)) => Some(!delete),
                _ => None,
            },
        )
    }

    /// The job's latest root exception (`GET /jobs/{id}/exceptions`), reduced to its root cause.
    pub async fn root_exception(&self, id: &JobId) -> Result<Option<String>, FlinkError> {
        let url = self.endpoint(
            &["jobs", &id.to_string(), "exceptions"],
            &[("maxExceptions", "1")],
        );
        let Some(body) = self.get_json_opt::<ExceptionsBody>(&url).await? else {
            return Ok(None);
        };
        let latest = body
            .exception_history
            .and_then(|h| h.entries.into_iter().next());
        let text = latest
            .and_then(|e| e.stacktrace.or(e.exception_name))
            .or(body.root_exception)
            .filter(|t| !t.trim().is_empty());
        Ok(text.map(|t| summarize_java_error(&t).message))
    }

    /// `GET /jars`.
    pub async fn list_jars(&self) -> Result<Vec<UploadedJar>, FlinkError> {
        let body: JarsBody = self.get_json(&self.endpoint(&["jars"], &[])).await?;
        Ok(body.files.into_iter().map(Into::into).collect())
    }

    /// `POST /jars/upload`; returns the jar id to run it by. `file_name` must end in `.jar`.
    pub async fn upload_jar(&self, file_name: &str, bytes: Vec<u8>) -> Result<String, FlinkError> {
        let url = self.endpoint(&["jars", "upload"], &[]);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str("application/x-java-archive")
            .expect("static mime type is valid");
        let form = reqwest::multipart::Form::new().part("jarfile", part);
        let req = self
            .http
            .post(url.clone())
            .multipart(form)
            .timeout(self.timeout.max(MIN_UPLOAD_TIMEOUT));
        let body: UploadBody = decode(&url, &self.send(Method::POST, &url, req).await?)?;
        let id = body.filename.rsplit(['/', '\\']).next().unwrap_or_default();
        if id.is_empty() {
            return Err(decode_error(
                &url,
                "empty \"filename\" in the upload answer",
            ));
        }
        Ok(id.to_string())
    }

    /// `DELETE /jars/{id}`.
    pub async fn delete_jar(&self, jar_id: &str) -> Result<(), FlinkError> {
        let url = self.endpoint(&["jars", jar_id], &[]);
        self.send(Method::DELETE, &url, self.http.delete(url.clone()))
            .await?;
        Ok(())
    }

    /// `POST /jars/{id}/run`; returns the id of the submitted job. Never retried: resubmit with
    /// the same [`RunJar::job_id`] to be safe against duplicates.
    pub async fn run_jar(&self, jar_id: &str, req: &RunJar) -> Result<JobId, FlinkError> {
        self.run_jar_within(jar_id, req, self.timeout).await
    }

    /// [`FlinkClient::run_jar`] waiting up to `timeout` for the answer (Flink runs the
    /// program's main() before answering, which may well outlast the per-request timeout).
    pub async fn run_jar_within(
        &self,
        jar_id: &str,
        req: &RunJar,
        timeout: Duration,
    ) -> Result<JobId, FlinkError> {
        let url = self.endpoint(&["jars", jar_id, "run"], &[]);
        let request = self
            .http
            .request(Method::POST, url.clone())
            .json(req)
            .timeout(timeout);
        // `send` reports the request's own timeout (this one), not the cluster's.
        let answer = self.send(Method::POST, &url, request).await?;
        let body: RunBody = decode(&url, &answer)?;
        Ok(body.jobid)
    }

    /// `POST /jobs/{id}/stop` (stop with a canonical savepoint, no drain); returns the request
    /// id to poll with [`FlinkClient::savepoint_status`]. `target_dir` `None` uses the cluster's
    /// `execution.checkpointing.savepoint-dir`.
    pub async fn stop_with_savepoint(
        &self,
        id: &JobId,
        target_dir: Option<&str>,
    ) -> Result<String, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "stop"], &[]);
        let mut body = serde_json::json!({"drain": false, "formatType": "CANONICAL"});
        if let Some(dir) = target_dir {
            body["targetDirectory"] = dir.into();
        }
        let answer: TriggerBody = decode(&url, &self.send_json(Method::POST, &url, &body).await?)?;
        Ok(answer.request_id)
    }

    /// `GET /jobs/{id}/savepoints/{request_id}`.
    pub async fn savepoint_status(
        &self,
        id: &JobId,
        request_id: &str,
    ) -> Result<SavepointStatus, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "savepoints", request_id], &[]);
        let body: AsyncOperationBody = self.get_json(&url).await?;
        let status = body.status.and_then(|s| s.id).unwrap_or_default();
        if status != "COMPLETED" {
            return Ok(SavepointStatus::InProgress);
        }
        let op = body.operation.unwrap_or_default();
        if let Some(location) = op.location.filter(|l| !l.is_empty()) {
            return Ok(SavepointStatus::Completed { location });
        }
        let cause = op
            .failure_cause
            .and_then(|c| {
                c.stack_trace
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| summarize_java_error(&t).message)
                    .or(c.class)
            })
            .unwrap_or_else(|| "Flink reported the operation complete without a location".into());
        Ok(SavepointStatus::Failed { cause })
    }

    /// `PATCH /jobs/{id}?mode=cancel` (the same on 1.20 and 2.x). Canceling a job that already
    /// ended succeeds; an unknown job is a 404 ([`FlinkError::is_not_found`]).
    pub async fn cancel(&self, id: &JobId) -> Result<(), FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string()], &[("mode", "cancel")]);
        self.send(Method::PATCH, &url, self.http.patch(url.clone()))
            .await?;
        Ok(())
    }

    /// Polls a savepoint operation until it completes; returns the savepoint's location.
    /// `progress` is called with the elapsed time after every poll that found it in progress.
    pub async fn wait_for_savepoint(
        &self,
        id: &JobId,
        request_id: &str,
        timeout: Duration,
        poll_interval: Duration,
        mut progress: impl FnMut(Duration),
    ) -> Result<String, FlinkError> {
        let what = format!("the savepoint of job {id}");
        let mut last = "it was still in progress".to_string();
        poll(
            timeout,
            poll_interval,
            &what,
            &mut last,
            async |last: &mut String, elapsed| match self.savepoint_status(id, request_id).await {
                Ok(SavepointStatus::Completed { location }) => Some(Ok(location)),
                Ok(SavepointStatus::Failed { cause }) => {
                    Some(Err(FlinkError::SavepointFailed { job: *id, cause }))
                }
                Ok(SavepointStatus::InProgress) => {
                    *last = "it was still in progress".into();
                    progress(elapsed);
                    None
                }
                Err(e) if e.is_retryable() => {
                    *last = format!("last error: {e}");
                    None
                }
                Err(e) => Some(Err(e)),
            },
        )
        .await
    }

    /// Polls the job until it is in one of the `wanted` states. Fails early when the job reaches
    /// a globally terminal state that is not wanted (for FAILED with the job's root exception).
    /// `progress` gets the state seen (`None`: job unknown) and the elapsed time after polls
    /// that did not finish the wait.
    pub async fn wait_for_state(
        &self,
        id: &JobId,
        wanted: &[JobState],
        timeout: Duration,
        poll_interval: Duration,
        mut progress: impl FnMut(Option<&JobState>, Duration),
    ) -> Result<JobState, FlinkError> {
        let names: Vec<&str> = wanted.iter().map(JobState::as_str).collect();
        let what = format!("job {id} to be {}", names.join(" or "));
        let mut last = "it was not seen yet".to_string();
        let mut seen_state: Option<JobState> = None;
        let result = poll(
            timeout,
            poll_interval,
            &what,
            &mut last,
            async |last: &mut String, elapsed| match self.job_state(id).await {
                Ok(Some(state)) if wanted.contains(&state) => Some(Ok(state)),
                Ok(Some(state)) if state.is_globally_terminal() => {
                    let cause = if state == JobState::Failed {
                        self.root_exception(id).await.ok().flatten()
                    } else {
                        None
                    };
                    Some(Err(FlinkError::JobTerminated {
                        job: *id,
                        state,
                        cause,
                    }))
                }
                Ok(state) => {
                    *last = match &state {
                        Some(s) => format!("it is {s}"),
                        None => "the cluster does not know the job".into(),
                    };
                    progress(state.as_ref(), elapsed);
                    seen_state = state;
                    None
                }
                Err(e) if e.is_retryable() => {
                    *last = format!("last error: {e}");
                    None
                }
                Err(e) => Some(Err(e)),
            },
        )
        .await;
        match result {
            // A job stuck restarting: say why.
            Err(FlinkError::WaitTimeout { what, after, last }) if seen_state.is_some() => {
                let last = match self.root_exception(id).await.ok().flatten() {
                    Some(cause) => format!("{last}; last exception: {cause}"),
                    None => last,
                };
                Err(FlinkError::WaitTimeout { what, after, last })
            }
            other => other,
        }
    }

    // --------------------------------------------------------------------------------------

    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("base URL is http(s), so it has path segments")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A GET, retried on transient failures, decoded from JSON.
    async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, FlinkError> {
        let start = Instant::now();
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let op = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.send(Method::GET, url, self.http.get(url.clone()))
                .await
        };
        let body = op
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(FlinkError::is_retryable)
            .notify(|e, after| tracing::debug!("retrying in {after:?} after: {e}"))
            .await
            .map_err(|e| e.after_attempts(attempts.into_inner(), start.elapsed()))?;
        decode(url, &body)
    }

    /// Like `get_json`, with 404 read as `None`.
    async fn get_json_opt<T: DeserializeOwned>(&self, url: &Url) -> Result<Option<T>, FlinkError> {
        match self.get_json(url).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send_json(
        &self,
        method: Method,
        url: &Url,
        body: &impl serde::Serialize,
    ) -> Result<Vec<u8>, FlinkError> {
        let req = self.http.request(method.clone(), url.clone()).json(body);
        self.send(method, url, req).await
    }

    /// The path of `url` below the base URL, e.g. `/jobs/{id}/stop` (no query).
    fn call_path(&self, url: &Url) -> String {
        let base = self.base.path().trim_end_matches('/');
        let path = url.path();
        let below = path.strip_prefix(base).unwrap_or(path);
        if below.starts_with('/') {
            below.to_string()
        } else {
            format!("/{below}")
        }
    }

    /// Sends once; a non-2xx answer becomes [`FlinkError::Api`] with Flink's message.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        req: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, FlinkError> {
        let (status, body) = self.send_raw(&method, url, req).await?;
        if status.is_success() {
            return Ok(body);
        }
        let (message, exception) = api_message(status, &body);
        Err(FlinkError::Api {
            method,
            url: shown_url(url),
            status,
            message,
            exception,
        })
    }

    /// Sends once; any HTTP answer is returned with its status, only transport failures are
    /// errors (naming the call, the request's own timeout and the real time taken).
    async fn send_raw(
        &self,
        method: &Method,
        url: &Url,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), FlinkError> {
        // The request's own timeout (uploads get longer than the cluster's).
        let after = req
            .try_clone()
            .and_then(|r| r.build().ok())
            .and_then(|r| r.timeout().copied())
            .unwrap_or(self.timeout);
        let start = Instant::now();
        let call = format!("{method} {}", self.call_path(url));
        let transport = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() {
                FlinkError::Timeout {
                    call: call.clone(),
                    url: self.shown.clone(),
                    after,
                    attempts: 1,
                    elapsed: start.elapsed(),
                    source: e,
                }
            } else {
                FlinkError::Unreachable {
                    call: call.clone(),
                    url: self.shown.clone(),
                    attempts: 1,
                    elapsed: start.elapsed(),
                    source: e,
                }
            }
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        // Chunk by chunk into one buffer: collecting the chunks first and joining them would
        // hold the answer twice (a 10,000-job `/jobs/overview` is 4 MiB).
        let expected = resp
            .content_length()
            .unwrap_or(0)
            .min(MAX_PREALLOCATED_BODY);
        let mut body = Vec::with_capacity(expected as usize);
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// Shared loop of the `wait_for_*` calls: `step` returns `Some` to finish.
async fn poll<T>(
    timeout: Duration,
    interval: Duration,
    what: &str,
    last: &mut String,
    mut step: impl AsyncFnMut(&mut String, Duration) -> Option<Result<T, FlinkError>>,
) -> Result<T, FlinkError> {
    let start = Instant::now();
    loop {
        if let Some(done) = step(last, start.elapsed()).await {
            return done;
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            // The real time: a slow (retried) request can make it much longer than `timeout`.
            return Err(FlinkError::WaitTimeout {
                what: what.to_string(),
                after: elapsed,
                last: last.clone(),
            });
        }
        tokio::time::sleep(interval.min(timeout - elapsed)).await;
    }
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, FlinkError> {
    serde_json::from_slice(body).map_err(|source| FlinkError::Decode {
        url: shown_url(url),
        source,
    })
}

fn decode_error(url: &Url, what: &str) -> FlinkError {
    use serde::de::Error;
    FlinkError::Decode {
        url: shown_url(url),
        source: serde_json::Error::custom(what),
    }
}

/// Flink's `{"errors": [...]}` reduced to its root cause, or the start of whatever else the
/// body is (a proxy's HTML page...), or the status reason.
fn api_message(status: StatusCode, body: &[u8]) -> (String, Option<String>) {
    if let Ok(err) = serde_json::from_slice::<ErrorBody>(body)
        && !err.errors.is_empty()
    {
        let s = summarize_flink_errors(&err.errors);
        if !s.message.is_empty() {
            return (s.message, s.exception);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        (
            status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string(),
            None,
        )
    } else {
        let text = crate::redact::text(&text);
        (truncate(&crate::text::escape_controls(&text), 300), None)
    }
}

fn parse_base_url(raw: &str) -> Result<Url, BaseUrlError> {
    crate::spec::cluster_base_url(raw)
}

/// The URL without user name and password, and without the trailing `/` of a bare host.
fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let s = u.to_string();
    match s.strip_suffix('/') {
        Some(stripped) if u.path() == "/" && u.query().is_none() => stripped.to_string(),
        _ => s,
    }
}
