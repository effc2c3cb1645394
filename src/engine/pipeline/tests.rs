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
