//! Environments (issue 11) on the real cluster: one repo, two environments sharing one Flink
//! cluster. Both are deployed; each then plans no changes and sees neither the other's jobs as
//! foreign nor as its own; per-environment variables and overrides reach the jobs; a job limited
//! to one environment runs only there; without `--env` the commands say to choose one.

use std::process::Command;

use crate::harness::*;

/// `weir ARGS --repo ROOT` with the environment chosen by `--env` or by `WEIR_ENV`, and the
/// default store (each environment has its own).
fn weir_in(repo: &Repo, env: Option<&str>, by_var: bool, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .arg("--repo")
        .arg(&repo.root)
        .env_remove("WEIR_STATE")
        .env_remove("WEIR_ENV")
        .env_remove("WEIR_FAULT_CRASH_AT")
        .stdin(std::process::Stdio::null());
    match (env, by_var) {
        (Some(env), true) => {
            cmd.env("WEIR_ENV", env);
        }
        (Some(env), false) => {
            cmd.arg("--env").arg(env);
        }
        (None, _) => {}
    }
    let out = cmd.output().expect("running weir");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// (job id, state) of the jobs of definition `name` in environment `env` on the cluster.
fn jobs_in(base: &str, env: &str, name: &str) -> Vec<(String, String)> {
    let hash = weir::identity::name_hash_in(Some(env), name);
    get(&format!("{base}/jobs/overview"))["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            let id: weir::identity::JobId = j["jid"].as_str().unwrap().parse().unwrap();
            weir::identity::Identity::decode(&id).is_some_and(|i| i.name_hash == hash)
        })
        .map(|j| {
            (
                j["jid"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn running_in(base: &str, env: &str, name: &str) -> Vec<String> {
    jobs_in(base, env, name)
        .into_iter()
        .filter(|(_, s)| s == "RUNNING")
        .map(|(id, _)| id)
        .collect()
}

/// Cancels the environments' jobs when the test ends (the harness only knows plain names).
struct Cleanup {
    base: String,
    jobs: Vec<(&'static str, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (env, name) in &self.jobs {
            for id in running_in(&self.base, env, name) {
                cancel(&self.base, &id);
            }
        }
    }
}

#[test]
fn two_environments_share_a_cluster_without_mistaking_each_others_jobs() {
    let cluster = cluster(Version::V1_20);
    let base = cluster.url.as_str();
    let repo = Repo::new(base, Some(&cluster.jars));
    let shared = unique("env-shared");
    let prod_only = unique("env-prod");
    let _cleanup = Cleanup {
        base: base.to_string(),
        jobs: vec![
            ("staging", shared.clone()),
            ("prod", shared.clone()),
            ("prod", prod_only.clone()),
        ],
    };
    write_two_environments(&repo, &shared, &prod_only);
    repo.commit("two environments");

    validate_checks_every_environment_and_plans_need_one(&repo);

    weir_in(&repo, Some("staging"), false, &["apply", "--auto-approve"]).ok();
    weir_in(&repo, Some("prod"), true, &["apply", "--auto-approve"]).ok();
    assert!(repo.root.join(".weir/env/staging/state.db").exists());
    assert!(repo.root.join(".weir/env/prod/state.db").exists());

    let staging = running_in(base, "staging", &shared);
    let prod = running_in(base, "prod", &shared);
    assert_eq!((staging.len(), prod.len()), (1, 1), "{staging:?} {prod:?}");
    assert_eq!(job_parallelism(base, &staging[0]), 1);
    assert_eq!(job_parallelism(base, &prod[0]), 2);
    let interval = |id: &str| {
        get(&format!("{base}/jobs/{id}/checkpoints/config"))["interval"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(interval(&staging[0]), 3000);
    assert_eq!(interval(&prod[0]), 2000);
    let prod_only_id = running_in(base, "prod", &prod_only);
    assert_eq!(prod_only_id.len(), 1);
    let ours = [&staging[0], &prod[0], &prod_only_id[0]];
    assert!(jobs_in(base, "staging", &prod_only).is_empty());

    each_environment_sees_only_its_own(&repo, &shared, &prod_only, &ours);

    // A change in one environment only touches that environment.
    repo.write(
        "weir.yaml",
        &std::fs::read_to_string(repo.root.join("weir.yaml"))
            .unwrap()
            .replace("checkpoint_ms: 3000", "checkpoint_ms: 3500"),
    );
    let plan = weir_in(
        &repo,
        Some("prod"),
        false,
        &["plan", "--format", "json", "--detailed-exitcode"],
    )
    .code(0)
    .json();
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let plan = weir_in(
        &repo,
        Some("staging"),
        false,
        &["plan", "--format", "json", "--detailed-exitcode"],
    )
    .code(2)
    .json();
    assert_eq!(change(&plan, &shared)["action"], "redeploy", "{plan:#}");
}

/// `weir.yaml` with environments `staging` and `prod` (a variable each), job `shared` in both
/// (more parallel in `prod`) and job `prod_only` in `prod` only.
fn write_two_environments(repo: &Repo, shared: &str, prod_only: &str) {
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}variables:\n  checkpoint_ms: 2000\nenvironments:\n  staging:\n    \
             variables: {{checkpoint_ms: 3000}}\n  prod: {{}}\n"
        ),
    );
    repo.write(
        &format!("jobs/{shared}.yaml"),
        &format!(
            "{}  overrides:\n    prod:\n      parallelism: 2\n",
            jar_job_args(shared, 1, &["--checkpoint-interval-ms", "${checkpoint_ms}"])
        ),
    );
    repo.write(
        &format!("jobs/{prod_only}.yaml"),
        &format!(
            "{}  environments: [prod]\n",
            jar_job_args(prod_only, 1, &["--rate", "5"])
        ),
    );
}

/// Validation checks every environment; the commands that plan need one.
fn validate_checks_every_environment_and_plans_need_one(repo: &Repo) {
    let validated = weir_in(repo, None, false, &["validate"]).ok();
    assert!(
        validated
            .stdout
            .contains("in every environment (prod, staging)"),
        "{}",
        validated.all()
    );
    for args in [vec!["plan"], vec!["history"], vec!["status"]] {
        let run = weir_in(repo, None, false, &args).code(1);
        assert!(
            run.all().contains("choose one with") && run.all().contains("WEIR_ENV"),
            "{args:?}: {}",
            run.all()
        );
    }
    let unknown = weir_in(repo, Some("prd"), false, &["plan"]).code(1);
    assert!(
        unknown.all().contains("unknown environment `prd`"),
        "{}",
        unknown.all()
    );
}

/// Each environment is in sync and sees nothing of the other's (`ours`: the three Flink jobs).
fn each_environment_sees_only_its_own(
    repo: &Repo,
    shared: &str,
    prod_only: &str,
    ours: &[&String; 3],
) {
    for (env, by_var) in [("staging", true), ("prod", false)] {
        let plan = weir_in(
            repo,
            Some(env),
            by_var,
            &["plan", "--format", "json", "--detailed-exitcode"],
        )
        .code(0)
        .json();
        assert!(
            plan["changes"].as_array().unwrap().is_empty(),
            "{env}: {plan:#}"
        );
        assert!(
            plan["errors"].as_array().unwrap().is_empty(),
            "{env}: {plan:#}"
        );
        let unmanaged = plan["unmanaged"].as_array().unwrap();
        assert!(
            unmanaged
                .iter()
                .all(|u| !ours.contains(&&u["jobId"].as_str().unwrap().to_string())),
            "{env}: {plan:#}"
        );
        assert!(
            !plan["warnings"].as_array().unwrap().iter().any(|w| w
                .as_str()
                .unwrap()
                .contains(shared)
                || w.as_str().unwrap().contains(prod_only)),
            "{env}: {plan:#}"
        );
        let status = weir_in(repo, Some(env), by_var, &["status", "--format", "json"])
            .ok()
            .json();
        let names: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        let expected = if env == "prod" { 2 } else { 1 };
        assert_eq!(names.len(), expected, "{env}: {status:#}");
        let history = weir_in(repo, Some(env), by_var, &["history", "--format", "json"]).ok();
        assert!(history.stdout.contains("apply"), "{}", history.all());
    }
}

/// The daemon follows the environment of its configuration: it deploys that environment's jobs
/// (with its variables) and nothing of the others.
#[test]
fn the_daemon_follows_its_environment() {
    use crate::daemon::{Options, Remote};
    let cluster = cluster(Version::V2);
    let base = cluster.url.as_str();
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = unique("env-serve");
    let _cleanup = Cleanup {
        base: base.to_string(),
        jobs: vec![("staging", name.clone()), ("prod", name.clone())],
    };
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}environments:\n  staging:\n    variables: {{checkpoint_ms: 3000}}\n  \
             prod:\n    variables: {{checkpoint_ms: 2000}}\n"
        ),
    );
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job_args(&name, 1, &["--checkpoint-interval-ms", "${checkpoint_ms}"]),
    );
    remote.push(&repo, "an environments repo");
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\nenvironment: staging\n")
        .start();
    d.wait_for(
        "the staging deploy",
        std::time::Duration::from_secs(120),
        |s| s["lastApply"]["outcome"] == "succeeded",
    );
    let staging = running_in(base, "staging", &name);
    assert_eq!(staging.len(), 1, "{staging:?}");
    let interval = get(&format!("{base}/jobs/{}/checkpoints/config", staging[0]))["interval"]
        .as_u64()
        .unwrap();
    assert_eq!(interval, 3000);
    assert!(jobs_in(base, "prod", &name).is_empty());
}
