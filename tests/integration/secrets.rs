//! Secrets never leave weir (issue 9 item 13): a job whose program arguments, Flink
//! configuration and SQL hold credentials in every place people put them, and whose `main()`
//! fails on the real Flink cluster printing a password and a URL with credentials. Every output
//! of the CLI and the daemon is searched for the secrets: plan text/JSON/markdown, the `--out`
//! file, apply output, `weir show`, `weir history`, `weir status`, the SQLite files, the daemon's
//! log, its API answers and its notifications.

use std::time::Duration;

use crate::daemon::{Options, Remote, Sink};
use crate::harness::*;

/// A marker that every secret of the test contains: no output may contain it.
fn marker() -> String {
    format!("LeakMark{:06x}x", rand::random::<u32>() & 0xff_ffff)
}

/// The jar job: a credential in each leak pattern, and a `main()` that fails printing more,
/// among them the `--db-password` value bare (known from the definition, not by a pattern).
fn leaky_job(name: &str, m: &str) -> String {
    let args = serde_json::to_string(&[
        "--jdbc",
        &format!("jdbc:postgresql://app:{m}1@db:5432/orders"),
        "--endpoint",
        &format!("https://bob:{m}2@api.example.com/v1"),
        "-p",
        &format!("{m}3"),
        "--conn",
        &format!("password={m}4;host=db"),
        "--db-password",
        &format!("{m}11"),
        "--fail-in-main",
        &format!(
            "cannot connect to jdbc:postgresql://app:{m}5@db/x with password={m}6 \u{1b}[2J \
             (the server rejected {m}11)"
        ),
    ])
    .unwrap();
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  \
         preflight: false\n  parallelism: 1\n  jar:\n    path: artifacts/weir-test-job.jar\n    \
         entryClass: dev.weir.testjob.CounterJob\n    args: {args}\n  flinkConfiguration:\n    \
         fs.azure.account.key.acct.blob.core.windows.net: \"{m}7\"\n    \
         env.java.opts.all: \"-Djavax.net.ssl.trustStorePassword={m}8 -Xmx512m\"\n    \
         my.service.url: \"https://svc:{m}9@svc.example.com/x\"\n"
    )
}

/// A SQL job whose `'url'` option carries `password=` in its query string.
fn leaky_sql_job(name: &str, m: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  \
         preflight: false\n  parallelism: 1\n  sql: |\n    CREATE TABLE src (id BIGINT) WITH ('connector' = 'jdbc', \
         'url' = 'jdbc:postgresql://db/x?user=u&password={m}10', 'table-name' = 't');\n    \
         CREATE TABLE snk (id BIGINT) WITH ('connector' = 'blackhole');\n    \
         INSERT INTO snk SELECT id FROM src;\n"
    )
}

/// The cluster entry sends `Authorization: Bearer $WEIR_TEST_FLINK_TOKEN` (Flink ignores it).
fn with_bearer_token(repo: &Repo) {
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &config.replace(
            "  local:\n",
            "  local:\n    bearerTokenEnv: WEIR_TEST_FLINK_TOKEN\n",
        ),
    );
}

#[track_caller]
fn assert_clean(what: &str, text: &str, m: &str) {
    assert!(!text.contains(m), "{what} leaks a secret:\n{text}");
    assert!(!text.contains('\u{1b}'), "{what} prints a raw ESC:\n{text}");
}

/// For binary files (which hold ESC bytes of their own): only the secret, shown in context.
#[track_caller]
fn assert_absent(what: &str, text: &str, m: &str) {
    if let Some(i) = text.find(m) {
        let context: String = text[i..].chars().take(100).collect();
        panic!("{what} leaks a secret: …{context}…");
    }
}

/// The bytes of the store's SQLite files (the database and its write-ahead log).
fn store_bytes(state: &std::path::Path) -> String {
    let mut out = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", state.display());
        out.extend(std::fs::read(&path).unwrap_or_default());
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn secrets_never_reach_plans_apply_output_records_or_the_store() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let m = marker();
    // A bearer token the cluster entry reads from the environment: a known secret value that
    // the job's main() prints bare, where no pattern can recognise it.
    let token = format!("{m}-bearer-token");
    let env = [("WEIR_TEST_FLINK_TOKEN", token.as_str())];
    let weir = |args: &[&str]| repo.weir_env(args, &env);
    with_bearer_token(&repo);
    let job = repo.unique("secrets");
    let sql = repo.unique("secrets-sql");
    let leaky =
        leaky_job(&job, &m).replace("with password=", &format!("as {token} with password="));
    repo.write(&format!("jobs/{job}.yaml"), &leaky);
    repo.write(&format!("jobs/{sql}.yaml"), &leaky_sql_job(&sql, &m));

    // With pre-flight on, the failing main() and the SQL are refused at plan time: the plan's
    // errors carry Flink's text, scrubbed.
    for (file, content) in [(&job, &leaky), (&sql, &leaky_sql_job(&sql, &m))] {
        repo.write(
            &format!("jobs/{file}.yaml"),
            &content.replace("  preflight: false\n", ""),
        );
    }
    for format in ["text", "json", "markdown"] {
        let run = weir(&["plan", "--format", format]).code(1);
        assert_clean(
            &format!("pre-flight plan --format {format}"),
            &run.all(),
            &m,
        );
        assert!(
            run.all().contains("--fail-in-main"),
            "Flink's refusal shown: {}",
            run.all()
        );
    }
    repo.write(&format!("jobs/{job}.yaml"), &leaky);
    repo.write(&format!("jobs/{sql}.yaml"), &leaky_sql_job(&sql, &m));

    // Plans in every format, and the saved plan.
    let out = repo.root.join("plan.json");
    for format in ["text", "json", "markdown"] {
        let run = weir(&["plan", "--format", format]).ok();
        assert_clean(&format!("plan --format {format}"), &run.all(), &m);
        assert!(run.all().contains("<redacted>"), "{}", run.all());
    }
    let run = weir(&["plan", "--out", out.to_str().unwrap()]).ok();
    assert_clean("plan --out (output)", &run.all(), &m);
    assert_clean(
        "plan --out (file)",
        &std::fs::read_to_string(&out).unwrap(),
        &m,
    );

    // The apply: main() fails on Flink, printing a password and a URL with credentials.
    repo.remove(&format!("jobs/{sql}.yaml"));
    let run = weir(&["apply", "--auto-approve"]).code(1);
    let applied = run.all();
    assert_clean("apply", &applied, &m);
    assert!(
        applied.contains("cannot connect to"),
        "Flink's text is shown: {applied}"
    );
    assert!(
        !applied.contains(&format!("{job}: {job}")),
        "named once: {applied}"
    );

    // Every record of it.
    let history = weir(&["history", "--format", "json"]).ok();
    assert_clean("history --format json", &history.all(), &m);
    let records: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let apply_id = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "apply")
        .and_then(|r| r["id"].as_str())
        .expect("the apply is recorded")
        .to_string();
    for args in [
        vec!["history"],
        vec!["history", "--format", "jsonl"],
        vec!["show", &apply_id],
        vec!["show", &apply_id, "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
    ] {
        let run = weir(&args);
        assert_clean(&args.join(" "), &run.all(), &m);
    }
    let shown = weir(&["show", &apply_id]).ok().stdout;
    assert!(shown.contains("cannot connect to"), "{shown}");
    assert_absent("the SQLite files", &store_bytes(&repo.state), &m);
}

/// The daemon: a cluster bearer token from the environment (a known secret value) and the same
/// leaky job. Its log, API answers, store and notifications never carry a secret.
#[test]
fn the_daemon_never_logs_serves_stores_or_sends_a_secret() {
    let sink = Sink::start();
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    let m = marker();
    let token = format!("{m}-bearer-token");
    let job = repo.unique("secrets-serve");
    // The job's main() also prints the cluster's bearer token, which no pattern can know.
    let leaky =
        leaky_job(&job, &m).replace("with password=", &format!("as {token} with password="));
    with_bearer_token(&repo);
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}notifications:\n  dedupWindowSeconds: 0\n  routes:\n    - name: audit\n      \
             events: [\"*\"]\n      urlFromEnv: WEIR_TEST_HOOK_URL\n"
        ),
    );
    repo.write(&format!("jobs/{job}.yaml"), &leaky);
    remote.push(&repo, "a leaky job");
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .env("WEIR_TEST_FLINK_TOKEN", &token)
        .env("WEIR_TEST_HOOK_URL", &sink.url)
        .log("debug,sqlx=warn,hyper=warn,reqwest=warn,h2=warn")
        .start();
    let s = d.wait_for("the failed create", Duration::from_secs(90), |s| {
        s["lastApply"]["outcome"] == "failed"
    });
    let apply_id = s["lastApply"]["id"].as_str().unwrap().to_string();
    let failed = sink.wait_for(Duration::from_secs(30), |b| {
        b["event"] == "apply.failed" && b["job"] == job.as_str()
    });
    let body = String::from_utf8_lossy(&failed.body).into_owned();
    assert!(!body.contains(&m), "notification leaks a secret: {body}");

    for path in [
        "/api/v1/status".to_string(),
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/applies/{apply_id}"),
        "/api/v1/history".to_string(),
        "/api/v1/history?format=jsonl".to_string(),
        "/api/v1/plans".to_string(),
    ] {
        let (code, text) = d.get_raw(&path, None);
        assert_eq!(code, 200, "{path}: {text}");
        assert!(!text.contains(&m), "{path} leaks a secret:\n{text}");
    }
    let shown = d.get_raw(&format!("/api/v1/applies/{apply_id}"), None).1;
    assert!(shown.contains("cannot connect to"), "{shown}");
    let log = d.log();
    assert!(!log.contains(&m), "the daemon log leaks a secret:\n{log}");
    assert!(!log.contains('\u{1b}'), "the daemon log prints a raw ESC");
    let db = d.mirror().parent().unwrap().join("state.db");
    assert_absent("the daemon's SQLite files", &store_bytes(&db), &m);
}
