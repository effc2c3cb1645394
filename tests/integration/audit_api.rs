//! The audit trail over the daemon API (`/api/v1/history`, `/api/v1/records/{id}`,
//! `/api/v1/jobs/{name}/savepoints`) of the real `weir serve` process after real applies on the
//! Flink 2.x cluster, compared with what the CLI prints from the same store; and retention:
//! `weir prune` on a store made by real applies, and the daemon's `audit.retentionDays`.

use std::time::Duration;

use serde_json::Value;

use crate::daemon::{API_TOKEN, Options, Remote, Serve};
use crate::harness::*;

#[test]
fn audit_trail_over_the_api_after_a_real_redeploy_flink2() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    let c = create_then_redeploy(&cluster.url, &repo, &remote);
    reads_need_the_right_token(&c);
    history_as_the_cli_prints_it(&c);
    let sp = record_of_the_redeploy(&c, &repo);
    lineage_of_the_savepoint(&c, &sp);

    // audit.retentionDays pruned at start (nothing was that old) and recorded it.
    let log = c.d.cli(&["prune", "--log", "--format", "json"]);
    let prune = &log[0];
    assert_eq!(prune["trigger"], "retention", "{log:#}");
    assert_eq!(prune["actor"], "weir serve");
    assert_eq!(prune["deleted"]["applies"], 0);
    let cutoff = prune["cutoff_ms"].as_i64().unwrap();
    let age = prune["at_ms"].as_i64().unwrap() - cutoff;
    assert_eq!(age, 30 * 86_400_000, "{prune}");
}

/// The daemon, following `remote`, after it created a job and redeployed it from a push.
struct Redeployed {
    d: Serve,
    name: String,
    commit: String,
    apply_id: String,
    plan_id: String,
    first: Vec<String>,
    second: Vec<String>,
}

fn create_then_redeploy(base: &str, repo: &Repo, remote: &Remote) -> Redeployed {
    let name = repo.unique("audit-api");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push(repo, "add the job");
    let d = Options::following(remote)
        .reads_need_token()
        .config("pollIntervalSeconds: 3600\naudit: {retentionDays: 30}\n")
        .start();
    let created = d.wait_for("the create", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded"
    });
    let create_id = created["lastApply"]["id"].as_str().unwrap().to_string();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    wait_checkpoint(base, &first[0]);

    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    let commit = remote.push(repo, "new topic");
    d.sync();
    let s = d.wait_for("the redeploy", Duration::from_secs(120), |s| {
        s["lastApply"]["outcome"] == "succeeded" && s["lastApply"]["id"] != create_id.as_str()
    });
    let apply_id = s["lastApply"]["id"].as_str().unwrap().to_string();
    let plan_id = s["lastApply"]["planId"].as_str().unwrap().to_string();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);

    Redeployed {
        d,
        name,
        commit,
        apply_id,
        plan_id,
        first,
        second,
    }
}

/// Reads need the token (api.requireTokenForReads), and only the right one.
fn reads_need_the_right_token(c: &Redeployed) {
    let Redeployed {
        d, name, apply_id, ..
    } = c;
    for path in [
        "/api/v1/history".to_string(),
        format!("/api/v1/records/{apply_id}"),
        format!("/api/v1/jobs/{name}/savepoints"),
    ] {
        let (code, body) = d.get_raw(&path, None);
        assert_eq!(code, 401, "{path}: {body}");
        assert!(json(&body)["error"].is_string(), "{body}");
        assert_eq!(d.get_raw(&path, Some("wrong")).0, 401, "{path}");
    }
}

/// History: the plan and the apply with trigger and revision; the same as the CLI prints.
fn history_as_the_cli_prints_it(c: &Redeployed) {
    let Redeployed {
        d,
        name,
        commit,
        apply_id,
        plan_id,
        ..
    } = c;
    let (code, body) = d.get_raw(&format!("/api/v1/history?job={name}"), Some(API_TOKEN));
    assert_eq!(code, 200, "{body}");
    let history = json(&body);
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 4, "two plans and two applies: {history:#}");
    let apply = entries
        .iter()
        .find(|e| e["id"] == apply_id.as_str())
        .unwrap();
    assert_eq!(apply["kind"], "apply");
    assert_eq!(apply["summary_or_outcome"], "succeeded");
    assert_eq!(apply["revision"], &commit[..12]);
    assert_eq!(apply["plan_id"], plan_id.as_str());
    assert!(
        apply["trigger"].as_str().unwrap().starts_with("serve:"),
        "{apply}"
    );
    assert_eq!(apply["commit"]["message"], "new topic");
    assert_eq!(apply["steps"][0]["kind"], "stop_with_savepoint");
    let plan = entries
        .iter()
        .find(|e| e["id"] == plan_id.as_str())
        .unwrap();
    assert_eq!(plan["kind"], "plan");
    assert_eq!(plan["revision"], &commit[..12]);
    assert_eq!(plan["trigger"], apply["trigger"]);
    assert_eq!(plan["changes"][0]["action"], "redeploy");
    assert_eq!(
        history,
        d.cli(&["history", name, "--format", "json"]),
        "the API and `weir history` agree"
    );

    // JSON lines: oldest first, one record per line, as `weir history --format jsonl`.
    let (code, content_type, body) = d.get_full(
        &format!("/api/v1/history?job={name}&format=jsonl"),
        Some(API_TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(content_type, "application/x-ndjson");
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["at_ms"].as_i64() <= w[1]["at_ms"].as_i64())
    );
    assert_eq!(lines[3]["id"], apply_id.as_str());
    let cli = d.cli_text(&["history", name, "--format", "jsonl"]);
    assert_eq!(body, cli);

    // Filters: since, limit; bad values are 400 JSON errors naming the parameter.
    let (_, body) = d.get_raw("/api/v1/history?since=1h&limit=1", Some(API_TOKEN));
    assert_eq!(json(&body).as_array().unwrap().len(), 1, "{body}");
    let (_, body) = d.get_raw("/api/v1/history?since=2000-01-01", Some(API_TOKEN));
    assert!(json(&body).as_array().unwrap().len() >= 4, "{body}");
    let (_, body) = d.get_raw(
        "/api/v1/history?since=2999-01-01T00:00:00Z",
        Some(API_TOKEN),
    );
    assert_eq!(json(&body), Value::Array(Vec::new()));
    for (query, param) in [
        ("since=yesterday", "since"),
        ("limit=many", "limit"),
        ("format=xml", "format"),
    ] {
        let (code, body) = d.get_raw(&format!("/api/v1/history?{query}"), Some(API_TOKEN));
        assert_eq!(code, 400, "{query}: {body}");
        let error = json(&body)["error"].as_str().unwrap().to_string();
        assert!(error.contains(param), "{query}: {error}");
    }
}

/// The record of the apply: every step with its Flink REST call; returns the savepoint.
fn record_of_the_redeploy(c: &Redeployed, repo: &Repo) -> String {
    let Redeployed {
        d,
        apply_id,
        plan_id,
        first,
        second,
        ..
    } = c;
    // The record of the apply: every step with its Flink REST call, and the savepoint.
    let (code, body) = d.get_raw(&format!("/api/v1/records/{apply_id}"), Some(API_TOKEN));
    assert_eq!(code, 200, "{body}");
    let story = json(&body);
    assert_eq!(story["kind"], "apply");
    assert_eq!(story["outcome"], "succeeded");
    assert_eq!(story["jobs"][0]["action"], "redeploy");
    let steps = story["jobs"][0]["steps"].as_array().unwrap();
    let stop = &steps[0];
    assert_eq!(stop["kind"], "stop_with_savepoint");
    assert_eq!(stop["call"], format!("POST /jobs/{}/stop", first[0]));
    assert!(
        stop["polls"]
            .as_str()
            .unwrap()
            .starts_with(&format!("GET /jobs/{}/savepoints/", first[0])),
        "{stop}"
    );
    let sp = stop["savepoint_produced"].as_str().unwrap().to_string();
    assert!(sp.contains(repo.savepoints.to_str().unwrap()), "{sp}");
    let submit = &steps[1];
    assert_eq!(submit["kind"], "submit");
    assert!(submit["call"].as_str().unwrap().starts_with("POST /jars/"));
    assert_eq!(submit["savepoint_used"], sp.as_str());
    assert_eq!(submit["flink_job_id"], second[0].as_str());
    assert_eq!(steps[2]["polls"], format!("GET /jobs/{}", second[0]));
    assert_eq!(story, d.cli(&["show", apply_id, "--format", "json"]));
    // A plan id gives the plan's record; /applies/{id} gives the same story plus the raw rows.
    let (_, body) = d.get_raw(&format!("/api/v1/records/{plan_id}"), Some(API_TOKEN));
    let plan_story = json(&body);
    assert_eq!(plan_story["kind"], "plan");
    assert_eq!(plan_story["applies"][0]["id"], apply_id.as_str());
    let (code, body) = d.get_raw(&format!("/api/v1/applies/{apply_id}"), Some(API_TOKEN));
    assert_eq!(code, 200, "{body}");
    let mut compat = json(&body);
    assert_eq!(compat["apply"]["outcome"], "succeeded");
    assert_eq!(compat["journal"].as_array().unwrap().len(), 3, "{compat:#}");
    let obj = compat.as_object_mut().unwrap();
    obj.remove("apply");
    obj.remove("journal");
    assert_eq!(compat, story);
    let (code, body) = d.get_raw(&format!("/api/v1/plans/{plan_id}"), Some(API_TOKEN));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["plan"]["id"], plan_id.as_str());
    for path in [
        "/api/v1/records/apply-nope",
        "/api/v1/applies/apply-nope",
        &format!("/api/v1/applies/{plan_id}"),
    ] {
        let (code, body) = d.get_raw(path, Some(API_TOKEN));
        assert_eq!(code, 404, "{path}: {body}");
        assert!(json(&body)["error"].as_str().unwrap().contains("no apply"));
    }

    sp
}

/// Lineage: which apply took the savepoint `sp` and which restored it.
fn lineage_of_the_savepoint(c: &Redeployed, sp: &str) {
    let Redeployed {
        d,
        name,
        apply_id,
        first,
        second,
        ..
    } = c;
    let (code, body) = d.get_raw(&format!("/api/v1/jobs/{name}/savepoints"), Some(API_TOKEN));
    assert_eq!(code, 200, "{body}");
    let lineage = json(&body);
    assert_eq!(lineage["job"], name.as_str());
    let newest = &lineage["savepoints"][0];
    assert_eq!(newest["path"], sp);
    assert_eq!(newest["flink_job_id"], first[0].as_str());
    assert_eq!(newest["produced_by"]["apply_id"], apply_id.as_str());
    assert_eq!(newest["produced_by"]["action"], "redeploy");
    assert_eq!(newest["produced_by"]["commit"]["message"], "new topic");
    assert_eq!(newest["restores"][0]["by"]["apply_id"], apply_id.as_str());
    assert_eq!(newest["restores"][0]["flink_job_id"], second[0].as_str());
    assert_eq!(lineage, d.cli(&["savepoints", name, "--format", "json"]));
}

#[test]
fn prune_older_than_keeps_what_the_next_plan_needs_flink2() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let name = repo.unique("audit-prune");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("add the job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    wait_checkpoint(base, &first[0]);
    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    repo.commit("new topic");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let before = history(&repo);
    assert_eq!(before.len(), 4, "{before:#?}");
    let redeploy = before[0]["id"].as_str().unwrap().to_string();
    let create = before[2]["id"].as_str().unwrap().to_string();
    let lineage_before = repo.weir(&["savepoints", &name, "--format", "json"]).ok();

    // Nothing is older than a day.
    let none = repo.weir(&["prune", "--older-than", "1d"]).ok();
    assert!(
        none.stdout
            .starts_with("Pruned 0 records (0 plans, 0 applies)"),
        "{}",
        none.all()
    );

    // A dry run counts exactly what the prune then deletes, and deletes nothing.
    let dry = repo
        .weir(&[
            "prune",
            "--older-than",
            "0s",
            "--dry-run",
            "--format",
            "json",
        ])
        .ok();
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["id"], Value::Null);
    assert_eq!(history(&repo).len(), 4);

    let run = repo
        .weir_env(
            &["prune", "--older-than", "0s"],
            &[("USER", "retention-tester")],
        )
        .ok();
    // The create and its plan go; the redeploy took the newest savepoint, so it and its plan stay.
    for needle in [
        "Pruned 2 records (1 plan, 1 apply) older than",
        "  2 journal entries",
        "  2 origins",
        "  0 savepoint records",
        "the newest savepoint of each job (1 savepoint)",
        "the 1 apply and 1 plan older than the cutoff",
        "Recorded as prune",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            run.all()
        );
    }
    let after = history(&repo);
    let ids: Vec<&str> = after.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [redeploy.as_str(), before[1]["id"].as_str().unwrap()]);
    assert_eq!(dry["deleted"]["plans"], 1);
    assert_eq!(dry["deleted"]["applies"], 1);
    assert_eq!(dry["deleted"]["journal_entries"], 2);
    repo.weir(&["show", &create]).code(1);
    let story: Value = serde_json::from_str(
        &repo
            .weir(&["show", &redeploy, "--format", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(story["jobs"][0]["steps"].as_array().unwrap().len(), 3);
    assert_eq!(
        repo.weir(&["savepoints", &name, "--format", "json"])
            .ok()
            .stdout,
        lineage_before.stdout,
        "the lineage of the newest savepoint is whole"
    );

    // The next plan still knows the job: no changes.
    let plan = repo.weir(&["plan", "--detailed-exitcode"]).code(0);
    assert!(
        plan.stdout
            .contains("No changes. The clusters match the repo."),
        "{}",
        plan.all()
    );

    prunes_are_recorded_with_who_did_them(&repo);

    let bad = repo.weir(&["prune", "--older-than", "soon"]).code(1);
    assert!(bad.stderr.contains("--older-than"), "{}", bad.all());
    let missing = repo.weir(&["prune"]).code(2);
    assert!(missing.stderr.contains("--older-than"), "{}", missing.all());
}

/// `weir history --format json` of the whole store.
fn history(repo: &Repo) -> Vec<Value> {
    let run = repo.weir(&["history", "--format", "json"]).ok();
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The prune is recorded with who did it, and survives further prunes.
fn prunes_are_recorded_with_who_did_them(repo: &Repo) {
    repo.weir(&["prune", "--older-than", "0s"]).ok();
    let log: Value = serde_json::from_str(
        &repo
            .weir(&["prune", "--log", "--format", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3, "{log:#?}");
    assert_eq!(log[1]["trigger"], "cli");
    assert_eq!(log[1]["actor"], "retention-tester");
    assert_eq!(log[1]["deleted"]["applies"], 1);
    assert_eq!(log[1]["deleted"]["plans"], 1);
    // The second prune took the plan `weir plan` just made (it was never applied).
    assert_eq!(log[0]["deleted"]["plans"], 1);
    assert_eq!(log[0]["deleted"]["applies"], 0);
    let text = repo.weir(&["prune", "--log"]).ok().stdout;
    assert!(text.contains("cli (retention-tester)"), "{text}");
}

// ---- helpers ---------------------------------------------------------------------------------

#[track_caller]
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}
