//! Deliveries, the marker, cluster settings from the branch, merging, and the one comment.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::comment::{continuation_note, failure_comment};
use super::merge::{Basis, contains, merge_head};
use super::*;
use crate::desired::Program;
use crate::git::{MemoryFiles, RepoSource};
use crate::load;
use crate::load::clusters::load_with_clusters;
use crate::observe::JobState;
use crate::plan::fixtures::*;

fn github(action: &str, state: &str) -> Vec<u8> {
    serde_json::json!({
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": state,
            "head": {"ref": "feature", "sha": "a".repeat(40)},
            "base": {"ref": "main", "sha": "b".repeat(40)},
            "user": {"login": "alice"},
        },
        "repository": {"full_name": "acme/jobs"},
        "sender": {"login": "bob"},
    })
    .to_string()
    .into_bytes()
}

fn gitlab(action: &str, state: &str, oldrev: Option<&str>) -> Vec<u8> {
    let mut attrs = serde_json::json!({
        "iid": 3,
        "action": action,
        "state": state,
        "target_branch": "main",
        "source_branch": "feature",
        "last_commit": {"id": "c".repeat(40)},
    });
    if let Some(r) = oldrev {
        attrs["oldrev"] = serde_json::json!(r);
    }
    serde_json::json!({
        "object_kind": "merge_request",
        "user": {"username": "carol"},
        "project": {"id": 42, "path_with_namespace": "group/jobs"},
        "object_attributes": attrs,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn github_deliveries() {
    let ev = parse_github(&github("opened", "open")).unwrap();
    assert_eq!(ev.forge, ForgeKind::GitHub);
    assert_eq!(ev.repo, "acme/jobs");
    assert_eq!(ev.number, 7);
    assert_eq!(ev.base_branch, "main");
    assert_eq!(ev.head_sha, "a".repeat(40));
    assert_eq!(ev.author.as_deref(), Some("alice"));
    assert_eq!(ev.intent, Intent::Preview { reopened: false });
    assert_eq!(
        parse_github(&github("synchronize", "open")).unwrap().intent,
        Intent::Preview { reopened: false }
    );
    assert_eq!(
        parse_github(&github("reopened", "open")).unwrap().intent,
        Intent::Preview { reopened: true }
    );
    assert_eq!(
        parse_github(&github("closed", "closed")).unwrap().intent,
        Intent::Stop
    );
    assert!(matches!(
        parse_github(&github("labeled", "open")).unwrap().intent,
        Intent::Ignore(_)
    ));
    // A late synchronize of a pull request that is closed by now.
    assert!(matches!(
        parse_github(&github("synchronize", "closed"))
            .unwrap()
            .intent,
        Intent::Ignore(_)
    ));
    assert!(parse_github(br#"{"ref":"refs/heads/main"}"#).is_err());
}

#[test]
fn gitlab_deliveries() {
    let ev = parse_gitlab(&gitlab("open", "opened", None)).unwrap();
    assert_eq!(ev.forge, ForgeKind::GitLab);
    assert_eq!(ev.repo, "group/jobs");
    assert_eq!(ev.project_id, Some(42));
    assert_eq!(ev.number, 3);
    assert_eq!(ev.head_sha, "c".repeat(40));
    assert_eq!(ev.author.as_deref(), Some("carol"));
    assert_eq!(ev.intent, Intent::Preview { reopened: false });
    assert_eq!(
        parse_gitlab(&gitlab("update", "opened", Some(&"d".repeat(40))))
            .unwrap()
            .intent,
        Intent::Preview { reopened: false }
    );
    // A title edit is an update without new commits.
    assert!(matches!(
        parse_gitlab(&gitlab("update", "opened", None))
            .unwrap()
            .intent,
        Intent::Ignore(_)
    ));
    assert_eq!(
        parse_gitlab(&gitlab("reopen", "opened", None))
            .unwrap()
            .intent,
        Intent::Preview { reopened: true }
    );
    for (action, state) in [("close", "closed"), ("merge", "merged")] {
        assert_eq!(
            parse_gitlab(&gitlab(action, state, None)).unwrap().intent,
            Intent::Stop
        );
    }
    assert!(matches!(
        parse_gitlab(&gitlab("approved", "opened", None))
            .unwrap()
            .intent,
        Intent::Ignore(_)
    ));
    let push = br#"{"object_kind":"push","project":{"id":1,"path_with_namespace":"a/b"},"object_attributes":{"iid":1,"state":"x","target_branch":"main"}}"#;
    assert!(parse_gitlab(push).is_err());
    assert_eq!(ForgeKind::GitLab.head_ref(3), "refs/merge-requests/3/head");
    assert_eq!(ForgeKind::GitHub.head_ref(7), "refs/pull/7/head");
}

#[test]
fn repositories_match_by_name_or_project_id() {
    let gh = parse_github(&github("opened", "open")).unwrap();
    assert!(RepoMatch::GitHub("Acme/Jobs".into()).matches(&gh));
    assert!(!RepoMatch::GitHub("acme/other".into()).matches(&gh));
    let gl = parse_gitlab(&gitlab("open", "opened", None)).unwrap();
    assert!(RepoMatch::GitLab(ProjectId::Id(42)).matches(&gl));
    assert!(!RepoMatch::GitLab(ProjectId::Id(43)).matches(&gl));
    assert!(RepoMatch::GitLab(ProjectId::Path("group/jobs".into())).matches(&gl));
}

#[test]
fn the_marker_finds_weirs_comment_only() {
    assert!(is_preview_comment(
        "<!-- weir-plan-preview -->\n### weir plan"
    ));
    assert!(is_preview_comment(
        "<!-- weir-plan-preview part 1/3 -->\n### weir plan"
    ));
    // Later parts of a CLI-split preview, quotes of the marker and other comments are not it.
    assert!(!is_preview_comment("<!-- weir-plan-preview part 2/3 -->\n"));
    assert!(!is_preview_comment("> <!-- weir-plan-preview -->\n"));
    assert!(!is_preview_comment("lgtm"));
    assert!(is_preview_comment(&failure_comment(
        &"a".repeat(40),
        "boom"
    )));
}

const JAR: &[u8] = b"PK\x03\x04 not really a jar";

fn weir_yaml(url: &str, extra_clusters: &str) -> String {
    format!(
        "clusters:\n  local:\n    url: {url}\n    savepointDir: file:///sp\n{extra_clusters}prune: true\n"
    )
}

fn job_yaml(name: &str, cluster: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: {cluster}\n  parallelism: 1\n  jar:\n    path: artifacts/app.jar\n    entryClass: com.acme.App\n"
    )
}

fn clusters_of(text: &str) -> BTreeMap<String, crate::spec::ClusterConfig> {
    let files = MemoryFiles::new().with("weir.yaml", text);
    load::load_from(&files).desired.unwrap().config.clusters
}

#[test]
fn cluster_settings_come_from_the_branch() {
    let base = clusters_of(&weir_yaml("http://flink.internal:8081", ""));
    // Same clusters: loaded as is.
    let same = MemoryFiles::new()
        .with("weir.yaml", weir_yaml("http://flink.internal:8081", ""))
        .with("jobs/a.yaml", job_yaml("a", "local"))
        .with("artifacts/app.jar", JAR);
    let (outcome, changed) = load_with_clusters(&same, &base);
    assert!(!changed);
    assert!(outcome.is_clean(), "{:?}", outcome.diagnostics);

    // The pull request points `local` elsewhere and adds a cluster with a job on it.
    let pr = MemoryFiles::new()
        .with(
            "weir.yaml",
            weir_yaml(
                "http://attacker.example:8081",
                "  new:\n    url: http://other.example:8081\n    bearerTokenEnv: SECRET_TOKEN\n",
            ),
        )
        .with("jobs/a.yaml", job_yaml("a", "local"))
        .with("jobs/b.yaml", job_yaml("b", "new"))
        .with("artifacts/app.jar", JAR);
    let (outcome, changed) = load_with_clusters(&pr, &base);
    assert!(changed);
    let desired = outcome.desired.unwrap();
    assert_eq!(desired.config.clusters, base);
    // Everything else of weir.yaml is the pull request's.
    assert!(desired.config.prune);
    let names: Vec<&str> = desired.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(desired.jobs[0].savepoint_dir.as_deref(), Some("file:///sp"));
    // The job on a cluster the branch does not have is reported in its own file.
    assert_eq!(outcome.invalid_files, ["jobs/b.yaml"]);
    assert!(
        outcome.diagnostics[0]
            .message
            .contains("`new` is a cluster this revision adds"),
        "{:?}",
        outcome.diagnostics
    );

    // Problems of the pull request's own weir.yaml keep their lines.
    let bad = MemoryFiles::new()
        .with(
            "weir.yaml",
            "clusters:\n  local:\n    url: http://x:1\n    savepointDir: file:///sp\nprune: true\n\
             sqlRunner:\n  jar: artifacts/missing.jar\n",
        )
        .with("jobs/a.yaml", job_yaml("a", "local"))
        .with("artifacts/app.jar", JAR);
    let (outcome, changed) = load_with_clusters(&bad, &base);
    assert!(changed);
    let d = outcome
        .diagnostics
        .iter()
        .find(|d| d.file == "weir.yaml")
        .expect("the sqlRunner problem");
    assert_eq!(d.line, 7, "{d}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["rev-parse", "HEAD"])
}

#[test]
fn fetches_pull_request_refs_and_merges_them_into_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    let remote = bare.to_str().unwrap();
    let root = commit(
        &work,
        &[("weir.yaml", "a: 1\n"), ("jobs/x.yaml", "x: 1\n")],
        "root",
    );
    git(&work, &["push", "-q", remote, "main"]);
    // The pull request branches off and changes jobs/x.yaml; main moves on with another file.
    git(&work, &["checkout", "-q", "-b", "feature"]);
    let head = commit(&work, &[("jobs/x.yaml", "x: 2\n")], "pr");
    git(&work, &["push", "-q", remote, "HEAD:refs/pull/7/head"]);
    git(&work, &["checkout", "-q", "main"]);
    let base = commit(&work, &[("jobs/y.yaml", "y: 1\n")], "main moves");
    git(&work, &["push", "-q", remote, "main"]);

    let mirror = Mirror::new(
        &dir.path().join("state"),
        &format!("file://{remote}"),
        "main",
        None,
        None,
        Duration::from_secs(30),
    );
    let ids = mirror
        .fetch_refs(&[
            ("refs/pull/7/head", "refs/weir/previews/github/7/head"),
            ("refs/heads/main", "refs/weir/previews/github/7/base"),
        ])
        .unwrap();
    assert_eq!(ids, [head.clone(), base.clone()]);
    // The followed branch's tracking ref is untouched.
    assert_eq!(mirror.last_fetched(), None);
    assert!(contains(mirror.path(), &head, &root));
    assert!(!contains(mirror.path(), &root, &head));
    let missing = mirror
        .fetch_refs(&[("refs/pull/8/head", "refs/weir/previews/github/8/head")])
        .unwrap_err();
    assert!(
        missing.to_string().contains("refs/pull/8/head"),
        "{missing}"
    );

    let repo = git2::Repository::open_bare(mirror.path()).unwrap();
    let (merged, basis) = merge_head(&repo, &base, &head, 7).unwrap();
    assert_eq!(basis, Basis::Merged);
    let source = RepoSource::git_tree(mirror.path(), &merged).unwrap();
    assert_eq!(source.read_file("jobs/x.yaml").unwrap(), b"x: 2\n");
    assert_eq!(source.read_file("jobs/y.yaml").unwrap(), b"y: 1\n");
    // The same merge again is the same commit.
    assert_eq!(merge_head(&repo, &base, &head, 7).unwrap().0, merged);
    // Up to date, already merged.
    assert_eq!(
        merge_head(&repo, &root, &head, 7).unwrap(),
        (head.clone(), Basis::UpToDate)
    );
    assert_eq!(
        merge_head(&repo, &base, &root, 7).unwrap(),
        (base.clone(), Basis::AlreadyMerged)
    );

    // Both sides change the same line: the head is planned as it is.
    let conflict = commit(&work, &[("jobs/x.yaml", "x: 3\n")], "main conflicts");
    git(&work, &["push", "-q", remote, "main"]);
    let ids = mirror
        .fetch_refs(&[("refs/heads/main", "refs/weir/previews/github/7/base")])
        .unwrap();
    assert_eq!(ids, vec![conflict.clone()]);
    assert_eq!(
        merge_head(&repo, &conflict, &head, 7).unwrap(),
        (head.clone(), Basis::Conflict)
    );
}

#[test]
fn preview_fetches_and_branch_fetches_can_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    let remote = bare.to_str().unwrap();
    commit(&work, &[("weir.yaml", "a: 1\n")], "root");
    git(&work, &["push", "-q", remote, "main"]);
    for n in 1..=4 {
        git(
            &work,
            &["push", "-q", remote, &format!("HEAD:refs/pull/{n}/head")],
        );
    }
    let mirror = Arc::new(Mirror::new(
        &dir.path().join("state"),
        &format!("file://{remote}"),
        "main",
        None,
        None,
        Duration::from_secs(30),
    ));
    mirror.fetch().unwrap();
    // The reconcile worker and previews of several pull requests fetch into one mirror.
    let threads: Vec<_> = (0..5)
        .map(|t| {
            let mirror = mirror.clone();
            std::thread::spawn(move || {
                for _ in 0..30 {
                    if t == 0 {
                        mirror.fetch().unwrap();
                    } else {
                        let head = format!("refs/pull/{t}/head");
                        let local = format!("refs/weir/previews/github/{t}/head");
                        let base = format!("refs/weir/previews/github/{t}/base");
                        mirror
                            .fetch_refs(&[(&head, &local), ("refs/heads/main", &base)])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A plan in which each of `n` running jobs is redeployed with a long args diff.
fn redeploys(n: usize) -> Plan {
    let mut jobs = Vec::new();
    let mut observed = Vec::new();
    let mut hist = BTreeMap::new();
    for i in 0..n {
        let old = job(&format!("job-{i:03}"));
        let current = running(&old, 1, JobState::Running);
        let mut new = old.clone();
        if let Program::Jar { args, .. } = &mut new.program {
            args[1] = format!("topic-{i}").into();
            for k in 0..40 {
                args.push(format!("--extra-{k}=value-{k}-with-some-padding-text").into());
            }
        }
        hist.insert(old.name.to_string(), history_for(&old, &current));
        jobs.push(new);
        observed.push(current);
    }
    run(&desired(jobs, false), &observation(observed), &hist, &[])
}

const FOOTER: &str = "---\n<sub>weir serve · head `aaaaaaaaaaaa` (up to date with `main`) · cluster settings of `main` · plan `p1`</sub>\n";

#[test]
fn a_short_preview_is_one_whole_comment() {
    let plan = redeploys(1);
    let preview = Preview::new(Some(&plan), &[]);
    let body = single_comment(
        &preview,
        65_000,
        FOOTER,
        Some(FullPlan {
            id: "p1",
            url: None,
        }),
    );
    assert_eq!(
        body,
        format!("{}\n\n{FOOTER}", preview.to_markdown().trim_end())
    );
}

#[test]
fn a_long_preview_is_cut_to_one_comment_that_points_to_the_whole_plan() {
    let plan = redeploys(40);
    let preview = Preview::new(Some(&plan), &[]);
    assert!(preview.split(20_000).len() > 1);
    for (limit, url) in [
        (20_000, None),
        (5_000, Some("https://weir.example.com/api/v1/plans/p1")),
    ] {
        let body = single_comment(&preview, limit, FOOTER, Some(FullPlan { id: "p1", url }));
        assert!(body.chars().count() <= limit, "{} > {limit}", body.len());
        assert!(body.starts_with("<!-- weir-plan-preview -->\n"), "{body}");
        assert_eq!(body.matches("<!-- weir-plan-preview").count(), 1);
        assert!(!body.contains("continues in the next"), "{body}");
        assert!(body.contains("only its beginning is shown"), "{body}");
        match url {
            Some(u) => assert!(body.contains(&format!("[the whole plan]({u})"))),
            None => assert!(body.contains("`GET /api/v1/plans/p1`")),
        }
        assert!(body.ends_with(FOOTER));
        assert!(body.contains("Plan: 0 to create, 40 to redeploy (savepoint), 0 to delete."));
    }
    // The continuation note that is replaced is the one the splitter writes.
    let first = &preview.split(20_000)[0];
    let total = preview.split(20_000).len();
    assert!(first.contains(&continuation_note(total)), "{first}");
}

#[test]
fn daemon_comment_snapshot() {
    let plan = redeploys(3);
    let preview = Preview::new(Some(&plan), &[]);
    let body = single_comment(
        &preview,
        preview::MIN_LIMIT + 2_500,
        FOOTER,
        Some(FullPlan {
            id: "p1",
            url: Some("https://weir.example.com/api/v1/plans/p1"),
        }),
    );
    insta::assert_snapshot!(body);
}

#[test]
fn failure_comments_escape_the_message() {
    let body = failure_comment(&"f".repeat(40), "cannot fetch <b>x</b>\nsecond line");
    assert!(body.starts_with("<!-- weir-plan-preview -->\n"));
    assert!(body.contains("`ffffffffffff`"));
    assert!(
        body.contains("cannot fetch &lt;b&gt;x&lt;/b&gt; second line"),
        "{body}"
    );
}
