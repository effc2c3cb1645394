//! Pre-flight against the fake Flink and an in-memory store: which requests a plan makes.

use super::*;
use crate::engine::plan;
use crate::plan::Action;
use crate::plan::fixtures::{desired, job};
use crate::testing::fake_flink::{Fake, counts};

const PLAN_CALL: &str = "POST /jars/{jarid}/plan";

fn desired_at(url: &str, jobs: Vec<DesiredJob>) -> crate::desired::DesiredState {
    let mut d = desired(jobs, false);
    d.config.clusters.get_mut("local").unwrap().url = url.to_string();
    d
}

/// A fake cluster that has the fixture's jar already (nothing to upload).
async fn cluster() -> (std::sync::Arc<Fake>, String) {
    let (fake, url) = Fake::serve().await;
    let jar = job("a").jar().clone();
    fake.insert_jar(&format!("weir-{}-{}", &jar.sha256[..16], jar.file_name()));
    (fake, url)
}

async fn planned(
    store: &Store,
    url: &str,
    jobs: Vec<DesiredJob>,
    opts: &PreflightOptions,
) -> Planned {
    let dir = tempfile::tempdir().unwrap();
    let source = RepoSource::work_tree(dir.path()).unwrap();
    let mut planned = plan(store, desired_at(url, jobs), &[]).await.unwrap();
    preflight(store, &mut planned, &source, opts).await;
    planned
}

fn everywhere() -> PreflightOptions {
    PreflightOptions::everywhere(ArtifactSettings::for_cli(Vec::new()))
}

#[tokio::test]
async fn a_replan_of_an_unchanged_program_asks_the_cluster_nothing() {
    let (fake, url) = cluster().await;
    let store = Store::open_in_memory().await.unwrap();
    let mark = fake.mark();
    let first = planned(&store, &url, vec![job("a")], &everywhere()).await;
    assert_eq!(first.plan.preflight.len(), 1);
    assert_eq!(first.plan.preflight[0].status, PreflightStatus::Passed);
    assert_eq!(first.plan.flink_versions["local"], "2.1.0");
    assert_eq!(counts(&fake.since(mark)).get(PLAN_CALL), Some(&1));

    let mark = fake.mark();
    let second = planned(&store, &url, vec![job("a")], &everywhere()).await;
    assert_eq!(second.plan.preflight[0].status, PreflightStatus::Cached);
    let calls = counts(&fake.since(mark));
    assert_eq!(calls.get(PLAN_CALL), None, "{calls:?}");
    assert_eq!(calls.get("GET /jars"), None, "{calls:?}");
    assert_eq!(second.plan.changes.len(), 1);
}

#[tokio::test]
async fn a_refused_program_is_a_plan_error_of_its_job_and_not_a_change() {
    let (fake, url) = cluster().await;
    let store = Store::open_in_memory().await.unwrap();
    fake.fail(
        PLAN_CALL,
        reqwest::StatusCode::INTERNAL_SERVER_ERROR,
        "org.apache.flink.client.program.ProgramInvocationException: The main method caused an \
         error: boom\n\tat x.Y.main(Y.java:1)\nCaused by: java.lang.IllegalStateException: boom",
        None,
    );
    let planned = planned(&store, &url, vec![job("a"), job("b")], &everywhere()).await;
    let p = &planned.plan;
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.errors.len(), 2);
    assert_eq!(p.errors[0].job.as_deref(), Some("a"));
    assert_eq!(p.errors[0].cluster, "local");
    assert_eq!(p.errors[0].message, "boom");
    assert_eq!(p.summary.errors, 2);
    assert_eq!(p.preflight[0].status, PreflightStatus::Failed);

    // Refusals are not cached: the next plan asks again.
    fake.heal();
    let again = super::tests::planned(&store, &url, vec![job("a")], &everywhere()).await;
    assert_eq!(again.plan.changes[0].action, Action::Create);
    assert_eq!(again.plan.preflight[0].status, PreflightStatus::Passed);
}

#[tokio::test]
async fn a_cluster_failure_during_preflight_is_an_error_too() {
    let (fake, url) = cluster().await;
    let store = Store::open_in_memory().await.unwrap();
    fake.fail(
        PLAN_CALL,
        reqwest::StatusCode::NOT_FOUND,
        "Jar file does not exist",
        None,
    );
    let planned = planned(&store, &url, vec![job("a")], &everywhere()).await;
    assert!(planned.plan.changes.is_empty());
    let message = &planned.plan.errors[0].message;
    assert!(message.starts_with("cannot pre-flight `a`"), "{message}");
}

#[tokio::test]
async fn switched_off_programs_are_not_checked_and_say_why() {
    let (fake, url) = cluster().await;
    let store = Store::open_in_memory().await.unwrap();
    let mut unchecked = job("b");
    unchecked.preflight = false;
    let mark = fake.mark();
    let p = planned(&store, &url, vec![job("a"), unchecked], &everywhere())
        .await
        .plan;
    assert_eq!(counts(&fake.since(mark)).get(PLAN_CALL), Some(&1));
    assert_eq!(p.preflight[1].status, PreflightStatus::NotChecked);
    assert_eq!(
        p.preflight[1].reason.as_deref(),
        Some("`preflight: false` in jobs/b.yaml")
    );

    let off = PreflightOptions::off("--no-preflight");
    let mark = fake.mark();
    let p = planned(&store, &url, vec![job("c")], &off).await.plan;
    assert_eq!(counts(&fake.since(mark)).get(PLAN_CALL), None);
    assert_eq!(p.preflight[0].reason.as_deref(), Some("--no-preflight"));
    assert_eq!(p.changes.len(), 1);
}

#[tokio::test]
async fn a_pull_request_policy_preflights_only_allowed_clusters() {
    let (fake, url) = cluster().await;
    let store = Store::open_in_memory().await.unwrap();
    let opts = PreflightOptions {
        routes: Some(BTreeMap::new()),
        ..everywhere()
    };
    let mark = fake.mark();
    let p = planned(&store, &url, vec![job("a")], &opts).await.plan;
    assert_eq!(counts(&fake.since(mark)).get(PLAN_CALL), None);
    let reason = p.preflight[0].reason.as_deref().unwrap();
    assert!(reason.contains("does not allow"), "{reason}");
}

#[test]
fn secret_values_are_found_in_configuration_arguments_and_sql() {
    let mut jar = job("a");
    jar.flink_configuration
        .insert("s3.secret-key".into(), "CONF-SECRET".into());
    if let Program::Jar { args, .. } = &mut jar.program {
        *args = vec![
            "--db-password".into(),
            "ARG-SECRET".into(),
            "--topic".into(),
            "x".into(),
        ];
    }
    let found = secret_values(&jar);
    assert!(found.contains(&"CONF-SECRET".to_string()), "{found:?}");
    assert!(found.contains(&"ARG-SECRET".to_string()), "{found:?}");
    assert!(!found.contains(&"x".to_string()), "{found:?}");

    let mut sql = job("b");
    sql.program = Program::Sql {
        script: "CREATE TABLE t (x INT) WITH ('connector' = 'jdbc', 'password' = 'SQL-SECRET');"
            .into(),
        source_file: None,
        runner: jar.jar().clone(),
        runner_class: "R".into(),
    };
    assert_eq!(secret_values(&sql), vec!["SQL-SECRET".to_string()]);
}

/// Redeploys of running jobs: the first plan asks the cluster for each new program's graph and
/// each running job's; the next plan finds all of them in the store, read at once.
#[tokio::test]
async fn a_replan_of_redeploys_reads_every_graph_from_the_store() {
    use crate::testing::fake_flink::FakeJob;
    let (fake, url) = cluster().await;
    let jobs: Vec<DesiredJob> = ["a", "b", "c"].into_iter().map(job).collect();
    fake.insert_jobs(jobs.iter().enumerate().map(|(i, j)| {
        let mut ident = crate::plan::submission_identity(j, 7);
        ident.code_hash ^= 0x5a5a_5a5a; // another program runs: a redeploy
        FakeJob {
            id: ident.job_id().to_string(),
            name: j.name.to_string(),
            state: "RUNNING",
            parallelism: ident.parallelism,
            start_ms: 1_000 + i as i64,
            end_ms: None,
        }
    }));
    let store = Store::open_in_memory().await.unwrap();
    let mark = fake.mark();
    let first = planned(&store, &url, jobs.clone(), &everywhere()).await;
    assert!(
        first
            .plan
            .changes
            .iter()
            .all(|c| c.action == Action::Redeploy),
        "{:?}",
        first.plan.changes
    );
    assert_eq!(first.plan.preflight.len(), 3);
    let calls = counts(&fake.since(mark));
    assert_eq!(calls.get(PLAN_CALL), Some(&3), "{calls:?}");
    assert_eq!(calls.get("GET /jobs/{jobid}/plan"), Some(&3), "{calls:?}");

    let mark = fake.mark();
    let second = planned(&store, &url, jobs, &everywhere()).await;
    let statuses: Vec<_> = second.plan.preflight.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [PreflightStatus::Cached; 3]);
    assert_eq!(
        second
            .plan
            .preflight
            .iter()
            .map(|p| p.graph.is_some())
            .collect::<Vec<_>>(),
        [true; 3],
        "each running job's graph compared, from the store"
    );
    let calls = counts(&fake.since(mark));
    assert_eq!(calls.get(PLAN_CALL), None, "{calls:?}");
    assert_eq!(calls.get("GET /jobs/{jobid}/plan"), None, "{calls:?}");
}
