//! The audit trail on real Flink clusters: every apply's record (trigger, commit author and
//! message, each step with its Flink REST call, result, duration and savepoints, outcome and
//! error), `weir show`, `weir savepoints` lineage, the JSON-lines export, a failed apply, and an
//! apply whose process died mid-way.

use serde_json::Value;

use crate::harness::*;

const SECRET: &str = "s3cr3t-audit-value-41d7";

/// The id `weir apply` announces (`Applying apply-… (plan …):`).
#[track_caller]
fn apply_id(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("Applying "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no apply id in the output:\n{}", run.all()))
        .to_string()
}

#[track_caller]
fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.all()))
}

#[track_caller]
fn step(story: &Value, seq: usize) -> &Value {
    &story["jobs"][0]["steps"][seq]
}

#[track_caller]
fn savepoint<'a>(lineage: &'a Value, path: &str) -> &'a Value {
    lineage["savepoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in the lineage: {lineage:#}"))
}

/// A SQL job whose configuration holds a secret (which must never show up in any record).
fn secret_sql_job(name: &str, rows_per_second: u32) -> String {
    sql_job(name, rows_per_second).replace(
        "  parallelism: 1\n",
        &format!("  parallelism: 1\n  flinkConfiguration:\n    custom.api-token: {SECRET}\n"),
    )
}

#[test]
fn records_of_real_applies_including_a_failed_one_flink2() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("audit");
    let r = four_applies(&repo, &cluster.url, &name);
    let mut outputs: Vec<String> = Vec::new();
    let sp1 = check_show_create_and_redeploy(&repo, &r, &mut outputs);
    let sp2 = check_show_failed_and_recovery(&repo, &r, &mut outputs);
    check_lineage(&repo, &name, &r, (&sp1, &sp2), &mut outputs);
    let history = check_history(&repo, &name, &r, &mut outputs);
    check_export(&repo, &r, &history, &mut outputs);

    // No secret anywhere: not in any output, not in the store.
    for out in &outputs {
        assert!(!out.contains(SECRET), "secret leaked:\n{out}");
    }
    for suffix in ["", "-wal"] {
        let mut path = repo.state.clone().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(SECRET), "secret stored in {path:?}");
        }
    }
}

/// The applies of [`four_applies`] and the Flink job ids each left running.
struct Applies {
    a1: String,
    a2: String,
    a3: String,
    a4: String,
    first: Vec<String>,
    second: Vec<String>,
    fourth: Vec<String>,
}

/// Create, redeploy through a savepoint, a failed redeploy (its submit fails), the recovery.
fn four_applies(repo: &Repo, base: &str, name: &str) -> Applies {
    let file = format!("jobs/{name}.yaml");
    // Create, then redeploy through a savepoint.
    repo.write(&file, &secret_sql_job(name, 5));
    repo.commit("add the orders job");
    let a1 = apply_id(&repo.weir(&["apply", "--auto-approve"]).ok());
    let first = running_named(base, name);
    assert_eq!(first.len(), 1);
    repo.write(&file, &secret_sql_job(name, 7));
    repo.commit("faster orders");
    let a2 = apply_id(
        &repo
            .weir_env(&["apply", "--auto-approve"], &[("USER", "audit-tester")])
            .ok(),
    );
    let second = running_named(base, name);
    assert_eq!(second.len(), 1);

    // A script with a SELECT: the stop succeeds, the submit fails (pre-flight, which would make
    // it a plan error that stops nothing, is off for this record of a failed apply).
    repo.write(
        &file,
        &format!(
            "{}  preflight: false\n",
            secret_sql_job(name, 7).replace("INSERT INTO sink2 SELECT id FROM src;", "SELECT 1;")
        ),
    );
    repo.commit("bad sql\n\nadds a SELECT");
    let failed = repo.weir(&["apply", "--auto-approve"]).code(1);
    let a3 = apply_id(&failed);
    repo.write(&file, &secret_sql_job(name, 7));
    repo.commit("fix sql");
    let a4 = apply_id(&repo.weir(&["apply", "--auto-approve"]).ok());
    let fourth = running_named(base, name);
    assert_eq!(fourth.len(), 1);

    Applies {
        a1,
        a2,
        a3,
        a4,
        first,
        second,
        fourth,
    }
}

/// `weir show` of the create and the redeploy; returns the savepoint the redeploy took.
fn check_show_create_and_redeploy(repo: &Repo, r: &Applies, outputs: &mut Vec<String>) -> String {
    // The create: one submit and a wait, no savepoint.
    let show = repo.weir(&["show", &r.a1, "--format", "json"]).ok();
    outputs.push(show.stdout.clone());
    let s1 = json(&show);
    assert_eq!(s1["outcome"], "succeeded");
    assert_eq!(s1["jobs"][0]["action"], "create");
    assert_eq!(step(&s1, 0)["kind"], "submit");
    assert_eq!(step(&s1, 0)["flink_job_id"], r.first[0].as_str());
    assert_eq!(step(&s1, 0)["savepoint_used"], Value::Null);
    assert_eq!(step(&s1, 1)["kind"], "await_running");
    assert_eq!(step(&s1, 1)["polls"], format!("GET /jobs/{}", r.first[0]));

    // The redeploy: stop with a savepoint, submit from it, wait; times and REST calls.
    let show = repo.weir(&["show", &r.a2, "--format", "json"]).ok();
    outputs.push(show.stdout.clone());
    let s2 = json(&show);
    assert_eq!(s2["kind"], "apply");
    assert_eq!(s2["outcome"], "succeeded");
    assert_eq!(s2["trigger"], "cli");
    assert_eq!(s2["actor"], "audit-tester", "the local user ran it");
    assert_eq!(s2["plan"]["actor"], "audit-tester");
    assert_eq!(s2["commit"]["message"], "faster orders");
    assert_eq!(s2["commit"]["author_name"], "weir test");
    assert_eq!(s2["commit"]["author_email"], "test@weir.dev");
    assert_eq!(s2["revision"], s2["commit"]["sha"].as_str().unwrap()[..12]);
    assert_eq!(s2["jobs"][0]["action"], "redeploy");
    assert_eq!(s2["jobs"][0]["changed_fields"][0], "sql");
    assert_eq!(s2["jobs"][0]["outcome"], "succeeded");
    let stop = step(&s2, 0);
    assert_eq!(stop["kind"], "stop_with_savepoint");
    assert_eq!(stop["status"], "succeeded");
    assert_eq!(stop["call"], format!("POST /jobs/{}/stop", r.first[0]));
    assert!(stop["request_id"].is_string(), "{stop}");
    assert!(stop["duration_ms"].as_i64().unwrap() >= 0, "{stop}");
    let sp1 = stop["savepoint_produced"].as_str().unwrap().to_string();
    assert!(sp1.contains(repo.savepoints.to_str().unwrap()), "{sp1}");
    let submit = step(&s2, 1);
    assert_eq!(submit["status"], "succeeded");
    assert!(
        submit["call"].as_str().unwrap().starts_with("POST /jars/")
            && submit["call"].as_str().unwrap().ends_with("/run"),
        "{submit}"
    );
    assert_eq!(submit["savepoint_used"], sp1.as_str());
    assert_eq!(submit["flink_job_id"], r.second[0].as_str());
    assert_eq!(step(&s2, 2)["status"], "succeeded");
    assert!(
        s2["duration_ms"].as_i64().unwrap()
            >= stop["duration_ms"].as_i64().unwrap() + submit["duration_ms"].as_i64().unwrap()
    );

    sp1
}

/// `weir show` of the failed apply (JSON and text), the recovery and a plan; returns the
/// savepoint the failed apply took.
fn check_show_failed_and_recovery(repo: &Repo, r: &Applies, outputs: &mut Vec<String>) -> String {
    // The failed apply: what ran, what failed with Flink's message, what never ran.
    let show = repo.weir(&["show", &r.a3, "--format", "json"]).ok();
    outputs.push(show.stdout.clone());
    let s3 = json(&show);
    assert_eq!(s3["outcome"], "failed");
    assert!(s3["error"].as_str().unwrap().contains("SELECT"), "{s3:#}");
    assert_eq!(s3["commit"]["message"], "bad sql\n\nadds a SELECT");
    assert_eq!(s3["jobs"][0]["outcome"], "failed");
    assert!(
        s3["jobs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("SELECT")
    );
    let stop = step(&s3, 0);
    assert_eq!(stop["status"], "succeeded");
    assert_eq!(stop["call"], format!("POST /jobs/{}/stop", r.second[0]));
    let sp2 = stop["savepoint_produced"].as_str().unwrap().to_string();
    let submit = step(&s3, 1);
    assert_eq!(submit["status"], "failed");
    assert_eq!(submit["savepoint_used"], sp2.as_str());
    assert!(
        submit["error"].as_str().unwrap().contains("SELECT"),
        "{submit}"
    );
    assert_eq!(step(&s3, 2)["kind"], "await_running");
    assert_eq!(step(&s3, 2)["status"], "not_run");

    let text = repo.weir(&["show", &r.a3]).ok().stdout;
    for needle in [
        format!("Apply {}: failed", r.a3),
        "by weir test <test@weir.dev>: bad sql".to_string(),
        format!("call:      POST /jobs/{}/stop", r.second[0]),
        format!("savepoint: {sp2}"),
        "2. submit  failed".to_string(),
        format!("restored:  {sp2}"),
        "3. await_running  not run".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
    }
    assert!(text.contains("SELECT"), "{text}");
    outputs.push(text);

    // The recovery restored the failed apply's savepoint.
    let show = repo.weir(&["show", &r.a4, "--format", "json"]).ok();
    outputs.push(show.stdout.clone());
    let s4 = json(&show);
    assert_eq!(s4["outcome"], "succeeded");
    let restore = s4["jobs"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "submit")
        .unwrap();
    assert_eq!(restore["savepoint_used"], sp2.as_str());

    // A plan id shows the plan and its apply.
    let plan_id = s3["plan_id"].as_str().unwrap();
    let plan = repo.weir(&["show", plan_id]).ok().stdout;
    assert!(plan.contains(&format!("applied:   {}", r.a3)), "{plan}");
    outputs.push(plan);
    let missing = repo.weir(&["show", "apply-nope"]).code(1);
    assert!(
        missing.stderr.contains("no apply or plan"),
        "{}",
        missing.all()
    );

    sp2
}

/// `weir savepoints`: who took each savepoint, who restored it, as which Flink job.
fn check_lineage(
    repo: &Repo,
    name: &str,
    r: &Applies,
    (sp1, sp2): (&str, &str),
    outputs: &mut Vec<String>,
) {
    // Lineage: who took each savepoint, who restored it, as which Flink job.
    let lineage_run = repo.weir(&["savepoints", name, "--format", "json"]).ok();
    outputs.push(lineage_run.stdout.clone());
    let lineage = json(&lineage_run);
    assert_eq!(lineage["job"], name);
    let first_sp = savepoint(&lineage, sp1);
    assert_eq!(first_sp["kind"], "savepoint");
    assert_eq!(first_sp["flink_job_id"], r.first[0].as_str());
    assert_eq!(first_sp["produced_by"]["apply_id"], r.a2.as_str());
    assert_eq!(first_sp["produced_by"]["action"], "redeploy");
    assert_eq!(
        first_sp["produced_by"]["commit"]["message"],
        "faster orders"
    );
    assert_eq!(first_sp["restores"].as_array().unwrap().len(), 1);
    assert_eq!(first_sp["restores"][0]["by"]["apply_id"], r.a2.as_str());
    assert_eq!(
        first_sp["restores"][0]["flink_job_id"],
        r.second[0].as_str()
    );
    let second_sp = savepoint(&lineage, sp2);
    assert_eq!(second_sp["produced_by"]["apply_id"], r.a3.as_str());
    assert_eq!(second_sp["produced_by"]["outcome"], "failed");
    let restores = second_sp["restores"].as_array().unwrap();
    assert_eq!(restores.len(), 1, "{second_sp}");
    assert_eq!(restores[0]["by"]["apply_id"], r.a4.as_str());
    assert_eq!(restores[0]["flink_job_id"], r.fourth[0].as_str());
    let text = repo.weir(&["savepoints", name]).ok().stdout;
    for needle in [
        sp1.to_string(),
        sp2.to_string(),
        format!("by apply {} (redeploy, succeeded;", r.a2),
        format!("as Flink job {} by apply {}", r.fourth[0], r.a4),
    ] {
        assert!(
            text.contains(needle.as_str()),
            "{needle:?} missing from:\n{text}"
        );
    }
    outputs.push(text);
}

/// `weir history`; returns its JSON.
fn check_history(repo: &Repo, name: &str, r: &Applies, outputs: &mut Vec<String>) -> Value {
    // History: newest first, with author, trigger and outcome; --since filters.
    let history_run = repo.weir(&["history", name, "--format", "json"]).ok();
    outputs.push(history_run.stdout.clone());
    let history = json(&history_run);
    let applies: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "apply")
        .collect();
    let ids: Vec<&str> = applies.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [&r.a4, &r.a3, &r.a2, &r.a1]);
    assert_eq!(applies[1]["summary_or_outcome"], "failed");
    assert!(applies[1]["error"].as_str().unwrap().contains("SELECT"));
    assert_eq!(applies[1]["commit"]["author_name"], "weir test");
    assert_eq!(applies[1]["trigger"], "cli");
    assert!(applies[1]["steps"].as_array().unwrap().len() == 3);
    let text = repo.weir(&["history", name]).ok().stdout;
    assert!(
        text.contains("AUTHOR") && text.contains("weir test") && text.contains("failed in "),
        "{text}"
    );
    assert!(text.contains("cli (audit-tester)"), "{text}");
    outputs.push(text);
    let recent = repo
        .weir(&["history", name, "--since", "1h", "--format", "json"])
        .ok();
    assert_eq!(json(&recent), history);
    let future = repo
        .weir(&[
            "history",
            "--since",
            "2999-01-01T00:00:00Z",
            "--format",
            "json",
        ])
        .ok();
    assert_eq!(json(&future), serde_json::json!([]));
    let bad = repo.weir(&["history", "--since", "yesterday"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--since"), "{}", bad.all());

    history
}

/// `weir history --format jsonl`.
fn check_export(repo: &Repo, r: &Applies, history: &Value, outputs: &mut Vec<String>) {
    // JSON lines: one record per line, oldest first, every apply with its steps.
    let export = repo.weir(&["history", "--format", "jsonl"]).ok().stdout;
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), history.as_array().unwrap().len(), "{export}");
    let exported: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] == "apply")
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(exported, [&r.a1, &r.a2, &r.a3, &r.a4]);
    assert_eq!(lines[0]["kind"], "plan", "the first plan comes first");
    let times: Vec<i64> = lines.iter().map(|l| l["at_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for l in &lines {
        assert!(l["at"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["commit"]["sha"].is_string(), "{l}");
    }
    outputs.push(export);
}

#[test]
fn the_record_of_an_apply_that_died_mid_way_tells_what_happened_flink1_20() {
    let cluster = cluster(Version::V1_20);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("audit-crash");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "t0", ""));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let before = running_named(base, &name);
    assert_eq!(before.len(), 1);
    wait_checkpoint(base, &before[0]);

    repo.write(&file, &jar_job(&name, 1, "t1", ""));
    repo.commit("change topic");
    let crashed = repo.weir_env(
        &["apply", "--auto-approve"],
        &[("WEIR_FAULT_CRASH_AT", "after:stop_with_savepoint")],
    );
    assert_ne!(crashed.code, 0, "{}", crashed.all());
    assert!(
        crashed
            .stderr
            .contains("aborting at after:stop_with_savepoint"),
        "{}",
        crashed.all()
    );
    let id = apply_id(&crashed);

    // Right after the crash the record says what is known: the stop and its savepoint.
    let dead = json(&repo.weir(&["show", &id, "--format", "json"]).ok());
    assert_eq!(dead["outcome"], "unfinished");
    assert_eq!(dead["finished_at_ms"], Value::Null);
    assert_eq!(step(&dead, 0)["status"], "succeeded");
    let sp = step(&dead, 0)["savepoint_produced"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(step(&dead, 1)["status"], "not_run");
    let text = repo.weir(&["show", &id]).ok().stdout;
    assert!(
        text.contains(&format!("Apply {id}: unfinished"))
            && text.contains("finished:  not recorded"),
        "{text}"
    );

    // The next apply finishes it; the record keeps its id and tells the interruption.
    let resumed = repo.weir(&["apply", "--auto-approve"]).ok();
    assert!(
        resumed.all().contains("interrupted apply"),
        "{}",
        resumed.all()
    );
    let after = running_named(base, &name);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);

    let story = json(&repo.weir(&["show", &id, "--format", "json"]).ok());
    assert_eq!(story["outcome"], "succeeded", "{story:#}");
    assert_eq!(story["events"][0]["kind"], "resumed");
    let stop = step(&story, 0);
    assert_eq!(stop["call"], format!("POST /jobs/{}/stop", before[0]));
    assert_eq!(stop["savepoint_produced"], sp.as_str());
    assert!(
        stop["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("interrupted after this step"),
        "{stop}"
    );
    assert!(
        story["events"][0]["at_ms"].as_i64().unwrap() >= stop["finished_at_ms"].as_i64().unwrap()
    );
    let submit = step(&story, 1);
    assert_eq!(submit["status"], "succeeded");
    assert_eq!(submit["savepoint_used"], sp.as_str());
    assert_eq!(submit["flink_job_id"], after[0].as_str());
    assert!(
        submit["started_at_ms"].as_i64().unwrap() >= story["events"][0]["at_ms"].as_i64().unwrap()
    );
    assert_eq!(step(&story, 2)["status"], "succeeded");
    assert_eq!(story["jobs"][0]["outcome"], "succeeded");
    assert_eq!(story["jobs"][0]["new_job_id"], after[0].as_str());
    let text = repo.weir(&["show", &id]).ok().stdout;
    for needle in [
        format!("Apply {id}: succeeded"),
        "resumed:".to_string(),
        "note:      interrupted after this step".to_string(),
        format!("restored:  {sp}"),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
    }

    // The savepoint taken before the crash is in the lineage, restored by the same apply.
    let lineage = json(&repo.weir(&["savepoints", &name, "--format", "json"]).ok());
    let taken = savepoint(&lineage, &sp);
    assert_eq!(taken["produced_by"]["apply_id"], id.as_str());
    assert_eq!(taken["produced_by"]["outcome"], "succeeded");
    assert_eq!(taken["restores"][0]["by"]["apply_id"], id.as_str());
    assert_eq!(taken["restores"][0]["flink_job_id"], after[0].as_str());

    let history = json(&repo.weir(&["history", &name, "--format", "json"]).ok());
    let entry = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    assert_eq!(entry["summary_or_outcome"], "succeeded");
    assert_eq!(entry["commit"]["message"], "change topic");
}
