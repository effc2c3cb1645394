//! `weir serve` fetching the jobs repo over the network: a real OpenSSH server (started per test
//! as the current user, with keys made in the test) and a real Git smart-HTTP server
//! (`git http-backend` as CGI behind TLS with a CA made in the test and token auth). The daemon
//! is the real binary; it plans against the real Flink 2.x cluster with `policy: manual`, so
//! nothing is submitted.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{API_TOKEN, Options, Serve, pending_summary};
use crate::harness::*;

const KEY_PASSPHRASE: &str = "passphrase-for-remote-tests";

// ---- SSH -------------------------------------------------------------------------------------

#[test]
fn ssh_fetch_with_a_key_and_hashed_known_hosts_force_push_and_outage() {
    let cluster = cluster(Version::V2);
    let mut sshd = Sshd::start();
    let (repo, name, bare, commit) = jobs_repo(&cluster, &sshd.dir.path().join("git"));
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        bare.display()
    );
    // `ssh-keygen -H` writes the entry the way hashed known_hosts files hold them.
    let known_hosts = sshd.dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "# weir test\n127.0.0.2 {}\n[127.0.0.1]:{} {}\n",
            sshd.other_host_pub, sshd.port, sshd.host_pub
        ),
    )
    .unwrap();
    run(Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts));
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        text.contains("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let d = daemon(&ssh_repo_section(&url, &sshd.user_key, &known_hosts)).start();
    let s = wait_for_the_plan_of(&d, &commit);
    assert_eq!(s["repo"]["commit"], commit.as_str(), "{s}");
    assert!(s["repo"]["error"].is_null(), "{s}");
    // User info is left out of the URL everywhere it is shown.
    assert_eq!(
        s["repo"]["url"],
        url.replace(&format!("{}@", sshd.user), ""),
        "{s}"
    );
    assert!(pending_summary(&s).contains("1 to create"), "{s}");
    assert!(
        sshd.log().contains("Accepted publickey for"),
        "{}",
        sshd.log()
    );

    // History rewritten and force-pushed: the mirror follows.
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 2, "orders", ""),
    );
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-q", "--amend", "-m", "rewritten"]);
    let rewritten = git(&repo.root, &["rev-parse", "HEAD"]).trim().to_string();
    git(
        &repo.root,
        &["push", "-q", "-f", bare.to_str().unwrap(), "main"],
    );
    d.sync();
    let s = d.wait_for("the force-pushed commit", Duration::from_secs(60), |s| {
        s["pendingPlan"]["revision"].as_str() == Some(&rewritten[..12])
    });
    assert_eq!(s["repo"]["commit"], rewritten.as_str(), "{s}");

    // The server goes down: the error names the host and the cause, the last good desired state
    // stays, and the retries (with backoff) fetch again once it is back.
    sshd.stop();
    d.sync();
    let (s, error) = fetch_error(&d, "the connection error");
    assert_eq!(
        s["repo"]["errorHost"],
        format!("127.0.0.1:{}", sshd.port),
        "{s}"
    );
    assert!(error.contains("onnect"), "{error}");
    assert_eq!(s["repo"]["commit"], rewritten.as_str(), "{s}");
    assert_eq!(s["revision"], &rewritten[..12], "{s}");
    assert!(sshd.spawn(), "sshd could not get its port back");
    let s = d.wait_for("the fetch after the outage", Duration::from_secs(60), |s| {
        s["repo"]["error"].is_null() && s["repo"]["consecutiveFailures"] == 0
    });
    assert_eq!(s["repo"]["commit"], rewritten.as_str(), "{s}");
    assert!(!d.log().contains(KEY_PASSPHRASE));
}

#[test]
fn ssh_unknown_or_changed_host_key_is_refused_until_known_hosts_is_fixed() {
    let cluster = cluster(Version::V2);
    let sshd = Sshd::start();
    let (_repo, _name, bare, commit) = jobs_repo(&cluster, &sshd.dir.path().join("git"));
    let host = format!("[127.0.0.1]:{}", sshd.port);
    let known_hosts = sshd.dir.path().join("known_hosts");
    // Another key for this very host: as if the server's key changed, or a man in the middle.
    std::fs::write(&known_hosts, format!("{host} {}\n", sshd.other_host_pub)).unwrap();
    let d = daemon(&ssh_repo_section(
        &format!(
            "ssh://{}@127.0.0.1:{}{}",
            sshd.user,
            sshd.port,
            bare.display()
        ),
        &sshd.user_key,
        &known_hosts,
    ))
    .start();
    let (s, error) = fetch_error(&d, "the host key error");
    assert_eq!(
        s["repo"]["errorHost"],
        format!("127.0.0.1:{}", sshd.port),
        "{s}"
    );
    assert!(error.contains("host key verification failed"), "{error}");
    assert!(error.contains(&host), "{error}");
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains(&sshd.host_fingerprint), "{error}");
    // Nothing was fetched, so nothing is planned; the server never saw a login attempt.
    assert!(s["repo"]["commit"].is_null(), "{s}");
    assert!(s["pendingPlan"].is_null(), "{s}");
    assert!(s["revision"].is_null(), "{s}");
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
    assert!(!d.mirror().join("refs/remotes/origin/main").exists());

    // A known_hosts without this host: "not in known_hosts". The retries (with backoff) pick up
    // the file without a restart.
    std::fs::write(&known_hosts, format!("git.example.com {}\n", sshd.host_pub)).unwrap();
    let s = d.wait_for("the unknown-host error", Duration::from_secs(30), |s| {
        s["repo"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not in known_hosts"))
    });
    eprintln!("unknown host: {}", s["repo"]["error"]);
    assert!(s["repo"]["commit"].is_null(), "{s}");
    let failures = s["repo"]["consecutiveFailures"].as_u64().unwrap();
    assert!(failures >= 2, "{s}");

    std::fs::write(&known_hosts, format!("{host} {}\n", sshd.host_pub)).unwrap();
    let s = d.wait_for("the fetch after the fix", Duration::from_secs(60), |s| {
        s["pendingPlan"]["revision"].as_str() == Some(&commit[..12])
    });
    assert!(s["repo"]["error"].is_null(), "{s}");
}

#[test]
fn ssh_url_without_known_hosts_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("serve.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repo:\n  url: git@git.example.com:flink/jobs.git\n  sshKey: {{file: /nonexistent}}\n\
             stateDir: {}\nlisten: 127.0.0.1:0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("repo.knownHosts"), "{stderr}");
    assert!(stderr.contains("is required"), "{stderr}");
}

// ---- HTTPS -----------------------------------------------------------------------------------

#[test]
fn https_with_a_token_and_a_private_ca() {
    let HttpsRemote {
        dir: _dir,
        ca_file,
        server,
        url,
        commit,
        ..
    } = https_remote("token-for-remote-tests-ok");
    let d = daemon(&format!(
        "repo:\n  url: {url}\n  token: {{env: WEIR_TEST_GIT_TOKEN}}\n  caFile: {}\n",
        ca_file.display()
    ))
    .env("WEIR_TEST_GIT_TOKEN", "token-for-remote-tests-ok")
    .start();
    let s = wait_for_the_plan_of(&d, &commit);
    assert_eq!(s["repo"]["commit"], commit.as_str(), "{s}");
    assert!(pending_summary(&s).contains("1 to create"), "{s}");
    assert!(
        server.authorized() > 0,
        "the fetch went through the token check"
    );
    assert!(!d.log().contains("token-for-remote-tests-ok"));
}

/// `weir serve` leaves OpenSSL's CA bundle file unread at start when OpenSSL's certificate
/// directory is hashed (`git::start_libgit2`): then a CA is found in that directory by its
/// subject hash alone. Here the bundle file is empty and the directory holds only the test CA.
#[test]
fn https_trusts_a_ca_found_by_its_hash_in_the_certificate_directory() {
    let HttpsRemote {
        dir,
        ca,
        ca_file,
        server,
        url,
        commit,
        ..
    } = https_remote("token-for-remote-tests-ok");
    let hash = run(Command::new("openssl")
        .args(["x509", "-subject_hash", "-noout", "-in"])
        .arg(&ca_file));
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join(format!("{}.0", hash.trim())), &ca.pem).unwrap();
    // As `start_libgit2` leaves OpenSSL's start: a bundle file that exists and is empty.
    let no_bundle = dir.path().join("no-bundle.pem");
    std::fs::write(&no_bundle, "").unwrap();
    let d = daemon(&format!(
        "repo:\n  url: {url}\n  token: {{env: WEIR_TEST_GIT_TOKEN}}\n"
    ))
    .env("WEIR_TEST_GIT_TOKEN", "token-for-remote-tests-ok")
    .env("SSL_CERT_FILE", no_bundle.to_str().unwrap())
    .env("SSL_CERT_DIR", certs.to_str().unwrap())
    .start();
    let s = wait_for_the_plan_of(&d, &commit);
    assert_eq!(s["repo"]["commit"], commit.as_str(), "{s}");
    assert!(server.authorized() > 0);
}

#[test]
fn https_wrong_token_and_untrusted_certificate_are_refused_without_leaking_the_token() {
    let HttpsRemote {
        dir,
        ca,
        ca_file,
        server,
        url,
        ..
    } = https_remote("token-for-remote-tests-right");
    let host = format!("127.0.0.1:{}", server.port);
    let wrong = "token-for-remote-tests-WRONG";

    let d = daemon(&format!(
        "repo:\n  url: {url}\n  token: {{env: WEIR_TEST_GIT_TOKEN}}\n  caFile: {}\n",
        ca_file.display()
    ))
    .env("WEIR_TEST_GIT_TOKEN", wrong)
    .start();
    let (s, error) = fetch_error(&d, "the authentication error");
    assert!(error.contains("authentication failed"), "{error}");
    assert!(error.contains(&host), "{error}");
    assert_eq!(s["repo"]["errorHost"], host.as_str(), "{s}");
    assert!(s["repo"]["commit"].is_null(), "{s}");
    assert!(
        server.rejected() > 0,
        "the wrong token reached the server's check"
    );
    // Let a retry or two happen, then look for the token everywhere the daemon writes.
    d.wait_for("a retry", Duration::from_secs(30), |s| {
        s["repo"]["consecutiveFailures"].as_u64() >= Some(2)
    });
    let everything = format!(
        "{}\n{}\n{}\n{}",
        d.get_text("/api/v1/status"),
        d.get_text("/metrics"),
        d.get_text("/api/v1/plans"),
        d.log()
    );
    assert!(everything.contains("authentication failed"));
    assert!(!everything.contains(wrong), "{everything}");
    assert!(
        !everything.contains("token-for-remote-tests"),
        "{everything}"
    );
    assert!(!everything.contains(API_TOKEN), "{everything}");
    drop(d);

    // The right token, but weir trusts another CA: libgit2 refuses the certificate before it
    // sends any request, so the token never reaches the server.
    let authorized = server.authorized();
    let rejected = server.rejected();
    let other = TestCa::new("some other CA");
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, &other.pem).unwrap();
    let d = daemon(&format!(
        "repo:\n  url: {url}\n  token: {{env: WEIR_TEST_GIT_TOKEN}}\n  caFile: {}\n",
        other_file.display()
    ))
    .env("WEIR_TEST_GIT_TOKEN", "token-for-remote-tests-right")
    .start();
    let (s, error) = fetch_error(&d, "the certificate error");
    assert!(error.contains(&host), "{error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(
        error.contains("not signed by a trusted CA"),
        "{error}\n{}",
        d.log()
    );
    assert!(s["repo"]["commit"].is_null(), "{s}");
    assert_eq!(server.authorized(), authorized, "no request got through");
    assert_eq!(server.rejected(), rejected, "no request got through");
    assert!(!d.log().contains("token-for-remote-tests-right"));
    drop(d);

    // A certificate from the trusted CA, but for another host name: refused as well.
    let misnamed = GitHttps::start_named(
        server.root.clone(),
        &ca,
        "token-for-remote-tests-right",
        &["git.example.com"],
    );
    let d = daemon(&format!(
        "repo:\n  url: https://127.0.0.1:{}/jobs.git\n  token: {{env: WEIR_TEST_GIT_TOKEN}}\n  \
         caFile: {}\n",
        misnamed.port,
        ca_file.display()
    ))
    .env("WEIR_TEST_GIT_TOKEN", "token-for-remote-tests-right")
    .start();
    let (s, error) = fetch_error(&d, "the host name error");
    // libgit2 1.9 words this one "SSL error: received early EOF" (its host name check fails
    // while reading the certificate's common name), so only the refusal itself is asserted.
    assert!(
        error.contains(&format!("127.0.0.1:{}", misnamed.port)),
        "{error}"
    );
    assert!(s["repo"]["commit"].is_null(), "{s}");
    assert_eq!(
        misnamed.authorized() + misnamed.rejected(),
        0,
        "no request got through"
    );
}

// ---- helpers ---------------------------------------------------------------------------------

/// A daemon following `repo_section` that plans but never applies (manual policy), with the
/// key passphrase in its environment and debug logs: a secret must not show up at any level.
fn daemon(repo_section: &str) -> Options {
    Options::repo(repo_section)
        .no_apply()
        .config("pollIntervalSeconds: 3600\nsync: {policy: manual}\n")
        .env("WEIR_TEST_KEY_PASSPHRASE", KEY_PASSPHRASE)
        .log("debug,sqlx=warn,hyper=info,reqwest=info")
}

/// Waits for the daemon to report that it cannot fetch; prints the error and returns the status
/// and the error.
#[track_caller]
fn fetch_error(d: &Serve, what: &str) -> (Value, String) {
    let s = d.wait_for(what, Duration::from_secs(30), |s| {
        s["repo"]["error"].is_string()
    });
    let error = s["repo"]["error"].as_str().unwrap().to_string();
    eprintln!("{what}: {error}");
    (s, error)
}

fn ssh_repo_section(url: &str, key: &Path, known_hosts: &Path) -> String {
    format!(
        "repo:\n  url: {url}\n  sshKey:\n    file: {}\n    \
         passphrase: {{env: WEIR_TEST_KEY_PASSPHRASE}}\n  knownHosts: {}\n",
        key.display(),
        known_hosts.display()
    )
}

/// Waits for the daemon's plan of `commit` (fetched from its remote) and returns its status.
#[track_caller]
fn wait_for_the_plan_of(d: &Serve, commit: &str) -> Value {
    d.wait_for(
        "the plan of the fetched commit",
        Duration::from_secs(60),
        |s| s["pendingPlan"]["revision"].as_str() == Some(&commit[..12]),
    )
}

/// A jobs repo with one job served over HTTPS with `token` (see [`GitHttps`]), its certificate
/// from a test CA that is also written to `ca_file` in `dir`.
struct HttpsRemote {
    /// Holds `ca_file`: keep it for as long as a daemon reads the file.
    dir: tempfile::TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    server: GitHttps,
    url: String,
    commit: String,
}

fn https_remote(token: &str) -> HttpsRemote {
    let cluster = cluster(Version::V2);
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("weir test CA");
    let server = GitHttps::start(dir.path().join("git"), &ca, token);
    let (_repo, _name, _bare, commit) = jobs_repo(&cluster, &server.root);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let url = format!("https://127.0.0.1:{}/jobs.git", server.port);
    HttpsRemote {
        dir,
        ca,
        ca_file,
        server,
        url,
        commit,
    }
}

/// A jobs repo with one job, pushed to a new bare repo `jobs.git` under `root`.
fn jobs_repo(cluster: &Cluster, root: &Path) -> (Repo, String, PathBuf, String) {
    std::fs::create_dir_all(root).unwrap();
    let bare = root.join("jobs.git");
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = repo.unique("remote");
    repo.write(
        &format!("jobs/{name}.yaml"),
        &jar_job(&name, 1, "orders", ""),
    );
    let commit = repo.commit("job");
    git(&repo.root, &["push", "-q", bare.to_str().unwrap(), "main"]);
    (repo, name, bare, commit)
}

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `sshd -D` on 127.0.0.1 with a host key, an authorized (passphrase-protected) user key and
/// everything else in a temp dir; the login user is the current user.
struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    user: String,
    user_key: PathBuf,
    /// `ssh-ed25519 AAAA…` of the server.
    host_pub: String,
    host_fingerprint: String,
    /// A key the server does not have.
    other_host_pub: String,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: the SSH tests need a real OpenSSH server \
             (apt-get install openssh-server; scripts/test.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let keygen = |file: &str, passphrase: &str| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-C", file, "-N", passphrase, "-f"])
                .arg(p.join(file)));
            let pubkey = std::fs::read_to_string(p.join(format!("{file}.pub"))).unwrap();
            pubkey
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let host_pub = keygen("host_key", "");
        let other_host_pub = keygen("other_host_key", "");
        keygen("user_key", KEY_PASSPHRASE);
        std::fs::copy(p.join("user_key.pub"), p.join("authorized_keys")).unwrap();
        let fp = run(Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(p.join("host_key.pub")));
        let host_fingerprint = fp.split_whitespace().nth(1).unwrap().to_string();
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        // Run as root, sshd needs its privilege separation directory (systemd would create it).
        if unsafe { libc::geteuid() } == 0 {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let mut sshd = Sshd {
            child: None,
            port: 0,
            user,
            user_key: p.join("user_key"),
            host_pub,
            host_fingerprint,
            other_host_pub,
            dir,
        };
        for _ in 0..5 {
            sshd.port = free_port();
            if sshd.spawn() {
                return sshd;
            }
        }
        panic!("sshd could not get a free port in 5 tries");
    }

    /// Starts sshd on `self.port`; false when the port was taken meanwhile.
    fn spawn(&mut self) -> bool {
        let p = self.dir.path();
        let port = self.port;
        let config = p.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\n\
                 AuthorizedKeysFile {ak}\nPidFile {pid}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowUsers {user}\nLogLevel VERBOSE\n",
                hk = p.join("host_key").display(),
                ak = p.join("authorized_keys").display(),
                pid = p.join("sshd.pid").display(),
                user = self.user,
            ),
        )
        .unwrap();
        let log = p.join("sshd.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting sshd");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = self.log();
                assert!(
                    text.contains("Address already in use"),
                    "sshd exited ({status}):\n{text}"
                );
                return false;
            }
            if banner(port) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sshd did not answer on port {port}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

/// Whether an SSH server greets on `port`.
fn banner(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-")
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A certificate authority made for one test.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`: (cert DER, key DER).
    fn server_cert(
        &self,
        names: &[&str],
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }
}

#[derive(Default)]
struct Counters {
    authorized: AtomicUsize,
    rejected: AtomicUsize,
}

/// Git's smart HTTP protocol over TLS: `git http-backend` run as CGI for each request that
/// carries `Authorization: Basic` of `x-access-token:<token>`; anything else gets 401 with a
/// Basic challenge, as GitHub and GitLab answer.
struct GitHttps {
    root: PathBuf,
    port: u16,
    counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl GitHttps {
    fn start(root: PathBuf, ca: &TestCa, token: &str) -> GitHttps {
        GitHttps::start_named(root, ca, token, &["127.0.0.1", "localhost"])
    }

    fn start_named(root: PathBuf, ca: &TestCa, token: &str, names: &[&str]) -> GitHttps {
        use base64::Engine;
        std::fs::create_dir_all(&root).unwrap();
        let (cert, key) = ca.server_cert(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tcp = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = tcp.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let state = Arc::new(CgiState {
            root: root.clone(),
            expected: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
            ),
            counters: counters.clone(),
        });
        let app = axum::Router::new().fallback(git_cgi).with_state(state);
        runtime.spawn(async move {
            let _ = axum::serve(TlsListener { tcp, acceptor }, app).await;
        });
        GitHttps {
            root,
            port,
            counters,
            _runtime: runtime,
        }
    }

    fn authorized(&self) -> usize {
        self.counters.authorized.load(Ordering::SeqCst)
    }

    fn rejected(&self) -> usize {
        self.counters.rejected.load(Ordering::SeqCst)
    }
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that gives up during the handshake ends here.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

struct CgiState {
    root: PathBuf,
    expected: String,
    counters: Arc<Counters>,
}

async fn git_cgi(
    axum::extract::State(state): axum::extract::State<Arc<CgiState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::{HeaderName, HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == state.expected.as_bytes());
    if !authorized {
        if req.headers().contains_key(header::AUTHORIZATION) {
            state.counters.rejected.fetch_add(1, Ordering::SeqCst);
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"weir test\"")],
            "authentication required\n",
        )
            .into_response();
    }
    state.counters.authorized.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    // CGI output: headers (with an optional `Status:`), a blank line, the body.
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let Some((end, sep)) = split else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("git http-backend: {}", String::from_utf8_lossy(&out.stderr)),
        )
            .into_response();
    };
    let head = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
    let mut response =
        axum::response::Response::new(axum::body::Body::from(out.stdout[end + sep..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            *response.status_mut() = StatusCode::from_bytes(code.as_bytes()).unwrap();
        } else if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
