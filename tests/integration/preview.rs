//! Pull-request previews (`weir plan --ref BRANCH --format markdown`) against a real Flink
//! cluster: the comment's marker, summary, sections, warnings and secrets; a preview of a repo
//! with invalid files (listed with file:line:col, valid jobs still planned, exit 1); split output.

use std::path::Path;

use crate::harness::*;

const MARKER: &str = "<!-- weir-plan-preview -->\n";

fn read_parts(dir: &Path) -> Vec<String> {
    let mut parts = Vec::new();
    for i in 1.. {
        let path = dir.join(format!("comment-{i}.md"));
        if !path.exists() {
            break;
        }
        parts.push(std::fs::read_to_string(path).unwrap());
    }
    parts
}

/// Every fence opened is closed and `<details>` folds are balanced.
#[track_caller]
fn assert_balanced(md: &str) {
    let mut fence: Option<usize> = None;
    let mut details = 0i64;
    for line in md.lines() {
        let ticks = line.chars().take_while(|c| *c == '`').count();
        match fence {
            Some(open) if ticks >= open && line.trim_end().chars().all(|c| c == '`') => {
                fence = None
            }
            Some(_) => {}
            None if ticks >= 3 => fence = Some(ticks),
            None => {
                details += line.matches("<details>").count() as i64;
                details -= line.matches("</details>").count() as i64;
            }
        }
    }
    assert!(fence.is_none(), "open code fence in:\n{md}");
    assert_eq!(details, 0, "unbalanced <details> in:\n{md}");
}

#[test]
fn preview_of_a_pull_request_branch() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let pr = open_pull_request(&repo, base);
    let PullRequest {
        keep,
        wipe,
        gone,
        sql,
        head,
        running_before,
    } = &pr;
    let split = repo.root.parent().unwrap().join("preview");
    let run = repo
        .weir(&[
            "plan",
            "--ref",
            "feature",
            "--format",
            "markdown",
            "--detailed-exitcode",
            "--split-dir",
            split.to_str().unwrap(),
            "--comment-limit",
            "2500",
            // The SQL job's secret option is one datagen does not know: pre-flight would refuse
            // it (tests/integration/preflight.rs covers pre-flight).
            "--no-preflight",
        ])
        .code(2);
    let md = &run.stdout;
    assert!(md.starts_with(MARKER), "{md}");
    assert!(
        md.contains(&format!("### weir plan for `{}`", &head[..12])),
        "{md}"
    );
    assert!(
        md.contains(
            "\n**Plan: 1 to create, 2 to redeploy (1 savepoint, 1 stateless), 1 to delete.**\n"
        ),
        "{md}"
    );
    for secret in ["TOPSECRET-CONF", "TOPSECRET-ARG", "TOPSECRET-SQL"] {
        assert!(
            !run.all().contains(secret),
            "{secret} leaked:\n{}",
            run.all()
        );
    }
    check_sections(md, &repo, &pr);

    // Split for comments of at most 2,500 characters: numbered parts, summary in the first.
    let parts = read_parts(&split);
    assert!(parts.len() > 1, "{parts:?}");
    let n = parts.len();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            part.chars().count() <= 2500,
            "part {} is {} characters",
            i + 1,
            part.chars().count()
        );
        assert!(
            part.starts_with(&format!("<!-- weir-plan-preview part {}/{n} -->\n", i + 1)),
            "{part}"
        );
        assert_balanced(part);
        for secret in ["TOPSECRET-CONF", "TOPSECRET-ARG", "TOPSECRET-SQL"] {
            assert!(!part.contains(secret));
        }
    }
    assert!(parts[0].contains("**Plan: 1 to create"), "{}", parts[0]);
    let all = parts.concat();
    for job in [&keep, &wipe, &sql] {
        assert_eq!(all.matches(&format!("#### `{job}`")).count(), 1, "{all}");
    }
    assert!(
        run.stderr
            .contains(&format!("Wrote the preview as {n} comments")),
        "{}",
        run.stderr
    );

    // A preview changes nothing on the cluster.
    let running_after: Vec<Vec<String>> = [&keep, &wipe, &gone]
        .iter()
        .map(|n| running_named(base, n))
        .collect();
    assert_eq!(&running_after, running_before);

    // A shorter preview into the same directory leaves no stale part behind.
    let again = repo
        .weir(&[
            "plan",
            "--ref",
            "feature",
            "--format",
            "markdown",
            "--split-dir",
            split.to_str().unwrap(),
            "--no-preflight",
        ])
        .ok();
    let parts = read_parts(&split);
    assert_eq!(parts, vec![again.stdout.clone()]);
    assert!(!split.join("comment-2.md").exists());
}

/// Three jobs applied on `main`, and branch `feature` (not checked out): a savepoint redeploy
/// with secrets, a stateless redeploy, a new SQL job with a secret option, a deleted definition
/// (prune is on).
struct PullRequest {
    keep: String,
    wipe: String,
    gone: String,
    sql: String,
    /// The head commit of `feature`.
    head: String,
    /// The Flink job ids of `keep`, `wipe` and `gone` before the preview.
    running_before: Vec<Vec<String>>,
}

fn open_pull_request(repo: &Repo, base: &str) -> PullRequest {
    let keep = repo.unique("pv-keep");
    let wipe = repo.unique("pv-wipe");
    let gone = repo.unique("pv-gone");
    let sql = repo.unique("pv-sql");
    repo.write_config(true);
    repo.write(&format!("jobs/{keep}.yaml"), &jar_job(&keep, 1, "a", ""));
    repo.write(&format!("jobs/{wipe}.yaml"), &jar_job(&wipe, 1, "a", ""));
    repo.write(&format!("jobs/{gone}.yaml"), &jar_job(&gone, 1, "a", ""));
    repo.commit("main");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let running_before: Vec<Vec<String>> = [&keep, &wipe, &gone]
        .iter()
        .map(|n| running_named(base, n))
        .collect();
    assert!(running_before.iter().all(|r| r.len() == 1));

    git(&repo.root, &["checkout", "-q", "-b", "feature"]);
    repo.write(
        &format!("jobs/{keep}.yaml"),
        &jar_job(
            &keep,
            1,
            "b",
            "  flinkConfiguration:\n    s3.secret-key: TOPSECRET-CONF\n",
        )
        .replace(
            "\"--rate\", \"20\"]",
            "\"--rate\", \"20\", \"--db-password\", \"TOPSECRET-ARG\"]",
        ),
    );
    repo.write(
        &format!("jobs/{wipe}.yaml"),
        &jar_job(&wipe, 1, "b", "  upgradeMode: stateless\n"),
    );
    repo.write(
        &format!("jobs/{sql}.yaml"),
        &sql_job(&sql, 5).replace(
            "'connector' = 'datagen',",
            "'connector' = 'datagen', 'password' = 'TOPSECRET-SQL',",
        ),
    );
    repo.remove(&format!("jobs/{gone}.yaml"));
    let head = repo.commit("feature");
    git(&repo.root, &["checkout", "-q", "main"]);

    PullRequest {
        keep,
        wipe,
        gone,
        sql,
        head,
        running_before,
    }
}

/// The sections of the savepoint redeploy, the stateless redeploy, the new job and the delete.
fn check_sections(md: &str, repo: &Repo, pr: &PullRequest) {
    let PullRequest {
        keep,
        wipe,
        gone,
        sql,
        running_before,
        ..
    } = pr;
    // Savepoint redeploy: disruption, savepoint target, restore, folded diffs.
    let keep_section = section(md, keep);
    assert!(
        keep_section.starts_with(&format!("#### `{keep}` — redeploy (savepoint)")),
        "{keep_section}"
    );
    for needle in [
        "- **Disruption:** stop with savepoint, then restart from it",
        &format!("- **Current job:** `{}` (RUNNING)", running_before[0][0]),
        &format!(
            "- **Savepoint into:** `file://{}`",
            repo.savepoints.display()
        ),
        "- **Restores from:** the savepoint taken when stopping the current job",
        "<details><summary>Diff of <code>args</code></summary>",
        "-a\n+b\n",
        "+--db-password\n+<redacted>\n",
        "+s3.secret-key: <redacted>",
    ] {
        assert!(
            keep_section.contains(needle),
            "{needle:?} in:\n{keep_section}"
        );
    }
    // Stateless redeploy of a running job: state may not be restored.
    let wipe_section = section(md, wipe);
    assert!(
        wipe_section.contains("- **Disruption:** cancel, then restart without state"),
        "{wipe_section}"
    );
    assert!(
        wipe_section.contains("> [!CAUTION]\n> **State may not be restored.**"),
        "{wipe_section}"
    );
    assert!(
        md.contains("**State may not be restored for 1 job:**")
            && md.contains(&format!(
                "> - `{wipe}` (redeploy): upgradeMode is stateless"
            )),
        "{md}"
    );
    // The new SQL job and the deleted definition.
    let sql_section = section(md, sql);
    assert!(
        sql_section.contains("- **Disruption:** job starts"),
        "{sql_section}"
    );
    assert!(
        sql_section.contains("'password' = '<redacted>'"),
        "{sql_section}"
    );
    assert!(
        md.contains("**1 job will be deleted**")
            && md.contains(&format!(
                "> - `{gone}` on cluster `local`: stopped with a final savepoint"
            )),
        "{md}"
    );
    assert_balanced(md);
}

/// The section of job `name`: from its heading to the next heading.
fn section<'a>(md: &'a str, name: &str) -> &'a str {
    let start = md
        .find(&format!("#### `{name}`"))
        .unwrap_or_else(|| panic!("no section for {name} in:\n{md}"));
    let rest = &md[start..];
    let end = rest[5..]
        .find("\n#### ")
        .map(|i| i + 6)
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn preview_with_invalid_files_lists_them_and_plans_the_valid_jobs() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let Broken {
        ok,
        gone,
        new,
        far,
        before,
    } = open_broken_branch(&repo, base);

    let out = repo.root.parent().unwrap().join("plan.json");
    let split = repo.root.parent().unwrap().join("preview");
    let run = repo
        .weir(&[
            "plan",
            "--ref",
            "broken",
            "--format",
            "markdown",
            "--out",
            out.to_str().unwrap(),
            "--split-dir",
            split.to_str().unwrap(),
        ])
        .code(1);
    let md = &run.stdout;
    assert!(md.starts_with(MARKER), "{md}");
    assert!(
        md.contains(
            "**Plan: 1 to create, 1 to redeploy (savepoint), 0 to delete. 1 error. 1 invalid file.**"
        ),
        "{md}"
    );
    // The invalid file, prominently, with file:line:col and the message.
    let alert = md
        .find("> [!CAUTION]\n> **1 file is invalid (1 error).**")
        .unwrap_or_else(|| panic!("no invalid-file alert in:\n{md}"));
    assert!(
        alert < md.find("#### ").unwrap(),
        "the alert comes before the jobs"
    );
    assert!(
        md.contains("> - `jobs/broken.yaml:8:16`: spec.parallelism: "),
        "{md}"
    );
    assert!(
        run.stderr
            .contains("jobs/broken.yaml:8:16: spec.parallelism"),
        "{}",
        run.stderr
    );
    // The valid jobs are planned; the deleted definition is held back; the far cluster is named.
    assert!(
        md.contains(&format!("#### `{ok}` — redeploy (savepoint)")),
        "{md}"
    );
    assert!(md.contains(&format!("#### `{new}` — create")), "{md}");
    assert!(!md.contains("will be deleted"), "{md}");
    assert!(
        md.contains(&format!(
            "`{gone}` ({}) still runs on cluster `local` but its definition was deleted; it is not pruned while files in the repo are invalid",
            before[0]
        )),
        "{md}"
    );
    assert!(
        md.contains("**1 job could not be planned:**")
            && md.contains(&format!(
                "cannot plan `{far}`: cluster `far` is unreachable"
            )),
        "{md}"
    );
    assert_balanced(md);
    assert_eq!(read_parts(&split), vec![md.clone()]);
    assert!(!out.exists(), "no plan file is saved for an invalid repo");
    assert!(
        run.stderr.contains("no plan file was saved"),
        "{}",
        run.stderr
    );
    assert_eq!(
        running_named(base, &gone),
        before,
        "nothing changed on the cluster"
    );

    // Text and JSON keep refusing to plan an invalid repo.
    for format in ["text", "json"] {
        let refused = repo
            .weir(&["plan", "--ref", "broken", "--format", format])
            .code(1);
        assert!(refused.stdout.is_empty(), "{}", refused.stdout);
        assert!(
            refused.stderr.contains("jobs/broken.yaml:8:16")
                && refused.stderr.contains("nothing was planned"),
            "{}",
            refused.stderr
        );
    }
}

/// Two jobs applied on `main`, and branch `broken` (not checked out): a type error in a new file
/// (line 8, column 16), a redeploy of a valid job (`ok`), a new job, a deleted one (`gone`, not
/// deleted while files are invalid), and a job on a cluster that does not answer (`far`).
struct Broken {
    ok: String,
    gone: String,
    new: String,
    far: String,
    /// The Flink job id of `gone` before the preview.
    before: Vec<String>,
}

fn open_broken_branch(repo: &Repo, base: &str) -> Broken {
    let ok = repo.unique("pvbad-ok");
    let gone = repo.unique("pvbad-gone");
    let new = repo.unique("pvbad-new");
    repo.write_config(true);
    repo.write(&format!("jobs/{ok}.yaml"), &jar_job(&ok, 1, "a", ""));
    repo.write(&format!("jobs/{gone}.yaml"), &jar_job(&gone, 1, "a", ""));
    repo.commit("main");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let before = running_named(base, &gone);
    assert_eq!(before.len(), 1);

    git(&repo.root, &["checkout", "-q", "-b", "broken"]);
    repo.write(
        "jobs/broken.yaml",
        &jar_job("broken", 1, "a", "").replace("parallelism: 1", "parallelism: two"),
    );
    repo.write(&format!("jobs/{ok}.yaml"), &jar_job(&ok, 1, "b", ""));
    repo.write(&format!("jobs/{new}.yaml"), &jar_job(&new, 1, "a", ""));
    repo.remove(&format!("jobs/{gone}.yaml"));
    let far = repo.unique("pvbad-far");
    repo.write(
        &format!("jobs/{far}.yaml"),
        &jar_job(&far, 1, "a", "").replace("cluster: local", "cluster: far"),
    );
    repo.write(
        "weir.yaml",
        &format!(
            "clusters:\n  local:\n    url: {}\n    savepointDir: file://{}\n  far:\n    url: http://127.0.0.1:9\n    timeoutSeconds: 2\nsqlRunner:\n  jar: artifacts/weir-sql-runner.jar\nprune: true\n",
            repo.url,
            repo.savepoints.display()
        ),
    );
    repo.commit("broken");
    git(&repo.root, &["checkout", "-q", "main"]);

    Broken {
        ok,
        gone,
        new,
        far,
        before,
    }
}

#[test]
fn split_dir_needs_markdown() {
    let repo = Repo::new("http://127.0.0.1:9", None);
    repo.commit("empty");
    let dir = repo.root.parent().unwrap().join("parts");
    let dir = dir.to_str().unwrap();
    let run = repo.weir(&["plan", "--split-dir", dir]).code(1);
    assert!(
        run.stderr.contains("--split-dir needs --format markdown"),
        "{}",
        run.stderr
    );
    let run = repo
        .weir(&[
            "plan",
            "--format",
            "markdown",
            "--split-dir",
            dir,
            "--comment-limit",
            "100",
        ])
        .code(2);
    assert!(run.stderr.contains("--comment-limit"), "{}", run.stderr);
    assert!(!Path::new(dir).exists());
}

/// `--clusters-from`: the revision planned cannot choose where weir connects. A branch that
/// points the cluster elsewhere is still planned against the base branch's endpoint.
#[test]
fn clusters_from_the_base_revision_win_over_the_branch() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let job = repo.unique("pv-base");
    repo.commit("main");
    git(&repo.root, &["checkout", "-q", "-b", "feature"]);
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    // The branch sends the cluster (and its credentials) to another endpoint.
    repo.write(
        "weir.yaml",
        &config.replace(&cluster.url, "http://127.0.0.1:9"),
    );
    repo.write(&format!("jobs/{job}.yaml"), &jar_job(&job, 1, "a", ""));
    repo.commit("feature");

    let own = repo
        .weir(&["plan", "--ref", "feature", "--format", "json"])
        .code(1);
    assert!(own.stdout.contains("127.0.0.1:9"), "{}", own.stdout);

    let run = repo
        .weir(&[
            "plan",
            "--ref",
            "feature",
            "--clusters-from",
            "main",
            "--format",
            "markdown",
            "--detailed-exitcode",
        ])
        .code(2);
    assert!(run.stdout.contains("1 to create"), "{}", run.stdout);
    assert!(!run.stdout.contains("127.0.0.1:9"), "{}", run.stdout);
    assert!(run.stdout.contains("--clusters-from"), "{}", run.stdout);
    assert!(run.stderr.contains("changes `clusters`"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the plan uses the cluster settings of `main` (--clusters-from), and"),
        "{}",
        run.stderr
    );

    // A preview is not for applying.
    let run = repo
        .weir(&["plan", "--clusters-from", "main", "--out", "p.json"])
        .code(2);
    assert!(run.stderr.contains("--out"), "{}", run.stderr);
}
