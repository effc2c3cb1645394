//! Staging bundles against the fake Flink: one upload per content, the embedded runner, and
//! dependency errors that name the entry.

use std::io::Write;

use super::*;
use crate::artifact::ArtifactSettings;
use crate::desired::{Dependency, DependencySource, JarLocation, JarRef, Program};
use crate::plan::fixtures;
use crate::spec::ClusterConfig;
use crate::testing::fake_flink::{Fake, counts};

fn jar(entry: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(entry, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"class bytes").unwrap();
    w.finish().unwrap().into_inner()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

struct World {
    _dir: tempfile::TempDir,
    source: RepoSource,
    artifacts: ArtifactSettings,
    job: DesiredJob,
}

fn world(udf: &[u8]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let app = jar("com/acme/App.class");
    std::fs::create_dir_all(dir.path().join("repo/artifacts")).unwrap();
    std::fs::write(dir.path().join("repo/artifacts/app.jar"), &app).unwrap();
    std::fs::write(dir.path().join("repo/artifacts/udf.jar"), udf).unwrap();
    let mut job = fixtures::job("orders");
    if let Program::Jar { jar, .. } = &mut job.program {
        jar.sha256 = sha(&app);
    }
    job.dependencies.push(Dependency {
        source: DependencySource::Repo {
            path: "artifacts/udf.jar".into(),
        },
        sha256: Some(sha(udf)),
        origin: "jobs/orders.yaml:12:7".into(),
    });
    World {
        source: RepoSource::work_tree(dir.path().join("repo")).unwrap(),
        artifacts: ArtifactSettings {
            policy: Default::default(),
            cache: dir.path().join("cache"),
        },
        _dir: dir,
        job,
    }
}

async fn ensure(w: &World, client: &FlinkClient) -> Result<String, ApplyError> {
    let jar_ids = JarIds::default();
    JarStage {
        source: &w.source,
        artifacts: &w.artifacts,
        jar_ids: &jar_ids,
        progress: &|_: &str| {},
    }
    .ensure(&w.job.name, client, &w.job)
    .await
}

fn client(url: &str) -> FlinkClient {
    let cluster = ClusterConfig {
        url: url.into(),
        savepoint_dir: None,
        bearer_token_env: None,
        headers_from_env: Default::default(),
        timeout_seconds: Some(5),
    };
    FlinkClient::new("local", &cluster).unwrap()
}

#[tokio::test]
async fn a_bundle_is_uploaded_once_per_content() {
    let (fake, url) = Fake::serve().await;
    let client = client(&url);
    let w = world(&jar("u/Udf.class"));
    let first = ensure(&w, &client).await.unwrap();
    assert!(first.ends_with("-bundle-app.jar"), "{first}");
    // A later run (fresh jar ids) finds it by name: no second upload.
    let second = ensure(&w, &client).await.unwrap();
    assert_eq!(first, second);
    let c = fake.take_counts();
    assert_eq!(c.get("POST /jars/upload"), Some(&1), "{c:?}");

    // Another dependency content is another bundle.
    let other = world(&jar("u/Other.class"));
    let third = ensure(&other, &client).await.unwrap();
    assert_ne!(third, first);
    assert_eq!(counts(&fake.since(0)).get("POST /jars/upload"), Some(&1));
}

#[tokio::test]
async fn a_dependency_that_is_not_a_jar_names_its_entry() {
    let (fake, url) = Fake::serve().await;
    let client = client(&url);
    let w = world(b"<html>not found</html>");
    let e = ensure(&w, &client).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("jobs/orders.yaml:12:7: udf.jar is not a jar"),
        "{text}"
    );
    assert_eq!(fake.take_counts().get("POST /jars/upload"), None);
}

#[tokio::test]
async fn the_embedded_runner_is_staged_without_a_repo_jar() {
    let (fake, url) = Fake::serve().await;
    let client = client(&url);
    let mut w = world(&jar("u/Udf.class"));
    w.job.dependencies.clear();
    w.job.program = Program::Sql {
        script: "INSERT INTO x SELECT 1".into(),
        source_file: None,
        runner: JarRef {
            location: JarLocation::Embedded,
            sha256: crate::desired::EMBEDDED_RUNNER_ID.into(),
        },
        runner_class: "dev.weir.sqlrunner.SqlRunner".into(),
    };
    let id = ensure(&w, &client).await.unwrap();
    // The fake reports Flink 2.x: the 2.x build, named by its own digest.
    let digest = sha(crate::bundle::EMBEDDED_SQL_RUNNER_FLINK2);
    assert!(
        id.ends_with(&format!("weir-{}-weir-sql-runner.jar", &digest[..16])),
        "{id}"
    );
    assert_eq!(fake.take_counts().get("POST /jars/upload"), Some(&1));
}
