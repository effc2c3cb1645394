//! The pipeline end to end in milliseconds: a mocked JobManager, an in-memory store.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::engine::stale::{self, Scope};
use crate::plan::Action;
use crate::plan::fixtures::{desired, job};
use crate::store::Trigger;

async fn flink(jobs: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jobs/overview"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(format!(r#"{{"jobs":{jobs}}}"#), "application/json"),
        )
        .mount(&server)
        .await;
    server
}

fn desired_at(url: &str) -> DesiredState {
    let mut d = desired(vec![job("a")], false);
    d.config.clusters.get_mut("local").unwrap().url = url.to_string();
    d
}

#[tokio::test]
async fn plans_records_and_checks_a_plan() {
    let server = flink("[]").await;
    let store = Store::open_in_memory().await.unwrap();
    let planned = plan(&store, desired_at(&server.uri()), &[]).await.unwrap();
    let p = &planned.plan;
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Create);
    assert!(p.id.starts_with("plan-"), "{}", p.id);
    assert_eq!(planned.snapshot.clients.len(), 1);
    assert_eq!(
        p.observed_fingerprint,
        stale::fingerprint(
            p,
            Scope::Repo,
            &planned.desired,
            &planned.snapshot.history,
            &planned.snapshot.observation
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let source = RepoSource::work_tree(dir.path()).unwrap();
    crate::engine::record_plan(&store, p, Trigger::Cli, &source, Some("alice".into()))
        .await
        .unwrap();
    let record = store.plan(&p.id).await.unwrap().expect("recorded");
    assert_eq!(record.trigger, Trigger::Cli);

    // Nothing changed: the plan is still fresh against a new snapshot.
    let now = snapshot(&store, &planned.desired).await.unwrap();
    assert_eq!(
        stale::check(p, Scope::Repo, &planned.desired, &[], &now),
        Ok(())
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_an_error_of_the_plan_not_of_the_pipeline() {
    let store = Store::open_in_memory().await.unwrap();
    let planned = plan(&store, desired_at("http://127.0.0.1:1"), &[])
        .await
        .unwrap();
    assert!(planned.plan.changes.is_empty());
    assert_eq!(planned.plan.errors.len(), 1);
}

#[test]
fn a_cluster_entry_that_makes_no_client_names_the_cluster() {
    let d = desired_at("not a url");
    let err = clients(&d).unwrap_err();
    assert!(err.to_string().contains("cluster `local`"), "{err}");
}

/// Plan, apply through the engine's applier against the fake Flink, and the applied plan is
/// stale afterwards in both scopes (the daemon's "the same plan again" refusal, in milliseconds).
#[tokio::test]
async fn an_applied_plan_is_stale_and_the_repo_in_sync() {
    use crate::testing::fake_flink::Fake;
    let (fake, url) = Fake::serve().await;
    let d = desired_at(&url);
    let jar = d.jobs[0].jar();
    fake.insert_jar(&format!("weir-{}-{}", &jar.sha256[..16], jar.file_name()));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("weir.db")).await.unwrap();
    let source = RepoSource::work_tree(dir.path()).unwrap();
    let planned = plan(&store, d, &[]).await.unwrap();
    crate::engine::record_plan(&store, &planned.plan, Trigger::Cli, &source, None)
        .await
        .unwrap();
    let settings = crate::engine::ApplySettings {
        parallel: 2,
        slots: None,
        savepoint_timeout: std::time::Duration::from_secs(5),
        start_timeout: std::time::Duration::from_secs(5),
        artifacts: crate::artifact::ArtifactSettings::for_cli(Vec::new()),
        run_timeout: std::time::Duration::from_secs(5),
    };
    let applier = crate::engine::applier(
        &store,
        planned.snapshot.clients.clone(),
        source,
        &settings,
        Arc::new(|_: &str| {}),
        Trigger::Cli,
    );
    let outcomes = applier
        .apply(&planned.plan, &crate::clock::new_id("apply"))
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");

    let now = snapshot(&store, &planned.desired).await.unwrap();
    for scope in [Scope::Repo, Scope::Changes] {
        let stale = stale::check(&planned.plan, scope, &planned.desired, &[], &now);
        assert_eq!(
            stale,
            Err(stale::Stale::Changed { job: "a".into() }),
            "{scope:?}"
        );
    }
    let again = plan(&store, planned.desired.clone(), &[]).await.unwrap();
    assert!(!again.plan.has_changes(), "{:?}", again.plan.changes);
}

/// The number of `GET /jobs/overview` calls `server` received.
async fn overview_calls(server: &MockServer) -> usize {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == "/jobs/overview")
        .count()
}

/// A snapshot taken while the repo loaded is planned with when it observed the clusters the
/// loaded `weir.yaml` names, and replaced by a new one when it did not.
#[tokio::test]
async fn an_early_snapshot_serves_only_the_clusters_it_observed() {
    let (before, after) = (flink("[]").await, flink("[]").await);
    let store = Store::open_in_memory().await.unwrap();
    let clusters = desired_at(&before.uri()).config.clusters;

    let early = EarlySnapshot::take(store.clone(), clusters.clone()).await;
    assert_eq!(overview_calls(&before).await, 1);
    let planned = plan_with(&store, desired_at(&before.uri()), &[], early)
        .await
        .unwrap();
    assert_eq!(
        overview_calls(&before).await,
        1,
        "observed once, before the plan"
    );
    assert_eq!(planned.plan.changes[0].action, Action::Create);

    // The loaded weir.yaml moved the cluster: the early observation is of the wrong one.
    let early = EarlySnapshot::take(store.clone(), clusters).await;
    assert_eq!(overview_calls(&before).await, 2);
    let planned = plan_with(&store, desired_at(&after.uri()), &[], early)
        .await
        .unwrap();
    assert_eq!(
        overview_calls(&after).await,
        1,
        "the moved cluster is observed"
    );
    assert_eq!(
        planned.snapshot.clients["local"]
            .url()
            .trim_end_matches('/'),
        after.uri()
    );
}

/// A snapshot that could not be taken is no snapshot: the plan takes its own.
#[tokio::test]
async fn an_early_snapshot_that_failed_leaves_the_plan_to_observe() {
    let server = flink("[]").await;
    let store = Store::open_in_memory().await.unwrap();
    let mut clusters = desired_at(&server.uri()).config.clusters;
    clusters.get_mut("local").unwrap().url = "not a url".into();
    assert!(EarlySnapshot::take(store.clone(), clusters).await.is_none());
    let planned = plan_with(&store, desired_at(&server.uri()), &[], None)
        .await
        .unwrap();
    assert_eq!(overview_calls(&server).await, 1);
    assert_eq!(planned.plan.changes.len(), 1);
}
