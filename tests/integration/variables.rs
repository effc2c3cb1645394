//! Variables and `${env:…}` secrets (issue 11) on the real cluster: `variables` of weir.yaml
//! reach the job through its SQL, its program arguments and its Flink configuration; a secret
//! from weir's environment reaches the job and nothing else (plans in every format, the plan
//! file, apply output, history, show, status, the store's bytes, the daemon's log and API, a
//! notification); rotating it is a redeploy that names it; unsetting it is a plan error that
//! leaves the running job alone.

use std::time::Duration;

use crate::daemon::{Options, Remote, Sink};
use crate::harness::*;

const SECRET_VAR: &str = "WEIR_TEST_VARIABLES_SECRET";

fn secret() -> String {
    format!("VarSecret{:06x}z", rand::random::<u32>() & 0xff_ffff)
}

/// A SQL job whose name (`pipeline.name`) carries a variable and the secret, whose rate is a
/// variable, and whose checkpoint interval is a variable in `flinkConfiguration`.
fn sql_job_with_variables(name: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  \
         parallelism: 1\n  flinkConfiguration:\n    execution.checkpointing.interval: ${{interval}}\n  \
         sql: |\n    SET 'pipeline.name' = '${{prefix}}-${{env:{SECRET_VAR}}}';\n    \
         CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '${{rate}}');\n    \
         CREATE TABLE snk (id BIGINT) WITH ('connector' = 'blackhole');\n    \
         INSERT INTO snk SELECT id FROM src;\n"
    )
}

/// The test jar job with its checkpoint interval from a variable (a program argument).
fn jar_job_with_variables(name: &str) -> String {
    jar_job_args(
        name,
        1,
        &[
            "--checkpoint-interval-ms",
            "${checkpoint_ms}",
            "--rate",
            "${rate}",
        ],
    )
}

fn with_variables(repo: &Repo, prefix: &str) {
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}variables:\n  interval: 3s\n  rate: 5\n  checkpoint_ms: 4500\n  prefix: {prefix}\n"
        ),
    );
}

#[track_caller]
fn assert_absent(what: &str, text: &str, secret: &str) {
    if let Some(i) = text.find(secret) {
        let from = text[..i].char_indices().rev().nth(80).map_or(0, |(j, _)| j);
        let context: String = text[from..].chars().take(200).collect();
        panic!("{what} leaks the secret: …{context}…");
    }
}

fn store_bytes(state: &std::path::Path) -> String {
    let mut out = Vec::new();
    for suffix in ["", "-wal"] {
        out.extend(std::fs::read(format!("{}{suffix}", state.display())).unwrap_or_default());
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn checkpoint_interval_ms(base: &str, id: &str) -> u64 {
    get(&format!("{base}/jobs/{id}/checkpoints/config"))["interval"]
        .as_u64()
        .unwrap_or_else(|| panic!("no checkpoint interval for {id}"))
}

fn flink_name(base: &str, id: &str) -> String {
    get(&format!("{base}/jobs/{id}"))["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn variables_and_secrets_reach_the_job_and_nothing_else() {
    let cluster = cluster(Version::V2);
    let base = cluster.url.as_str();
    let repo = Repo::new(base, Some(&cluster.jars));
    let sql = repo.unique("vars-sql");
    let jar = repo.unique("vars-jar");
    let prefix = unique("vp");
    with_variables(&repo, &prefix);
    repo.write(&format!("jobs/{sql}.yaml"), &sql_job_with_variables(&sql));
    repo.write(&format!("jobs/{jar}.yaml"), &jar_job_with_variables(&jar));
    repo.commit("jobs with variables");
    let value = secret();
    let env = [(SECRET_VAR, value.as_str())];
    let weir = |args: &[&str]| repo.weir_env(args, &env);

    assert!(weir(&["validate"]).ok().stdout.contains("OK: 2 job"));
    for format in ["text", "json", "markdown"] {
        let run = weir(&["plan", "--format", format]).ok();
        assert_absent(&format!("plan --format {format}"), &run.all(), &value);
        assert!(
            run.all().contains(&format!("${{env:{SECRET_VAR}}}")),
            "the plan shows the reference: {}",
            run.all()
        );
    }
    let plan = weir(&["plan", "--format", "json"]).ok().json();
    let (_, script) = diff_of(change(&plan, &sql), "sql");
    assert!(
        script.as_str().unwrap().contains("'rows-per-second' = '5'")
            && script
                .as_str()
                .unwrap()
                .contains(&format!("'{prefix}-${{env:")),
        "{script}"
    );
    let out = repo.root.join("plan.json");
    let run = weir(&["plan", "--out", out.to_str().unwrap()]).ok();
    assert_absent("plan --out (output)", &run.all(), &value);
    assert_absent(
        "the plan file",
        &std::fs::read_to_string(&out).unwrap(),
        &value,
    );

    let applied = weir(&["apply", "--auto-approve"]).ok();
    assert_absent("apply", &applied.all(), &value);

    // The values reached the jobs: the secret and a variable in the SQL job's name, the
    // configuration's variable in its checkpoint interval, the arguments' in the jar job's.
    let sql_id = running_named(base, &sql).pop().expect("the SQL job runs");
    assert_eq!(flink_name(base, &sql_id), format!("{prefix}-{value}"));
    assert_eq!(checkpoint_interval_ms(base, &sql_id), 3000);
    let jar_id = running_named(base, &jar).pop().expect("the jar job runs");
    assert_eq!(checkpoint_interval_ms(base, &jar_id), 4500);

    nothing_weir_keeps_or_prints_has(&repo, &value);

    // Rotating the secret: a redeploy of the job that uses it, naming the secret only.
    let rotated = secret();
    let env2 = [(SECRET_VAR, rotated.as_str())];
    let run = repo.weir_env(&["plan", "--format", "json", "--detailed-exitcode"], &env2);
    assert_absent("plan after rotation", &run.all(), &rotated);
    assert_absent("plan after rotation", &run.all(), &value);
    let plan = run.code(2).json();
    let redeploy = change(&plan, &sql);
    assert_eq!(redeploy["action"], "redeploy", "{redeploy:#}");
    let (_, after) = diff_of(redeploy, &format!("secret {SECRET_VAR}"));
    assert_eq!(after, format!("${{env:{SECRET_VAR}}} (changed)"));
    assert_eq!(plan["changes"].as_array().unwrap().len(), 1, "{plan:#}");
    let text = repo.weir_env(&["plan"], &env2).code(0).stdout;
    assert!(text.contains(&format!("secret {SECRET_VAR}")), "{text}");
    repo.weir_env(&["apply", "--auto-approve"], &env2).ok();
    let sql_id2 = running_named(base, &sql).pop().expect("redeployed");
    assert_ne!(sql_id, sql_id2);
    assert_eq!(flink_name(base, &sql_id2), format!("{prefix}-{rotated}"));

    // A plan saved with one value and applied with another: refused before anything is touched.
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write("weir.yaml", &config.replace("interval: 3s", "interval: 4s"));
    let saved = repo.root.join("saved-plan.json");
    repo.weir_env(&["plan", "--out", saved.to_str().unwrap()], &env2)
        .ok();
    let third = secret();
    let refused = repo
        .weir_env(
            &["apply", saved.to_str().unwrap(), "--auto-approve"],
            &[(SECRET_VAR, third.as_str())],
        )
        .code(1);
    assert!(
        refused.all().contains("the saved plan is stale"),
        "{}",
        refused.all()
    );
    assert_absent("the refused apply", &refused.all(), &third);
    assert_eq!(running_named(base, &sql), vec![sql_id2.clone()]);

    // Unset: a plan error of that job; apply leaves it running.
    let unset = repo.weir(&["plan", "--format", "json"]).code(1).json();
    let errors = unset["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{unset:#}");
    assert_eq!(errors[0]["job"], sql.as_str());
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("`${{env:{SECRET_VAR}}}` is not set")),
        "{unset:#}"
    );
    assert!(unset["changes"].as_array().unwrap().is_empty(), "{unset:#}");
    let _ = repo.weir(&["apply", "--auto-approve"]);
    assert_eq!(running_named(base, &sql), vec![sql_id2.clone()]);
    assert_absent("the store", &store_bytes(&repo.state), &rotated);
}

/// Nothing weir keeps or prints has the secret `value` (set in the environment of each command).
fn nothing_weir_keeps_or_prints_has(repo: &Repo, value: &str) {
    let env = [(SECRET_VAR, value)];
    let weir = |args: &[&str]| repo.weir_env(args, &env);
    let history = weir(&["history", "--format", "json"]).ok();
    let records: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let apply_id = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "apply")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_string();
    for args in [
        vec!["history"],
        vec!["history", "--format", "jsonl"],
        vec!["show", &apply_id],
        vec!["show", &apply_id, "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
        vec!["plan", "--format", "json"],
    ] {
        assert_absent(&args.join(" "), &weir(&args).all(), value);
    }
    assert_absent("the store", &store_bytes(&repo.state), value);
    let in_sync = weir(&["plan", "--format", "json", "--detailed-exitcode"])
        .code(0)
        .json();
    assert!(
        in_sync["changes"].as_array().unwrap().is_empty(),
        "{in_sync:#}"
    );
}

/// The daemon: the secret reaches the job; its log, API, store and notifications never hold it.
#[test]
fn the_daemon_keeps_secrets_out_of_its_log_api_store_and_notifications() {
    let sink = Sink::start();
    let cluster = cluster(Version::V1_20);
    let base = cluster.url.as_str();
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let sql = repo.unique("vars-serve");
    let prefix = unique("vd");
    with_variables(&repo, &prefix);
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  dedupWindowSeconds: 0\n  routes:\n    - name: all\n      \
             events: [\"*\"]\n      urlFromEnv: WEIR_TEST_HOOK_URL\n"
        ),
    );
    repo.write(&format!("jobs/{sql}.yaml"), &sql_job_with_variables(&sql));
    remote.push(&repo, "a job with a secret");
    let value = secret();
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .env(SECRET_VAR, &value)
        .env("WEIR_TEST_HOOK_URL", &sink.url)
        .log("debug,sqlx=warn,hyper=warn,reqwest=warn,h2=warn")
        .start();
    d.wait_for("the create", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded"
    });
    let delivered = sink.wait_for(Duration::from_secs(30), |b| b["event"] == "apply.succeeded");
    assert_absent(
        "the notification",
        &String::from_utf8_lossy(&delivered.body),
        &value,
    );
    let id = running_named(base, &sql).pop().expect("the job runs");
    assert_eq!(flink_name(base, &id), format!("{prefix}-{value}"));
    for path in [
        "/api/v1/status".to_string(),
        format!("/api/v1/jobs/{sql}"),
        "/api/v1/history".to_string(),
        "/api/v1/plans".to_string(),
    ] {
        let (code, text) = d.get_raw(&path, None);
        assert_eq!(code, 200, "{path}: {text}");
        assert_absent(&path, &text, &value);
    }
    assert_absent("the daemon log", &d.log(), &value);
    let db = d.mirror().parent().unwrap().join("state.db");
    assert_absent("the daemon's store", &store_bytes(&db), &value);
}
