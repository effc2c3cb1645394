//! URL jars on real Flink (issue 9, items 7 and 8): `file://` reads only below directories the
//! operator allowed (never the repo), devices are refused, and a jar that cannot be had fails the
//! change before the running job is stopped.

use sha2::{Digest, Sha256};

use crate::harness::*;

fn url_jar_job(name: &str, url: &str, sha256: &str, topic: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  parallelism: 1\n  jar:\n    url: {url}\n    sha256: {sha256}\n    entryClass: dev.weir.testjob.CounterJob\n    args: [\"--topic\", \"{topic}\", \"--rate\", \"20\"]\n"
    )
}

#[test]
fn file_urls_need_an_allowed_directory_and_a_jar_that_cannot_be_had_never_stops_the_job() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("urljar");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("job from the repo");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);

    // The same program, now from a directory outside the repo.
    let outside = tempfile::tempdir().unwrap();
    // A file name of its own: the cluster keeps uploaded jars by name and content, and a jar it
    // already has is not fetched again (nothing would be read from the host).
    let jar = outside.path().join(format!("{name}.jar"));
    std::fs::copy(cluster.jars.join("weir-test-job.jar"), &jar).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&jar).unwrap()));
    let url = format!("file://{}", jar.display());
    repo.write(&file, &url_jar_job(&name, &url, &sha, "payments"));
    repo.commit("jar by file URL");
    // Off by default: the plan's pre-flight cannot stage the jar, so the job has an error and no
    // change; apply refuses too, and the running job was not stopped.
    let plan = plan_json(&repo, 1);
    assert!(
        plan["errors"].to_string().contains("file:// URLs are off"),
        "{plan:#}"
    );
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let refused = repo.weir(&["apply", "--auto-approve"]).code(1);
    assert!(
        refused.all().contains("file:// URLs are off"),
        "{}",
        refused.all()
    );
    assert_eq!(running_named(base, &name), first, "the job still runs");

    // A device below an allowed directory: refused without reading it.
    repo.write(
        &file,
        &url_jar_job(&name, "file:///dev/zero", &sha, "payments"),
    );
    repo.commit("jar from /dev/zero");
    let device = repo
        .weir(&["--allow-file-urls", "/dev", "apply", "--auto-approve"])
        .code(1);
    assert!(
        device.all().contains("not a regular file"),
        "{}",
        device.all()
    );
    assert_eq!(running_named(base, &name), first, "the job still runs");

    // Allowed: redeployed from the file, state carried over.
    wait_checkpoint(base, &first[0]);
    repo.write(&file, &url_jar_job(&name, &url, &sha, "payments"));
    repo.commit("jar by file URL again");
    let allowed = outside.path().to_str().unwrap();
    let plan = repo
        .weir(&[
            "--allow-file-urls",
            allowed,
            "plan",
            "--format",
            "json",
            "--detailed-exitcode",
        ])
        .code(2)
        .json();
    assert_eq!(change(&plan, &name)["action"], "redeploy", "{plan:#}");
    repo.weir_env(
        &["apply", "--auto-approve"],
        &[("WEIR_ALLOW_FILE_URLS", allowed)],
    )
    .ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
    assert!(
        restored_from(base, &second[0]).unwrap().1,
        "restored from the savepoint"
    );
    repo.weir(&["plan", "--detailed-exitcode"]).code(0);
}
