//! Maven resolution against an in-process HTTP server (wiremock) in Maven layout.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::artifact::FetchPolicy;

const JAR: &[u8] = b"PK\x03\x04 a connector";
const JAR_PATH: &str = "/repo/org/example/conn/1.0/conn-1.0.jar";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha1(bytes: &[u8]) -> String {
    hex::encode(<sha1::Sha1 as sha1::Digest>::digest(bytes))
}

fn coordinate() -> Coordinate {
    Coordinate::parse("org.example:conn:1.0").unwrap()
}

fn repo(name: &str, server: &MockServer) -> MavenRepository {
    MavenRepository {
        name: name.into(),
        url: format!("{}/repo/", server.uri()),
        username_from_env: None,
        password_from_env: None,
    }
}

fn settings(dir: &tempfile::TempDir) -> ArtifactSettings {
    ArtifactSettings {
        policy: FetchPolicy::default(),
        cache: dir.path().to_path_buf(),
    }
}

async fn serve(server: &MockServer, at: String, body: impl AsRef<[u8]>, times: u64) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body.as_ref().to_vec()))
        .expect(times)
        .mount(server)
        .await;
}

#[test]
fn coordinates_parse_and_lay_out() {
    let c = Coordinate::parse("org.apache.flink:flink-sql-connector-kafka:3.3.0-1.20").unwrap();
    assert_eq!(
        c.layout_path(),
        "org/apache/flink/flink-sql-connector-kafka/3.3.0-1.20/flink-sql-connector-kafka-3.3.0-1.20.jar"
    );
    assert_eq!(
        c.to_string(),
        "org.apache.flink:flink-sql-connector-kafka:3.3.0-1.20"
    );
    let c = Coordinate::parse("g:a:1:linux-x86_64").unwrap();
    assert_eq!(c.file_name(), "a-1-linux-x86_64.jar");
    assert_eq!(c.layout_path(), "g/a/1/a-1-linux-x86_64.jar");
    assert_eq!(c.to_string(), "g:a:1:linux-x86_64");
    for bad in [
        "g:a",
        "g:a:1:c:d",
        "g::1",
        ":a:1",
        "g/x:a:1",
        "g:..:1",
        "g:a:1 2",
    ] {
        assert!(Coordinate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn checksum_files() {
    let hex = "ab".repeat(32);
    assert_eq!(parse_checksum(&hex, 64), Some(hex.clone()));
    assert_eq!(
        parse_checksum(&format!("{}  conn-1.0.jar\n", hex.to_uppercase()), 64),
        Some(hex.clone())
    );
    assert_eq!(parse_checksum("nope", 64), None);
    assert_eq!(parse_checksum(&hex, 40), None);
    assert_eq!(parse_checksum("", 40), None);
}

#[tokio::test]
async fn verified_by_the_published_sha256_and_never_fetched_twice() {
    let server = MockServer::start().await;
    serve(&server, format!("{JAR_PATH}.sha256"), sha256(JAR), 1).await;
    serve(&server, JAR_PATH.into(), JAR, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let repos = [repo("internal", &server)];
    let a = resolve(&coordinate(), None, &repos, &settings(&dir))
        .await
        .unwrap();
    assert_eq!(a.sha256, sha256(JAR));
    assert_eq!(std::fs::read(&a.path).unwrap(), JAR);
    // Again, unpinned and pinned: both from the cache (the mocks expect one request each).
    let b = resolve(&coordinate(), None, &repos, &settings(&dir))
        .await
        .unwrap();
    assert_eq!(b, a);
    let c = resolve(&coordinate(), Some(&sha256(JAR)), &repos, &settings(&dir))
        .await
        .unwrap();
    assert_eq!(c, a);
}

#[tokio::test]
async fn verified_by_sha1_when_there_is_no_sha256_and_refused_on_mismatch() {
    let server = MockServer::start().await;
    serve(
        &server,
        format!("{JAR_PATH}.sha1"),
        format!("{}  conn-1.0.jar", sha1(JAR)),
        1,
    )
    .await;
    serve(&server, JAR_PATH.into(), JAR, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let a = resolve(&coordinate(), None, &[repo("r", &server)], &settings(&dir))
        .await
        .unwrap();
    assert_eq!(a.sha256, sha256(JAR));

    let server = MockServer::start().await;
    serve(&server, format!("{JAR_PATH}.sha1"), "0".repeat(40), 1).await;
    serve(&server, JAR_PATH.into(), JAR, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let e = resolve(&coordinate(), None, &[repo("r", &server)], &settings(&dir))
        .await
        .unwrap_err();
    let text = crate::text::error_chain(&e);
    assert!(text.contains("sha1"), "{text}");
    assert!(text.contains(&"0".repeat(40)), "{text}");
    // Nothing unverified entered the cache.
    assert!(
        crate::artifact::cached(dir.path(), &sha256(JAR))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_pin_wins_over_the_repository() {
    let server = MockServer::start().await;
    serve(&server, JAR_PATH.into(), JAR, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let pin = "cd".repeat(32);
    let e = resolve(
        &coordinate(),
        Some(&pin),
        &[repo("r", &server)],
        &settings(&dir),
    )
    .await
    .unwrap_err();
    let text = crate::text::error_chain(&e);
    assert!(
        text.contains(&format!("sha256 {}, expected {pin}", sha256(JAR))),
        "{text}"
    );
}

#[tokio::test]
async fn missing_everywhere_next_repository_and_no_checksum() {
    let empty = MockServer::start().await;
    let full = MockServer::start().await;
    serve(&full, format!("{JAR_PATH}.sha256"), sha256(JAR), 1).await;
    serve(&full, JAR_PATH.into(), JAR, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let repos = [repo("empty", &empty), repo("full", &full)];
    let a = resolve(&coordinate(), None, &repos, &settings(&dir))
        .await
        .unwrap();
    assert_eq!(a.sha256, sha256(JAR));

    let e = resolve(&coordinate(), None, &repos[..1], &settings(&dir))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no repository in `mavenRepositories` has org.example:conn:1.0 (tried `empty`)"
    );

    let bare = MockServer::start().await;
    serve(&bare, JAR_PATH.into(), JAR, 1).await;
    let e = resolve(&coordinate(), None, &[repo("bare", &bare)], &settings(&dir))
        .await
        .unwrap_err();
    assert!(matches!(e, MavenError::NoChecksum { .. }), "{e}");
}

#[tokio::test]
async fn unreachable_repository_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let repos = [MavenRepository {
        name: "down".into(),
        url: "http://127.0.0.1:9/repo".into(),
        username_from_env: None,
        password_from_env: None,
    }];
    let e = resolve(&coordinate(), None, &repos, &settings(&dir))
        .await
        .unwrap_err();
    let text = crate::text::error_chain(&e);
    assert!(text.starts_with("repository `down`"), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}

#[tokio::test]
async fn credentials_come_from_the_environment_and_stay_secret() {
    let server = MockServer::start().await;
    // Basic "weir-ci:s3cret-maven-password"
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "weir-ci:s3cret-maven-password"
        )
    );
    for (at, body) in [
        (format!("{JAR_PATH}.sha256"), sha256(JAR).into_bytes()),
        (JAR_PATH.to_string(), JAR.to_vec()),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("authorization", auth.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    // SAFETY of the test: variable names unique to this test.
    unsafe {
        std::env::set_var("WEIR_TEST_MAVEN_USER_7f3a", "weir-ci");
        std::env::set_var("WEIR_TEST_MAVEN_PASSWORD_7f3a", "s3cret-maven-password");
    }
    let mut r = repo("private", &server);
    r.username_from_env = Some("WEIR_TEST_MAVEN_USER_7f3a".into());
    r.password_from_env = Some("WEIR_TEST_MAVEN_PASSWORD_7f3a".into());
    let dir = tempfile::tempdir().unwrap();
    resolve(&coordinate(), None, &[r.clone()], &settings(&dir))
        .await
        .unwrap();
    assert!(!crate::redact::text("x s3cret-maven-password y").contains("s3cret"));
    r.password_from_env = Some("WEIR_TEST_MAVEN_UNSET_7f3a".into());
    let e = resolve(&coordinate(), Some(&"00".repeat(32)), &[r], &settings(&dir))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "repository `private`: environment variable WEIR_TEST_MAVEN_UNSET_7f3a is not set"
    );
}
