//! Errors of the Flink REST client, and the reduction of Flink's Java stack traces to one line.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::identity::JobId;

use super::model::JobState;

/// Everything that can go wrong talking to a Flink JobManager.
///
/// No variant ever carries a token or header value: only the *names* of environment variables
/// and URLs without credentials.
#[derive(Debug, thiserror::Error)]
pub enum FlinkError {
    /// The request never got an HTTP answer (connection refused, DNS, TLS, reset...).
    /// `call` names the request; `attempts` and `elapsed` count retries of idempotent calls.
    #[error(
        "{call} to {url}: cannot reach Flink: {}{}",
        transport_cause(.source),
        retries(*.attempts, *.elapsed)
    )]
    Unreachable {
        call: String,
        url: String,
        attempts: usize,
        elapsed: Duration,
        #[source]
        source: reqwest::Error,
    },
    /// The JobManager did not answer within the per-request timeout `after`.
    #[error(
        "{call} to {url}: did not answer within {}{}",
        fmt_duration(*.after),
        retries(*.attempts, *.elapsed)
    )]
    Timeout {
        call: String,
        url: String,
        after: Duration,
        attempts: usize,
        elapsed: Duration,
        #[source]
        source: reqwest::Error,
    },
    /// Flink answered with an error status. `message` is Flink's own error text reduced to its
    /// root cause (see [`summarize_java_error`]); `exception` is the Java class of that cause
    /// when the body named one.
    #[error("{method} {url} failed ({status}): {message}")]
    Api {
        method: Method,
        url: String,
        status: StatusCode,
        message: String,
        exception: Option<String>,
    },
    /// Flink answered 2xx with a body this client does not understand.
    #[error("unexpected answer from Flink ({url}): {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// An environment variable named in `weir.yaml` is not set. Names the variable, never a value.
    #[error(
        "environment variable {var} is not set or empty (cluster {cluster:?} needs it for {purpose})"
    )]
    MissingEnv {
        var: String,
        cluster: String,
        purpose: String,
    },
    /// The cluster entry in `weir.yaml` cannot be used.
    #[error("invalid configuration of cluster {cluster:?}: {reason}")]
    InvalidConfig { cluster: String, reason: String },
    #[error("invalid configuration of cluster {cluster:?}: {source}")]
    InvalidUrl {
        cluster: String,
        #[source]
        source: BaseUrlError,
    },
    /// A savepoint operation finished without a savepoint.
    #[error("savepoint of job {job} failed: {cause}")]
    SavepointFailed { job: JobId, cause: String },
    /// Flink could not dispose a savepoint (`POST /savepoint-disposal`); it may still be there.
    #[error("disposal of savepoint {path} failed: {cause}")]
    DisposalFailed { path: String, cause: String },
    /// A job reached a globally terminal state (FAILED, CANCELED, FINISHED) that the caller was
    /// not waiting for. `cause` is the job's root exception for FAILED jobs, when Flink has one.
    #[error("job {job} is {state}{}", cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    JobTerminated {
        job: JobId,
        state: JobState,
        cause: Option<String>,
    },
    /// A `wait_for_*` call gave up. `last` says what was seen last.
    #[error("gave up after {} waiting for {what}; {last}", fmt_duration(*.after))]
    WaitTimeout {
        what: String,
        after: Duration,
        last: String,
    },
}

impl FlinkError {
    /// True for failures that may go away by themselves: no connection, a timeout, a 5xx or 429
    /// answer. Only idempotent requests are ever retried automatically.
    pub fn is_retryable(&self) -> bool {
        match self {
            FlinkError::Unreachable { .. } | FlinkError::Timeout { .. } => true,
            FlinkError::Api { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    /// The HTTP status of an [`FlinkError::Api`] error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            FlinkError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Flink answered 404 (unknown job, jar or savepoint request).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Flink rejected a submission because a job (2.x: application) with the requested id was
    /// already submitted: the submission it repeats has already happened.
    pub fn is_duplicate_submission(&self) -> bool {
        match self {
            FlinkError::Api {
                exception: Some(class),
                ..
            } => {
                class.ends_with("DuplicateJobSubmissionException")
                    || class.ends_with("DuplicateApplicationSubmissionException")
            }
            _ => false,
        }
    }
}

impl FlinkError {
    /// This transport error, as the last of `attempts` that took `elapsed` in all.
    pub(crate) fn after_attempts(mut self, total: usize, total_elapsed: Duration) -> Self {
        if let FlinkError::Unreachable {
            attempts, elapsed, ..
        }
        | FlinkError::Timeout {
            attempts, elapsed, ..
        } = &mut self
        {
            *attempts = total;
            *elapsed = total_elapsed;
        }
        self
    }
}

/// ` (3 attempts over 1m 31s)` when a call was retried; empty for a single attempt.
fn retries(attempts: usize, elapsed: Duration) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts over {})", fmt_duration(elapsed))
    } else {
        String::new()
    }
}

/// `1.5s`, `30s`, `2m 5s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 10_000 && !ms.is_multiple_of(1000) {
        format!("{:.1}s", d.as_secs_f64())
    } else if d.as_secs() < 120 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}m {}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The innermost cause of a transport error ("connection refused", "dns error: ..."), without
/// the noise of reqwest's and hyper's wrappers.
fn transport_cause(e: &reqwest::Error) -> String {
    let mut deepest: &dyn std::error::Error = e;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    let mut text = deepest.to_string();
    // "Connection refused (os error 111)" -> "connection refused"; acronyms ("TLS ...") stay.
    if let Some(i) = text.find(" (os error ") {
        text.truncate(i);
    }
    let mut chars = text.chars();
    if let (Some(c), Some(n)) = (chars.next(), chars.clone().next())
        && c.is_uppercase()
        && n.is_lowercase()
    {
        return c.to_lowercase().chain(chars).collect();
    }
    text
}

/// The result of [`summarize_java_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaErrorSummary {
    /// One line: the first exception's message when it is short, joined with the deepest
    /// `Caused by:` message. Never a stack frame.
    pub message: String,
    /// Java class of the deepest cause, if the text named one.
    pub exception: Option<String>,
}

const MAX_FIRST_LEN: usize = 160;
const MAX_MESSAGE_LEN: usize = 1500;

/// Reduces a Java exception text (as found in Flink's `{"errors": [...]}` bodies, savepoint
/// failure causes and job exception histories) to its root cause: the deepest `Caused by:`
/// message, prefixed by the first line's message when that is short and adds information.
/// Java class prefixes are removed when a message follows them; stack frames are dropped.
pub fn summarize_java_error(text: &str) -> JavaErrorSummary {
    let blocks = exception_blocks(text);
    let Some(first) = blocks.first() else {
        return JavaErrorSummary {
            message: String::new(),
            exception: None,
        };
    };
    let last = blocks.last().unwrap_or(first);
    let (first_msg, _) = strip_class_prefixes(&first.header);
    let (root_msg, root_class) = strip_class_prefixes(&last.header);
    let first_adds_nothing = blocks.len() == 1
        || first_msg == root_msg
        || first_msg.len() > MAX_FIRST_LEN
        || is_generic(&first_msg);
    let message = if first_adds_nothing {
        root_msg
    } else if first_msg.contains(&root_msg) {
        first_msg
    } else {
        format!(
            "{}: {}",
            first_msg.trim_end_matches(['.', ':', ' ']),
            root_msg
        )
    };
    // Text from the cluster (a job's main() may print anything): no secrets, no terminal
    // escapes or forged lines wherever it is stored or shown.
    let message = crate::redact::text(&message);
    let message = crate::text::escape_controls(&message);
    JavaErrorSummary {
        message: crate::text::truncate(&message, MAX_MESSAGE_LEN),
        exception: root_class,
    }
}

/// Summary of a Flink `{"errors": [...]}` list: entries are summarized one by one, Flink's
/// generic "Internal server error." is dropped when something more specific is there.
pub(crate) fn summarize_flink_errors(errors: &[String]) -> JavaErrorSummary {
    let mut parts: Vec<JavaErrorSummary> = errors
        .iter()
        .map(|e| summarize_java_error(e))
        .filter(|s| !s.message.is_empty())
        .collect();
    if parts.len() > 1 {
        parts.retain(|s| !is_generic(&s.message));
    }
    let exception = parts.iter().rev().find_map(|p| p.exception.clone());
    let message = parts
        .into_iter()
        .map(|p| p.message)
        .collect::<Vec<_>>()
        .join("; ");
    JavaErrorSummary { message, exception }
}

fn is_generic(msg: &str) -> bool {
    let m = msg.trim().trim_end_matches('.').to_ascii_lowercase();
    matches!(
        m.as_str(),
        "internal server error" | "exception on server side" | ""
    )
}

struct Block {
    /// The exception line plus continuation lines of a multi-line message, joined by spaces.
    header: String,
}

/// Splits a Java stack trace into the top exception and its `Caused by:` chain. Only
/// `Caused by:` lines at column 0 count: indented ones belong to `Suppressed:` exceptions.
fn exception_blocks(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    // Whether the current block still collects message lines (until its first frame).
    let mut collecting = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if let Some(rest) = line.strip_prefix("Caused by: ") {
            blocks.push(Block {
                header: rest.trim().to_string(),
            });
            collecting = true;
            continue;
        }
        if trimmed == "<Exception on server side:" || trimmed == "End of exception on server side>"
        {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("<Exception on server side:")
            .unwrap_or(trimmed)
            .trim();
        if is_frame(line) {
            collecting = false;
            continue;
        }
        if blocks.is_empty() {
            if !trimmed.is_empty() {
                blocks.push(Block {
                    header: trimmed.to_string(),
                });
                collecting = true;
            }
            continue;
        }
        if collecting && !trimmed.is_empty() {
            let header = &mut blocks.last_mut().expect("non-empty").header;
            header.push(' ');
            header.push_str(trimmed);
        }
    }
    blocks
}

/// A stack frame, `... N more`, or the start of an indented `Suppressed:`/`Caused by:` section.
fn is_frame(line: &str) -> bool {
    let indented = line.starts_with([' ', '\t']);
    let t = line.trim_start();
    if indented
        && (t.starts_with("at ") || t.starts_with("Suppressed: ") || t.starts_with("Caused by: "))
    {
        return true;
    }
    if let Some(rest) = t.strip_prefix("... ")
        && let Some(n) = rest.strip_suffix(" more")
    {
        return n.chars().all(|c| c.is_ascii_digit());
    }
    false
}

/// `a.b.FooException: b.c.BarException: msg` -> (`msg`, `b.c.BarException`). A class name with no
/// message after it is kept as the message.
fn strip_class_prefixes(header: &str) -> (String, Option<String>) {
    let mut rest = header.trim();
    let mut class = None;
    loop {
        if is_java_class(rest) {
            return (rest.to_string(), Some(rest.to_string()));
        }
        match rest.split_once(':') {
            Some((head, tail)) if is_java_class(head) && !tail.trim().is_empty() => {
                class = Some(head.to_string());
                rest = tail.trim();
            }
            _ => return (rest.to_string(), class),
        }
    }
}

/// `java.lang.IllegalStateException`, `org.x.Outer$Inner`: dotted identifiers whose last segment
/// starts with an upper-case letter.
fn is_java_class(s: &str) -> bool {
    let segments: Vec<&str> = s.split('.').collect();
    segments.len() >= 2
        && segments.iter().all(|seg| {
            let mut chars = seg.chars();
            chars
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        && segments
            .last()
            .and_then(|l| l.chars().next())
            .is_some_and(|c| c.is_uppercase())
}

/// Why a cluster's `url` cannot be the base of the REST API (the rule lives with the format).
pub use crate::spec::ClusterUrlError as BaseUrlError;

/// Wrapper whose Debug never shows the value (for header values and tokens).
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real body of `POST /jars/{id}/run` with a savepoint path that does not exist
    /// (Flink 1.20.5; frames shortened to two per exception).
    pub(crate) const RUN_WITH_MISSING_SAVEPOINT: &str = r#"{"errors": ["org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$handleRequest$1(JarRunHandler.java:114)\n\tat java.base/java.util.concurrent.CompletableFuture.uniHandle(CompletableFuture.java:934)\nCaused by: java.util.concurrent.CompletionException: org.apache.flink.util.FlinkRuntimeException: Could not execute application.\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:315)\n\tat java.base/java.util.concurrent.CompletableFuture.completeThrowable(CompletableFuture.java:320)\n\t... 1 more\nCaused by: org.apache.flink.util.FlinkRuntimeException: Could not execute application.\n\tat org.apache.flink.client.deployment.application.DetachedApplicationRunner.tryExecuteJobs(DetachedApplicationRunner.java:88)\n\tat org.apache.flink.client.deployment.application.DetachedApplicationRunner.run(DetachedApplicationRunner.java:70)\n\t... 1 more\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: Failed to execute job 'weir-counter'.\n\tat org.apache.flink.client.program.PackagedProgram.callMainMethod(PackagedProgram.java:373)\n\tat org.apache.flink.client.program.PackagedProgram.invokeInteractiveModeForExecution(PackagedProgram.java:223)\n\t... 4 more\nCaused by: org.apache.flink.util.FlinkException: Failed to execute job 'weir-counter'.\n\tat org.apache.flink.streaming.api.environment.StreamExecutionEnvironment.executeAsync(StreamExecutionEnvironment.java:2487)\n\tat org.apache.flink.client.program.StreamContextEnvironment.executeAsync(StreamContextEnvironment.java:192)\n\t... 7 more\nCaused by: java.lang.RuntimeException: org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.\n\tat org.apache.flink.util.ExceptionUtils.rethrow(ExceptionUtils.java:321)\n\tat org.apache.flink.util.function.FunctionUtils.lambda$uncheckedFunction$2(FunctionUtils.java:75)\n\t... 1 more\nCaused by: org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.\n\tat org.apache.flink.runtime.jobmaster.DefaultJobMasterServiceProcess.lambda$new$0(DefaultJobMasterServiceProcess.java:97)\n\tat java.base/java.util.concurrent.CompletableFuture.uniWhenComplete(CompletableFuture.java:863)\n\t... 1 more\nCaused by: java.util.concurrent.CompletionException: java.lang.RuntimeException: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/nonexistent/sp' on file system 'file'.\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:315)\n\tat java.base/java.util.concurrent.CompletableFuture.completeThrowable(CompletableFuture.java:320)\n\t... 4 more\nCaused by: java.lang.RuntimeException: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/nonexistent/sp' on file system 'file'.\n\tat org.apache.flink.util.ExceptionUtils.rethrow(ExceptionUtils.java:321)\n\tat org.apache.flink.util.function.FunctionUtils.lambda$uncheckedSupplier$4(FunctionUtils.java:114)\n\t... 4 more\nCaused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/nonexistent/sp' on file system 'file'.\n\tat org.apache.flink.runtime.state.filesystem.AbstractFsCheckpointStorageAccess.resolveCheckpointPointer(AbstractFsCheckpointStorageAccess.java:275)\n\tat org.apache.flink.runtime.state.filesystem.AbstractFsCheckpointStorageAccess.resolveCheckpoint(AbstractFsCheckpointStorageAccess.java:136)\n\t... 5 more\n"]}"#;

    fn errors_of(body: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        serde_json::from_value(v["errors"].clone()).unwrap()
    }

    #[test]
    fn root_cause_of_a_real_run_error() {
        let s = summarize_flink_errors(&errors_of(RUN_WITH_MISSING_SAVEPOINT));
        assert_eq!(
            s.message,
            "Could not execute application: Cannot find checkpoint or savepoint file/directory \
             'file:/nonexistent/sp' on file system 'file'."
        );
        assert_eq!(
            s.exception.as_deref(),
            Some("java.io.FileNotFoundException")
        );
        assert!(!s.message.contains("\tat "));
    }

    #[test]
    fn duplicate_submission_is_recognized() {
        let text = "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat a.B.c(B.java:1)\nCaused by: org.apache.flink.util.FlinkException: Failed to execute job 'x'.\n\tat a.B.c(B.java:1)\n\t... 8 more\nCaused by: org.apache.flink.runtime.client.DuplicateJobSubmissionException: Job has already been submitted.\n\tat a.B.c(B.java:1)\n";
        let s = summarize_java_error(text);
        assert_eq!(
            s.message,
            "Could not execute application: Job has already been submitted."
        );
        let err = FlinkError::Api {
            method: Method::POST,
            url: "http://x/jars/j/run".into(),
            status: StatusCode::BAD_REQUEST,
            message: s.message,
            exception: s.exception,
        };
        assert!(err.is_duplicate_submission());
        assert!(!err.is_retryable());
    }

    #[test]
    fn server_side_exception_wrapper_and_generic_text_are_dropped() {
        let errors = vec![
            "Internal server error.".to_string(),
            "<Exception on server side:\norg.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e00)\n\tat org.apache.flink.runtime.dispatcher.Dispatcher.requestJobStatus(Dispatcher.java:897)\n\nEnd of exception on server side>".to_string(),
        ];
        let s = summarize_flink_errors(&errors);
        assert_eq!(s.message, "Could not find Flink job (3e00)");
        assert_eq!(
            s.exception.as_deref(),
            Some("org.apache.flink.runtime.messages.FlinkJobNotFoundException")
        );
    }

    #[test]
    fn nested_class_prefixes_and_message_less_causes() {
        let text = "java.util.concurrent.CompletionException: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e)\n\tat x.Y.z(Y.java:1)\nCaused by: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e)\n\t... 37 more\n";
        assert_eq!(
            summarize_java_error(text).message,
            "Could not find Flink job (3e)"
        );

        let npe = "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat x.Y.z(Y.java:1)\nCaused by: java.lang.NullPointerException\n\tat x.Y.z(Y.java:1)\n";
        let s = summarize_java_error(npe);
        assert_eq!(
            s.message,
            "Recovery is suppressed by NoRestartBackoffTimeStrategy: java.lang.NullPointerException"
        );
        assert_eq!(
            s.exception.as_deref(),
            Some("java.lang.NullPointerException")
        );
    }

    #[test]
    fn plain_messages_and_multi_line_messages() {
        assert_eq!(
            summarize_java_error("Not found: /jobs/x/nope").message,
            "Not found: /jobs/x/nope"
        );
        assert_eq!(
            summarize_java_error("weir test job: --fail-in-main: boom").message,
            "weir test job: --fail-in-main: boom"
        );
        let multi = "org.apache.flink.table.api.ValidationException: Could not find any factory for identifier 'kafka'.\n\nAvailable factory identifiers are:\n\nblackhole\ndatagen\n\tat x.Y.z(Y.java:1)\n\tSuppressed: java.lang.Exception: hidden\n\t\tat x.Y.z(Y.java:1)\n\t\tCaused by: java.lang.Exception: also hidden\n";
        assert_eq!(
            summarize_java_error(multi).message,
            "Could not find any factory for identifier 'kafka'. Available factory identifiers are: blackhole datagen"
        );
    }

    #[test]
    fn long_first_lines_are_dropped() {
        let text = format!(
            "java.lang.RuntimeException: {}\n\tat x.Y.z(Y.java:1)\nCaused by: java.lang.IllegalStateException: inner msg\n",
            "x".repeat(300)
        );
        assert_eq!(summarize_java_error(&text).message, "inner msg");
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m 5s");
    }
}
