//! Pull-request previews by the real `weir serve` process: signed GitHub `pull_request` and
//! GitLab merge request deliveries, a bare remote holding the pull-request refs, the real Flink
//! 2.x cluster, and an in-process fake of the GitHub and GitLab REST APIs weir uses
//! (`pr_preview/fake_forge.rs`).

mod fake_forge;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{API_TOKEN, GITHUB_SECRET, GITLAB_SECRET, Options, Remote, Serve};
use crate::harness::*;
use fake_forge::{Fake, FakeComment};

const GH_TOKEN: &str = "ghp_FAKE0123456789previewtoken";
const GL_TOKEN: &str = "glpat-FAKE0123456789previewtoken";
const MARKER: &str = "<!-- weir-plan-preview -->\n";

// ---- deliveries ----------------------------------------------------------------------------

fn github_delivery(
    serve: &Serve,
    action: &str,
    state: &str,
    number: u64,
    head: &str,
) -> (u16, Value) {
    let body = json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": state,
            "head": {"ref": "feature", "sha": head},
            "base": {"ref": "main", "sha": "0".repeat(40)},
            "user": {"login": "alice"},
        },
        "repository": {"full_name": "acme/jobs"},
        "sender": {"login": "alice"},
    })
    .to_string();
    let (code, text) = serve.github("pull_request", &body);
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn gitlab_delivery(
    serve: &Serve,
    project: (u64, &str),
    action: &str,
    iid: u64,
    head: &str,
    oldrev: Option<&str>,
) -> (u16, Value) {
    let mut attrs = json!({
        "iid": iid,
        "action": action,
        "state": if action == "close" { "closed" } else { "opened" },
        "target_branch": "main",
        "source_branch": "feature",
        "last_commit": {"id": head},
    });
    if let Some(r) = oldrev {
        attrs["oldrev"] = json!(r);
    }
    let body = json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"username": "carol"},
        "project": {"id": project.0, "path_with_namespace": project.1},
        "object_attributes": attrs,
    })
    .to_string();
    let (code, text) = serve.post(
        "/api/v1/webhooks/gitlab",
        &body,
        &[
            ("X-Gitlab-Event", "Merge Request Hook"),
            ("X-Gitlab-Token", GITLAB_SECRET),
            ("Content-Type", "application/json"),
        ],
    );
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn previews(serve: &Serve) -> Vec<Value> {
    serve.get("/api/v1/previews")["previews"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn preview_of(serve: &Serve, forge: &str, number: u64) -> Value {
    previews(serve)
        .into_iter()
        .find(|p| p["forge"] == forge && p["number"] == number)
        .unwrap_or(Value::Null)
}

/// `weir.yaml` of `repo` with the cluster URL replaced.
fn with_cluster_url(repo: &Repo, url: &str) {
    let text = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    let replaced = text.replace(&format!("url: {}", repo.url), &format!("url: {url}"));
    assert_ne!(text, replaced);
    repo.write("weir.yaml", &replaced);
}

fn short(sha: &str) -> &str {
    &sha[..12]
}

#[track_caller]
fn assert_no_secrets(fake: &Fake, serve: &Serve) {
    let log = serve.log();
    for secret in [GH_TOKEN, GL_TOKEN, GITHUB_SECRET, GITLAB_SECRET, API_TOKEN] {
        assert!(!log.contains(secret), "the daemon log holds a secret");
        for r in fake.requests() {
            assert!(
                !r.body.contains(secret),
                "a request body holds a secret: {r:?}"
            );
            assert!(!r.path.contains(secret), "a URL holds a secret: {r:?}");
        }
    }
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn github_pull_request_is_previewed_in_one_comment_with_statuses() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("pr-gh");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push_to(&repo, "a job", "refs/heads/main");

    let fake = Fake::start();
    // Someone else's comments come first; at two per page weir has to page to find its own.
    for (i, text) in ["looks good", "<!-- not weir -->\nci bot", "nit: naming"]
        .iter()
        .enumerate()
    {
        fake.seed("github", 7, &format!("user{i}"), text, false);
    }
    // The endpoint a pull request would like the daemon to call instead of the real cluster.
    let elsewhere = Fake::start();
    let serve = Options::following(&remote)
        .github_webhook()
        .config(&format!(
            "pollIntervalSeconds: 3600\n\
             previews:\n  github:\n    apiUrl: {}/gh/api/v3\n    token: {{env: WEIR_TEST_GH_TOKEN}}\n    \
             repo: acme/jobs\n",
            fake.base
        ))
        .env("WEIR_TEST_GH_TOKEN", GH_TOKEN)
        .start();
    serve.wait_job(&name, "Synced", "RUNNING");
    let running = running_named(base, &name);
    assert_eq!(running.len(), 1);

    let s = Scene {
        base,
        repo: &repo,
        remote: &remote,
        serve: &serve,
        fake: &fake,
        name: &name,
        file: &file,
        running: &running,
    };
    let (head1, comment) = opened_is_previewed_in_one_comment(&s, &elsewhere);
    recorded_as_a_plan_that_cannot_be_applied(&s, &comment.body);
    let head2 = a_broken_commit_updates_the_comment(&s, comment.id);
    let head3 = quick_pushes_coalesce(&s, comment.id, &head2);
    let head4 = closed_stops_previews(&s, &head3);

    // Pull requests into other branches and of other repositories are not previewed.
    let other_repo = json!({
        "action": "opened",
        "pull_request": {"number": 8, "state": "open", "head": {"ref": "x", "sha": head4},
                          "base": {"ref": "main", "sha": head1}},
        "repository": {"full_name": "acme/other"},
    })
    .to_string();
    let sig = weir::serve::webhook::sign(GITHUB_SECRET.as_bytes(), other_repo.as_bytes());
    let (code, text) = serve.post(
        "/api/v1/webhooks/github",
        &other_repo,
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-Hub-Signature-256", &sig),
        ],
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("ignored"), "{text}");
    // Unsigned pull-request deliveries are refused like pushes.
    let (code, _) = serve.post(
        "/api/v1/webhooks/github",
        &other_repo,
        &[("X-GitHub-Event", "pull_request")],
    );
    assert_eq!(code, 401);

    // Other people's comments were left alone; weir wrote exactly one.
    let all = fake.comments("github", 7);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(
        all.iter()
            .filter(|c| c.body.starts_with("<!-- weir-plan-preview"))
            .count(),
        1
    );
    assert_eq!(running_named(base, &name), running, "previews never apply");
    assert_no_secrets(&fake, &serve);
}

/// A pull request's scene: the jobs repo and its remote, the daemon previewing it on the fake
/// forge, the job and the Flink job ids running before any preview.
struct Scene<'a> {
    base: &'a str,
    repo: &'a Repo,
    remote: &'a Remote,
    serve: &'a Serve,
    fake: &'a Fake,
    name: &'a str,
    file: &'a str,
    running: &'a [String],
}

/// Pull request 7 opened: one comment and statuses, planned against the base branch's clusters;
/// returns its head and weir's comment.
fn opened_is_previewed_in_one_comment(s: &Scene, elsewhere: &Fake) -> (String, FakeComment) {
    let Scene {
        repo,
        remote,
        serve,
        fake,
        name,
        file,
        ..
    } = s;
    // Pull request 7: a new topic (a redeploy), and `local` pointed at another URL.
    git(&repo.root, &["checkout", "-q", "-b", "feature"]);
    repo.write(file, &jar_job(name, 1, "orders-v2", ""));
    with_cluster_url(repo, &elsewhere.base);
    let head1 = remote.push_to(repo, "new topic", "refs/pull/7/head");
    let sent = Instant::now();
    let (code, r) = github_delivery(serve, "opened", "open", 7, &head1);
    assert_eq!(code, 202, "{r}");
    assert_eq!(r["preview"], "queued", "{r}");
    let status = fake.wait_status("github", &head1, serve);
    eprintln!("opened → final status in {:?}", sent.elapsed());
    assert_eq!(status.state, "success", "{status:?}\n{}", serve.log());
    assert_eq!(status.context, "weir/plan");
    assert!(status.description.contains("1 to redeploy"), "{status:?}");
    let pending_first = fake
        .statuses("github")
        .iter()
        .position(|s| s.sha == head1 && s.state == "pending");
    assert!(pending_first.is_some(), "pending while planning");
    let mine = fake.weir_comments("github", 7);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let comment = &mine[0];
    assert!(comment.body.starts_with(MARKER), "{}", comment.body);
    assert!(
        comment
            .body
            .contains("**Plan: 0 to create, 1 to redeploy (savepoint), 0 to delete.**"),
        "{}",
        comment.body
    );
    assert!(comment.body.contains(&format!("`{name}`")));
    // Planned against the branch's cluster settings, and the pull request is told so.
    assert!(
        comment
            .body
            .contains("This pull request changes `clusters` in weir.yaml"),
        "{}",
        comment.body
    );
    assert!(
        comment.body.contains(&format!(
            "head `{}` (up to date with `main`)",
            short(&head1)
        )),
        "{}",
        comment.body
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the pull request's cluster URL was called: {:?}",
        elsewhere.requests()
    );
    // Every API call carried the token in the Authorization header, and only there.
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {GH_TOKEN}").as_str()),
            "{r:?}"
        );
    }
    // The comment list was paged to look for an earlier weir comment.
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/issues/7/comments")),
        "{requests:#?}"
    );

    (head1, comment.clone())
}

/// The plan is recorded like the daemon's own, as a pull-request preview that cannot be
/// applied; nothing on the cluster changed.
fn recorded_as_a_plan_that_cannot_be_applied(s: &Scene, comment: &str) {
    let Scene {
        base,
        serve,
        name,
        running,
        ..
    } = s;
    let p = preview_of(serve, "github", 7);
    assert_eq!(p["outcome"], "success", "{p}");
    let plan_id = p["planId"].as_str().unwrap().to_string();
    assert!(comment.contains(&plan_id));
    let plan = serve.get(&format!("/api/v1/plans/{plan_id}"));
    assert_eq!(plan["trigger"], "pull_request", "{plan}");
    let (code, text) = serve.post(
        &format!("/api/v1/plans/{plan_id}/apply"),
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(code, 409, "{text}");
    assert_eq!(running_named(base, name), *running);
}

/// A new commit breaks the file: the same comment is updated, the status is a failure.
fn a_broken_commit_updates_the_comment(s: &Scene, comment_id: u64) -> String {
    let Scene {
        repo,
        remote,
        serve,
        fake,
        name,
        file,
        ..
    } = s;
    repo.write(
        file,
        &jar_job(name, 1, "orders-v2", "").replace("parallelism: 1", "parallelism: lots"),
    );
    let head2 = remote.push_to(repo, "break it", "refs/pull/7/head");
    let (code, r) = github_delivery(serve, "synchronize", "open", 7, &head2);
    assert_eq!(code, 202, "{r}");
    let status = fake.wait_status("github", &head2, serve);
    assert_eq!(status.state, "failure", "{status:?}");
    assert!(status.description.contains("1 invalid file"), "{status:?}");
    let mine = fake.weir_comments("github", 7);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0].id, comment_id, "updated in place");
    let body = &mine[0].body;
    assert!(body.contains(&format!("`{file}:8:")), "{body}");
    assert!(body.contains("1 invalid file"), "{body}");
    assert!(body.contains(short(&head2)), "{body}");

    head2
}

/// Quick pushes coalesce: three deliveries, at most two previews, the newest head wins.
fn quick_pushes_coalesce(s: &Scene, comment_id: u64, head2: &str) -> String {
    let Scene {
        repo,
        remote,
        serve,
        fake,
        name,
        file,
        ..
    } = s;
    repo.write(file, &jar_job(name, 2, "orders", ""));
    let head3 = remote.push_to(repo, "fix it, rescale", "refs/pull/7/head");
    let runs_before = preview_of(serve, "github", 7)["runs"].as_u64().unwrap();
    for head in [head2, &head3, &head3] {
        let (code, r) = github_delivery(serve, "synchronize", "open", 7, head);
        assert_eq!(code, 202, "{r}");
    }
    let status = fake.wait_status("github", &head3, serve);
    assert_eq!(status.state, "success", "{status:?}");
    assert!(status.description.contains("1 to rescale"), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while preview_of(serve, "github", 7)["outcome"] != "success"
        || preview_of(serve, "github", 7)["head"] != head3.as_str()
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            preview_of(serve, "github", 7)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let runs = preview_of(serve, "github", 7)["runs"].as_u64().unwrap() - runs_before;
    assert!(
        (1..=2).contains(&runs),
        "{runs} previews for three deliveries"
    );
    let mine = fake.weir_comments("github", 7);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, comment_id);
    assert!(mine[0].body.contains("1 to rescale"), "{}", mine[0].body);
    assert!(mine[0].body.contains(short(&head3)));

    head3
}

/// Closed: previews stop; a later push is not previewed and nothing is written.
fn closed_stops_previews(s: &Scene, head3: &str) -> String {
    let Scene {
        repo,
        remote,
        serve,
        fake,
        name,
        file,
        ..
    } = s;
    let refs = git(
        &serve.mirror(),
        &["for-each-ref", "refs/weir/previews/github/7/"],
    );
    assert!(refs.contains("/head"), "the preview's refs: {refs}");
    let (code, r) = github_delivery(serve, "closed", "closed", 7, head3);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["preview"], "stopped", "{r}");
    // The mirror lets go of the closed pull request's commits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let refs = git(
            &serve.mirror(),
            &["for-each-ref", "refs/weir/previews/github/7/"],
        );
        if refs.trim().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "refs left: {refs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = fake.requests().len();
    repo.write(file, &jar_job(name, 3, "orders", ""));
    let head4 = remote.push_to(repo, "after close", "refs/pull/7/head");
    let (code, r) = github_delivery(serve, "synchronize", "open", 7, &head4);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["preview"], "ignored", "{r}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        fake.requests().len(),
        seen,
        "{:#?}",
        &fake.requests()[seen..]
    );
    assert_eq!(preview_of(serve, "github", 7)["state"], "closed");
    assert!(fake.statuses("github").iter().all(|s| s.sha != head4));

    head4
}

#[test]
fn gitlab_merge_request_is_previewed_in_one_note_with_statuses() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("pr-gl");
    let file = format!("jobs/{name}.yaml");
    remote.push_to(&repo, "no jobs yet", "refs/heads/main");

    let fake = Fake::start();
    fake.seed("gitlab", 3, "dave", "first!", false);
    // A system note that happens to start with the marker is not weir's.
    fake.seed("gitlab", 3, "gitlab", MARKER, true);
    fake.seed("gitlab", 3, "erin", "please add a test", false);
    // Manual policy: the daemon plans the branch but applies nothing by itself.
    let serve = Options::following(&remote)
        .gitlab_webhook()
        .config(&format!(
            "pollIntervalSeconds: 3600\nsync: {{policy: manual}}\npreviews:\n  gitlab:\n    \
             apiUrl: {}/gl/api/v4\n    token: {{env: WEIR_TEST_GL_TOKEN}}\n    projectId: group/jobs\n  \
             publicUrl: https://weir.example.com/\n",
            fake.base
        ))
        .env("WEIR_TEST_GL_TOKEN", GL_TOKEN)
        .start();
    serve.wait_for("the first reconcile", Duration::from_secs(60), |s| {
        s["reconciles"].as_u64() > Some(0)
    });

    git(&repo.root, &["checkout", "-q", "-b", "feature"]);
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    let head1 = remote.push_to(&repo, "add a job", "refs/merge-requests/3/head");
    let (code, r) = gitlab_delivery(&serve, (42, "group/jobs"), "open", 3, &head1, None);
    assert_eq!(code, 202, "{r}");
    let status = fake.wait_status("gitlab", &head1, &serve);
    assert_eq!(status.state, "success", "{status:?}\n{}", serve.log());
    assert_eq!(status.context, "weir/plan");
    assert!(status.description.contains("1 to create"), "{status:?}");
    let mine = fake.weir_comments("gitlab", 3);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let note = mine[0].clone();
    assert!(note.body.starts_with(MARKER));
    assert!(
        note.body
            .contains("**Plan: 1 to create, 0 to redeploy, 0 to delete.**"),
        "{}",
        note.body
    );
    statuses_link_to_the_plan(&serve, &fake, &head1);

    // An update without new commits (a title edit) is ignored; one with new commits updates the
    // same note and sets a status on the new head.
    let (code, r) = gitlab_delivery(&serve, (42, "group/jobs"), "update", 3, &head1, None);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["preview"], "ignored", "{r}");
    repo.write(&file, &jar_job(&name, 2, "orders", ""));
    let head2 = remote.push_to(&repo, "parallelism 2", "refs/merge-requests/3/head");
    let (code, r) = gitlab_delivery(
        &serve,
        (42, "group/jobs"),
        "update",
        3,
        &head2,
        Some(&head1),
    );
    assert_eq!(code, 202, "{r}");
    let status = fake.wait_status("gitlab", &head2, &serve);
    assert_eq!(status.state, "success", "{status:?}");
    let mine = fake.weir_comments("gitlab", 3);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0].id, note.id, "updated in place");
    assert!(mine[0].body.contains(short(&head2)), "{}", mine[0].body);
    assert_ne!(mine[0].body, note.body);
    for r in fake.requests() {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {GL_TOKEN}").as_str()),
            "{r:?}"
        );
        assert!(r.path.contains("/projects/group%2Fjobs/"), "{r:?}");
    }

    an_unfetchable_head_gets_an_error_status_and_note(&serve, &fake, &head2);

    // Another project's merge request is not previewed; a merged one stops.
    let (code, r) = gitlab_delivery(&serve, (99, "group/other"), "open", 5, &head2, None);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["preview"], "ignored", "{r}");
    let (code, r) = gitlab_delivery(&serve, (42, "group/jobs"), "merge", 3, &head2, None);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["preview"], "stopped", "{r}");
    // A wrong token is refused.
    let (code, _) = serve.post(
        "/api/v1/webhooks/gitlab",
        "{}",
        &[
            ("X-Gitlab-Event", "Merge Request Hook"),
            ("X-Gitlab-Token", "nope"),
        ],
    );
    assert_eq!(code, 401);
    assert!(
        running_named(&cluster.url, &name).is_empty(),
        "previews never apply"
    );
    assert_no_secrets(&fake, &serve);
}

/// Statuses link to the plan of merge request 3 when the daemon's public URL is known.
fn statuses_link_to_the_plan(serve: &Serve, fake: &Fake, head1: &str) {
    let plan_id = preview_of(serve, "gitlab", 3)["planId"]
        .as_str()
        .unwrap()
        .to_string();
    let status_body = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with(&format!("/statuses/{head1}")))
        .unwrap()
        .body;
    assert!(
        status_body.contains(&format!("https://weir.example.com/api/v1/plans/{plan_id}")),
        "{status_body}"
    );
}

/// A merge request (4) whose head ref cannot be fetched gets an error status and a note saying
/// why.
fn an_unfetchable_head_gets_an_error_status_and_note(serve: &Serve, fake: &Fake, head2: &str) {
    let (code, r) = gitlab_delivery(serve, (42, "group/jobs"), "open", 4, head2, None);
    assert_eq!(code, 202, "{r}");
    // (The error status goes out before the note.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.weir_comments("gitlab", 4).is_empty() {
        assert!(Instant::now() < deadline, "{:#?}", fake.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = fake
        .statuses("gitlab")
        .into_iter()
        .rev()
        .find(|s| s.state == "failed" && s.sha == head2)
        .unwrap_or_else(|| panic!("no failed status: {:#?}", fake.statuses("gitlab")));
    assert!(
        failed
            .description
            .contains("the remote has no `refs/merge-requests/4/head`"),
        "{failed:?}"
    );
    let note = &fake.weir_comments("gitlab", 4)[0].body;
    assert!(note.starts_with(MARKER), "{note}");
    assert!(note.contains("weir could not plan"), "{note}");
    assert_eq!(preview_of(serve, "gitlab", 4)["outcome"], "error");
}

/// Several daemons on one PostgreSQL store: a pull-request delivery that reaches a follower is
/// recorded for the leader, and the leader (only) posts the preview.
#[test]
fn a_pull_request_delivered_to_a_follower_is_previewed_by_the_leader() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let name = repo.unique("pr-ha");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    remote.push_to(&repo, "a job", "refs/heads/main");
    let fake = Fake::start();
    let store = crate::ha::fresh_database();
    let daemon = || {
        Options::following(&remote)
            .github_webhook()
            .config(&format!(
                "pollIntervalSeconds: 3600\nstore: {store}\n\
                 previews:\n  github:\n    apiUrl: {}/gh/api/v3\n    token: {{env: WEIR_TEST_GH_TOKEN}}\n    \
                 repo: acme/jobs\n",
                fake.base
            ))
            .env("WEIR_TEST_GH_TOKEN", GH_TOKEN)
            .start()
    };
    let leader = daemon();
    leader.wait_job(&name, "Synced", "RUNNING");
    let follower = daemon();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !follower
        .get_raw("/readyz", None)
        .1
        .contains("\"role\":\"follower\"")
    {
        assert!(Instant::now() < deadline, "{}", follower.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    git(&repo.root, &["checkout", "-q", "-b", "feature"]);
    repo.write(&file, &jar_job(&name, 1, "orders-v2", ""));
    let head = remote.push_to(&repo, "new topic", "refs/pull/9/head");
    let (code, r) = github_delivery(&follower, "opened", "open", 9, &head);
    assert_eq!(code, 202, "{r}");
    assert_eq!(r["preview"], "forwarded to the leader", "{r}");
    let status = fake.wait_status("github", &head, &leader);
    assert_eq!(status.state, "success", "{status:?}\n{}", leader.log());
    assert_eq!(fake.weir_comments("github", 9).len(), 1);
    assert_eq!(preview_of(&leader, "github", 9)["number"], 9);
}
