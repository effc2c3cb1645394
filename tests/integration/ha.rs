//! Issue 14: the PostgreSQL store and several `weir serve` on it with one leader — real
//! PostgreSQL (`WEIR_TEST_PG_URL`, started by scripts/postgres.sh; the tests fail without it),
//! real daemons, real Flink.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use weir::store::{
    ApplyOutcome, NewApply, NewJournalEntry, PlanRecord, StepDetail, StopDetail, Store, Trigger,
};

use crate::daemon::{API_TOKEN, Options, Remote, Serve, job_of};
use crate::harness::*;

// ---- PostgreSQL ------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh, empty database on the test server; its URL.
pub fn fresh_database() -> String {
    let admin = std::env::var("WEIR_TEST_PG_URL")
        .expect("WEIR_TEST_PG_URL is not set: start PostgreSQL with scripts/postgres.sh");
    let name = unique("weir_ha").replace('-', "_");
    runtime().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
    });
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

fn open(location: &str) -> Store {
    runtime()
        .block_on(Store::open(Path::new(location)))
        .unwrap()
}

// ---- store -----------------------------------------------------------------------------------

fn seed(store: &Store) {
    runtime().block_on(async {
        for (i, job) in ["orders", "payments"].iter().enumerate() {
            let at = 1_000 * (i as i64 + 1);
            let plan = format!("p-{job}");
            store
                .insert_plan(&PlanRecord {
                    id: plan.clone(),
                    created_at_ms: at,
                    revision: "abc".into(),
                    trigger: Trigger::Cli,
                    summary: "1 to update".into(),
                    plan_json: "{}".into(),
                    job_names: vec![job.to_string()],
                })
                .await
                .unwrap();
            let apply = format!("a-{job}");
            store
                .insert_apply(&NewApply {
                    id: apply.clone(),
                    plan_id: plan,
                    started_at_ms: at + 1,
                    revision: "abc".into(),
                    trigger: Trigger::Cli,
                    job_names: vec![job.to_string()],
                })
                .await
                .unwrap();
            store
                .journal_intent(&NewJournalEntry {
                    apply_id: apply.clone(),
                    job: job.to_string(),
                    seq: 0,
                    detail: StepDetail::StopWithSavepoint(StopDetail {
                        job_id: weir::identity::JobId([7; 16]),
                        request_id: None,
                        target_dir: None,
                    }),
                    at_ms: at + 2,
                })
                .await
                .unwrap();
            store
                .finish_apply(&apply, ApplyOutcome::Failed, Some("boom"), at + 3)
                .await
                .unwrap();
        }
    });
}

/// `weir store copy` moves a SQLite store's whole history to PostgreSQL: `weir history` reads
/// the same before and after, and a second copy into the now full store is refused.
#[test]
fn store_copy_from_sqlite_to_postgres_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("state.db");
    let sqlite = sqlite.to_str().unwrap();
    seed(&open(sqlite));
    let pg = fresh_database();
    let weir = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env_remove("WEIR_STATE")
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let history = |state: &str| {
        let (code, out, err) = weir(&["history", "--state", state, "--format", "json"]);
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let before = history(sqlite);
    assert_eq!(before.as_array().unwrap().len(), 4, "{before:#}");

    let (code, out, err) = weir(&[
        "store", "copy", "--from", sqlite, "--to", &pg, "--format", "json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["tables"]["journal"], 2, "{report:#}");
    assert_eq!(history(&pg), before);

    let (code, _, err) = weir(&["store", "copy", "--from", sqlite, "--to", &pg]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("copy into an empty store"), "{err}");
}

/// The CLI works against PostgreSQL as against SQLite: a deploy, a savepoint redeploy, and
/// what `status`, `history` and `savepoints` read back; a password file that cannot be read is
/// a clear error.
#[test]
fn the_cli_deploys_and_redeploys_with_a_postgres_store() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let mut repo = Repo::new(base, Some(&cluster.jars));
    repo.state = fresh_database().into();
    let name = repo.unique("pg-cli");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "orders", ""));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let first = running_named(base, &name);
    assert_eq!(first.len(), 1);
    wait_checkpoint(base, &first[0]);
    repo.write(&file, &jar_job(&name, 1, "payments", ""));
    repo.commit("new topic");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let second = running_named(base, &name);
    assert_eq!(second.len(), 1);
    let (restored, is_savepoint) = restored_from(base, &second[0]).expect("restored");
    assert!(is_savepoint);
    let row = status_row(&repo, &name);
    assert_eq!(row["jobId"], second[0].as_str(), "{row:#}");
    let history = repo.weir(&["history", "--format", "json"]).ok().json();
    let applies = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "apply")
        .count();
    assert_eq!(applies, 2, "{history:#}");
    let points = repo
        .weir(&["savepoints", &name, "--format", "json"])
        .ok()
        .json();
    assert!(points.to_string().contains(&restored), "{points:#}");

    let missing = repo
        .weir_env(
            &["status"],
            &[("WEIR_PG_PASSWORD_FILE", "/nonexistent/weir-pg-password")],
        )
        .code(1);
    assert!(
        missing.stderr.contains("WEIR_PG_PASSWORD_FILE"),
        "{}",
        missing.all()
    );
}

/// Replicas start together: concurrent first opens of an empty PostgreSQL database all
/// succeed (the migration is serialised in the database) and agree on the schema.
#[test]
fn concurrent_first_opens_of_a_postgres_store_all_succeed() {
    for _ in 0..3 {
        let url = fresh_database();
        let stores = runtime().block_on(async {
            let opens = (0..6).map(|_| Store::open(Path::new(&url)));
            futures::future::join_all(opens).await
        });
        for s in stores {
            s.unwrap_or_else(|e| panic!("{e:#} {:?}", std::error::Error::source(&e)));
        }
    }
}

/// Fencing is the database's: once another daemon took the lease, the deposed leader's journal
/// writes are refused in the same statement, even though it still believes it leads.
#[test]
fn a_deposed_leader_cannot_write_the_journal() {
    let url = fresh_database();
    let rt = runtime();
    let (old, new) = rt.block_on(async {
        let old = Store::open(Path::new(&url)).await.unwrap();
        let new = Store::open(Path::new(&url)).await.unwrap();
        let lease = Duration::from_millis(800);
        let first = old.try_acquire_lease("old", "a:1", lease).await.unwrap();
        let first = first.expect("the first daemon takes the lease");
        old.set_fence(Some(first));
        assert_eq!(
            new.try_acquire_lease("new", "b:1", lease).await.unwrap(),
            None
        );
        // The leader's writes go through under its epoch.
        let apply = NewApply {
            id: "a-first".into(),
            plan_id: "p-late".into(),
            started_at_ms: 5,
            revision: "abc".into(),
            trigger: Trigger::Cli,
            job_names: vec!["orders".into()],
        };
        old.insert_plan(&plan("p-late")).await.unwrap();
        old.insert_apply(&apply).await.unwrap();
        (old, new)
    });
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let second = new
            .try_acquire_lease("new", "b:1", Duration::from_secs(30))
            .await
            .unwrap()
            .expect("an ended lease is taken");
        new.set_fence(Some(second));
        let late = old
            .insert_apply(&NewApply {
                id: "a-late".into(),
                plan_id: "p-late".into(),
                started_at_ms: 10,
                revision: "abc".into(),
                trigger: Trigger::Cli,
                job_names: vec!["orders".into()],
            })
            .await
            .unwrap_err();
        assert!(
            format!("{late:#} {:?}", std::error::Error::source(&late)).contains("fenced"),
            "{late:#}"
        );
        let late_step = old
            .journal_intent(&NewJournalEntry {
                apply_id: "a-first".into(),
                job: "orders".into(),
                seq: 0,
                detail: StepDetail::StopWithSavepoint(StopDetail {
                    job_id: weir::identity::JobId([7; 16]),
                    request_id: None,
                    target_dir: None,
                }),
                at_ms: 12,
            })
            .await
            .unwrap_err();
        assert!(
            format!("{:?}", std::error::Error::source(&late_step)).contains("fenced"),
            "{late_step:#}"
        );
        let upsert = old
            .renew_lease("old", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!upsert, "the deposed leader cannot renew");
        new.insert_apply(&NewApply {
            id: "a-new".into(),
            plan_id: "p-late".into(),
            started_at_ms: 11,
            revision: "abc".into(),
            trigger: Trigger::Cli,
            job_names: vec!["orders".into()],
        })
        .await
        .unwrap();
    });
}

fn plan(id: &str) -> PlanRecord {
    PlanRecord {
        id: id.into(),
        created_at_ms: 9,
        revision: "abc".into(),
        trigger: Trigger::Cli,
        summary: "late".into(),
        plan_json: "{}".into(),
        job_names: vec!["orders".into()],
    }
}

// ---- several daemons -------------------------------------------------------------------------

fn ha_daemon(remote: &Remote, store: &str) -> Options {
    Options::following(remote)
        .github_webhook()
        .config(&format!("pollIntervalSeconds: 3600\nstore: {store}\n"))
}

/// `/readyz` names the role whether or not the daemon is ready (a new leader is not, until
/// it observed the clusters).
fn role(d: &Serve) -> Value {
    let (_, body) = d.get_raw("/readyz", None);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/readyz: {e}: {body}"))
}

fn wait_role(d: &Serve, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, body) = d.get_raw("/readyz", None);
        if let Ok(v) = serde_json::from_str::<Value>(&body)
            && v["role"] == want
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became {want}: {code} {body}\n{}",
            d.base,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn address(d: &Serve) -> String {
    d.base.trim_start_matches("http://").to_string()
}

/// Three daemons on one PostgreSQL store: one leads, the others follow and name it; the
/// leader dies in the middle of a redeploy (right after Flink accepted the stop with
/// savepoint), a follower takes over within the documented bound and finishes the apply from
/// the journal: one running job, restored from the recorded savepoint.
#[test]
fn a_follower_takes_over_and_finishes_the_apply_the_dead_leader_started() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let store = fresh_database();
    let name = repo.unique("ha-takeover");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "o", ""));
    remote.push(&repo, "job");

    let mut leader = ha_daemon(&remote, &store)
        .env("WEIR_FAULT_CRASH_AT", "sent:stop_with_savepoint")
        .start();
    wait_role(&leader, "leader", Duration::from_secs(20));
    let followers = [
        ha_daemon(&remote, &store).start(),
        ha_daemon(&remote, &store).start(),
    ];
    for f in &followers {
        let r = wait_role(f, "follower", Duration::from_secs(20));
        assert_eq!(r["leader"], address(&leader), "{r}");
        let s = f.status();
        assert_eq!(s["role"], "follower", "{s}");
    }
    assert_eq!(leader.status()["role"], "leader");
    leader.wait_job(&name, "Synced", "RUNNING");
    let before = running_named(base, &name);
    wait_checkpoint(base, &before[0]);

    repo.write(&file, &jar_job(&name, 1, "o-v2", ""));
    remote.push(&repo, "new topic");
    leader.sync();
    let status = leader.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "the leader died mid-apply: {status}");
    let died = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(20);
    let new_leader = loop {
        if let Some(f) = followers.iter().find(|f| role(f)["role"] == "leader") {
            break f;
        }
        assert!(Instant::now() < deadline, "no follower took over");
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = died.elapsed();
    eprintln!("takeover after {took:?}");
    assert!(took <= Duration::from_secs(15), "takeover took {took:?}");
    new_leader.wait_for(
        "the interrupted apply to be finished",
        Duration::from_secs(120),
        |s| {
            job_of(s, &name).is_some_and(|j| {
                j["sync"] == "Synced"
                    && j["health"] == "RUNNING"
                    && j["jobId"] != before[0].as_str()
            })
        },
    );
    let after = running_named(base, &name);
    assert_eq!(after.len(), 1, "one job: {:?}", jobs_named(base, &name));
    let (restored, is_savepoint) = restored_from(base, &after[0]).expect("restored");
    assert!(is_savepoint, "restored from a savepoint");
    let other = followers
        .iter()
        .find(|f| f.base != new_leader.base)
        .unwrap();
    let points = other.get(&format!("/api/v1/jobs/{name}/savepoints"));
    assert!(
        points.to_string().contains(&restored),
        "the savepoint is recorded: {points:#}"
    );
}

/// A signed push webhook delivered to a follower is recorded for the leader, which deploys it.
#[test]
fn a_webhook_delivered_to_a_follower_is_deployed_by_the_leader() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let store = fresh_database();
    let name = repo.unique("ha-webhook");
    repo.write("jobs/.keep", "");
    remote.push(&repo, "empty");
    let leader = ha_daemon(&remote, &store).start();
    wait_role(&leader, "leader", Duration::from_secs(20));
    let follower = ha_daemon(&remote, &store).start();
    wait_role(&follower, "follower", Duration::from_secs(20));

    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "o", ""));
    remote.push(&repo, "job");
    let r = follower.github("push", r#"{"ref":"refs/heads/main"}"#);
    assert_eq!(r.0, 202, "{}", r.1);
    leader.wait_job(&name, "Synced", "RUNNING");
    assert_eq!(running_named(base, &name).len(), 1);
    // A follower never applies: approving a plan there names the leader instead.
    let r = follower.post(
        "/api/v1/plans/plan-any/apply",
        "",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
    );
    assert_eq!(r.0, 503, "{}", r.1);
    assert!(r.1.contains(&address(&leader)), "{}", r.1);
}

// ---- a TCP proxy the test can cut --------------------------------------------------------------

/// Forwards 127.0.0.1:PORT to `upstream` until [`Proxy::cut`], which closes every connection
/// and refuses new ones (a network partition between a daemon and PostgreSQL).
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = upstream.to_string();
        let (c, s) = (cut.clone(), streams.clone());
        std::thread::spawn(move || {
            while !c.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let mut held = s.lock().unwrap();
                        held.push(client.try_clone().unwrap());
                        held.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy { port, cut, streams }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A leader cut off from PostgreSQL steps down before its lease ends (it exits, status 3, and
/// so never touches a job again), and a follower takes over.
#[test]
fn a_leader_cut_off_from_postgres_steps_down_before_its_lease_ends() {
    let cluster = cluster(Version::V2);
    let base = &cluster.url;
    let repo = Repo::new(base, Some(&cluster.jars));
    let remote = Remote::new();
    let store = fresh_database();
    let name = repo.unique("ha-cut");
    repo.write(&format!("jobs/{name}.yaml"), &jar_job(&name, 1, "o", ""));
    remote.push(&repo, "job");
    let direct = url::Url::parse(&store).unwrap();
    let proxy = Proxy::start(&format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap()
    ));
    let mut through = direct.clone();
    through.set_port(Some(proxy.port)).unwrap();

    let mut leader = ha_daemon(&remote, through.as_str()).start();
    wait_role(&leader, "leader", Duration::from_secs(20));
    leader.wait_job(&name, "Synced", "RUNNING");
    let follower = ha_daemon(&remote, &store).start();
    wait_role(&follower, "follower", Duration::from_secs(20));
    let running = running_named(base, &name);

    proxy.cut();
    let cut = Instant::now();
    let status = leader.wait_exit(Duration::from_secs(30));
    let stepped_down = cut.elapsed();
    assert_eq!(status.code(), Some(3), "{}", leader.log());
    assert!(
        stepped_down < Duration::from_secs(12),
        "stepped down after {stepped_down:?}, not before its 12 s lease ended"
    );
    assert!(leader.log().contains("stepping down as leader"));
    wait_role(&follower, "leader", Duration::from_secs(20));
    follower.wait_job(&name, "Synced", "RUNNING");
    assert_eq!(
        running_named(base, &name),
        running,
        "the job was not touched"
    );
}

/// SQLite keeps one process: the daemon always leads, and says so.
#[test]
fn a_daemon_alone_on_sqlite_always_leads() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    repo.write("jobs/.keep", "");
    remote.push(&repo, "empty");
    let d = Options::following(&remote)
        .config("pollIntervalSeconds: 3600\n")
        .start();
    let s = d.status();
    assert_eq!(s["role"], "leader", "{s}");
    assert_eq!(role(&d)["role"], "leader");
}

/// SIGTERM: the leader finishes its work, then ends its lease at once, so a follower leads
/// within a renewal instead of after the whole lease.
#[test]
fn a_leader_stopped_cleanly_hands_over_at_once() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let remote = Remote::new();
    repo.write("jobs/.keep", "");
    remote.push(&repo, "empty");
    let store = fresh_database();
    let mut leader = ha_daemon(&remote, &store).start();
    wait_role(&leader, "leader", Duration::from_secs(20));
    let follower = ha_daemon(&remote, &store).start();
    wait_role(&follower, "follower", Duration::from_secs(20));
    assert_eq!(leader.terminate(), Some(0), "{}", leader.log());
    let stopped = Instant::now();
    wait_role(&follower, "leader", Duration::from_secs(20));
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(6), "handover took {took:?}");
}
