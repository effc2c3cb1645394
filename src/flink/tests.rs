//! Client tests against a wiremock server, with bodies taken from real Flink 1.20.5 / 2.3.0
//! answers.

use std::collections::BTreeMap;
use std::time::Duration;

use wiremock::matchers::{
    body_json, body_string_contains, header, header_exists, method, path, query_param,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const JOB: &str = "3e0000000000000000000000000000a1";

fn job() -> JobId {
    JOB.parse().unwrap()
}

fn cfg(url: &str) -> ClusterConfig {
    ClusterConfig {
        url: url.to_string(),
        savepoint_dir: None,
        bearer_token_env: None,
        headers_from_env: BTreeMap::new(),
        timeout_seconds: None,
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn client(server: &MockServer) -> FlinkClient {
    FlinkClient::with_env("test", &cfg(&server.uri()), |_| None)
        .unwrap()
        .with_retry(fast_retry())
}

fn json(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

fn status_json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

#[tokio::test]
async fn api_errors_carry_the_root_cause() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/jars/abc_job.jar/run"))
        .respond_with(status_json(
            400,
            super::error::tests::RUN_WITH_MISSING_SAVEPOINT,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .run_jar(
            "abc_job.jar",
            &RunJar {
                savepoint_path: Some("file:/nonexistent/sp".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            FlinkError::Api {
                status: StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.ends_with(
            "failed (400 Bad Request): Could not execute application: Cannot find checkpoint or \
             savepoint file/directory 'file:/nonexistent/sp' on file system 'file'."
        ),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("POST {}/jars/abc_job.jar/run", server.uri())),
        "{text}"
    );
    assert!(
        !text.contains("\tat ") && !text.contains("Caused by"),
        "{text}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn get_is_retried_on_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(status_json(503, r#"{"errors":["Service temporarily unavailable due to an ongoing leader election. Please refresh."]}"#))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(json(
            r#"{"taskmanagers":1,"slots-total":16,"slots-available":15,"jobs-running":1,"jobs-finished":0,"jobs-cancelled":0,"jobs-failed":0,"flink-version":"2.3.0","flink-commit":"c0f8d1a"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let o = client(&server).overview().await.unwrap();
    assert_eq!(
        o,
        ClusterOverview {
            taskmanagers: 1,
            slots_total: 16,
            slots_available: 15,
            jobs_running: 1,
            flink_version: Some("2.3.0".into())
        }
    );
}

#[tokio::test]
async fn get_gives_up_after_the_configured_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jobs/overview"))
        .respond_with(status_json(503, r#"{"errors":["Service temporarily unavailable due to an ongoing leader election. Please refresh."]}"#))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server).jobs_overview().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.is_retryable());
    assert!(err.to_string().contains("ongoing leader election"), "{err}");
}

#[tokio::test]
async fn post_and_patch_are_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{JOB}/stop")))
        .respond_with(status_json(503, r#"{"errors":["Internal server error."]}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(status_json(500, r#"{"errors":["Internal server error."]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.stop_with_savepoint(&job(), None).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.is_retryable(), "the caller may decide to retry");
    assert!(c.cancel(&job()).await.is_err());
    // MockServer verifies the `expect(1)` on drop.
}

#[tokio::test]
async fn auth_headers_are_sent_and_never_shown() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config"))
        .and(header("authorization", "Bearer s3cr3t-token"))
        .and(header("x-tenant", "tenant-value-42"))
        .respond_with(json(r#"{"refresh-interval":3000,"flink-version":"1.20.5","flink-revision":"x","features":{"web-submit":true}}"#))
        .expect(1)
        .mount(&server)
        .await;
    let mut c = cfg(&server.uri());
    c.bearer_token_env = Some("WEIR_TEST_TOKEN".into());
    c.headers_from_env
        .insert("X-Tenant".into(), "WEIR_TEST_TENANT".into());
    let env = |var: &str| match var {
        "WEIR_TEST_TOKEN" => Some("s3cr3t-token\n".to_string()),
        "WEIR_TEST_TENANT" => Some("tenant-value-42".to_string()),
        _ => None,
    };
    let client = FlinkClient::with_env("prod", &c, env).unwrap();
    assert_eq!(client.flink_version().await.unwrap(), "1.20.5");
    let debug = format!("{client:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("tenant-value"),
        "{debug}"
    );
    assert!(
        debug.contains("authorization") && debug.contains("<redacted>"),
        "{debug}"
    );

    // A missing variable names the variable, never a value.
    let err = FlinkClient::with_env("prod", &c, |v| {
        (v == "WEIR_TEST_TOKEN").then(|| "s3cr3t-token".into())
    })
    .unwrap_err();
    assert!(
        matches!(&err, FlinkError::MissingEnv { var, .. } if var == "WEIR_TEST_TENANT"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("WEIR_TEST_TENANT") && text.contains("prod"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
    let err = FlinkClient::with_env("prod", &c, |_| Some("   ".into())).unwrap_err();
    assert!(
        err.to_string()
            .contains("WEIR_TEST_TOKEN is not set or empty"),
        "{err}"
    );

    // A value that cannot be a header names the variable only.
    let err = FlinkClient::with_env("prod", &c, |_| Some("bad\u{7}value".into())).unwrap_err();
    assert!(matches!(err, FlinkError::InvalidConfig { .. }));
    assert!(
        err.to_string().contains("WEIR_TEST_TOKEN") && !err.to_string().contains("bad"),
        "{err}"
    );
}

#[tokio::test]
async fn bearer_and_authorization_header_conflict() {
    let mut c = cfg("http://127.0.0.1:8081");
    c.bearer_token_env = Some("A".into());
    c.headers_from_env
        .insert("Authorization".into(), "B".into());
    let err = FlinkClient::with_env("x", &c, |_| Some("v".into())).unwrap_err();
    assert!(matches!(err, FlinkError::InvalidConfig { .. }), "{err:?}");
}

#[test]
fn config_is_validated() {
    let bad = |url: &str, timeout: Option<u64>| {
        let mut c = cfg(url);
        c.timeout_seconds = timeout;
        FlinkClient::with_env("c", &c, |_| None).unwrap_err()
    };
    assert!(bad("ftp://x", None).to_string().contains("http://"));
    assert!(
        bad("not a url", None)
            .to_string()
            .contains("not a valid URL")
    );
    assert!(
        bad("http://x:8081", Some(0))
            .to_string()
            .contains("timeoutSeconds")
    );
    // Credentials in the URL are refused (they would live in the repo), never echoed.
    let refused = bad("http://user:pw@flink.example:8081/", None).to_string();
    assert!(refused.contains("user name or password"), "{refused}");
    assert!(!refused.contains("pw@"), "{refused}");
    let ok = FlinkClient::with_env("c", &cfg("http://flink.example:8081/"), |_| None).unwrap();
    assert_eq!(ok.url(), "http://flink.example:8081");
    let prefixed = FlinkClient::with_env("c", &cfg("https://gw.example/flink/"), |_| None).unwrap();
    assert_eq!(
        prefixed.endpoint(&["jobs", JOB], &[]).as_str(),
        format!("https://gw.example/flink/jobs/{JOB}")
    );
}

#[tokio::test]
async fn unknown_job_is_none() {
    let server = MockServer::start().await;
    let not_found = r#"{"errors":["org.apache.flink.runtime.rest.NotFoundException: Job 3e0000000000000000000000000000a1 not found\n\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler.lambda$handleRequest$1(AbstractExecutionGraphHandler.java:99)\nCaused by: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e0000000000000000000000000000a1)\n\tat org.apache.flink.runtime.dispatcher.Dispatcher.requestExecutionGraphInfo(Dispatcher.java:1769)\n\t... 5 more\n"]}"#;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(status_json(404, not_found))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}/config")))
        .respond_with(status_json(404, not_found))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.job_state(&job()).await.unwrap(), None);
    assert_eq!(c.job_parallelism(&job()).await.unwrap(), None);
}

#[tokio::test]
async fn job_state_parallelism_and_listing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(json(&format!(
            r#"{{"jid":"{JOB}","application-id":"{JOB}","name":"probe","isStoppable":false,"state":"RESTARTING","job-type":"STREAMING","start-time":1,"end-time":-1,"vertices":[],"status-counts":{{}},"plan":{{}}}}"#
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}/config")))
        .respond_with(json(&format!(
            r#"{{"jid":"{JOB}","name":"probe","execution-config":{{"execution-mode":"PIPELINED","restart-strategy":"Cluster level default restart strategy","job-parallelism":2,"object-reuse-mode":false,"user-config":{{}}}}}}"#
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jars"))
        .respond_with(json(r#"{"address":"http://127.0.0.1:18091","files":[{"id":"7350_weir-test-job.jar","name":"weir-test-job.jar","uploaded":1795467083439,"entry":[{"name":"dev.weir.testjob.CounterJob","description":null}]}]}"#))
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(
        c.job_state(&job()).await.unwrap(),
        Some(JobState::Restarting)
    );
    assert_eq!(c.job_parallelism(&job()).await.unwrap(), Some(2));
    let jars = c.list_jars().await.unwrap();
    assert_eq!(jars.len(), 1);
    assert_eq!(jars[0].id, "7350_weir-test-job.jar");
    assert_eq!(
        jars[0].entry_classes,
        vec!["dev.weir.testjob.CounterJob".to_string()]
    );
}

#[tokio::test]
async fn savepoint_statuses() {
    let server = MockServer::start().await;
    let sp = |rid: &str, body: &str| {
        Mock::given(method("GET"))
            .and(path(format!("/jobs/{JOB}/savepoints/{rid}")))
            .respond_with(json(body))
    };
    sp("r1", r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#)
        .mount(&server)
        .await;
    sp("r2", r#"{"status":{"id":"COMPLETED"},"operation":{"location":"file:/tmp/sp/savepoint-3e0000-0bebdbff46fe"}}"#)
        .mount(&server)
        .await;
    sp(
        "r3",
        r#"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"java.util.concurrent.CompletionException","stack-trace":"java.util.concurrent.CompletionException: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e0000000000000000000000000000c1)\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (3e0000000000000000000000000000c1)\n\t... 37 more\n","serialized-throwable":"rO0ABXNy"}}}"#,
    )
    .mount(&server)
    .await;
    let c = client(&server);
    assert_eq!(
        c.savepoint_status(&job(), "r1").await.unwrap(),
        SavepointStatus::InProgress
    );
    assert_eq!(
        c.savepoint_status(&job(), "r2").await.unwrap(),
        SavepointStatus::Completed {
            location: "file:/tmp/sp/savepoint-3e0000-0bebdbff46fe".into()
        }
    );
    assert_eq!(
        c.savepoint_status(&job(), "r3").await.unwrap(),
        SavepointStatus::Failed {
            cause: "Could not find Flink job (3e0000000000000000000000000000c1)".into()
        }
    );
    let err = c
        .wait_for_savepoint(
            &job(),
            "r3",
            Duration::from_secs(5),
            Duration::from_millis(10),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FlinkError::SavepointFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Could not find Flink job"),
        "{err}"
    );

    let mut polls = 0;
    let err = c
        .wait_for_savepoint(
            &job(),
            "r1",
            Duration::from_millis(100),
            Duration::from_millis(20),
            |_| polls += 1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FlinkError::WaitTimeout { .. }), "{err:?}");
    assert!(polls >= 2, "{polls}");
}

#[tokio::test]
async fn wait_for_savepoint_completes() {
    let server = MockServer::start().await;
    let p = format!("/jobs/{JOB}/savepoints/rid");
    Mock::given(method("GET"))
        .and(path(p.clone()))
        .respond_with(json(r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(json(
            r#"{"status":{"id":"COMPLETED"},"operation":{"location":"file:/sp/1"}}"#,
        ))
        .mount(&server)
        .await;
    let mut seen = Vec::new();
    let loc = client(&server)
        .wait_for_savepoint(
            &job(),
            "rid",
            Duration::from_secs(5),
            Duration::from_millis(5),
            |d| seen.push(d),
        )
        .await
        .unwrap();
    assert_eq!(loc, "file:/sp/1");
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn wait_for_state_fails_early_with_the_root_exception() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(json(r#"{"state":"RUNNING"}"#))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(json(r#"{"state":"FAILED"}"#))
        .mount(&server)
        .await;
    // Flink 2.x shape: no root-exception, only exceptionHistory.
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}/exceptions")))
        .and(query_param("maxExceptions", "1"))
        .respond_with(json(r#"{"exceptionHistory":{"entries":[{"exceptionName":"org.apache.flink.runtime.JobException","stacktrace":"org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:213)\nCaused by: java.lang.RuntimeException: weir test job: --fail-after-records 3 reached\n\tat dev.weir.testjob.CounterJob$CountPerKey.processElement(CounterJob.java:116)\n","timestamp":1795467113526,"failureLabels":{},"concurrentExceptions":[]}],"truncated":false}}"#))
        .mount(&server)
        .await;
    let mut states = Vec::new();
    let err = client(&server)
        .wait_for_state(
            &job(),
            &[JobState::Finished],
            Duration::from_secs(5),
            Duration::from_millis(5),
            |s, _| states.push(s.cloned()),
        )
        .await
        .unwrap_err();
    assert_eq!(states, vec![Some(JobState::Running)]);
    match &err {
        FlinkError::JobTerminated {
            state: JobState::Failed,
            cause: Some(cause),
            ..
        } => assert_eq!(
            cause,
            "Recovery is suppressed by NoRestartBackoffTimeStrategy: weir test job: --fail-after-records 3 reached"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wait_for_state_reaches_the_state_and_times_out_with_the_last_exception() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(json(r#"{"state":"RESTARTING"}"#))
        .mount(&server)
        .await;
    // Flink 1.20 shape: root-exception and an empty history.
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}/exceptions")))
        .respond_with(json(r#"{"root-exception":"java.lang.IllegalStateException: broken sink\n\tat x.Y.z(Y.java:1)\n","timestamp":1,"all-exceptions":[],"truncated":false,"exceptionHistory":{"entries":[],"truncated":false}}"#))
        .mount(&server)
        .await;
    let c = client(&server);
    let s = c
        .wait_for_state(
            &job(),
            &[JobState::Running, JobState::Restarting],
            Duration::from_secs(1),
            Duration::from_millis(5),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(s, JobState::Restarting);
    let err = c
        .wait_for_state(
            &job(),
            &[JobState::Running],
            Duration::from_millis(50),
            Duration::from_millis(10),
            |_, _| {},
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FlinkError::WaitTimeout { .. }), "{err:?}");
    assert!(text.contains(&format!("job {JOB} to be RUNNING")), "{text}");
    assert!(
        text.contains("it is RESTARTING; last exception: broken sink"),
        "{text}"
    );
}

#[tokio::test]
async fn upload_run_stop_cancel_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/jars/upload"))
        .and(header_exists("content-type"))
        .and(body_string_contains("name=\"jarfile\"; filename=\"weir-test-job.jar\""))
        .and(body_string_contains("application/x-java-archive"))
        .and(body_string_contains("PK-fake-jar"))
        .respond_with(json(r#"{"filename":"/tmp/flink-web-upload/735035ae-c660-475a-880e-4c3356f1767d_weir-test-job.jar","status":"success"}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/jars/735035ae-c660-475a-880e-4c3356f1767d_weir-test-job.jar/run",
        ))
        .and(body_json(serde_json::json!({
            "entryClass": "dev.weir.testjob.CounterJob",
            "programArgsList": ["--name", "probe"],
            "parallelism": 2,
            "jobId": JOB,
            "savepointPath": "file:/sp/1",
            "allowNonRestoredState": true,
        })))
        .respond_with(json(&format!(
            r#"{{"jobid":"{JOB}","applicationId":"{JOB}"}}"#
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{JOB}/stop")))
        .and(body_json(serde_json::json!({"drain": false, "formatType": "CANONICAL", "targetDirectory": "file:///sp"})))
        .respond_with(status_json(202, r#"{"request-id":"e9ad11a55043d0ae6d9c3915cde00bba"}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/jobs/{JOB}")))
        .and(query_param("mode", "cancel"))
        .respond_with(status_json(202, "{}"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let jar = c
        .upload_jar("weir-test-job.jar", b"PK-fake-jar".to_vec())
        .await
        .unwrap();
    assert_eq!(
        jar,
        "735035ae-c660-475a-880e-4c3356f1767d_weir-test-job.jar"
    );
    let req = RunJar {
        entry_class: Some("dev.weir.testjob.CounterJob".into()),
        program_args_list: vec!["--name".into(), "probe".into()],
        parallelism: Some(2),
        job_id: Some(job()),
        savepoint_path: Some("file:/sp/1".into()),
        allow_non_restored_state: true,
        flink_configuration: BTreeMap::new(),
    };
    assert_eq!(c.run_jar(&jar, &req).await.unwrap(), job());
    assert_eq!(
        c.stop_with_savepoint(&job(), Some("file:///sp"))
            .await
            .unwrap(),
        "e9ad11a55043d0ae6d9c3915cde00bba"
    );
    c.cancel(&job()).await.unwrap();
}

#[tokio::test]
async fn checkpoints_disabled_on_old_versions_is_empty() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}/checkpoints")))
        .respond_with(status_json(
            404,
            r#"{"errors":["Checkpointing has not been enabled."]}"#,
        ))
        .mount(&server)
        .await;
    assert_eq!(
        client(&server).checkpoints(&job()).await.unwrap(),
        CheckpointSummary::default()
    );
}

#[tokio::test]
async fn unreachable_address_is_named() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let c = FlinkClient::with_env("down", &cfg(&url), |_| None)
        .unwrap()
        .with_retry(fast_retry());
    let err = c.flink_version().await.unwrap_err();
    assert!(matches!(err, FlinkError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    let text = err.to_string();
    // The call is named; the retries of this idempotent GET are counted with their real time.
    assert!(
        text.starts_with(&format!(
            "GET /config to {url}: cannot reach Flink: connection refused ("
        )),
        "{text}"
    );
    let attempts = fast_retry().attempts;
    assert!(
        text.contains(&format!("({attempts} attempts over ")),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn slow_answers_time_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(json("{}").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut c = cfg(&server.uri());
    c.timeout_seconds = Some(1);
    let client = FlinkClient::with_env("slow", &c, |_| None)
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 1,
            ..fast_retry()
        });
    let err = client.overview().await.unwrap_err();
    assert!(matches!(err, FlinkError::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "GET /overview to {}: did not answer within 1s",
            server.uri()
        )
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn non_flink_error_bodies_are_shortened() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(format!("<html><body>{}</body></html>", "x".repeat(1000))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/config"))
        .respond_with(json(r#"{"flink-version": 3}"#))
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.overview().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(err.to_string().len() < 450, "{err}");
    let err = c.flink_version().await.unwrap_err();
    assert!(matches!(err, FlinkError::Decode { .. }), "{err:?}");
}

/// Transport errors name the call and, for retried calls, the attempts and the real time spent
/// (issue 9 item 15): never "30s" after 90 s of retries.
#[tokio::test]
async fn timeouts_name_the_call_and_the_real_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(json("{}").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{JOB}/stop")))
        .respond_with(json("{}").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut c = cfg(&server.uri());
    c.timeout_seconds = Some(1);
    let client = FlinkClient::with_env("slow", &c, |_| None)
        .unwrap()
        .with_retry(fast_retry());
    let text = client.overview().await.unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "GET /overview to {}: did not answer within 1s (3 attempts over ",
            server.uri()
        )),
        "{text}"
    );
    let err = client.stop_with_savepoint(&job(), None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "POST /jobs/{JOB}/stop to {}: did not answer within 1s",
            server.uri()
        )
    );
}

/// A wait reports the time it really took, not its nominal timeout.
#[tokio::test]
async fn waits_report_the_real_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{JOB}")))
        .respond_with(json(r#"{"state":"CREATED"}"#).set_delay(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    let err = client(&server)
        .wait_for_state(
            &job(),
            &[JobState::Running],
            Duration::from_millis(100),
            Duration::from_millis(10),
            |_, _| {},
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("gave up after 1.5s waiting for "),
        "{text}"
    );
}

/// Flink's error text cannot carry terminal escapes into weir's output.
#[tokio::test]
async fn control_characters_in_flink_errors_are_escaped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(status_json(
            400,
            r#"{"errors":["java.lang.IllegalArgumentException: bad \u001b[2K\rvalue"]}"#,
        ))
        .mount(&server)
        .await;
    let text = client(&server).overview().await.unwrap_err().to_string();
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    assert!(text.contains("bad \\u{1b}[2K\\rvalue"), "{text}");
}

/// An answer without a Content-Length, in chunks that split the JSON anywhere, is read whole.
#[tokio::test]
async fn a_chunked_answer_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jobs: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"jid":"{i:032x}","name":"job-{i}","state":"RUNNING","start-time":1,"end-time":-1}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"jobs":[{}]}}"#, jobs.join(","));
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        for piece in body.as_bytes().chunks(777) {
            let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            socket.write_all(&chunk).await.unwrap();
            socket.flush().await.unwrap();
        }
        socket.write_all(b"0\r\n\r\n").await.unwrap();
    });
    let client = FlinkClient::with_env("test", &cfg(&url), |_| None)
        .unwrap()
        .with_retry(fast_retry());
    let overview = client.jobs_overview().await.unwrap();
    assert_eq!(overview.len(), 200);
    assert_eq!(overview[199].name, "job-199");
    assert_eq!(overview[199].id.to_string(), format!("{:032x}", 199));
}
