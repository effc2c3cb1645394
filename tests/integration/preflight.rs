//! Pre-flight on the target cluster: `weir plan` asks the real cluster to plan each program a
//! change submits, so an SQL typo or a `main()` that throws is a plan error (with file:line:col
//! for SQL) and `weir apply` leaves the running job alone; the state check refuses a program
//! whose graph drops the running job's state unless `allowNonRestoredState` is on.

use crate::harness::*;

/// `jobs/{name}.yaml` running `sql/{name}.sql` (the script's `FROM` table is `from`).
fn write_sql_job(repo: &Repo, name: &str, from: &str) {
    repo.write(
        &format!("jobs/{name}.yaml"),
        &format!(
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  parallelism: 1\n  sqlFile: sql/{name}.sql\n"
        ),
    );
    repo.write(
        &format!("sql/{name}.sql"),
        &format!(
            "SET 'pipeline.name' = '{name}';\n\
             CREATE TABLE clicks (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '5');\n\
             CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');\n\
             \n\
             INSERT INTO sink\n\
             SELECT id FROM {from};\n"
        ),
    );
}

/// The plan errors of a JSON plan: (job, message).
fn errors(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["job"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn preflight_of<'a>(plan: &'a serde_json::Value, job: &str) -> &'a serde_json::Value {
    plan["preflight"]
        .as_array()
        .unwrap_or_else(|| panic!("no preflight in {plan:#}"))
        .iter()
        .find(|p| p["job"] == job)
        .unwrap_or_else(|| panic!("no preflight of {job} in {plan:#}"))
}

fn sql_typo_and_broken_main(version: Version) {
    let cluster = cluster(version);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let sql = repo.unique("pf-sql");
    let jar = repo.unique("pf-jar");
    write_sql_job(&repo, &sql, "clicks");
    repo.write(&format!("jobs/{jar}.yaml"), &jar_job(&jar, 1, "a", ""));
    repo.commit("two good jobs");
    let plan = plan_json(&repo, 2);
    assert_eq!(preflight_of(&plan, &sql)["status"], "passed", "{plan:#}");
    assert!(plan["flinkVersions"]["local"].is_string(), "{plan:#}");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let sql_job = running_named(base, &sql);
    let jar_job_ids = running_named(base, &jar);
    assert_eq!((sql_job.len(), jar_job_ids.len()), (1, 1));
    let status = status_row(&repo, &sql);
    assert!(status["flinkVersion"].is_string(), "{status:#}");

    // The typo and the throwing main(): plan errors with Flink's root cause, not changes.
    write_sql_job(&repo, &sql, "clickz");
    repo.write(
        &format!("jobs/{jar}.yaml"),
        &jar_job_args(&jar, 1, &["--topic", "a", "--fail-in-main", "boom"]),
    );
    repo.commit("a typo and a broken main");
    let plan = plan_json(&repo, 1);
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let errors = errors(&plan);
    assert_eq!(
        errors,
        vec![
            (
                jar.clone(),
                "weir test job: --fail-in-main: boom".to_string()
            ),
            (
                sql.clone(),
                format!("sql/{sql}.sql:6:16: Object 'clickz' not found")
            ),
        ],
        "{plan:#}"
    );
    assert_eq!(preflight_of(&plan, &sql)["status"], "failed");

    // apply stops nothing: the same jobs keep running.
    let applied = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(
        applied.all().contains("Object 'clickz' not found"),
        "{}",
        applied.all()
    );
    assert_eq!(running_named(base, &sql), sql_job);
    assert_eq!(running_named(base, &jar), jar_job_ids);

    // --no-preflight: the changes are planned, and the plan says they were not checked.
    let unchecked = repo
        .weir(&["plan", "--format", "json", "--no-preflight"])
        .ok()
        .json();
    assert_eq!(preflight_of(&unchecked, &sql)["status"], "not-checked");
    assert_eq!(preflight_of(&unchecked, &sql)["reason"], "--no-preflight");
}

#[test]
fn preflight_catches_sql_typos_and_broken_main_on_flink_2() {
    sql_typo_and_broken_main(Version::V2);
}

#[test]
fn preflight_catches_sql_typos_and_broken_main_on_flink_1_20() {
    sql_typo_and_broken_main(Version::V1_20);
}

fn uid_change_needs_allow_non_restored_state(version: Version) {
    let cluster = cluster(version);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let name = repo.unique("pf-state");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job_args(&name, 1, &["--rate", "5"]));
    repo.commit("stateful job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);

    // The counter's uid changes: its keyed state has no operator in the new graph.
    let renamed = jar_job_args(&name, 1, &["--rate", "5", "--uid-suffix", "-v2"]);
    repo.write(&file, &renamed);
    repo.commit("new uid");
    let plan = plan_json(&repo, 1);
    let errors = errors(&plan);
    assert_eq!(errors.len(), 1, "{plan:#}");
    assert!(
        errors[0].1.contains("would not be restored")
            && errors[0].1.contains("count-per-key")
            && errors[0].1.contains("spec.savepoint.allowNonRestoredState"),
        "{plan:#}"
    );
    let graph = &preflight_of(&plan, &name)["graph"];
    assert_eq!(graph["removed"].as_array().unwrap().len(), 1, "{plan:#}");
    assert_eq!(graph["added"].as_array().unwrap().len(), 1, "{plan:#}");
    assert_eq!(graph["kept"].as_array().unwrap().len(), 1, "{plan:#}");
    repo.weir(&["apply", "--auto-approve"]).code(1);
    assert_eq!(running_named(base, &name), first, "untouched");

    // With allowNonRestoredState the change goes ahead and says what is dropped.
    repo.write(
        &file,
        &format!("{renamed}  savepoint:\n    allowNonRestoredState: true\n"),
    );
    repo.commit("drop the old counter's state");
    let plan = plan_json(&repo, 2);
    let redeploy = change(&plan, &name);
    assert!(
        redeploy["stateRisks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "operator-state-dropped"),
        "{redeploy:#}"
    );
    assert!(
        redeploy["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("count-per-key")),
        "{redeploy:#}"
    );
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
}

#[test]
fn preflight_refuses_unrestorable_state_on_flink_2() {
    uid_change_needs_allow_non_restored_state(Version::V2);
}

#[test]
fn preflight_refuses_unrestorable_state_on_flink_1_20() {
    uid_change_needs_allow_non_restored_state(Version::V1_20);
}

/// The daemon pre-flights its followed branch: a pushed program that cannot start is a plan
/// error reported by the reconcile, and the running job is never stopped for it.
#[test]
fn the_daemon_never_stops_a_job_for_a_program_that_fails_preflight() {
    use crate::daemon::{Options, Remote, Sink, job_of};
    let sink = Sink::start();
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  routes:\n    - name: ops\n      events: [\"apply.failed\"]\n      \
             urlFromEnv: WEIR_TEST_HOOK_URL\n      secretFromEnv: WEIR_TEST_HOOK_SECRET\n"
        ),
    );
    let name = repo.unique("pf-serve");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "a", ""));
    remote.push(&repo, "a job");
    let d = Options::following(&remote)
        .github_webhook()
        .config("pollIntervalSeconds: 3600\n")
        .env("WEIR_TEST_HOOK_URL", &sink.url)
        .env(
            "WEIR_TEST_HOOK_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        )
        .start();
    let first = d.wait_job(&name, "Synced", "RUNNING")["jobId"].clone();

    repo.write(
        &file,
        &jar_job_args(&name, 1, &["--topic", "a", "--fail-in-main", "boom"]),
    );
    remote.push(&repo, "a broken main");
    let s = d.sync_and_wait();
    assert_eq!(s["lastReconcile"]["outcome"], "error", "{s:#}");
    let message = s["lastReconcile"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--fail-in-main: boom"), "{s:#}");
    assert_eq!(job_of(&s, &name).unwrap()["jobId"], first, "{s:#}");
    assert_eq!(
        running_named(base, &name),
        vec![first.as_str().unwrap().to_string()]
    );
}
